package org.kernels4j.cuda;

import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;

import org.kernels4j.Conv2d;
import org.kernels4j.DType;
import org.kernels4j.Stream;
import org.kernels4j.Tensor;
import org.kernels4j.spi.Conv2dKernels;
import org.kernels4j.spi.Conv2dProblem;
import org.kernels4j.spi.Debug;
import org.kernels4j.tuning.ShapeBuckets;
import org.kernels4j.tuning.TuningSpace;

/**
 * Convolution on CUDA: the launch side of {@code src/main/cuda/conv_igemm.cu} and {@code conv_wgmma.cu}
 * (tensor cores), {@code conv_simt.cu} (fp32), {@code conv_depthwise.cu} and {@code conv_support.cu}; their header comments
 * describe the kernels and their arguments.
 *
 * <p>Which kernels run:
 * <ul>
 *   <li>depthwise ({@code groups == C}, one input channel per group): the direct depthwise kernels, any dtype,
 *       NHWC or NCHW natively;</li>
 *   <li>fp32: the SIMT implicit GEMM, NHWC or NCHW natively;</li>
 *   <li>fp16/bf16: the tensor-core implicit GEMM, which works in NHWC; NCHW operands are transposed into
 *       NHWC copies in the stream's workspace and the result transposed back. Its 16-byte loaders need the
 *       operand's contiguous channel count to be a multiple of 8 and a 16-byte aligned address; otherwise the
 *       single-element loaders of the same kernels run (still on the tensor cores). Two engines: mma.sync
 *       (conv_igemm.cu, every GPU) and, on compute capability 9.0 with 16-byte loaders, Hopper's warpgroup MMA
 *       (conv_wgmma.cu), chosen by system property {@value #ENGINE_PROPERTY} ({@code mma}, {@code wgmma},
 *       {@code auto}: the tuned ENGINE parameter, mma by default until bench/gpu/check_conv.py's timings on a
 *       Hopper GPU say otherwise). A stride-2 convolution over fewer than 8 channels (an RGB stem), whose x no
 *       16-byte loader could read, runs as the stride-1 convolution of its 2x2 pixel blocks
 *       ({@link #spaceToDepth}; x and w rearranged by conv_support.cu, dx and dw gathered back).</li>
 * </ul>
 * The filter gradient is a split-K GEMM: each split writes fp32 partials into the stream's workspace and
 * {@code conv_reduce_*} adds them in a fixed order (deterministic, no atomics); the bias gradient likewise.
 *
 * <p>Workspace (per call, in the stream's scratch buffer, which grows on demand and is kept by the stream):
 * split-K partials of the filter gradient ({@code splits x K x R*S*C/groups} floats, at most
 * {@value #PARTIALS_CAP_BYTES} bytes, fewer splits otherwise), the bias-gradient partials, for NCHW
 * fp16/bf16 the NHWC copies of the operands and the result, and for space-to-depth the rearranged x (or dx)
 * and filter.
 *
 * <p>Sizes: every kernel indexes one image with 32-bit integers and the GEMM rows (N*P*Q or N*H*W pixels)
 * too; a batch whose pixels exceed that runs in chunks of images. {@code groups * splits} is at most 65535
 * (the grid's z extent).
 */
final class Conv2dCuda implements Conv2dKernels {

    /** A tensor-core CTA tile {@code <bm>x<bn>w<warps>} (conv_igemm.cu). */
    record Tile(int bm, int bn, int warps) {
        String id() {
            return bm + "x" + bn + "w" + warps;
        }

        int threads() {
            return warps * 32;
        }
    }

    /** Pipeline depth of every tensor-core kernel (conv_igemm.cu's STAGES). */
    static final int STAGES = 4;
    static final int BK_TC = 32;
    static final int BK_SIMT = 16;
    static final int SIMT_TILE = 64;
    static final int Z_MAX = 65535;
    static final long PARTIALS_CAP_BYTES = 256L << 20;
    private static final long ALIGN = 256;

    /**
     * Tiles of the single-element loaders: fprop "ss", dgrad "vs"/"ss" (the narrow one for C/groups <= 16,
     * such as an RGB input's gradient), wgrad "vs"/"ss".
     */
    static final Tile FPROP_ANY = new Tile(128, 64, 4);
    static final Tile DGRAD_ANY = new Tile(128, 32, 4);
    static final Tile DGRAD_NARROW = new Tile(128, 16, 4);
    static final Tile WGRAD_ANY = new Tile(64, 64, 4);

    /**
     * A pass, with its 16-byte-loader tiles, largest first, of each engine: {@code tiles} of mma.sync
     * (conv_igemm.cu), {@code wgTiles} of wgmma (conv_wgmma.cu, 64 rows per warpgroup of 4 warps). A tuning value
     * TILE = i picks the i-th (1-based) of the engine's list.
     */
    enum Pass {
        FPROP("fprop", List.of(new Tile(128, 256, 8), new Tile(128, 128, 8), new Tile(128, 128, 4), new Tile(256, 64, 4),
                new Tile(128, 64, 4), new Tile(64, 64, 4)),
                List.of(new WgTile(128, 256, 0), new WgTile(128, 128, 0), new WgTile(128, 64, 0), new WgTile(128, 256, 6),
                        new WgTile(128, 128, 8))),
        DGRAD("dgrad", FPROP.tiles, FPROP.wgTiles),
        WGRAD("wgrad", List.of(new Tile(128, 256, 8), new Tile(128, 128, 8), new Tile(128, 128, 4), new Tile(64, 256, 4),
                new Tile(64, 128, 4), new Tile(64, 64, 4)),
                List.of(new WgTile(128, 256, 0), new WgTile(128, 128, 0), new WgTile(64, 256, 0), new WgTile(128, 256, 6),
                        new WgTile(128, 128, 8)));

        final String label;
        final List<Tile> tiles;
        final List<WgTile> wgTiles;

        Pass(String label, List<Tile> tiles, List<WgTile> wgTiles) {
            this.label = label;
            this.tiles = tiles;
            this.wgTiles = wgTiles;
        }
    }

