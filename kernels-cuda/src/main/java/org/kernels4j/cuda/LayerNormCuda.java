package org.kernels4j.cuda;

import java.nio.charset.StandardCharsets;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;

import org.kernels4j.DType;
import org.kernels4j.Stream;
import org.kernels4j.Tensor;
import org.kernels4j.spi.Debug;
import org.kernels4j.spi.LayerNormKernels;
import org.kernels4j.spi.LayerNormProblem;
import org.kernels4j.tuning.Parameters;
import org.kernels4j.tuning.ShapeBuckets;
import org.kernels4j.tuning.TuningSpace;

/**
 * Layer norm and RMS norm on CUDA: the launch side of {@code src/main/cuda/layernorm.cu} (read its header
 * comment for the kernels).
 *
 * <p>A row is owned by a row-group of {@code rowThreads} threads (a multiple of 32: one warp for short rows,
 * up to a block for long ones) and {@code rowsPerBlock} row-groups share a block. The fast kernels
 * ({@code *_v<N>}) hold each thread's N 16-byte packs of the row in registers, so x (and dy) are read once;
 * they need the row length to be a multiple of the pack (4 fp32 or 8 fp16/bf16 elements) and 16-byte aligned
 * tensors. Other rows, and rows too long for the registers, take the {@code *_any} kernels (scalar loads,
 * two passes over the row). Backward writes dx in one pass over a persistent grid (each row-group loads its
 * next row while it finishes the current one) and sums dgamma/dbeta in shared memory into fp32 partial rows
 * per block, which a finalize kernel adds up in a fixed order (deterministic). Zero rows launch nothing (the
 * parameter gradients, being empty sums, are set to zero).
 */
final class LayerNormCuda implements LayerNormKernels {

    private static final String PTX = ptxText();

    /**
     * Forward: {@code VECS_PER_THREAD} 16-byte packs each thread aims to hold (more for rows that would
     * otherwise need more than 1024 threads), {@code BLOCK_THREADS} threads a block aims for (several short
     * rows per block).
     */
    static final TuningSpace<LayerNormProblem> FORWARD = TuningSpace
            .builder("cuda.layernorm.forward", LayerNormProblem.class)
            .source(PTX)
            .sourceOf(LayerNormCuda.class)
            .parameter("VECS_PER_THREAD", 4, 1, 2, 4, 8)
            .parameter("BLOCK_THREADS", 256, 64, 128, 256, 512, 1024)
            .constraint("BLOCK_THREADS <= maxWorkgroupSize", (t, c) -> t.get("BLOCK_THREADS") <= c.maxWorkgroupSize())
            .bucket(p -> "c" + ShapeBuckets.pow2(p.cols()))
            .build();

    /**
     * Backward: the fewest packs per thread whose row-group stays within {@code ROW_THREADS_MAX} threads,
     * {@code BLOCK_THREADS} per block, and at most {@code BLOCKS_PER_SM} resident blocks per multiprocessor in
     * the persistent grid (fewer blocks, fewer partial rows to add up).
     */
    static final TuningSpace<LayerNormProblem> BACKWARD = TuningSpace
            .builder("cuda.layernorm.backward", LayerNormProblem.class)
            .source(PTX)
            .sourceOf(LayerNormCuda.class)
            .parameter("ROW_THREADS_MAX", 512, 128, 256, 512, 1024)
            .parameter("BLOCK_THREADS", 256, 64, 128, 256, 512, 1024)
            .parameter("BLOCKS_PER_SM", 8, 1, 2, 4, 8, 16)
            .bucket(p -> "c" + ShapeBuckets.pow2(p.cols()))
            .build();

    /** Elements each thread of an {@code *_any} row-group aims to handle per pass. */
    static final int ANY_ELEMENTS_PER_THREAD = 8;
    /** Block of ln_bwd_params_any: 32 columns by PARAM_ROWS rows (layernorm.cu). */
    static final int PARAM_ROWS = 8;
    /** Block of ln_bwd_finalize: 32 columns by FIN_ROWS partial rows (layernorm.cu). */
    static final int FIN_ROWS = 16;

