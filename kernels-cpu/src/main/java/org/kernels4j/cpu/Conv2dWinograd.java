package org.kernels4j.cpu;

import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorSpecies;

import org.kernels4j.spi.Conv2dProblem;

/**
 * Winograd's minimal filtering F(2×2, 3×3) for the NCHW 3×3 convolutions with stride 1 and no dilation: forward,
 * and backward-data, which is the same correlation of dy with the flipped, channel-swapped filter. Part of
 * {@link Conv2dCpu}'s story (it dispatches here); the tuning knob {@code WINOGRAD} of its forward and
 * backward-data spaces turns it off.
 *
 * <p>Each 2 × 2 block of outputs ("tile") needs a 4 × 4 patch {@code d} of the padded input; with
 * {@code U = G·g·Gᵀ} per filter (4 × 4) and {@code V = Bᵀ·d·B} per patch, the outputs are
 * {@code Y = Aᵀ·(Σ_c U ⊙ V)·A}. The sum over input channels is, for each of the 16 positions {@code ξ} of the
 * 4 × 4 transform, a matrix product {@code M_ξ[out × tiles] = U_ξ[out × in] · V_ξ[in × tiles]}: 16 products of
 * depth {@code in} replace the direct convolution's 36 multiplies per tile and channel pair by 16 (2.25× fewer),
 * for transforms that cost a few adds per element. The transforms only scale by 1 and 1/2, so the result stays
 * within a few ulp of the direct one.
 *
 * <p>Layout: the padded input is split into its 2 × 2 stride phases ({@link Conv2dCpu.Planes}), so that tile
 * {@code (ty, tx)} is flat position {@code f = ty·wp + tx} of each phase plane and every element of its patch
 * is at a fixed offset from {@code f}: a vector of consecutive tiles is a vector load (the {@code wp - tilesX}
 * positions between tile rows are computed and dropped). A task is a block of tiles of one image and group: it
 * transforms the block's patches into packed {@code NR}-tile panels (one per {@code ξ}, in L2), runs the 16
 * products with the {@link MicroKernel}, and transforms each output channel's results straight into the
 * output plane.
 */
final class Conv2dWinograd {

    /** Tiles (2 × 2 outputs) per task, rounded up to whole panels (tuning knob). */
    static final int TILES_PER_TASK = 48;

    private static final int NR = MicroKernel.NR;
    private static final int LANES = Vectorization.FLOAT_LANES;

    private static final int SLOT_V = 5;
    private static final int SLOT_M = 6;
    private static final int SLOT_OUT = 7;
    private static final int SLOT_FILTERS = Workspace.TASK_SLOTS + 3;

    private Conv2dWinograd() {
    }

    /** Whether the problem is one this algorithm computes: NCHW, 3 × 3, stride 1, no dilation, not depthwise. */
    static boolean applies(Conv2dProblem p) {
        return p.format() == org.kernels4j.Conv2d.Format.NCHW && p.r() == 3 && p.s() == 3 && p.strideH() == 1
                && p.strideW() == 1 && p.dilationH() == 1 && p.dilationW() == 1 && !p.depthwise();
    }

    /** {@code y = conv(x, w) + bias}. */
    static void forward(Conv2dCpu.Operands o, int tilesPerTask) {
        Conv2dProblem p = o.p;
        float[] u = transformFilters(o, false);
        correlate(p, o.x, o.xo, p.c(), p.h(), p.w(), p.padTop(), p.padLeft(), u, p.k(), o.y, o.yo, p.p(), p.q(),
                o.bias, o.bo, tilesPerTask);
    }

    /** {@code dx}: dy correlated with the flipped filter, its channels swapped, dy padded by {@code 2 - pad}. */
    static void backwardData(Conv2dCpu.Operands o, int tilesPerTask) {
        Conv2dProblem p = o.p;
        float[] u = transformFilters(o, true);
        correlate(p, o.y, o.yo, p.k(), p.p(), p.q(), 2 - p.padTop(), 2 - p.padLeft(), u, p.c(), o.x, o.xo, p.h(),
                p.w(), null, 0, tilesPerTask);
    }