    /**
     * The fp16/bf16 tensor-core engines: mma.sync (conv_igemm.cu, every supported GPU, any loader) and Hopper's
     * warpgroup MMA (conv_wgmma.cu, compute capability 9.0 exactly, 16-byte loaders only).
     */
    enum Engine {
        MMA, WGMMA
    }

    /**
     * System property choosing the engine: {@code mma}, {@code wgmma} (where it can run, else mma), or {@code auto}
     * (the default: the tuned ENGINE parameter, whose default is mma until measurements on Hopper decide).
     */
    static final String ENGINE_PROPERTY = "kernels4j.cuda.conv.engine";

    /**
     * A wgmma tile (conv_wgmma.cu) of 64 rows per consumer warpgroup: every warp loading and multiplying with four
     * stages ({@code wsStages} 0), or warp-specialized, one more warpgroup loading, with {@code wsStages} stages.
     */
    record WgTile(int bm, int bn, int wsStages) {
        int threads() {
            return (bm / 64 + (wsStages > 0 ? 1 : 0)) * 128;
        }

        String id() {
            return bm + "x" + bn + (wsStages > 0 ? "ws" + wsStages : "");
        }

        /** CTAs one SM holds (conv_wgmma.cu's minimum blocks): the warp-specialized and 256-column ones one. */
        int slots() {
            return wsStages > 0 || bn >= 256 ? 1 : 2;
        }
    }

    /** A tensor-core kernel to launch: entry point, CTA tile, block threads and dynamic shared memory. */
    record TcKernel(String name, Engine engine, int bm, int bn, int threads, int smem) {
    }

    private static final String SOURCES = kernelSources();

    /** Forward: TILE 0 = the occupancy heuristic, i = the i-th tile of {@link Pass#FPROP}. */
    static final TuningSpace<Conv2dProblem> FPROP_SPACE = space(Pass.FPROP, false);
    /** Backward-data, as forward over the tiles of {@link Pass#DGRAD}. */
    static final TuningSpace<Conv2dProblem> DGRAD_SPACE = space(Pass.DGRAD, false);
    /** Backward-filter: TILE over {@link Pass#WGRAD}'s tiles; SPLIT_WAVES = CTAs aimed for, in SM counts. */
    static final TuningSpace<Conv2dProblem> WGRAD_SPACE = space(Pass.WGRAD, true);

    private static TuningSpace<Conv2dProblem> space(Pass pass, boolean splits) {
        List<Integer> tiles = new ArrayList<>();
        for (int i = 0; i <= pass.tiles.size(); i++) {
            tiles.add(i);
        }
        TuningSpace.Builder<Conv2dProblem> b = TuningSpace.builder("cuda.conv2d." + pass.label, Conv2dProblem.class)
                .source(SOURCES)
                .sourceOf(Conv2dCuda.class)
                .parameter("ENGINE", 0, 0, 1)
                .parameter("TILE", 0, tiles.stream().mapToInt(Integer::intValue).toArray());
        if (splits) {
            b.parameter("SPLIT_WAVES", 4, 1, 2, 4, 8, 16);
        }
        return b.constraint("ENGINE 1 (wgmma) runs on sm_90 only, over its own tile list",
                        (t, c) -> t.get("ENGINE") == 0
                                || "sm_90".equals(c.architecture()) && t.get("TILE") <= pass.wgTiles.size())
                .constraint("the tile's shared memory fits a block",
                        (t, c) -> t.get("TILE") == 0 || t.get("ENGINE") == 1
                                || smemBytes(pass, pass.tiles.get(t.get("TILE") - 1), true, true) <= c.localMemoryBytes())
                .bucket(p -> {
                    long[] d = gemm(pass, p);
                    return "m" + ShapeBuckets.pow2(d[0]) + "-n" + ShapeBuckets.pow2(d[1]) + "-k" + ShapeBuckets.pow2(d[2]);
                })
                .build();
    }

    private final CudaDevice device;
    /** CTAs of a kernel one SM holds at once, by kernel name. */
    private final Map<String, Integer> occupancy = new ConcurrentHashMap<>();

    Conv2dCuda(CudaDevice device) {
        this.device = device;
    }

    // -----------------------------------------------------------------------------------------------
    // The three passes

    @Override
    public void forward(Stream stream, Conv2dProblem p, Tensor x, Tensor w, Tensor bias, Tensor y) {
        CudaStream s = CudaStream.of(stream);
        long xa = CudaTensor.address(x, device, "x");
        long wa = CudaTensor.address(w, device, "w");
        long ba = CudaTensor.addressOrZero(bias, device, "bias");
        long ya = CudaTensor.address(y, device, "y");
        checkIndexable(p);
        if (p.n() == 0) {
            return;
        }
        boolean nchw = p.format() == Conv2d.Format.NCHW;
        int es = p.dtype().byteSize();
        long xImage = (long) p.c() * p.h() * p.w() * es;
        long yImage = (long) p.k() * p.p() * p.q() * es;
        for (int n0 = 0; n0 < p.n(); n0 += batchChunk(p)) {
            int nb = Math.min(batchChunk(p), p.n() - n0);
            Conv2dProblem c = withBatch(p, nb);
            long xc = xa + n0 * xImage;
            long yc = ya + n0 * yImage;
            Conv2dProblem q = spaceToDepth(c);
            if (depthwise(c)) {
                depthwise(s, Pass.FPROP, c, xc, wa, ba, yc, 0);
            } else if (c.dtype() == DType.FLOAT32) {
                simt(s, Pass.FPROP, c, xc, wa, ba, yc, 1, 0);
            } else if (q != null) {
                long x2 = 0;
                long w2 = align(x2 + imageBytes(q) * nb);
                long yn = align(w2 + filterBytes(q));
                s.withWorkspace(align(yn + (nchw ? yImage * nb : 0)), ws -> {
                    spaceToDepthX(s, "conv_s2d_x_b16", xc, ws + x2, c, q);
                    spaceToDepthW(s, "conv_s2d_w_b16", wa, ws + w2, c, q);
                    igemm(s, Pass.FPROP, q, ws + x2, ws + w2, ba, nchw ? ws + yn : yc, 1, 0);
                    if (nchw) {
                        transpose(s, ws + yn, yc, es, nb, c.p() * c.q(), c.k());
                    }
                });
            } else if (!nchw) {
                igemm(s, Pass.FPROP, c, xc, wa, ba, yc, 1, 0);
            } else {
                long xn = 0;
                long wn = align(xn + xImage * nb);
                long yn = align(wn + filterBytes(c));
                s.withWorkspace(align(yn + yImage * nb), ws -> {
                    transpose(s, xc, ws + xn, es, nb, c.c(), c.h() * c.w());
                    transpose(s, wa, ws + wn, es, c.k(), c.cPerGroup(), c.r() * c.s());
                    igemm(s, Pass.FPROP, c, ws + xn, ws + wn, ba, ws + yn, 1, 0);
                    transpose(s, ws + yn, yc, es, nb, c.p() * c.q(), c.k());
                });
            }
        }
    }