    /**
     * How a problem is launched.
     *
     * @param kernel       the entry point
     * @param vecs         16-byte packs per thread of a fast kernel; 0 for the {@code *_any} kernels
     * @param rowThreads   threads per row (a multiple of 32)
     * @param rowsPerBlock rows per block
     */
    record Shape(String kernel, int vecs, int rowThreads, int rowsPerBlock) {
        Dim3 block() {
            return Dim3.of(rowThreads, rowsPerBlock);
        }

        int blockThreads() {
            return rowThreads * rowsPerBlock;
        }
    }

    private final CudaDevice device;
    /** Blocks per SM by launch, asked of the driver once: every backward call needs it, and it never changes. */
    private final Map<Occupancy, Integer> blocksPerSm = new ConcurrentHashMap<>();

    private record Occupancy(String kernel, int threads, int sharedBytes) {
    }

    LayerNormCuda(CudaDevice device) {
        this.device = device;
    }

    @Override
    public void forward(Stream stream, LayerNormProblem p, Tensor x, Tensor gamma, Tensor beta, Tensor y, Tensor mean,
                        Tensor rstd) {
        CudaStream s = CudaStream.of(stream);
        boolean aligned = aligned16(x, gamma, beta, y);
        if (p.rows() == 0) {
            return;
        }
        Parameters tp = FORWARD.resolve(device, p.dtype(), p);
        Shape sh = forwardShape(p.cols(), p.dtype(), aligned, tp.get("VECS_PER_THREAD"), tp.get("BLOCK_THREADS"));
        int grid = ceilDiv(p.rows(), sh.rowsPerBlock());
        Debug.log(1, () -> describe(p, "forward", sh.kernel() + " block " + sh.block() + " grid " + grid));
        CudaKernels.launch(s, sh.kernel(), Dim3.of(grid), sh.block(), 0,
                x, gamma, beta, y, mean, rstd, p.rows(), p.cols(), p.epsilon(), p.rms() ? 1 : 0);
    }