    /**
     * {@code U = G·g·Gᵀ} for every filter, as the A operands of the 16 products: {@code u[((g·16 + ξ)·M + m)·D + d]}
     * for output channel {@code m} and input channel {@code d} of group {@code g}. Forward: {@code g = w[m][d]};
     * backward-data ({@code swap}): {@code g = w[d][m]} rotated by 180°.
     */
    private static float[] transformFilters(Conv2dCpu.Operands o, boolean swap) {
        Conv2dProblem p = o.p;
        int kg = p.kPerGroup();
        int cg = p.cPerGroup();
        int m = swap ? cg : kg;
        int d = swap ? kg : cg;
        int groups = p.groups();
        float[] u = Workspace.floats(SLOT_FILTERS, groups * 16 * m * d);
        int filters = groups * m * d;
        int workers = Parallel.workers(filters, 64.0 * filters, 1 << 16);
        Parallel.run(filters, workers, (worker, filter) -> {
            int g = filter / (m * d);
            int mm = (filter / d) % m;
            int dd = filter % d;
            int k = swap ? dd : mm;
            int c = swap ? mm : dd;
            int src = o.wo + ((g * kg + k) * cg + c) * 9;
            int at = (g * 16 * m + mm) * d + dd;
            // row i of G·g (G = [1 0 0; ½ ½ ½; ½ -½ ½; 0 0 1]), then that row times Gᵀ; in double, rounded once
            for (int i = 0; i < 4; i++) {
                double r0 = gRow(i, o.w[src + tap(0, 0, swap)], o.w[src + tap(1, 0, swap)], o.w[src + tap(2, 0, swap)]);
                double r1 = gRow(i, o.w[src + tap(0, 1, swap)], o.w[src + tap(1, 1, swap)], o.w[src + tap(2, 1, swap)]);
                double r2 = gRow(i, o.w[src + tap(0, 2, swap)], o.w[src + tap(1, 2, swap)], o.w[src + tap(2, 2, swap)]);
                u[at + (4 * i) * m * d] = (float) gRow(0, r0, r1, r2);
                u[at + (4 * i + 1) * m * d] = (float) gRow(1, r0, r1, r2);
                u[at + (4 * i + 2) * m * d] = (float) gRow(2, r0, r1, r2);
                u[at + (4 * i + 3) * m * d] = (float) gRow(3, r0, r1, r2);
            }
        });
        return u;
    }

    /** {@code floats} rounded up to a multiple of 1024 (4 KiB), plus 16 (one cache line). */
    private static int spread(int floats) {
        return (floats + 1023) / 1024 * 1024 + 16;
    }

    /** Row {@code i} of {@code G = [1 0 0; ½ ½ ½; ½ -½ ½; 0 0 1]} times {@code (g0, g1, g2)}. */
    private static double gRow(int i, double g0, double g1, double g2) {
        return i == 0 ? g0 : i == 1 ? 0.5 * (g0 + g1 + g2) : i == 2 ? 0.5 * (g0 - g1 + g2) : g2;
    }

    /** Index of filter tap {@code (r, s)} in a 3 × 3 filter, rotated by 180° when {@code flip}. */
    private static int tap(int r, int s, boolean flip) {
        return flip ? (2 - r) * 3 + 2 - s : r * 3 + s;
    }