    @Override
    public void backwardData(Stream stream, Conv2dProblem p, Tensor dy, Tensor w, Tensor dx) {
        CudaStream s = CudaStream.of(stream);
        long dya = CudaTensor.address(dy, device, "dy");
        long wa = CudaTensor.address(w, device, "w");
        long dxa = CudaTensor.address(dx, device, "dx");
        checkIndexable(p);
        if (p.n() == 0) {
            return;
        }
        boolean nchw = p.format() == Conv2d.Format.NCHW;
        int es = p.dtype().byteSize();
        long xImage = (long) p.c() * p.h() * p.w() * es;
        long yImage = (long) p.k() * p.p() * p.q() * es;
        for (int n0 = 0; n0 < p.n(); n0 += batchChunk(p)) {
            int nb = Math.min(batchChunk(p), p.n() - n0);
            Conv2dProblem c = withBatch(p, nb);
            long dyc = dya + n0 * yImage;
            long dxc = dxa + n0 * xImage;
            Conv2dProblem q = spaceToDepth(c);
            if (depthwise(c)) {
                depthwise(s, Pass.DGRAD, c, dyc, wa, 0, dxc, 0);
            } else if (c.dtype() == DType.FLOAT32) {
                simt(s, Pass.DGRAD, c, dyc, wa, 0, dxc, 1, 0);
            } else if (q != null) {
                long dyn = 0;
                long w2 = align(dyn + (nchw ? yImage * nb : 0));
                long dx2 = align(w2 + filterBytes(q));
                s.withWorkspace(align(dx2 + imageBytes(q) * nb), ws -> {
                    if (nchw) {
                        transpose(s, dyc, ws + dyn, es, nb, c.k(), c.p() * c.q());
                    }
                    spaceToDepthW(s, "conv_s2d_w_b16", wa, ws + w2, c, q);
                    igemm(s, Pass.DGRAD, q, nchw ? ws + dyn : dyc, ws + w2, 0, ws + dx2, 1, 0);
                    spaceToDepthX(s, "conv_d2s_x_b16", ws + dx2, dxc, c, q);
                });
            } else if (!nchw) {
                igemm(s, Pass.DGRAD, c, dyc, wa, 0, dxc, 1, 0);
            } else {
                long dyn = 0;
                long wn = align(dyn + yImage * nb);
                long dxn = align(wn + filterBytes(c));
                s.withWorkspace(align(dxn + xImage * nb), ws -> {
                    transpose(s, dyc, ws + dyn, es, nb, c.k(), c.p() * c.q());
                    transpose(s, wa, ws + wn, es, c.k(), c.cPerGroup(), c.r() * c.s());
                    igemm(s, Pass.DGRAD, c, ws + dyn, ws + wn, 0, ws + dxn, 1, 0);
                    transpose(s, ws + dxn, dxc, es, nb, c.h() * c.w(), c.c());
                });
            }
        }
    }