    @Override
    public void backward(Stream stream, LayerNormProblem p, Tensor dy, Tensor x, Tensor gamma, Tensor mean,
                         Tensor rstd, Tensor dx, Tensor dgamma, Tensor dbeta) {
        CudaStream s = CudaStream.of(stream);
        boolean aligned = aligned16(dy, x, gamma, dx);
        long dgAddress = CudaTensor.addressOrZero(dgamma, device, "dgamma");
        long dbAddress = CudaTensor.addressOrZero(dbeta, device, "dbeta");
        if (p.rows() == 0) {
            zero(s, dgAddress, p);
            zero(s, dbAddress, p);
            return;
        }
        Parameters tp = BACKWARD.resolve(device, p.dtype(), p);
        int params = (dgamma != null ? 1 : 0) + (dbeta != null ? 1 : 0);
        Shape sh = backwardShape(p.cols(), p.dtype(), aligned, tp.get("ROW_THREADS_MAX"), tp.get("BLOCK_THREADS"),
                params > 0 ? (int) Math.min(Integer.MAX_VALUE, device.capabilities().localMemoryBytes()) : Integer.MAX_VALUE);
        int sms = device.capabilities().computeUnits();
        if (sh.vecs() > 0) {
            int smem = params > 0 ? backwardSharedBytes(sh, p.cols()) : 0;
            int perSm = blocksPerSm.computeIfAbsent(new Occupancy(sh.kernel(), sh.blockThreads(), smem),
                    o -> device.kernels().maxActiveBlocksPerSm(o.kernel(), o.threads(), o.sharedBytes()));
            if (perSm < 1) {
                throw new IllegalStateException(sh.kernel() + " cannot run blocks of " + sh.block() + " with " + smem
                        + " bytes of shared memory on " + device);
            }
            int grid = (int) Math.min(ceilDiv(p.rows(), sh.rowsPerBlock()),
                    (long) sms * Math.min(perSm, tp.get("BLOCKS_PER_SM")));
            Debug.log(1, () -> describe(p, "backward", sh.kernel() + " block " + sh.block() + " grid " + grid
                    + (params > 0 ? " + ln_bwd_finalize over " + grid + " partial rows" : "")));
            if (params == 0) {
                CudaKernels.launch(s, sh.kernel(), Dim3.of(grid), sh.block(), smem,
                        dy, x, gamma, mean, rstd, dx, null, null, p.rows(), p.cols(), p.rms() ? 1 : 0);
                return;
            }
            long partBytes = (long) grid * p.cols() * Float.BYTES;
            s.withWorkspace(params * partBytes, ws -> {
                long pg = dgamma != null ? ws : 0L;
                long pb = dbeta != null ? ws + (dgamma != null ? partBytes : 0L) : 0L;
                CudaKernels.launch(s, sh.kernel(), Dim3.of(grid), sh.block(), smem,
                        dy, x, gamma, mean, rstd, dx, pg, pb, p.rows(), p.cols(), p.rms() ? 1 : 0);
                finalizeParams(s, p, pg, pb, dgamma, dbeta, grid);
            });
            return;
        }
        int grid = ceilDiv(p.rows(), sh.rowsPerBlock());
        int tiles = ceilDiv(p.cols(), 32);
        int splits = (int) Math.max(1, Math.min(ceilDiv(p.rows(), PARAM_ROWS), (long) sms * 4 / tiles));
        Debug.log(1, () -> describe(p, "backward", sh.kernel() + " block " + sh.block() + " grid " + grid
                + (params > 0 ? " + ln_bwd_params_any grid (" + tiles + ", " + splits + ") + ln_bwd_finalize" : "")));
        CudaKernels.launch(s, sh.kernel(), Dim3.of(grid), sh.block(), 0,
                dy, x, gamma, mean, rstd, dx, p.rows(), p.cols(), p.rms() ? 1 : 0);
        if (params == 0) {
            return;
        }
        long partBytes = (long) splits * p.cols() * Float.BYTES;
        s.withWorkspace(params * partBytes, ws -> {
            long pg = dgamma != null ? ws : 0L;
            long pb = dbeta != null ? ws + (dgamma != null ? partBytes : 0L) : 0L;
            CudaKernels.launch(s, "ln_bwd_params_any_" + suffix(p.dtype()), Dim3.of(tiles, splits),
                    Dim3.of(32, PARAM_ROWS), 0, dy, x, mean, rstd, pg, pb, p.rows(), p.cols(), p.rms() ? 1 : 0);
            finalizeParams(s, p, pg, pb, dgamma, dbeta, splits);
        });
    }

    private void finalizeParams(CudaStream s, LayerNormProblem p, long pg, long pb, Tensor dgamma, Tensor dbeta,
                                int parts) {
        CudaKernels.launch(s, "ln_bwd_finalize_" + suffix(p.dtype()), Dim3.of(ceilDiv(p.cols(), 32)),
                Dim3.of(32, FIN_ROWS), 0, pg, pb, dgamma, dbeta, parts, p.cols());
    }

    /** The empty sum: dgamma/dbeta of zero rows (all-zero bits are +0.0 in every dtype). */
    private void zero(CudaStream s, long address, LayerNormProblem p) {
        if (address == 0) {
            return;
        }
        device.makeCurrent();
        if (p.dtype() == DType.FLOAT32) {
            device.driver().memsetD32Async(address, 0, p.cols(), s.handle());
        } else {
            device.driver().memsetD16Async(address, (short) 0, p.cols(), s.handle());
        }
    }