    /**
     * {@code out = bias + correlation of in (padded by top, left) with the 3 × 3 filters whose transforms are u},
     * for {@code images × inC} input planes of {@code inH × inW} and {@code outC} output planes of
     * {@code outH × outW}.
     */
    private static void correlate(Conv2dProblem p, float[] in, int inBase, int inC, int inH, int inW, int top,
                                  int left, float[] u, int outC, float[] out, int outBase, int outH, int outW,
                                  float[] bias, int bo, int tilesPerTask) {
        int images = p.n();
        if (images == 0 || outH == 0 || outW == 0) {
            return;
        }
        int groups = p.groups();
        int tilesY = (outH + 1) / 2;
        int tilesX = (outW + 1) / 2;
        int wp = tilesX + 1;
        int perImage = (tilesY - 1) * wp + tilesX;
        int block = Math.max(NR, (Math.min(tilesPerTask, perImage) + NR - 1) / NR * NR);
        int blocks = (perImage + block - 1) / block;
        // the last block's dropped tiles read up to a block and a tile row past the last plane
        Conv2dCpu.Planes planes = Conv2dCpu.Planes.copy(in, inBase, images, inC, inH, inW, 2, 2, top, left,
                tilesY + 1, wp, block + wp + 2);
        int[] off = new int[16];
        for (int r = 0; r < 4; r++) {
            for (int c = 0; c < 4; c++) {
                off[4 * r + c] = ((r % 2) * 2 + c % 2) * planes.size + (r / 2) * wp + c / 2;
            }
        }
        int dg = inC / groups;
        int mg = outC / groups;
        int tasks = images * groups * blocks;
        double flops = 32.0 * mg * dg * perImage * images * groups;
        int workers = Parallel.workers(tasks, flops, Conv2dCpu.MIN_FLOPS_PER_THREAD);
        Parallel.run(tasks, workers, (worker, task) -> {
            int blk = task % blocks;
            int g = (task / blocks) % groups;
            int n = task / blocks / groups;
            int f0 = blk * block;
            int count = Math.min(block, perImage - f0);
            int panels = (count + NR - 1) / NR;
            int cols = panels * NR;
            // one ξ's products after the other, a cache line apart from a multiple of 4 KiB: the output transform
            // reads 16 places per tile, which must not all fall into the same L1 set
            int mxi = spread(panels * mg * NR);
            float[] mm = Workspace.floats(SLOT_M, 16 * mxi);
            float[] bp = Workspace.floats(SLOT_V, dg * NR);
            // M_ξ = U_ξ · V_ξ, each panel of V_ξ = (Bᵀ·d·B)_ξ computed just before the product reads it (in L1)
            int chan0 = planes.image(n) + g * dg * planes.channelStride + f0;
            int uGroup = g * 16 * mg * dg;
            for (int x = 0; x < 16; x++) {
                int i = x / 4;
                int j = x % 4;
                int dAA = off[4 * ROW_A[i] + ROW_A[j]];
                int dAB = off[4 * ROW_A[i] + ROW_B[j]];
                int dBA = off[4 * ROW_B[i] + ROW_A[j]];
                int dBB = off[4 * ROW_B[i] + ROW_B[j]];
                for (int panel = 0; panel < panels; panel++) {
                    if (Vectorization.ENABLED) {
                        Panama.inputPanel(planes.data, chan0 + panel * NR, planes.channelStride, dg, dAA, dAB, dBA,
                                dBB, SIGN[j], SIGN[i], bp);
                    } else {
                        inputPanel(planes.data, chan0 + panel * NR, planes.channelStride, dg, dAA, dAB, dBA, dBB,
                                SIGN[j], SIGN[i], bp);
                    }
                    MicroKernel.tile(u, uGroup + x * mg * dg, dg, 1, bp, 0, dg, mm, x * mxi + panel * mg * NR, NR,
                            mg, false);
                }
            }
            // Y = Aᵀ·M·A per tile and output channel, into the output plane
            int[] map = tileMap(f0, count, cols, wp, tilesX, outH, outW);
            float[] y = Workspace.floats(SLOT_OUT, 4 * LANES);
            for (int m = 0; m < mg; m++) {
                int plane = outBase + (n * outC + g * mg + m) * outH * outW;
                float b = bias == null ? 0f : bias[bo + g * mg + m];
                for (int t = 0; t < cols; t += LANES) {
                    int at = ((t / NR) * mg + m) * NR + t % NR;
                    if (Vectorization.ENABLED) {
                        Panama.output(mm, at, mxi, b, y);
                    } else {
                        outputScalar(mm, at, mxi, b, y);
                    }
                    scatter(y, map, t, out, plane, outW);
                }
            }
        });
    }