    @Override
    public void backwardFilter(Stream stream, Conv2dProblem p, Tensor dy, Tensor x, Tensor dw, Tensor db) {
        CudaStream s = CudaStream.of(stream);
        long dya = CudaTensor.address(dy, device, "dy");
        long xa = CudaTensor.address(x, device, "x");
        long dwa = CudaTensor.address(dw, device, "dw");
        long dba = CudaTensor.addressOrZero(db, device, "db");
        checkIndexable(p);
        long count = (long) p.k() * p.r() * p.s() * p.cPerGroup();
        if (p.n() == 0) {   // empty sums
            zero(s, dwa, count, p.dtype());
            zero(s, dba, p.k(), p.dtype());
            return;
        }
        boolean nchw = p.format() == Conv2d.Format.NCHW;
        boolean tc = !depthwise(p) && p.dtype() != DType.FLOAT32;
        // the GEMM's problem: the space-to-depth one (NHWC, its own filter) where that applies
        Conv2dProblem g = spaceToDepth(p) != null ? spaceToDepth(p) : p;
        boolean s2d = g != p;
        int es = p.dtype().byteSize();
        long xImage = (long) p.c() * p.h() * p.w() * es;
        long yImage = (long) p.k() * p.p() * p.q() * es;
        long gCount = (long) g.k() * g.r() * g.s() * g.cPerGroup();
        int chunk = batchChunk(p);
        int chunks = ceilDiv(p.n(), chunk);
        // one split plan per chunk size (all chunks but the last are full)
        Split full = wgradSplits(withBatch(g, Math.min(chunk, p.n())), chunks);
        Split last = wgradSplits(withBatch(g, p.n() - (chunks - 1) * chunk), chunks);
        int totalSplits = full.splits * (chunks - 1) + last.splits;
        long partBytes = gCount * Float.BYTES;
        long part = 0;
        long dyn = align(part + partBytes * totalSplits);
        long xn = align(dyn + (tc && nchw ? yImage * chunk : 0));
        long dwn = align(xn + (s2d ? imageBytes(g) * chunk : tc && nchw ? xImage * chunk : 0));
        long end = align(dwn + (s2d || tc && nchw ? filterBytes(g) : 0));
        s.withWorkspace(end, ws -> {
            int done = 0;
            for (int i = 0; i < chunks; i++) {
                int n0 = i * chunk;
                int nb = Math.min(chunk, p.n() - n0);
                Conv2dProblem c = withBatch(p, nb);
                Split sp = i == chunks - 1 ? last : full;
                long pc = ws + part + done * partBytes;
                long dyc = dya + n0 * yImage;
                long xc = xa + n0 * xImage;
                if (depthwise(c)) {
                    depthwise(s, Pass.WGRAD, c, dyc, xc, 0, pc, sp.splitLen);
                } else if (!tc) {
                    simt(s, Pass.WGRAD, c, dyc, xc, 0, pc, sp.splits, sp.splitLen);
                } else if (s2d) {
                    if (nchw) {
                        transpose(s, dyc, ws + dyn, es, nb, c.k(), c.p() * c.q());
                    }
                    Conv2dProblem q = withBatch(g, nb);
                    spaceToDepthX(s, "conv_s2d_x_b16", xc, ws + xn, c, q);
                    igemm(s, Pass.WGRAD, q, nchw ? ws + dyn : dyc, ws + xn, 0, pc, sp.splits, sp.splitLen);
                } else if (!nchw) {
                    igemm(s, Pass.WGRAD, c, dyc, xc, 0, pc, sp.splits, sp.splitLen);
                } else {
                    transpose(s, dyc, ws + dyn, es, nb, c.k(), c.p() * c.q());
                    transpose(s, xc, ws + xn, es, nb, c.c(), c.h() * c.w());
                    igemm(s, Pass.WGRAD, c, ws + dyn, ws + xn, 0, pc, sp.splits, sp.splitLen);
                }
                done += sp.splits;
            }
            if (s2d) {
                reduce(s, ws + part, ws + dwn, gCount, totalSplits, p.dtype());
                spaceToDepthW(s, "conv_d2s_w_b16", ws + dwn, dwa, p, g);
            } else if (tc && nchw) {
                reduce(s, ws + part, ws + dwn, count, totalSplits, p.dtype());
                transpose(s, ws + dwn, dwa, es, p.k(), p.r() * p.s(), p.cPerGroup());
            } else {
                reduce(s, ws + part, dwa, count, totalSplits, p.dtype());
            }
        });
        if (dba != 0) {
            biasGrad(s, p, dya, dba, chunk);
        }
    }

    // -----------------------------------------------------------------------------------------------
    // Kernel launches

    private void igemm(CudaStream s, Pass pass, Conv2dProblem p, long a, long b, long bias, long out, int splits,
                       int splitLen) {
        if (pass != Pass.DGRAD) {
            igemm(s, pass, p, a, b, bias, out, splits, splitLen, gemm(pass, p)[0], -1, -1);
            return;
        }
        for (int[] ph : dgradPhases(p)) {
            igemm(s, pass, p, a, b, bias, out, 1, 0, (long) p.n() * ph[2] * ph[3], ph[0], ph[1]);
        }
    }

    /** One launch: {@code m} GEMM rows (dgrad: of the stride phase {@code phaseH, phaseW}). */
    private void igemm(CudaStream s, Pass pass, Conv2dProblem p, long a, long b, long bias, long out, int splits,
                       int splitLen, long m, int phaseH, int phaseW) {
        boolean[] v = vectorLoaders(pass, p, a, b);
        TcKernel k = tcKernel(pass, p, v[0], v[1], m);
        String kernel = k.name();
        long tiles = ceilDiv(m, k.bm()) * (long) ceilDiv(gemm(pass, p)[1], k.bn());
        int smem = k.smem();
        Debug.log(1, () -> describe(p, pass, kernel + " grid (" + tiles + ", 1, " + p.groups() * splits + ")"
                + (pass == Pass.WGRAD ? " splits " + splits + " x " + splitLen : "")
                + (phaseH >= 0 ? " stride phase (" + phaseH + ", " + phaseW + ")" : "")));
        List<Object> l = args(p, a, b, bias, out, splitLen);
        l.add(phaseH);
        l.add(phaseW);
        CudaKernels.launch(s, kernel, Dim3.of(Math.toIntExact(tiles), 1, p.groups() * splits), Dim3.of(k.threads()),
                smem, l.toArray());
    }

    /**
     * dgrad's launches (conv_igemm.cu): with dilation 1 one per stride phase that has pixels,
     * {phaseH, phaseW, rows, columns} of the phase; otherwise one gathering every tap, {-1, -1, H, W}.
     */
    static List<int[]> dgradPhases(Conv2dProblem p) {
        if (p.dilationH() != 1 || p.dilationW() != 1) {
            return List.of(new int[] {-1, -1, p.h(), p.w()});
        }
        List<int[]> out = new ArrayList<>();
        for (int a = 0; a < p.strideH(); a++) {
            for (int b = 0; b < p.strideW(); b++) {
                int h0 = Math.floorMod(a - p.padTop(), p.strideH());
                int w0 = Math.floorMod(b - p.padLeft(), p.strideW());
                int rows = h0 < p.h() ? ceilDiv(p.h() - h0, p.strideH()) : 0;
                int cols = w0 < p.w() ? ceilDiv(p.w() - w0, p.strideW()) : 0;
                if (rows > 0 && cols > 0) {
                    out.add(new int[] {a, b, rows, cols});
                }
            }
        }
        return out;
    }

    private void simt(CudaStream s, Pass pass, Conv2dProblem p, long a, long b, long bias, long out, int splits,
                      int splitLen) {
        long[] d = gemm(pass, p);
        long tiles = ceilDiv(d[0], SIMT_TILE) * (long) ceilDiv(d[1], SIMT_TILE);
        String kernel = "conv_simt_" + pass.label + "_" + suffix(p.dtype());
        Debug.log(1, () -> describe(p, pass, kernel + " grid (" + tiles + ", 1, " + p.groups() * splits + ")"));
        List<Object> l = args(p, a, b, bias, out, splitLen);
        l.add(p.format() == Conv2d.Format.NCHW ? 1 : 0);
        CudaKernels.launch(s, kernel, Dim3.of(Math.toIntExact(tiles), 1, p.groups() * splits), Dim3.of(256), 0,
                l.toArray());
    }