    /** The forward launch for rows of {@code cols} elements. */
    static Shape forwardShape(int cols, DType dtype, boolean aligned, int vecsPerThread, int blockThreads) {
        int v = 16 / dtype.byteSize();
        if (aligned && cols % v == 0) {
            int nvec = cols / v;
            int it;
            int tr;
            if (nvec <= 32 * vecsPerThread) {
                tr = 32;
                it = pow2Ceil(ceilDiv(nvec, 32));
            } else {
                it = vecsPerThread;
                tr = roundUp32(ceilDiv(nvec, it));
                while (tr > 1024 && it < 8) {
                    it *= 2;
                    tr = roundUp32(ceilDiv(nvec, it));
                }
            }
            if (tr <= 1024) {
                return new Shape("ln_fwd_v" + it + "_" + suffix(dtype), it, tr, Math.max(1, blockThreads / tr));
            }
        }
        int tr = anyRowThreads(cols);
        return new Shape("ln_fwd_any_" + suffix(dtype), 0, tr, Math.max(1, blockThreads / tr));
    }

    /**
     * The backward launch (of the dx kernel) for rows of {@code cols} elements, whose dgamma/dbeta sums must fit
     * {@code sharedLimit} bytes of shared memory per block ({@link #backwardSharedBytes}).
     */
    static Shape backwardShape(int cols, DType dtype, boolean aligned, int rowThreadsMax, int blockThreads,
                               int sharedLimit) {
        int v = 16 / dtype.byteSize();
        long rowBytes = 2L * cols * Float.BYTES;
        if (aligned && cols % v == 0 && rowBytes <= sharedLimit) {
            int nvec = cols / v;
            for (int it = 1; it <= 4; it *= 2) {
                int max = backwardMaxThreads(it);
                int tr = roundUp32(ceilDiv(nvec, it));
                if (tr <= Math.min(rowThreadsMax, max)) {
                    int rows = (int) Math.max(1, Math.min(Math.min(blockThreads, max) / tr, sharedLimit / rowBytes));
                    return new Shape("ln_bwd_v" + it + "_" + suffix(dtype), it, tr, rows);
                }
            }
        }
        int tr = anyRowThreads(cols);
        return new Shape("ln_bwd_dx_any_" + suffix(dtype), 0, tr, Math.max(1, blockThreads / tr));
    }

    /** Threads per block of the fast backward kernel with {@code vecs} packs per thread: its {@code __launch_bounds__}. */
    static int backwardMaxThreads(int vecs) {
        return vecs == 1 ? 1024 : 512;
    }

    /** Dynamic shared memory of a fast backward launch that sums dgamma/dbeta: both sums of every row-group. */
    static int backwardSharedBytes(Shape sh, int cols) {
        return Math.toIntExact(2L * sh.rowsPerBlock() * cols * Float.BYTES);
    }

    private static int anyRowThreads(int cols) {
        return Math.max(32, Math.min(1024, roundUp32(ceilDiv(cols, ANY_ELEMENTS_PER_THREAD))));
    }

    /** Whether every given tensor starts 16-byte aligned (what the fast kernels' pack loads need). */
    private boolean aligned16(Tensor... ts) {
        for (Tensor t : ts) {
            if (CudaTensor.addressOrZero(t, device, "tensor") % 16 != 0) {
                return false;
            }
        }
        return true;
    }

    static String suffix(DType dtype) {
        return switch (dtype) {
            case FLOAT32 -> "f32";
            case FLOAT16 -> "f16";
            case BFLOAT16 -> "bf16";
        };
    }

    private String describe(LayerNormProblem p, String pass, String launch) {
        return device.id() + " " + (p.rms() ? "rms norm " : "layer norm ") + pass + " [" + p.rows() + " x " + p.cols()
                + "] " + p.dtype() + ": " + launch;
    }

    static int ceilDiv(long a, long b) {
        return Math.toIntExact((a + b - 1) / b);
    }

    private static int roundUp32(int n) {
        return (n + 31) / 32 * 32;
    }

    private static int pow2Ceil(int n) {
        int p = 1;
        while (p < n) {
            p <<= 1;
        }
        return p;
    }

    private static String ptxText() {
        byte[] ptx = KernelManifest.resource("layernorm.ptx");
        return ptx == null ? "built without CUDA kernels" : new String(ptx, StandardCharsets.UTF_8);
    }
}