    /**
     * Where each tile of a block writes: {@code (row·outW + column) << 2} of its top-left output, plus 1 when the
     * column to its right exists and 2 when the row below does; -1 for the dropped tiles (between tile rows or past
     * the block).
     */
    private static int[] tileMap(int f0, int count, int cols, int wp, int tilesX, int outH, int outW) {
        int[] map = Workspace.ints(cols);
        for (int t = 0; t < cols; t++) {
            int f = f0 + t;
            int ty = f / wp;
            int tx = f - ty * wp;
            if (t >= count || tx >= tilesX) {
                map[t] = -1;
                continue;
            }
            int oy = 2 * ty;
            int ox = 2 * tx;
            map[t] = (oy * outW + ox) << 2 | (ox + 1 < outW ? 1 : 0) | (oy + 1 < outH ? 2 : 0);
        }
        return map;
    }

    /** Writes the 2 × 2 outputs of tiles {@code [t, t + LANES)} ({@code y}: the four output vectors in a row). */
    private static void scatter(float[] y, int[] map, int t, float[] out, int plane, int outW) {
        for (int e = 0; e < LANES; e++) {
            int code = map[t + e];
            if (code < 0) {
                continue;
            }
            int at = plane + (code >> 2);
            out[at] = y[e];
            if ((code & 1) != 0) {
                out[at + 1] = y[LANES + e];
            }
            if ((code & 2) != 0) {
                out[at + outW] = y[2 * LANES + e];
                if ((code & 1) != 0) {
                    out[at + outW + 1] = y[3 * LANES + e];
                }
            }
        }
    }

    /*
     * Bᵀ = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1]: row i of Bᵀ·x is x[ROW_A[i]] + SIGN[i]·x[ROW_B[i]], so element
     * (i, j) of V = Bᵀ·d·B is (d[a][a'] + s'·d[a][b']) + s·(d[b][a'] + s'·d[b][b']) with a = ROW_A[i],
     * b = ROW_B[i], s = SIGN[i] and a', b', s' those of j.
     */
    private static final int[] ROW_A = {0, 1, 2, 1};
    private static final int[] ROW_B = {2, 2, 1, 3};
    private static final float[] SIGN = {-1f, 1f, -1f, -1f};

    /**
     * One panel of {@code V_ξ}: {@code bp[d·NR + e] = (dAA + sc·dAB) + sr·(dBA + sc·dBB)} for input channel
     * {@code d} and tile {@code e} of the panel, each {@code dXY} an offset of the patch element from the tile's
     * flat position in the channel's planes ({@code x[at + d·channelStride + e + dXY]}).
     */
    private static void inputPanel(float[] x, int at, int channelStride, int dg, int dAA, int dAB, int dBA, int dBB,
                                   float sc, float sr, float[] bp) {
        for (int d = 0; d < dg; d++) {
            int src = at + d * channelStride;
            for (int e = 0; e < NR; e++) {
                int a = src + e;
                bp[d * NR + e] = (x[a + dAA] + sc * x[a + dAB]) + sr * (x[a + dBA] + sc * x[a + dBB]);
            }
        }
    }