    private void depthwise(CudaStream s, Pass pass, Conv2dProblem p, long a, long b, long bias, long out,
                           int splitLen) {
        String kernel = "conv_dw_" + pass.label + "_" + suffix(p.dtype());
        Dim3 grid;
        Dim3 block;
        if (pass == Pass.WGRAD) {
            int npq = p.n() * p.p() * p.q();
            grid = Dim3.of(ceilDiv(p.k(), 32), ceilDiv(npq, splitLen));
            block = Dim3.of(32, 8);
        } else {
            long perImage = pass == Pass.FPROP ? (long) p.k() * p.p() * p.q() : (long) p.c() * p.h() * p.w();
            grid = Dim3.of(ceilDiv(perImage, 256), Math.min(p.n(), Z_MAX));
            block = Dim3.of(256);
        }
        Debug.log(1, () -> describe(p, pass, kernel + " grid " + grid));
        List<Object> l = args(p, a, b, bias, out, splitLen);
        l.add(p.format() == Conv2d.Format.NCHW ? 1 : 0);
        CudaKernels.launch(s, kernel, grid, block, 0, l.toArray());
    }

    /**
     * The arguments every conv kernel starts with: four pointers, the geometry, splitLen; the tensor-core
     * kernels add the dgrad phase, the portable ones the layout flag.
     */
    private static List<Object> args(Conv2dProblem p, long a, long b, long bias, long out, int splitLen) {
        return new ArrayList<>(List.of(a, b, bias, out, p.n(), p.h(), p.w(), p.c(), p.k(), p.r(), p.s(), p.p(), p.q(),
                p.strideH(), p.strideW(), p.padTop(), p.padLeft(), p.dilationH(), p.dilationW(), p.groups(), splitLen));
    }

    private void reduce(CudaStream s, long partial, long out, long count, int splits, DType dtype) {
        int blocks = Math.max(1, Math.min(ceilDiv(count, 256), Z_MAX));
        CudaKernels.launch(s, "conv_reduce_" + suffix(dtype), Dim3.of(blocks), Dim3.of(256), 0, partial, out, count,
                splits);
    }

    /** db: channel sums of dy in fp32 partials (per pixel split, per batch chunk), then one reduce. */
    private void biasGrad(CudaStream s, Conv2dProblem p, long dya, long dba, int chunk) {
        int pq = p.p() * p.q();
        int blocksK = ceilDiv(p.k(), 32);
        int chunks = ceilDiv(p.n(), chunk);
        int[] splits = new int[chunks];
        int[] lens = new int[chunks];
        int total = 0;
        for (int i = 0; i < chunks; i++) {
            int npq = Math.min(chunk, p.n() - i * chunk) * pq;
            int sp = Math.max(1, Math.min(Math.min(ceilDiv(4L * sms(), blocksK), ceilDiv(npq, 256)), Z_MAX));
            lens[i] = ceilDiv(npq, sp);
            splits[i] = ceilDiv(npq, lens[i]);
            total += splits[i];
        }
        long yImage = (long) p.k() * pq * p.dtype().byteSize();
        int nchw = p.format() == Conv2d.Format.NCHW ? 1 : 0;
        int all = total;
        s.withWorkspace((long) total * p.k() * Float.BYTES, ws -> {
            long row = 0;
            for (int i = 0; i < chunks; i++) {
                int nb = Math.min(chunk, p.n() - i * chunk);
                CudaKernels.launch(s, "conv_bias_grad_" + suffix(p.dtype()), Dim3.of(blocksK, splits[i]), Dim3.of(32, 8),
                        0, dya + i * chunk * yImage, ws + row * p.k() * Float.BYTES, nb, p.k(), pq, lens[i], nchw);
                row += splits[i];
            }
            reduce(s, ws, dba, p.k(), all, p.dtype());
        });
    }

    /**
     * conv_s2d_x_b16 (x into the space-to-depth image of {@code q}) or conv_d2s_x_b16 (back), over the images of
     * problem {@code p}, which gives the layout of x.
     */
    private static void spaceToDepthX(CudaStream s, String kernel, long in, long out, Conv2dProblem p, Conv2dProblem q) {
        long work = kernel.equals("conv_s2d_x_b16") ? (long) q.n() * q.h() * q.w() * (q.c() / 8)
                : (long) p.n() * p.c() * p.h() * p.w();
        CudaKernels.launch(s, kernel, Dim3.of(Math.max(1, ceilDiv(work, 256))), Dim3.of(256), 0, in, out, p.n(), p.h(),
                p.w(), p.c(), q.h(), q.w(), q.c(), p.format() == Conv2d.Format.NCHW ? 1 : 0);
    }

    /** conv_s2d_w_b16 (p's filter into q's) or conv_d2s_w_b16 (back). */
    private static void spaceToDepthW(CudaStream s, String kernel, long in, long out, Conv2dProblem p, Conv2dProblem q) {
        long work = kernel.equals("conv_s2d_w_b16") ? (long) q.k() * q.r() * q.s() * q.c()
                : (long) p.k() * p.r() * p.s() * p.c();
        CudaKernels.launch(s, kernel, Dim3.of(Math.max(1, ceilDiv(work, 256))), Dim3.of(256), 0, in, out, p.k(), p.r(),
                p.s(), p.c(), q.r(), q.s(), q.c(), 2 * q.padTop() - p.padTop(), 2 * q.padLeft() - p.padLeft(),
                p.format() == Conv2d.Format.NCHW ? 1 : 0);
    }

    /** out[b][c][r] = in[b][r][c], elements of {@code es} bytes. */
    private static void transpose(CudaStream s, long in, long out, int es, int batch, int rows, int cols) {
        Dim3 grid = Dim3.of(ceilDiv(cols, 32), Math.min(ceilDiv(rows, 32), Z_MAX), Math.min(batch, Z_MAX));
        CudaKernels.launch(s, es == 4 ? "conv_transpose_b32" : "conv_transpose_b16", grid, Dim3.of(32, 8), 0, in, out,
                batch, rows, cols);
    }

    private void zero(CudaStream s, long address, long count, DType dtype) {
        if (address == 0 || count == 0) {
            return;
        }
        device.makeCurrent();
        if (dtype == DType.FLOAT32) {
            device.driver().memsetD32Async(address, 0, count, s.handle());
        } else {
            device.driver().memsetD16Async(address, (short) 0, count, s.handle());
        }
    }

    // -----------------------------------------------------------------------------------------------
    // Planning

    /** Whether the 16-byte loaders can read operand A and B: channel counts and addresses (conv_igemm.cu). */
    private static boolean[] vectorLoaders(Pass pass, Conv2dProblem p, long a, long b) {
        int aChannels = pass == Pass.FPROP ? p.cPerGroup() : p.k() / p.groups();
        return new boolean[] {aChannels % 8 == 0 && a % 16 == 0, p.cPerGroup() % 8 == 0 && b % 16 == 0};
    }

    /**
     * The tensor-core kernel for a pass of an NHWC fp16/bf16 problem with {@code m} GEMM rows (dgrad: those of one
     * stride phase), {@code va}/{@code vb}: whether the 16-byte loaders can read operand A/B.
     */
    TcKernel tcKernel(Pass pass, Conv2dProblem p, boolean va, boolean vb, long m) {
        String prefix = "conv_" + pass.label + "_" + suffix(p.dtype()) + "_";
        // dgrad over at most 32 input channels (a space-to-depth stem's 16): the narrow tiles, whose filter
        // loader is the single-element one, rather than 64 columns of which most would be padding
        if (!(va && vb) || pass == Pass.DGRAD && p.cPerGroup() <= DGRAD_ANY.bn()) {
            Tile t = switch (pass) {
                case FPROP -> FPROP_ANY;
                case DGRAD -> p.cPerGroup() <= DGRAD_NARROW.bn() ? DGRAD_NARROW : DGRAD_ANY;
                case WGRAD -> WGRAD_ANY;
            };
            // no "_sv" kernels: an operand the 16-byte loader could read takes the single-element one when the
            // other cannot, and the shared memory is that of the loaders launched (their tables)
            boolean a = va && pass != Pass.FPROP;
            return mma(prefix + t.id() + (a ? "_vs" : "_ss"), t, smemBytes(pass, t, a, false));
        }
        TuningSpace<Conv2dProblem> space = pass == Pass.FPROP ? FPROP_SPACE : pass == Pass.DGRAD ? DGRAD_SPACE : WGRAD_SPACE;
        var tuned = space.resolve(device, p.dtype(), p);
        Engine engine = engine(tuned.get("ENGINE"));
        int chosen = tuned.get("TILE");
        long ng = gemm(pass, p)[1];
        long kd = gemm(pass, p)[2];
        if (engine == Engine.WGMMA) {
            WgTile t = chosen > 0 && chosen <= pass.wgTiles.size() ? pass.wgTiles.get(chosen - 1) : wgTile(pass, p, m, ng);
            return new TcKernel("conv_wg_" + pass.label + "_" + suffix(p.dtype()) + "_" + t.id() + "_vv", Engine.WGMMA,
                    t.bm(), t.bn(), t.threads(), wgSmemBytes(pass, t));
        }
        if (chosen > 0) {
            Tile t = pass.tiles.get(chosen - 1);
            return mma(prefix + t.id() + "_vv", t, smemBytes(pass, t, true, true));
        }
        List<Tile> prefs;
        // The first H200 run (bf16, N=128) favoured the tiles that put more warps on an SM: 64x64w4 (four CTAs of
        // four warps) 261 TFLOP/s and 128x128w4 (two) 249 against 128x256w8 (one CTA of eight) 185 and 256x64w4
        // (two of four) 209; so the one-CTA and 256-row tiles are left to tuning (TILE).
        if (pass == Pass.WGRAD) {
            // the reduction is split to fill the GPU, so the tile is chosen for reuse among the two-or-more-CTA ones
            prefs = m > 64 ? List.of(new Tile(128, 128, 4)) : ng > 64 ? List.of(new Tile(64, 128, 4))
                    : List.of(new Tile(64, 64, 4));
        } else if (kd <= 2 * BK_TC) {
            // one or two k-tiles (a 1x1 convolution over few channels): the pass moves memory rather than computes,
            // and more CTAs per SM overlap one's loads with another's stores
            prefs = ng > 64 ? List.of(new Tile(128, 128, 4), new Tile(128, 64, 4), new Tile(64, 64, 4))
                    : List.of(new Tile(128, 64, 4), new Tile(64, 64, 4));
        } else if (ng > 64) {
            prefs = List.of(new Tile(128, 128, 4), new Tile(64, 64, 4));
        } else {
            prefs = List.of(new Tile(128, 64, 4), new Tile(64, 64, 4));
        }
        Tile pick = null;
        for (Tile t : prefs) {
            if (smemBytes(pass, t, true, true) > device.capabilities().localMemoryBytes()) {
                continue;
            }
            pick = t;
            if (pass == Pass.WGRAD) {
                break;
            }
            long ctas = ceilDiv(m, t.bm()) * (long) ceilDiv(ng, t.bn()) * p.groups();
            if (ctas >= (long) sms() * slots(prefix + t.id() + "_vv", t, smemBytes(pass, t, true, true))) {
                break;
            }
        }
        Tile t = pick != null ? pick : new Tile(64, 64, 4);
        return mma(prefix + t.id() + "_vv", t, smemBytes(pass, t, true, true));
    }

    private static TcKernel mma(String name, Tile t, int smem) {
        return new TcKernel(name, Engine.MMA, t.bm(), t.bn(), t.threads(), smem);
    }