    /** The scalar twin of {@link Panama#output}, with the same order of operations. */
    private static void outputScalar(float[] m, int at, int xi, float bias, float[] y) {
        for (int e = 0; e < LANES; e++) {
            float top0 = bias;
            float top1 = bias;
            float bottom0 = bias;
            float bottom1 = bias;
            for (int j = 0; j < 4; j++) {
                float m0 = m[at + e + j * xi];
                float m1 = m[at + e + (4 + j) * xi];
                float m2 = m[at + e + (8 + j) * xi];
                float m3 = m[at + e + (12 + j) * xi];
                float a0 = m0 + m1 + m2;
                float a1 = m1 - m2 - m3;
                if (j < 3) {
                    top0 += a0;
                    bottom0 += a1;
                }
                if (j == 1) {
                    top1 += a0;
                    bottom1 += a1;
                } else if (j >= 2) {
                    top1 -= a0;
                    bottom1 -= a1;
                }
            }
            y[e] = top0;
            y[LANES + e] = top1;
            y[2 * LANES + e] = bottom0;
            y[3 * LANES + e] = bottom1;
        }
    }

    /** The vector transforms; loaded only on the vector path. */
    private static final class Panama {
        private static final VectorSpecies<Float> S = FloatVector.SPECIES_PREFERRED;

        /** The vector twin of {@link Conv2dWinograd#inputPanel} (an FMA per sign, no branches). */
        static void inputPanel(float[] x, int at, int channelStride, int dg, int dAA, int dAB, int dBA, int dBB,
                               float sc, float sr, float[] bp) {
            int l = S.length();
            FloatVector vsc = FloatVector.broadcast(S, sc);
            FloatVector vsr = FloatVector.broadcast(S, sr);
            for (int d = 0; d < dg; d++) {
                int src = at + d * channelStride;
                for (int e = 0; e < NR; e += l) {
                    int a = src + e;
                    FloatVector ra = FloatVector.fromArray(S, x, a + dAB).fma(vsc, FloatVector.fromArray(S, x, a + dAA));
                    FloatVector rb = FloatVector.fromArray(S, x, a + dBB).fma(vsc, FloatVector.fromArray(S, x, a + dBA));
                    rb.fma(vsr, ra).intoArray(bp, d * NR + e);
                }
            }
        }

        /**
         * {@code Y = Aᵀ·M·A + bias} for {@code LANES} tiles ({@code M} element {@code ξ} at {@code m[at + ξ·xi...]}),
         * {@code Aᵀ = [1 1 1 0; 0 1 -1 -1]}; the four outputs (top-left, top-right, bottom-left, bottom-right) go
         * to {@code y} one vector after the other.
         */
        static void output(float[] m, int at, int xi, float bias, float[] y) {
            int l = S.length();
            FloatVector b = FloatVector.broadcast(S, bias);
            FloatVector top0 = b;
            FloatVector top1 = b;
            FloatVector bottom0 = b;
            FloatVector bottom1 = b;
            for (int j = 0; j < 4; j++) {
                FloatVector m0 = FloatVector.fromArray(S, m, at + j * xi);
                FloatVector m1 = FloatVector.fromArray(S, m, at + (4 + j) * xi);
                FloatVector m2 = FloatVector.fromArray(S, m, at + (8 + j) * xi);
                FloatVector m3 = FloatVector.fromArray(S, m, at + (12 + j) * xi);
                FloatVector a0 = m0.add(m1).add(m2);
                FloatVector a1 = m1.sub(m2).sub(m3);
                // (Aᵀ·M)·A: column j adds to the left output for j < 3 and to the right one with signs 0 + - -
                if (j < 3) {
                    top0 = top0.add(a0);
                    bottom0 = bottom0.add(a1);
                }
                if (j == 1) {
                    top1 = top1.add(a0);
                    bottom1 = bottom1.add(a1);
                } else if (j >= 2) {
                    top1 = top1.sub(a0);
                    bottom1 = bottom1.sub(a1);
                }
            }
            top0.intoArray(y, 0);
            top1.intoArray(y, l);
            bottom0.intoArray(y, 2 * l);
            bottom1.intoArray(y, 3 * l);
        }
    }
}