    /**
     * The wgmma tile: as wide as NG needs, narrower while the CTAs would not fill every SM once (the 256-column
     * tile holds one CTA per SM, the others two); wgrad, whose reduction is split to fill the GPU, as wide as NG.
     */
    private WgTile wgTile(Pass pass, Conv2dProblem p, long m, long ng) {
        List<WgTile> w = pass.wgTiles;
        if (pass == Pass.WGRAD) {
            return m <= 64 ? w.get(2) : ng > 128 ? w.get(0) : w.get(1);
        }
        List<WgTile> prefs = ng > 128 ? w.subList(0, 3) : ng > 64 ? w.subList(1, 3) : w.subList(2, 3);
        for (WgTile t : prefs) {
            if (ceilDiv(m, t.bm()) * (long) ceilDiv(ng, t.bn()) * p.groups() >= (long) sms() * t.slots()) {
                return t;
            }
        }
        return prefs.getLast();
    }

    /** Whether the wgmma kernels can run here and the engine asked for (property, else tuned value) is wgmma. */
    private Engine engine(int tuned) {
        String mode = System.getProperty(ENGINE_PROPERTY, "auto").trim().toLowerCase(java.util.Locale.ROOT);
        Engine asked = switch (mode) {
            case "mma" -> Engine.MMA;
            case "wgmma" -> Engine.WGMMA;
            case "auto" -> tuned == 1 ? Engine.WGMMA : Engine.MMA;
            default -> throw new IllegalStateException(ENGINE_PROPERTY + ": expected mma, wgmma or auto, got '" + mode + "'");
        };
        return asked == Engine.WGMMA && wgmmaRuns() ? Engine.WGMMA : Engine.MMA;
    }

    /** The wgmma kernels exist for sm_90a only (their PTX traps): compute capability 9.0 and a build that has them. */
    private boolean wgmmaRuns() {
        return device.computeCapabilityMajor() == 9 && device.computeCapabilityMinor() == 0
                && KernelManifest.resource("conv_wgmma.sm_90a.cubin") != null;
    }

    private int slots(String kernel, Tile t, int smem) {
        return occupancy.computeIfAbsent(kernel, k -> Math.max(1, device.kernels().maxActiveBlocksPerSm(k, t.threads(), smem)));
    }

    /** Split-K of the filter gradient, of one batch chunk. */
    record Split(int splits, int splitLen) {
    }

    Split wgradSplits(Conv2dProblem p, int chunks) {
        long[] d = gemm(Pass.WGRAD, p);
        long kd = d[2];
        long count = (long) p.k() * p.r() * p.s() * p.cPerGroup();
        long capSplits = Math.max(1, PARTIALS_CAP_BYTES / chunks / (count * Float.BYTES));
        if (depthwise(p)) {
            int blocksK = ceilDiv(p.k(), 32);
            long sp = Math.max(1, Math.min(Math.min(ceilDiv(4L * sms(), blocksK), ceilDiv(kd, 256)),
                    Math.min(capSplits, Z_MAX)));
            int len = ceilDiv(kd, sp);
            return new Split(ceilDiv(kd, len), len);
        }
        int bk;
        long tiles;
        int waves = 4;
        if (p.dtype() == DType.FLOAT32) {
            bk = BK_SIMT;
            tiles = ceilDiv(d[0], SIMT_TILE) * (long) ceilDiv(d[1], SIMT_TILE);
        } else {
            bk = BK_TC;
            TcKernel t = tcKernel(Pass.WGRAD, p, (p.k() / p.groups()) % 8 == 0, p.cPerGroup() % 8 == 0, d[0]);
            tiles = ceilDiv(d[0], t.bm()) * (long) ceilDiv(d[1], t.bn());
            waves = WGRAD_SPACE.resolve(device, p.dtype(), p).get("SPLIT_WAVES");
        }
        tiles *= p.groups();
        long ktiles = Math.max(1, ceilDiv(kd, bk));
        long sp = Math.max(1, ceilDiv((long) waves * sms(), tiles));
        sp = Math.max(1, Math.min(Math.min(sp, ktiles), Math.min(Z_MAX / p.groups(), capSplits)));
        int len = Math.toIntExact(ceilDiv(ktiles, sp) * (long) bk);
        return new Split(ceilDiv(kd, len), len);
    }

    /** GEMM extents {M, NG, KD} of a pass (conv_igemm.cu's header; dgrad's M and KD summed over its phases). */
    static long[] gemm(Pass pass, Conv2dProblem p) {
        long npq = (long) p.n() * p.p() * p.q();
        int cg = p.cPerGroup();
        int kg = p.k() / p.groups();
        long rs = (long) p.r() * p.s();
        return switch (pass) {
            case FPROP -> new long[] {npq, kg, rs * cg};
            case DGRAD -> new long[] {(long) p.n() * p.h() * p.w(), cg, rs * kg};
            case WGRAD -> new long[] {kg, rs * cg, npq};
        };
    }

    /**
     * Dynamic shared memory of a tensor-core kernel, as conv_igemm.cu's Plan computes it (and reports in
     * {@code <entry>_cfg}; a test compares the two): the pipeline stages, or the epilogue's staging tile if
     * larger, then the pixel and tap tables of the single-element loaders.
     */
    static int smemBytes(Pass pass, Tile t, boolean va, boolean vb) {
        boolean aK = pass != Pass.WGRAD;
        boolean bK = pass == Pass.FPROP;
        int ldk = BK_TC + 8;
        int aElems = aK ? t.bm() * ldk : BK_TC * (t.bm() + 8);
        int bElems = bK ? t.bn() * ldk : BK_TC * (t.bn() + 8);
        int pipe = STAGES * (aElems + bElems) * 2;
        int epi = pass == Pass.WGRAD ? 0 : t.bm() * (t.bn() + 8) * 2;
        int bytes = Math.max(pipe, epi);
        if (aK && !va) {
            bytes += t.bm() * 16;
        }
        if (pass == Pass.WGRAD && !vb) {
            bytes += t.bn() * 16;
        }
        return bytes;
    }

    /**
     * Dynamic shared memory of a wgmma kernel (conv_wgmma.cu, 16-byte loaders), as its Plan computes it with the
     * core-matrix layout: k-major tiles rows x 40 elements, m/n-major ones 36 x columns (conv_igemm.cuh's
     * CoreLayout), four stages (warp-specialized: its own count), or the epilogue's staging tile if larger.
     */
    static int wgSmemBytes(Pass pass, WgTile t) {
        int aElems = pass != Pass.WGRAD ? t.bm() * 40 : 36 * t.bm();
        int bElems = pass == Pass.FPROP ? t.bn() * 40 : 36 * t.bn();
        int stages = t.wsStages() > 0 ? t.wsStages() : STAGES;
        int pipe = stages * (aElems + bElems) * 2;
        int epi = pass == Pass.WGRAD ? 0 : t.bm() * (t.bn() + 8) * 2;
        // the warp-specialized kernels' full and empty mbarrier per stage
        return Math.max(pipe, epi) + (t.wsStages() > 0 ? 16 * t.wsStages() : 0);
    }

    /**
     * The stride-1 NHWC problem over 2x2 pixel blocks (conv_support.cu's space-to-depth) that computes a stride-2
     * fp16/bf16 convolution of fewer than 8 input channels (an RGB stem) on the 16-byte loaders: 4C channels padded
     * to a multiple of 8, an R2 x S2 filter, the same P x Q output; null where it does not apply (groups,
     * dilation, 8 or more channels, or more than 32 after the transform).
     */
    static Conv2dProblem spaceToDepth(Conv2dProblem p) {
        if (p.dtype() == DType.FLOAT32 || p.groups() != 1 || depthwise(p) || p.strideH() != 2 || p.strideW() != 2
                || p.dilationH() != 1 || p.dilationW() != 1 || p.c() % 8 == 0 || 4 * p.c() > 32) {
            return null;
        }
        int c2 = (4 * p.c() + 7) / 8 * 8;
        int pt = (p.padTop() + 1) / 2;
        int pl = (p.padLeft() + 1) / 2;
        int r2 = (p.r() - 1 + 2 * pt - p.padTop()) / 2 + 1;
        int s2 = (p.s() - 1 + 2 * pl - p.padLeft()) / 2 + 1;
        int h2 = (p.h() + 1) / 2;
        int w2 = (p.w() + 1) / 2;
        return new Conv2dProblem(Conv2d.Format.NHWC, p.n(), c2, h2, w2, p.k(), r2, s2, p.p(), p.q(), 1, 1, pt, pl,
                p.p() - 1 + r2 - h2 - pt, p.q() - 1 + s2 - w2 - pl, 1, 1, 1, p.dtype());
    }

    private static long imageBytes(Conv2dProblem p) {
        return (long) p.c() * p.h() * p.w() * p.dtype().byteSize();
    }

    static boolean depthwise(Conv2dProblem p) {
        return p.groups() == p.c() && p.cPerGroup() == 1;
    }

    /**
     * Images per launch: the GEMM rows (N*P*Q or N*H*W pixels) are 32-bit in the kernels. One image must itself
     * be indexable with 32 bits ({@link #checkIndexable}).
     */
    static int batchChunk(Conv2dProblem p) {
        long perImage = Math.max(Math.max((long) p.h() * p.w(), (long) p.p() * p.q()), 1);
        return (int) Math.max(1, Math.min(p.n(), (Integer.MAX_VALUE - 1024) / perImage));
    }

    private static void checkIndexable(Conv2dProblem p) {
        long x = (long) p.c() * p.h() * p.w();
        long y = (long) p.k() * p.p() * p.q();
        long w = (long) p.k() * p.r() * p.s() * p.cPerGroup();
        long limit = Integer.MAX_VALUE - 1024;
        if (x > limit || y > limit || w > limit) {
            throw new IllegalArgumentException("x: one image of " + x + " input and " + y + " output elements with a "
                    + w + "-element filter; the CUDA convolution kernels index an image and the filter with 32-bit "
                    + "integers (at most " + limit + " elements each)");
        }
        if (p.groups() > Z_MAX) {
            throw new IllegalArgumentException("groups: the CUDA convolution kernels take at most " + Z_MAX
                    + " groups (one grid z slice each) unless the convolution is depthwise, got " + p.groups());
        }
    }

    static Conv2dProblem withBatch(Conv2dProblem p, int n) {
        return n == p.n() ? p : new Conv2dProblem(p.format(), n, p.c(), p.h(), p.w(), p.k(), p.r(), p.s(), p.p(),
                p.q(), p.strideH(), p.strideW(), p.padTop(), p.padLeft(), p.padBottom(), p.padRight(), p.dilationH(),
                p.dilationW(), p.groups(), p.dtype());
    }

    private static long filterBytes(Conv2dProblem p) {
        return (long) p.k() * p.r() * p.s() * p.cPerGroup() * p.dtype().byteSize();
    }

    private int sms() {
        return device.capabilities().computeUnits();
    }

    private static long align(long bytes) {
        return (bytes + ALIGN - 1) / ALIGN * ALIGN;
    }

    static int ceilDiv(long a, long b) {
        return Math.toIntExact((a + b - 1) / b);
    }

    static String suffix(DType dtype) {
        return switch (dtype) {
            case FLOAT32 -> "f32";
            case FLOAT16 -> "f16";
            case BFLOAT16 -> "bf16";
        };
    }

    private String describe(Conv2dProblem p, Pass pass, String launch) {
        return device.id() + " conv2d " + pass.label + " " + p.format() + " " + p.dtype() + " N" + p.n() + " C" + p.c()
                + " " + p.h() + "x" + p.w() + " K" + p.k() + " " + p.r() + "x" + p.s() + " g" + p.groups() + ": " + launch;
    }

    private static String kernelSources() {
        StringBuilder sb = new StringBuilder();
        for (String m : new String[] {"conv_igemm", "conv_wgmma", "conv_simt", "conv_depthwise", "conv_support"}) {
            byte[] ptx = KernelManifest.resource(m + ".ptx");
            sb.append(ptx == null ? "built without CUDA kernels" : new String(ptx, StandardCharsets.UTF_8));
        }
        return sb.toString();
    }
}
