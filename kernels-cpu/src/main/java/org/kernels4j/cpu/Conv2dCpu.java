package org.kernels4j.cpu;

import java.util.Arrays;

import org.kernels4j.Conv2d;
import org.kernels4j.Stream;
import org.kernels4j.Tensor;
import org.kernels4j.spi.Conv2dKernels;
import org.kernels4j.spi.Conv2dProblem;
import org.kernels4j.tuning.Parameters;
import org.kernels4j.tuning.ShapeBuckets;
import org.kernels4j.tuning.TuningSpace;

/**
 * 2-D convolution on the CPU: forward, backward-data and backward-filter, NCHW and NHWC, with stride,
 * per-side padding, dilation, groups and bias.
 *
 * <p><b>Implicit GEMM.</b> Every pass is a matrix product whose operands are gathered from the tensors on
 * the fly, one cache-sized block at a time, into the panels the {@link MicroKernel} reads (BLIS/Goto
 * blocking, {@link Gemm#run}: a {@link #KC}-deep block of B in L2, one {@code KC × NR} panel of it in L1, the A
 * block in L2, the C tile in registers). No full im2col matrix is ever built. Per group (sizes per group:
 * {@code Cg = C/G}, {@code Kg = K/G}):
 * <table>
 * <caption>The GEMM of each pass</caption>
 * <tr><th>pass</th><th>layout</th><th>C (M × N)</th><th>A</th><th>B</th><th>depth</th></tr>
 * <tr><td>forward</td><td>NCHW</td><td>y: Kg × positions of all images ({@link FlatProduct}); with a stride,
 *     of one band of output rows, written into y</td><td>w, in place</td><td>x {@link Planes} (a band's
 *     {@link Planes#columnTaps} with a stride), a run per tap</td><td>Cg·R·S</td></tr>
 * <tr><td>forward</td><td>NHWC</td><td>y: pixels × channels</td><td>im2col(x) rows, packed (channel runs)</td>
 *     <td>wᵀ, packed</td><td>R·S·Cg</td></tr>
 * <tr><td>data</td><td>NCHW</td><td>dx: Cg × positions, one GEMM per stride phase ({@link Phase})</td>
 *     <td>the phase's filter taps, packed once</td><td>padded dy {@link Planes}, a run per tap</td>
 *     <td>Kg·taps</td></tr>
 * <tr><td>data</td><td>NHWC</td><td>dx: phase pixels × channels</td><td>gathered dy rows, packed</td>
 *     <td>w taps, packed</td><td>taps·Kg</td></tr>
 * <tr><td>filter</td><td>NCHW</td><td>dwᵀ: Cg·R·S × Kg ({@link FlatFilter})</td><td>x {@link Planes} rows,
 *     packed (read in place for 1 × 1)</td><td>dyᵀ, packed</td><td>pixels</td></tr>
 * <tr><td>filter</td><td>NCHW, 1 × 1 (a plane per filter entry), Kg ≥ Cg·R·S</td><td>dw: Kg × Cg·R·S
 *     ({@link #pointwiseFilter})</td><td>dy, in place</td><td>xᵀ, packed once</td><td>pixels</td></tr>
 * <tr><td>filter</td><td>NHWC</td><td>dw: K × R·S·Cg</td><td>dy, in place</td><td>im2col(x) rows, packed</td>
 *     <td>pixels</td></tr>
 * </table>
 * In NCHW the activations are first prepared as {@link Planes}: zero-padded and split into their stride phases,
 * so that for any stride and dilation, filter tap {@code (r, s)} of consecutive outputs reads consecutive floats
 * at a fixed offset ("positions" are the flat positions {@code p·wp + q} of those planes; the few between output
 * rows are computed and dropped). Backward-data is a gather, not a scatter: with a stride, input pixels fall into
 * {@code strideH × strideW} phases, and in each phase exactly the same filter taps reach every pixel, so each
 * phase is one GEMM over its valid taps only (no zero-inserted dy, no wasted multiplies; a phase no tap reaches
 * gets zeros). Backward-filter reduces over every pixel of every image: it is split over images and position
 * chunks, each worker accumulating into its own dwᵀ (and db) partial, summed and transposed at the end; with 1 × 1
 * filters, whose A is read in place, tasks split the output columns instead, and with at least as many filters as
 * channels the product is turned around (dy in place, xᵀ packed once, dw written directly).
 *
 * <p><b>Winograd.</b> The NCHW 3 × 3 stride-1 passes run Winograd's algorithm instead: forward and backward-data
 * {@link Conv2dWinograd4x4}'s F(4×4, 3×3) (4× fewer multiplies; {@code WINOGRAD = 3}, their default) or
 * {@link Conv2dWinograd}'s F(2×2, 3×3) (2.25×; {@code WINOGRAD = 1}, and where F(4×4)'s tiles would waste more),
 * backward-filter the transpose F(3×3, 2×2); {@code WINOGRAD = 0} turns it off. Forward's {@code WINOGRAD} 2 and 3
 * also run the NCHW 3 × 3 stride-2 problems by {@link Conv2dWinogradStride2}'s F(4×4, 2×2) over the input's stride
 * phases (1.78× fewer multiplies; {@code WINOGRAD = 1} runs them directly).
 *
 * <p><b>Depthwise</b> ({@code groups = C = K}) has no reduction to speak of, so it runs direct kernels
 * instead: in NCHW with stride 1 a 3 × 3 kernel with the filter in registers (reading the input in place for
 * padding 1, else a padded copy of the plane; other filters on the flat positions of a padded plane), strided
 * NCHW row by row, and NHWC vectorised along the channels.
 *
 * <p>Tasks are blocks of positions (or pixels) × groups, claimed dynamically by the worker pool; problems under
 * {@link #MIN_FLOPS_PER_THREAD} per thread run on the caller alone.
 */
final class Conv2dCpu implements Conv2dKernels {

    /** Depth of a packed block (tuning knob): a {@code KC × NR} panel of B stays in L1. */
    static final int KC = 256;

    /** Rows of A per block (tuning knob): an {@code MC × KC} block of A stays in L2. */
    static final int MC = 96;

    /**
     * Rows of A per block of forward and backward-data on the scalar path (their tuning knob's default there): its
     * tile runs down columns of up to MC rows, and longer columns pay the start-up of the JIT's vectorised loop less
     * often (scalar, this default against 96, paired in one JVM: conv-s2 forward 0.61×, backward-data 0.72×,
     * conv-1x1 forward 0.68×, backward-data 0.62×; backward-filter gained nothing and keeps {@link #MC}).
     */
    static final int SCALAR_MC = 192;

    /** Columns of B per block (tuning knob): the packed {@code KC × NC} block of B stays in L2. */
    static final int NC = 192;

    /**
     * Floats of an in-place A slice ({@code rows × KC}) small enough to stay in L2 next to the packed B panels
     * (128 KiB; tuning knob): up to it B is packed panel by panel, just in time (see {@link Gemm#run}).
     */
    static final int IN_PLACE_A_FLOATS = 32 << 10;

    /** Pixels per task of forward and backward-data (tuning knob). */
    static final int PIXELS_PER_TASK = 192;

    /** Pixels per task of backward-filter, a multiple of the depth block (tuning knob). */
    static final int FILTER_PIXELS_PER_TASK = 4 * KC;

    /** Floating-point operations a thread must get before another thread is worth waking (tuning knob). */
    static final double MIN_FLOPS_PER_THREAD = 2e6;

    /**
     * Floats of filter-gradient partials (one per slice of the tasks) that backward-filter may use for more slices
     * than workers: a core that finishes its slice early takes another, so a busy core on a shared machine holds up
     * less, for one more partial to clear and add up per slice.
     */
    static final long SLICE_PARTIALS_FLOATS = 4L << 20;

    /**
     * Most slices (partials) per worker of backward-filter (tuning knob), within {@link #SLICE_PARTIALS_FLOATS}: more
     * slices balance a shared machine's cores better, and cost a partial each to clear, fill and add up (2 against
     * 4, paired, 21 and 31 pairs: conv-r28 0.89 and 0.97, conv-r56 0.96 and 0.96, conv-s2 0.97 and 0.97; 1 against
     * 4: conv-s2 1.13, its cores out of balance).
     */
    static final int SLICES_PER_WORKER = 2;

    /** Consecutive planes per task of the stride-1 NCHW depthwise passes (tuning knob). */
    static final int PLANES_PER_TASK = 16;

    /**
     * Forward's {@code WINOGRAD} value that also runs the 3 × 3 stride-2 problems by {@link Conv2dWinogradStride2} (so
     * does the default, {@link #WINOGRAD_4X4}; conv-s2 on the 2-core development host, paired against the direct path
     * in one JVM: 0.83× the time).
     */
    static final int WINOGRAD_WITH_STRIDE_2 = 2;

    /**
     * The {@code WINOGRAD} value of forward and backward-data that runs their 3 × 3 stride-1 problems by
     * {@link Conv2dWinograd4x4}'s F(4×4, 3×3) where it applies (F(2×2, 3×3) elsewhere), and forward's stride-2 ones as
     * {@link #WINOGRAD_WITH_STRIDE_2} does; the default of both.
     */
    static final int WINOGRAD_4X4 = 3;

    /*
     * The tuning spaces of the GEMM passes (depthwise has none): the blocking and the task size, with the
     * constants above as defaults. Dispatch reads them from org.kernels4j.tuning.Tuning (tuned, overridden or
     * default); any values are correct, they only move work between caches and threads.
     */
    // forward's WINOGRAD candidates: 0, 1 and the default 3 between them run every path (2 runs 1's for stride 1 and
    // 3's for stride 2, so a tuner would warm up and time the same code twice)
    static final TuningSpace<Conv2dProblem> FORWARD_SPACE = gemmSpace("cpu.conv2d.forward", WINOGRAD_4X4,
            new int[] {0, 1},
            Conv2dWinograd.TILES_PER_TASK, Vectorization.ENABLED ? MC : SCALAR_MC, PIXELS_PER_TASK,
            64, 96, 128, 192, 384, 768).build();
    static final TuningSpace<Conv2dProblem> DATA_SPACE = gemmSpace("cpu.conv2d.backward-data", WINOGRAD_4X4,
            new int[] {0, 1},
            Conv2dWinograd.TILES_PER_TASK, Vectorization.ENABLED ? MC : SCALAR_MC, PIXELS_PER_TASK,
            64, 96, 128, 192, 384, 768).build();
    static final TuningSpace<Conv2dProblem> FILTER_SPACE = gemmSpace("cpu.conv2d.backward-filter", 1, new int[] {0},
            Conv2dWinograd.FILTER_TILES_PER_TASK, MC, FILTER_PIXELS_PER_TASK, 256, 512, 1024, 2048, 4096)
            .parameter("SLICES", SLICES_PER_WORKER, 1, 2, 4)
            .build();

    private static TuningSpace.Builder<Conv2dProblem> gemmSpace(String kernelId, int winograd, int[] winogradChoices,
                                                                int tilesDefault, int mcDefault, int pixelsDefault,
                                                                int... pixels) {
        return TuningSpace.builder(kernelId, Conv2dProblem.class)
                .sourceOf(Conv2dCpu.class, Conv2dWinograd.class, Conv2dWinograd4x4.class, Conv2dWinogradStride2.class,
                        MicroKernel.class)
                // Winograd for the 3x3 stride-1 NCHW problems (0 = off, 1 = F(2x2, 3x3), 3 = F(4x4, 3x3); forward's 2
                // and 3 take stride 2 too), and its tiles per task
                .codePath("WINOGRAD", winograd, winogradChoices)
                .parameter("TILES", tilesDefault, 24, 48, 72, 96, 144, 192, 288)
                .parameter("KC", KC, 64, 128, 192, 256, 384, 512)
                .parameter("MC", mcDefault, 24, 48, 96, 144, 192)
                .parameter("NC", NC, 96, 192, 384, 768)
                .parameter("IN_PLACE_A", IN_PLACE_A_FLOATS, 8 << 10, 16 << 10, 32 << 10, 64 << 10, 128 << 10)
                .parameter("PIXELS", pixelsDefault, pixels)
                .bucket(p -> p.format() + "-n" + ShapeBuckets.pow2(p.n(), 1, 32) + "-k" + ShapeBuckets.pow2(p.kPerGroup())
                        + "-crs" + ShapeBuckets.pow2((long) p.cPerGroup() * p.r() * p.s())
                        + "-pq" + ShapeBuckets.pow2((long) p.p() * p.q()));
    }

    /** The cache blocking of one GEMM pass: depth, rows of A and columns of B per block. */
    record Blocking(int kc, int mc, int nc, int inPlaceA) {
        static Blocking of(Parameters tp) {
            return new Blocking(tp.get("KC"), tp.get("MC"), tp.get("NC"), tp.get("IN_PLACE_A"));
        }
    }

    private static final int NR = MicroKernel.NR;

    private static final int SLOT_A = 0;
    private static final int SLOT_B = 1;
    private static final int SLOT_TILE = 2;
    private static final int SLOT_TAPS = 3;
    private static final int SLOT_C = 4;
    private static final int SLOT_C_ODD = 5;
    private static final int SLOT_BAND = 6;
    private static final int SLOT_ROW_PHASES = 7;
    private static final int SLOT_PARTIALS = Workspace.TASK_SLOTS;
    private static final int SLOT_WEIGHTS = Workspace.TASK_SLOTS + 1;
    private static final int SLOT_PADDED = Workspace.TASK_SLOTS + 2;

    // ------------------------------------------------------------------------------------ entry points

    @Override
    public void forward(Stream stream, Conv2dProblem p, Tensor x, Tensor w, Tensor bias, Tensor y) {
        Operands o = new Operands(p, x, w, y, bias);
        if (p.depthwise()) {
            Depthwise.forward(o);
            return;
        }
        Parameters tp = FORWARD_SPACE.resolve(stream.device(), p.dtype(), p);
        Blocking blocking = Blocking.of(tp);
        if (tp.get("WINOGRAD") == WINOGRAD_4X4 && Conv2dWinograd4x4.applies(p)) {
            Conv2dWinograd4x4.forward(o, tp.get("TILES"));
            return;
        }
        if (tp.get("WINOGRAD") != 0 && Conv2dWinograd.applies(p)) {
            Conv2dWinograd.forward(o, tp.get("TILES"));
            return;
        }
        if (tp.get("WINOGRAD") >= WINOGRAD_WITH_STRIDE_2 && Conv2dWinogradStride2.applies(p)) {
            Conv2dWinogradStride2.forward(o, tp.get("TILES"));
            return;
        }
        if (o.nchw) {
            forwardNchw(o, blocking, tp.get("PIXELS"));
            return;
        }
        int pixels = p.p() * p.q();
        int blocks = pixelBlocks(pixels, tp.get("PIXELS"));
        int tasks = p.n() * p.groups() * blocks;
        int workers = Parallel.workers(tasks, p.flops(), MIN_FLOPS_PER_THREAD);
        Parallel.run(tasks, workers, (worker, task) -> {
            int blk = task % blocks;
            int g = (task / blocks) % p.groups();
            int n = task / blocks / p.groups();
            int t0 = (int) ((long) pixels * blk / blocks);
            int t1 = (int) ((long) pixels * (blk + 1) / blocks);
            new ForwardNhwc(o, n, g, t0, t1 - t0).run(blocking);
            if (o.bias != null) {
                o.addBias(n, g, t0, t1 - t0);
            }
        });
    }

    @Override
    public void backwardData(Stream stream, Conv2dProblem p, Tensor dy, Tensor w, Tensor dx) {
        Operands o = new Operands(p, dx, w, dy, null);
        if (p.depthwise()) {
            Depthwise.backwardData(o);
            return;
        }
        Parameters tp = DATA_SPACE.resolve(stream.device(), p.dtype(), p);
        Blocking blocking = Blocking.of(tp);
        if (tp.get("WINOGRAD") == WINOGRAD_4X4 && Conv2dWinograd4x4.appliesToData(p)) {
            Conv2dWinograd4x4.backwardData(o, tp.get("TILES"));
            return;
        }
        if (tp.get("WINOGRAD") != 0 && Conv2dWinograd.applies(p)) {
            Conv2dWinograd.backwardData(o, tp.get("TILES"));
            return;
        }
        if (o.nchw) {
            backwardDataNchw(o, blocking, tp.get("PIXELS"));
            return;
        }
        int phases = p.strideH() * p.strideW();
        Phase[] phase = new Phase[phases];
        int[] phasePixels = new int[phases];
        int[] phaseBlocks = new int[phases];
        int[] firstTask = new int[phases + 1];
        for (int ph = 0; ph < phases; ph++) {
            Phase f = new Phase(p, ph / p.strideW(), ph % p.strideW());
            phase[ph] = f;
            phasePixels[ph] = f.rows * f.cols;
            phaseBlocks[ph] = pixelBlocks(phasePixels[ph], tp.get("PIXELS"));
            firstTask[ph + 1] = firstTask[ph] + phaseBlocks[ph];
        }
        int perImage = firstTask[phases];
        int tasks = p.n() * p.groups() * perImage;
        int workers = Parallel.workers(tasks, p.flops(), MIN_FLOPS_PER_THREAD);
        Parallel.run(tasks, workers, (worker, task) -> {
            int inImage = task % perImage;
            int g = (task / perImage) % p.groups();
            int n = task / perImage / p.groups();
            int ph = 0;
            while (firstTask[ph + 1] <= inImage) {
                ph++;
            }
            int blk = inImage - firstTask[ph];
            int count = phasePixels[ph];
            int t0 = (int) ((long) count * blk / phaseBlocks[ph]);
            int t1 = (int) ((long) count * (blk + 1) / phaseBlocks[ph]);
            new DataNhwc(o, n, g, phase[ph], t0, t1 - t0).run(blocking);
        });
    }

    @Override
    public void backwardFilter(Stream stream, Conv2dProblem p, Tensor dy, Tensor x, Tensor dw, Tensor db) {
        Operands o = new Operands(p, x, dw, dy, db);
        if (p.depthwise()) {
            Depthwise.backwardFilter(o);
            return;
        }
        Parameters tp = FILTER_SPACE.resolve(stream.device(), p.dtype(), p);
        Blocking blocking = Blocking.of(tp);
        if (tp.get("WINOGRAD") != 0 && Conv2dWinograd.appliesToFilter(p, tp.get("TILES"))) {
            Conv2dWinograd.backwardFilter(o, tp.get("TILES"), tp.get("SLICES"));
            return;
        }
        if (o.nchw) {
            backwardFilterNchw(o, blocking, tp.get("PIXELS"), tp.get("SLICES"));
            return;
        }
        int pixels = p.p() * p.q();
        int chunks = pixelBlocks(pixels, tp.get("PIXELS"));
        int tasks = p.n() * p.groups() * chunks;
        int workers = Parallel.workers(tasks, p.flops(), MIN_FLOPS_PER_THREAD);
        int wSize = p.k() * p.cPerGroup() * p.r() * p.s();
        int stride = wSize + p.k();
        // one partial per slice of the tasks, summed in slice order: the same bits on every run, which per-worker
        // partials would not give
        int slices = filterSlices(tasks, workers, stride, tp.get("SLICES"));
        float[] partials = Workspace.floats(SLOT_PARTIALS, slices * stride);
        Arrays.fill(partials, 0, slices * stride, 0f);
        Parallel.runSliced(tasks, slices, workers, (slice, task) -> {
            int chunk = task % chunks;
            int g = (task / chunks) % p.groups();
            int n = task / chunks / p.groups();
            int t0 = (int) ((long) pixels * chunk / chunks);
            int t1 = (int) ((long) pixels * (chunk + 1) / chunks);
            int base = slice * stride;
            new FilterNhwc(o, n, g, t0, t1 - t0, partials, base).run(blocking);
            o.sumBias(n, g, 0, p.kPerGroup(), t0, t1 - t0, partials, base + wSize);
        });
        int outBlocks = Math.max(1, Math.min(workers * 4, stride / 4096));
        Parallel.run(outBlocks, workers, (worker, blk) -> {
            int from = (int) ((long) stride * blk / outBlocks);
            int to = (int) ((long) stride * (blk + 1) / outBlocks);
            for (int i = from; i < to; i++) {
                float sum = 0f;
                for (int part = 0; part < slices; part++) {
                    sum += partials[part * stride + i];
                }
                if (i < wSize) {
                    o.w[o.wo + i] = sum;
                } else if (o.bias != null) {
                    o.bias[o.bo + i - wSize] = sum;
                }
            }
        });
    }

    /**
     * Slices of backward-filter's {@code tasks} on {@code workers} threads, each adding into its own partial of
     * {@code partialFloats}: up to {@code most} per worker within {@link #SLICE_PARTIALS_FLOATS}, at least one per
     * worker.
     */
    static int filterSlices(int tasks, int workers, long partialFloats, int most) {
        long perWorker = Math.max(1, Math.min(most, SLICE_PARTIALS_FLOATS / Math.max(1, (long) workers * partialFloats)));
        return (int) Math.max(1, Math.min(tasks, workers * perWorker));
    }

    /** Splits {@code pixels} into blocks of about {@code perTask} (the tuned PIXELS), at least one. */
    private static int pixelBlocks(int pixels, int perTask) {
        return Math.max(1, (pixels + perTask - 1) / perTask);
    }

    // ----------------------------------------------------------------------------------------- operands

    /**
     * The arrays of one call. {@code x} is the activation-side input or output ({@code x} forward and
     * backward-filter, {@code dx} backward-data), {@code w} the filter or its gradient, {@code y} the
     * output-side tensor ({@code y} or {@code dy}), {@code bias} the bias or its gradient (may be null).
     */
    static final class Operands {
        final Conv2dProblem p;
        final float[] x;
        final int xo;
        final float[] w;
        final int wo;
        final float[] y;
        final int yo;
        final float[] bias;
        final int bo;
        final boolean nchw;

        Operands(Conv2dProblem p, Tensor x, Tensor w, Tensor y, Tensor bias) {
            this.p = p;
            this.x = CpuTensor.data(x);
            this.xo = CpuTensor.offset(x);
            this.w = CpuTensor.data(w);
            this.wo = CpuTensor.offset(w);
            this.y = CpuTensor.data(y);
            this.yo = CpuTensor.offset(y);
            this.bias = bias == null ? null : CpuTensor.data(bias);
            this.bo = bias == null ? 0 : CpuTensor.offset(bias);
            this.nchw = p.format() == Conv2d.Format.NCHW;
        }

        /** Adds the bias of group {@code g} to output pixels {@code [t0, t0 + count)} of image {@code n}. */
        void addBias(int n, int g, int t0, int count) {
            int kg = p.kPerGroup();
            int pq = p.p() * p.q();
            for (int k = g * kg; k < (g + 1) * kg; k++) {
                float b = bias[bo + k];
                if (nchw) {
                    int at = yo + (n * p.k() + k) * pq + t0;
                    for (int t = 0; t < count; t++) {
                        y[at + t] += b;
                    }
                } else {
                    int at = yo + (n * pq + t0) * p.k() + k;
                    for (int t = 0; t < count; t++) {
                        y[at + t * p.k()] += b;
                    }
                }
            }
        }

        /**
         * {@code db[ch] = Σ_part partials[part·stride + at + ch]}, the parts added in order (backward-filter's slices;
         * nothing without a bias).
         */
        void biasFromPartials(float[] partials, int parts, int stride, int at) {
            if (bias == null) {
                return;
            }
            for (int ch = 0; ch < p.k(); ch++) {
                float sum = 0f;
                for (int part = 0; part < parts; part++) {
                    sum += partials[part * stride + at + ch];
                }
                bias[bo + ch] = sum;
            }
        }

        /**
         * Adds dy of channels {@code [k0, k0 + kn)} of group {@code g} over pixels {@code [t0, t0 + count)} of image
         * {@code n} into {@code db[dbo + channel]}.
         */
        void sumBias(int n, int g, int k0, int kn, int t0, int count, float[] db, int dbo) {
            if (bias == null) {
                return;
            }
            int first = g * p.kPerGroup() + k0;
            int pq = p.p() * p.q();
            if (nchw) {
                for (int k = first; k < first + kn; k++) {
                    int at = yo + (n * p.k() + k) * pq + t0;
                    float s = 0f;
                    for (int t = 0; t < count; t++) {
                        s += y[at + t];
                    }
                    db[dbo + k] += s;
                }
            } else {
                for (int t = 0; t < count; t++) {
                    int at = yo + (n * pq + t0 + t) * p.k() + first;
                    for (int k = 0; k < kn; k++) {
                        db[dbo + first + k] += y[at + k];
                    }
                }
            }
        }
    }

    /**
     * One phase of backward-data: the input pixels {@code (ph + strideH·i, pw + strideW·j)} and the filter
     * taps that reach them. Tap {@code r} reaches input row {@code h} from output row
     * {@code (h + padTop - r·dilationH) / strideH} when that division is exact, which depends only on
     * {@code h mod strideH}; for pixel row {@code i} of the phase that output row is {@code i + rowShift[r]}.
     */
    static final class Phase {
        final int ph;
        final int pw;
        final int rows;
        final int cols;
        final int[] tapR;
        final int[] rowShift;
        final int[] tapS;
        final int[] colShift;

        Phase(Conv2dProblem p, int ph, int pw) {
            this.ph = ph;
            this.pw = pw;
            this.rows = ph >= p.h() ? 0 : (p.h() - ph + p.strideH() - 1) / p.strideH();
            this.cols = pw >= p.w() ? 0 : (p.w() - pw + p.strideW() - 1) / p.strideW();
            int[][] r = taps(p.r(), ph + p.padTop(), p.dilationH(), p.strideH());
            int[][] s = taps(p.s(), pw + p.padLeft(), p.dilationW(), p.strideW());
            this.tapR = r[0];
            this.rowShift = r[1];
            this.tapS = s[0];
            this.colShift = s[1];
        }

        private static int[][] taps(int extent, int base, int dilation, int stride) {
            int count = 0;
            int[] tap = new int[extent];
            int[] shift = new int[extent];
            for (int r = 0; r < extent; r++) {
                int num = base - r * dilation;
                if (Math.floorMod(num, stride) == 0) {
                    tap[count] = r;
                    shift[count] = Math.floorDiv(num, stride);
                    count++;
                }
            }
            return new int[][] {Arrays.copyOf(tap, count), Arrays.copyOf(shift, count)};
        }

        int taps() {
            return tapR.length * tapS.length;
        }
    }

    // ------------------------------------------------------------------------------------- GEMM driver

    /**
     * One GEMM-shaped piece of a pass, {@code C[m × n] (+)= A[m × depth] · B[depth × n]}, run by one thread.
     * Subclasses say where A, B and C are; the driver blocks, packs and calls the micro-kernel.
     */
    abstract static class Gemm {
        final Conv2dProblem p;
        int m;
        int n;
        int depth;
        /** Add into C even for the first depth block (C holds a partial sum already). */
        boolean accumulate;
        /** A read in place when not null: {@code A[i][k] = aArray[aBase + i·ars + k·aks]}. */
        float[] aArray;
        int aBase;
        int ars;
        int aks;
        /** C, where {@link #linearC} says it is {@code c[cBase + i·ldc + j]}. */
        float[] c;
        int cBase;
        int ldc;
        boolean linearC;
        /** C is linear and each row has room for whole panels: {@code roundUp(n, NR)} columns. */
        boolean paddedC;

        Gemm(Conv2dProblem p) {
            this.p = p;
        }

        /** Packs {@code A[m0, m0 + mc) × [k0, k0 + kc)} row-major ({@code kc} floats a row) into {@code dst}. */
        void packA(float[] dst, int m0, int mc, int k0, int kc) {
            throw new IllegalStateException("A is read in place");
        }

        /**
         * Packs {@code B[k0, k0 + kc) × [n0, n0 + nc)} into {@code NR}-column panels: element {@code (k, j)} at
         * {@code dst[(j / NR)·kc·NR + k·NR + j % NR]}; columns from {@code nc} to the panel's end are zero.
         */
        abstract void packB(float[] dst, int k0, int kc, int n0, int nc);

        /**
         * Where C element {@code (i, j)} lives is {@code cRow(i) + cColumn(j)}; subclasses whose C is not linear
         * (strided backward-data) override these.
         */
        int cRow(int i) {
            return cBase + i * ldc;
        }

        int cColumn(int j) {
            return j;
        }

        /**
         * Where the tile may write the C columns {@code [j, j + cols)} of a row in place, as an offset from the row's
         * start ({@link #cRow}): the columns are consecutive in C, and so are the rest of the panel's when it is
         * partial; or -1, and the tile goes through a scratch tile and {@link #cColumn}.
         */
        int panelAt(int j, int cols) {
            return paddedC || linearC && cols == NR ? j : -1;
        }

        /** The C offsets of one scratch tile's columns, from {@link #cColumn}. */
        private final int[] columnAt = new int[NR];

        /**
         * BLIS loop order: per {@code NC} columns and {@code KC} depth, B is packed once (L2) and every
         * {@code MC}-row block of A (packed, or read in place) runs against each of its {@code KC × NR} panels (L1),
         * the {@link MicroKernel} tile in registers. When A is read in place and a {@code KC}-deep slice of all of
         * it fits in L2, each B panel is instead packed just before all of A runs against it, so that the panel is
         * written and read while it sits in L1.
         */
        final void run(Blocking b) {
            if (depth == 0) {
                if (!accumulate) {
                    for (int i = 0; i < m; i++) {
                        int row = cRow(i);
                        for (int j = 0; j < n; j++) {
                            c[row + cColumn(j)] = 0f;
                        }
                    }
                }
                return;
            }
            int kcMax = Math.min(b.kc(), depth);
            boolean inPlace = aArray != null && (long) m * kcMax <= b.inPlaceA();
            int ncMax = inPlace ? NR : Math.min(b.nc(), n);
            float[] bp = Workspace.floats(SLOT_B, kcMax * roundUp(ncMax, NR));
            float[] ap = aArray != null ? null : Workspace.floats(SLOT_A, Math.min(b.mc(), m) * kcMax);
            float[] tile = paddedC ? null : Workspace.floats(SLOT_TILE, Math.min(b.mc(), m) * NR);
            int nStep = inPlace ? NR : b.nc();
            // the scalar tile computes from A's columns: when B goes panel by panel, A is copied once here for the
            // whole run rather than once per panel (with NC blocks, once per block is cheap enough; columns of all m
            // rows, read in short windows, measured 1.11-1.15x slower there: conv-1x1 forward, conv-r28 filter)
            float[][] aColumns = !Vectorization.ENABLED && inPlace
                    ? MicroKernel.columnsOfA(aArray, aBase, ars, aks, depth, m) : null;
            for (int n0 = 0; n0 < n; n0 += nStep) {
                int nc = Math.min(nStep, n - n0);
                for (int k0 = 0; k0 < depth; k0 += b.kc()) {
                    int kc = Math.min(b.kc(), depth - k0);
                    packB(bp, k0, kc, n0, nc);
                    boolean add = accumulate || k0 > 0;
                    for (int m0 = 0; m0 < m; m0 += b.mc()) {
                        int mc = Math.min(b.mc(), m - m0);
                        if (aArray != null) {
                            block(aArray, aBase + m0 * ars + k0 * aks, ars, aks, aColumns, k0, bp, kc, m0, mc, n0, nc,
                                    add, tile);
                        } else {
                            packA(ap, m0, mc, k0, kc);
                            block(ap, 0, kc, 1, null, 0, bp, kc, m0, mc, n0, nc, add, tile);
                        }
                    }
                }
            }
        }

        /**
         * {@code C[m0, m0 + mc) × [n0, n0 + nc) (+)= A block · packed B block}, panel by panel; on the scalar path
         * {@code aColumns}, when not null, holds all of A copied column by column (depth from {@code k0}).
         */
        private void block(float[] a, int aOff, int rs, int ks, float[][] aColumns, int k0, float[] bp, int kc,
                           int m0, int mc, int n0, int nc, boolean add, float[] tile) {
            int first = 0;
            if (!Vectorization.ENABLED) {
                // the scalar tile copies A's columns before its products: once for all the panels C takes whole
                // (every panel where C is padded, the full ones where C is linear), not once per panel
                int whole = paddedC ? (nc + NR - 1) / NR : linearC ? nc / NR : 0;
                if (whole > 0 && aColumns != null) {
                    MicroKernel.panelsOfColumns(aColumns, k0, m0, mc, bp, 0, kc * NR, kc, c, cBase + m0 * ldc + n0,
                            NR, ldc, add, whole);
                } else if (whole > 0) {
                    MicroKernel.panels(a, aOff, rs, ks, bp, 0, kc * NR, kc, c, cBase + m0 * ldc + n0, NR, ldc, mc, add,
                            whole);
                }
                first = whole * NR;
            }
            for (int j0 = first; j0 < nc; j0 += NR) {
                int cols = Math.min(NR, nc - j0);
                int bOff = (j0 / NR) * kc * NR;
                int at = panelAt(n0 + j0, cols);
                if (at >= 0) {
                    panel(a, aOff, rs, ks, aColumns, k0, bp, bOff, kc, m0, mc, c, cRow(m0) + at, ldc, add, cols);
                    continue;
                }
                panel(a, aOff, rs, ks, aColumns, k0, bp, bOff, kc, m0, mc, tile, 0, NR, false, cols);
                for (int j = 0; j < cols; j++) {
                    columnAt[j] = cColumn(n0 + j0 + j);
                }
                for (int i = 0; i < mc; i++) {
                    int row = cRow(m0 + i);
                    for (int j = 0; j < cols; j++) {
                        int to = row + columnAt[j];
                        c[to] = add ? c[to] + tile[i * NR + j] : tile[i * NR + j];
                    }
                }
            }
        }

        /**
         * One panel of {@link #block} into {@code out}: the tile, or on the scalar path with A's columns copied
         * already, their product (so a panel on its own does not copy them again).
         */
        private static void panel(float[] a, int aOff, int rs, int ks, float[][] aColumns, int k0, float[] bp,
                                  int bOff, int kc, int m0, int mc, float[] out, int outOff, int ldo, boolean add,
                                  int cols) {
            if (aColumns != null) {
                MicroKernel.panelsOfColumns(aColumns, k0, m0, mc, bp, bOff, 0, kc, out, outOff, 0, ldo, add, 1);
            } else {
                MicroKernel.tile(a, aOff, rs, ks, bp, bOff, kc, out, outOff, ldo, mc, add, cols);
            }
        }
    }

    /**
     * Copies an {@code inH × inW} plane into a {@code hp × wp} one with {@code top} rows and {@code left}
     * columns before it (negative values crop), zeros elsewhere.
     */
    static void padPlane(float[] src, int srcOff, int inH, int inW, int top, int left, float[] dst, int dstOff,
                         int hp, int wp) {
        int jFrom = Math.max(0, left);
        int jTo = Math.min(wp, inW + left);
        for (int i = 0; i < hp; i++) {
            int row = dstOff + i * wp;
            int si = i - top;
            if (si < 0 || si >= inH || jFrom >= jTo) {
                Arrays.fill(dst, row, row + wp, 0f);
                continue;
            }
            // the side margins are a few floats: plain stores beat a fill call
            for (int j = 0; j < jFrom; j++) {
                dst[row + j] = 0f;
            }
            MicroKernel.copyRow(src, srcOff + si * inW + jFrom - left, dst, row + jFrom, jTo - jFrom);
            for (int j = jTo; j < wp; j++) {
                dst[row + j] = 0f;
            }
        }
    }

    private static int roundUp(int n, int m) {
        return (n + m - 1) / m * m;
    }

    // ------------------------------------------------------------------------ NCHW: GEMMs on flat positions

    /**
     * The output grid of an NCHW GEMM: {@code rows × cols} pixels at flat positions {@code p·wp + q}; the
     * {@code wp - cols} positions between rows are computed and dropped.
     */
    record Grid(int rows, int cols, int wp) {
        /** Flat positions per image (the gap after the last row is not one of them). */
        int count() {
            return rows == 0 || cols == 0 ? 0 : (rows - 1) * wp + cols;
        }
    }

    /**
     * Forward, NCHW: per group {@code y[k][f] = Σ w[k][c,r,s] · planes[c, phase(r,s)][f + offset(r,s)]} over the
     * flat positions {@code f} of every image ({@link Planes}); A is the filter in place, B is packed from the
     * planes (runs of consecutive positions), C goes to a per-task block copied into y with the bias. Tasks are
     * blocks of the positions of all images together, so small planes (1×1 layers) still make whole panels.
     * Without gap positions (filters one column wide) C is y itself, the panels where one image ends and the next
     * begins through a scratch tile ({@link FlatProduct#cImageStride}).
     */
    private static void forwardNchw(Operands o, Blocking b, int pixels) {
        Conv2dProblem p = o.p;
        if (p.n() == 0 || p.p() == 0 || p.q() == 0) {
            return;
        }
        if (p.strideH() > 1 || p.strideW() > 1) {
            forwardNchwBands(o, b, pixels);
            return;
        }
        Planes in = Planes.input(o);
        int[] taps = in.taps(p);
        Grid grid = new Grid(p.p(), p.q(), in.wp);
        int kg = p.kPerGroup();
        int depth = taps.length;
        int pq = p.p() * p.q();
        int total = p.n() * grid.count();
        float[] a = Vectorization.ENABLED ? o.w : columnMajorFilter(o, depth);
        int aAt = Vectorization.ENABLED ? o.wo : 0;
        int ars = aRowStride(depth);
        int aks = aDepthStride(kg);
        int per = positionsPerTask(total, p.groups(), pixels);
        if (grid.wp() == grid.cols()) {
            // no gap positions (filters one column wide; strided convolutions go by bands): an image's flat
            // positions are its output plane in order, so the product is written straight into y. Tasks run over the
            // flat positions of all images: a panel where one image ends and the next begins goes through a scratch
            // tile, and only the batch's last panel is partial (conv-1x1's 196 positions an image, 8 panels and 4,
            // had a one-vector tile half empty per image: 7% of its samples)
            int blocks = (total + per - 1) / per;
            int tasks = p.groups() * blocks;
            int workers = Parallel.workers(tasks, p.flops(), MIN_FLOPS_PER_THREAD);
            Parallel.run(tasks, workers, (worker, task) -> {
                int g = task / blocks;
                int g0 = blockStart(total, blocks, task % blocks);
                int count = blockStart(total, blocks, task % blocks + 1) - g0;
                FlatProduct product = new FlatProduct(p, in, taps, g * p.cPerGroup() * in.channelStride, grid, g0,
                        count, a, aAt + g * kg * depth, ars, aks, kg, o.y, pq);
                product.cBase = o.yo + g * kg * pq;
                product.cImageStride = p.k() * pq;
                product.paddedC = false;
                product.linearC = false;
                product.run(b);
                for (int f = g0; o.bias != null && f < g0 + count; ) {
                    int n = f / pq;
                    int run = Math.min(g0 + count, (n + 1) * pq) - f;
                    o.addBias(n, g, f - n * pq, run);
                    f += run;
                }
            });
            return;
        }
        int blocks = (total + per - 1) / per;
        int tasks = p.groups() * blocks;
        int workers = Parallel.workers(tasks, p.flops(), MIN_FLOPS_PER_THREAD);
        Parallel.run(tasks, workers, (worker, task) -> {
            int g = task / blocks;
            int g0 = blockStart(total, blocks, task % blocks);
            int count = blockStart(total, blocks, task % blocks + 1) - g0;
            int ldc = roundUp(count, NR);
            float[] c = Workspace.floats(SLOT_C, kg * ldc);
            new FlatProduct(p, in, taps, g * p.cPerGroup() * in.channelStride, grid, g0, count, a,
                    aAt + g * kg * depth, ars, aks, kg, c, ldc).run(b);
            scatter(c, ldc, kg, count, g0, grid, o.y, o.yo + g * kg * pq, pq, p.k() * pq, p.q(), 1, o.bias,
                    o.bo + g * kg);
        });
    }

    /**
     * Forward, NCHW, with a stride: one task per band of output rows of one image and group, which builds the
     * band's {@link Planes#columnTaps} in its own workspace and multiplies them straight into y (A the filter, as in
     * {@link #forwardNchw}). The band's planes are written and read while they sit in the core's L2; the stride
     * phases of the whole batch, split first, were written out to memory and read back panel by panel (the pack
     * of B 12% and the split 13% of conv-s2's forward samples), and their gap positions needed C copied into y.
     */
    private static void forwardNchwBands(Operands o, Blocking b, int pixels) {
        Conv2dProblem p = o.p;
        int kg = p.kPerGroup();
        int pq = p.p() * p.q();
        int rowsPerBand = bandRows(p.p(), p.q(), positionsPerTask((long) p.n() * pq, p.groups(), pixels));
        int bands = (p.p() + rowsPerBand - 1) / rowsPerBand;
        int reach = (p.r() - 1) * p.dilationH() / p.strideH();
        int planeRows = Math.min(rowsPerBand, p.p()) + reach;
        int taps2d = p.r() * p.s();
        int depth = p.cPerGroup() * taps2d;
        // channel blocks of about KC deep, as even as can be: the band's planes, A's slice and the band of y then
        // share the core's L2 (conv-s2 in one block: 300 KB of planes, 295 KB of A, 86 KB of y, 200 KB of x
        // passing through a 1 MB L2; the planes cost 22% of the call)
        int channelBlocks = Math.max(1, Math.min(p.cPerGroup(), (depth + b.kc() - 1) / b.kc()));
        int[] taps = Planes.columnTapOffsets(p, (p.cPerGroup() + channelBlocks - 1) / channelBlocks, planeRows);
        float[] a = Vectorization.ENABLED ? o.w : columnMajorFilter(o, depth);
        int aAt = Vectorization.ENABLED ? o.wo : 0;
        int ars = aRowStride(depth);
        int aks = aDepthStride(kg);
        int tasks = p.groups() * p.n() * bands;
        int workers = Parallel.workers(tasks, p.flops(), MIN_FLOPS_PER_THREAD);
        Parallel.run(tasks, workers, (worker, task) -> {
            int band = task % bands;
            int n = (task / bands) % p.n();
            int g = task / bands / p.n();
            int p0 = band * rowsPerBand;
            int rows = Math.min(rowsPerBand, p.p() - p0);
            int count = rows * p.q();
            for (int cb = 0; cb < channelBlocks; cb++) {
                int c0 = (int) ((long) p.cPerGroup() * cb / channelBlocks);
                int c1 = (int) ((long) p.cPerGroup() * (cb + 1) / channelBlocks);
                Planes in = Planes.columnTaps(o, n, g, c0, c1 - c0, p0, rows + reach, planeRows);
                FlatProduct product = new FlatProduct(p, in, taps, 0, new Grid(rows, p.q(), p.q()), 0, count, a,
                        aAt + g * kg * depth + c0 * taps2d * aks, ars, aks, kg, o.y, pq);
                product.depth = (c1 - c0) * taps2d;
                product.cBase = o.yo + (n * p.k() + g * kg) * pq + p0 * p.q();
                product.paddedC = false;
                product.accumulate = cb > 0;
                product.run(b);
            }
            if (o.bias != null) {
                o.addBias(n, g, p0 * p.q(), count);
            }
        });
    }

    /**
     * Output rows per band of {@link #forwardNchwBands}: near {@code target} positions, and of the counts from
     * half to 1.5 times that, the one whose bands waste the fewest columns of their last, partial panel (28-pixel
     * rows, conv-s2's: bands of 7 rows are 196 positions, 8 panels and a 4-column remainder computed 8 wide at
     * the narrow tile's lower rate; bands of 6 are 168, 7 whole panels).
     */
    static int bandRows(int rows, int cols, int target) {
        int best = 0;
        long bestCost = Long.MAX_VALUE;
        int near = Math.max(1, Math.round((float) target / cols));
        for (int r = Math.max(1, near / 2); r <= Math.max(1, near + near / 2); r++) {
            long cost = 0;
            for (int p0 = 0; p0 < rows; p0 += r) {
                cost += roundUp(Math.min(r, rows - p0) * cols, NR);
            }
            // of equal waste, the count nearest the target
            if (cost < bestCost || cost == bestCost && Math.abs(r - near) < Math.abs(best - near)) {
                best = r;
                bestCost = cost;
            }
        }
        return Math.min(best, Math.max(1, rows));
    }

    /**
     * The filter as the scalar path's forward A ({@link #aRowStride}): per group, {@code Kg × depth} transposed to
     * {@code depth × Kg} at the same offset, in the calling thread's workspace, in 16 × 16 tiles.
     */
    private static float[] columnMajorFilter(Operands o, int depth) {
        int kg = o.p.kPerGroup();
        float[] dst = Workspace.floats(SLOT_WEIGHTS, Math.max(1, o.p.k() * depth));
        for (int g = 0; g < o.p.groups(); g++) {
            int base = g * kg * depth;
            for (int k0 = 0; k0 < kg; k0 += 16) {
                int k1 = Math.min(kg, k0 + 16);
                for (int d0 = 0; d0 < depth; d0 += 16) {
                    int d1 = Math.min(depth, d0 + 16);
                    for (int k = k0; k < k1; k++) {
                        for (int kd = d0; kd < d1; kd++) {
                            dst[base + kd * kg + k] = o.w[o.wo + base + k * depth + kd];
                        }
                    }
                }
            }
        }
        return dst;
    }

    /**
     * Backward-data, NCHW, as one GEMM per stride phase of dx (see {@link Phase}): the pixels
     * {@code (a + i·strideH, b + j·strideW)} of phase {@code (a, b)} are reached by the same filter taps, each
     * from dy at a fixed shift, so {@code dx[c][i, j] = Σ_{k, tap} w[k][c][tap] · dy[k][(i, j) + shift(tap)]}
     * is a GEMM over flat positions of dy planes padded once for all phases; A is the phase's taps of the
     * filter (packed once per call), C is copied into the phase's pixels of dx. Pixels that no tap reaches are
     * zero. With stride 1 there is one phase and every tap: the correlation of dy with the flipped filter.
     */
    private static void backwardDataNchw(Operands o, Blocking b, int pixels) {
        Conv2dProblem p = o.p;
        int sh = p.strideH();
        int sw = p.strideW();
        int phases = sh * sw;
        Phase[] phase = new Phase[phases];
        int rsMin = Integer.MAX_VALUE;
        int rsMax = Integer.MIN_VALUE;
        int csMin = Integer.MAX_VALUE;
        int csMax = Integer.MIN_VALUE;
        int rowsMax = 0;
        int colsMax = 0;
        boolean unreached = false;
        for (int ph = 0; ph < phases; ph++) {
            Phase f = new Phase(p, ph / sw, ph % sw);
            phase[ph] = f;
            if (f.rows == 0 || f.cols == 0) {
                continue;
            }
            if (f.taps() == 0) {
                unreached = true;
                continue;
            }
            for (int shift : f.rowShift) {
                rsMin = Math.min(rsMin, shift);
                rsMax = Math.max(rsMax, shift);
            }
            for (int shift : f.colShift) {
                csMin = Math.min(csMin, shift);
                csMax = Math.max(csMax, shift);
            }
            rowsMax = Math.max(rowsMax, f.rows);
            colsMax = Math.max(colsMax, f.cols);
        }
        if (unreached) {
            zeroUnreachedPhases(o, phase);
        }
        if (rowsMax == 0 || p.n() == 0) {
            return;
        }
        int hp = rowsMax + rsMax - rsMin;
        int wp = colsMax + csMax - csMin;
        Planes in = Planes.of(o.y, o.yo, p.n(), p.k(), p.p(), p.q(), 1, 1, -rsMin, -csMin, hp, wp);
        int cg = p.cPerGroup();
        int kg = p.kPerGroup();
        int hw = p.h() * p.w();
        int[][] taps = new int[phases][];
        int[] weightsAt = new int[phases + 1];
        int[] firstTask = new int[phases + 1];
        int[] blocks = new int[phases];
        int[] per = new int[phases];
        for (int ph = 0; ph < phases; ph++) {
            Phase f = phase[ph];
            int count = new Grid(f.rows, f.cols, wp).count();
            boolean runs = count > 0 && f.taps() > 0;
            weightsAt[ph + 1] = weightsAt[ph] + (runs ? p.c() * kg * f.taps() : 0);
            if (runs) {
                taps[ph] = phaseTaps(f, kg, in, rsMin, csMin);
                int total = p.n() * count;
                per[ph] = positionsPerTask((long) total * phases, p.groups(), pixels);
                blocks[ph] = (total + per[ph] - 1) / per[ph];
            }
            firstTask[ph + 1] = firstTask[ph] + p.groups() * blocks[ph];
        }
        float[] weights = Workspace.floats(SLOT_WEIGHTS, Math.max(1, weightsAt[phases]));
        for (int ph = 0; ph < phases; ph++) {
            if (taps[ph] != null) {
                packDataWeights(o, phase[ph], weights, weightsAt[ph]);
            }
        }
        if (columnPairs(phase, taps, sw)) {
            // the two column phases of a row phase in one task, written to dx together: whole rows at a time
            // instead of every other pixel in two passes
            int[] firstPair = new int[sh + 1];
            for (int a = 0; a < sh; a++) {
                firstPair[a + 1] = firstPair[a] + p.groups() * blocks[2 * a];
            }
            int pairTasks = firstPair[sh];
            int pairWorkers = Parallel.workers(pairTasks, p.flops(), MIN_FLOPS_PER_THREAD);
            Parallel.run(pairTasks, pairWorkers, (worker, order) -> {
                int task = phaseMajor(order, firstPair, sh);
                int a = 0;
                while (firstPair[a + 1] <= task) {
                    a++;
                }
                int ph0 = 2 * a;
                Phase f = phase[ph0];
                Grid grid = new Grid(f.rows, f.cols, wp);
                int inPhase = task - firstPair[a];
                int g = inPhase / blocks[ph0];
                int g0 = blockStart(p.n() * grid.count(), blocks[ph0], inPhase % blocks[ph0]);
                int count = blockStart(p.n() * grid.count(), blocks[ph0], inPhase % blocks[ph0] + 1) - g0;
                int ldc = roundUp(count, NR);
                float[] c0 = Workspace.floats(SLOT_C, cg * ldc);
                float[] c1 = Workspace.floats(SLOT_C_ODD, cg * ldc);
                for (int ph = ph0; ph < ph0 + 2; ph++) {
                    int depth = taps[ph].length;
                    new FlatProduct(p, in, taps[ph], g * kg * in.channelStride, grid, g0, count, weights,
                            weightsAt[ph] + g * cg * depth, aRowStride(depth), aDepthStride(cg), cg,
                            ph == ph0 ? c0 : c1, ldc).run(b);
                }
                scatterPair(c0, c1, ldc, cg, count, g0, grid, o.x, o.xo + g * cg * hw + f.ph * p.w(), hw,
                        p.c() * hw, sh * p.w());
            });
            return;
        }
        int tasks = firstTask[phases];
        int workers = Parallel.workers(tasks, p.flops(), MIN_FLOPS_PER_THREAD);
        Parallel.run(tasks, workers, (worker, order) -> {
            int task = phaseMajor(order, firstTask, phases);
            int ph = 0;
            while (firstTask[ph + 1] <= task) {
                ph++;
            }
            Phase f = phase[ph];
            Grid grid = new Grid(f.rows, f.cols, wp);
            int inPhase = task - firstTask[ph];
            int g = inPhase / blocks[ph];
            int g0 = blockStart(p.n() * grid.count(), blocks[ph], inPhase % blocks[ph]);
            int count = blockStart(p.n() * grid.count(), blocks[ph], inPhase % blocks[ph] + 1) - g0;
            int depth = taps[ph].length;
            int ldc = roundUp(count, NR);
            float[] c = Workspace.floats(SLOT_C, cg * ldc);
            new FlatProduct(p, in, taps[ph], g * kg * in.channelStride, grid, g0, count, weights,
                    weightsAt[ph] + g * cg * depth, aRowStride(depth), aDepthStride(cg), cg, c, ldc).run(b);
            scatter(c, ldc, cg, count, g0, grid, o.x, o.xo + g * cg * hw + f.ph * p.w() + f.pw, hw, p.c() * hw,
                    sh * p.w(), sw, null, 0);
        });
    }

    /**
     * The task that runs {@code order}-th, numbered phase by phase ({@code first[ph]} the first task of phase
     * {@code ph}, {@code first[phases]} their count): when every phase has as many tasks, the phases of one block of
     * positions run one after the other, as they read the same region of the dy planes and the first leaves it in
     * the cache for the rest (conv-s2 backward-data, the two row phases: 0.91-0.96x the time of phase by phase);
     * otherwise phase by phase.
     */
    static int phaseMajor(int order, int[] first, int phases) {
        int each = first[1];
        for (int ph = 1; ph < phases; ph++) {
            if (first[ph + 1] - first[ph] != each) {
                return order;
            }
        }
        return first[order % phases] + order / phases;
    }

    /**
     * Whether backward-data can run the column phases in pairs: stride 2 along the width, and in every row phase
     * both column phases have taps and the same pixel grid.
     */
    private static boolean columnPairs(Phase[] phase, int[][] taps, int sw) {
        if (sw != 2) {
            return false;
        }
        for (int ph = 0; ph < phase.length; ph += 2) {
            if (taps[ph] == null || taps[ph + 1] == null || phase[ph].rows != phase[ph + 1].rows
                    || phase[ph].cols != phase[ph + 1].cols) {
                return false;
            }
        }
        return true;
    }

    /**
     * As {@link #scatter} without bias, for two C blocks of the same positions that are the even and odd columns of
     * the output rows: {@code out[... + 2q] = c0}, {@code out[... + 2q + 1] = c1}.
     */
    static void scatterPair(float[] c0, float[] c1, int ldc, int m, int count, int g0, Grid grid, float[] out,
                            int base, int channelStride, int imageStride, int rowStride) {
        int perImage = grid.count();
        int wp = grid.wp();
        int j = 0;
        while (j < count) {
            int g = g0 + j;
            int img = g / perImage;
            int f = g - img * perImage;
            int pp = f / wp;
            int q = f - pp * wp;
            int run = Math.min(Math.min(wp - q, perImage - f), count - j);
            int valid = Math.min(run, grid.cols() - q);
            if (valid > 0) {
                int dst = base + img * imageStride + pp * rowStride + 2 * q;
                for (int i = 0; i < m; i++) {
                    MicroKernel.interleave(c0, c1, i * ldc + j, out, dst + i * channelStride, valid);
                }
            }
            j += run;
        }
    }

    /** Offsets in the dy planes of B row {@code k·taps + tap} of a backward-data phase, relative to the group. */
    private static int[] phaseTaps(Phase f, int kg, Planes in, int rsMin, int csMin) {
        int ns = f.tapS.length;
        int taps = f.taps();
        int[] t = new int[kg * taps];
        for (int k = 0; k < kg; k++) {
            for (int tap = 0; tap < taps; tap++) {
                t[k * taps + tap] = k * in.channelStride + (f.rowShift[tap / ns] - rsMin) * in.wp
                        + f.colShift[tap % ns] - csMin;
            }
        }
        return t;
    }

    /**
     * The strides of an A matrix that a pass packs itself ({@code rows × depth}): row-major on the vector path, whose
     * tile broadcasts one element of A at a time; column-major on the scalar path, whose tile copies A's columns
     * first, then as contiguous runs instead of gathers ({@link MicroKernel#tile}).
     */
    private static int aRowStride(int depth) {
        return Vectorization.ENABLED ? depth : 1;
    }

    /** See {@link #aRowStride}. */
    private static int aDepthStride(int rows) {
        return Vectorization.ENABLED ? 1 : rows;
    }

    /**
     * Writes a phase's A matrices, one per group of {@code Cg × depth} floats from {@code dst[at + g·Cg·depth]},
     * with {@code A[c][(k·taps + tap)] = w[g·Kg + k][c][tap]}, row-major on the vector path, column-major on the
     * scalar path ({@link #aRowStride}): a transposition, done in tiles of 16 channels × 16 filters so that the
     * lines read and written stay in L1 (rows of a power-of-two length would otherwise collide in its sets), and
     * spread over the pool.
     */
    private static void packDataWeights(Operands o, Phase f, float[] dst, int at) {
        Conv2dProblem p = o.p;
        int cg = p.cPerGroup();
        int kg = p.kPerGroup();
        int ns = f.tapS.length;
        int taps = f.taps();
        int depth = kg * taps;
        int rs = p.r() * p.s();
        int rowStride = aRowStride(depth);
        int depthStride = aDepthStride(cg);
        int[] tap = new int[taps];
        for (int t = 0; t < taps; t++) {
            tap[t] = f.tapR[t / ns] * p.s() + f.tapS[t % ns];
        }
        int blocks = (cg + 15) / 16;
        int tasks = p.groups() * blocks;
        int workers = Parallel.workers(tasks, (double) p.c() * depth, 1 << 16);
        Parallel.run(tasks, workers, (worker, task) -> {
            int g = task / blocks;
            int c0 = (task % blocks) * 16;
            int c1 = Math.min(cg, c0 + 16);
            if (taps == 1 && rs == 1 && depthStride == 1) {
                // 1×1 filters, A row-major: Kg × Cg transposed in 8 × 8 blocks
                MicroKernel.transpose(o.w, o.wo + g * kg * cg + c0, cg, dst, at + g * cg * depth + c0 * rowStride,
                        rowStride, kg, c1 - c0);
                return;
            }
            if (taps == 1) {
                // one tap (1×1 filters, or a phase one tap reaches): a plain transposition of Kg × Cg
                int src = o.wo + g * kg * cg * rs + tap[0];
                for (int k0 = 0; k0 < kg; k0 += 16) {
                    int k1 = Math.min(kg, k0 + 16);
                    for (int ch = c0; ch < c1; ch++) {
                        int row = at + g * cg * depth + ch * rowStride;
                        for (int k = k0, from = src + (k0 * cg + ch) * rs; k < k1; k++, from += cg * rs) {
                            dst[row + k * depthStride] = o.w[from];
                        }
                    }
                }
                return;
            }
            for (int k0 = 0; k0 < kg; k0 += 16) {
                int k1 = Math.min(kg, k0 + 16);
                for (int ch = c0; ch < c1; ch++) {
                    int row = at + g * cg * depth + ch * rowStride;
                    for (int k = k0; k < k1; k++) {
                        int from = o.wo + ((g * kg + k) * cg + ch) * rs;
                        for (int t = 0; t < taps; t++) {
                            dst[row + (k * taps + t) * depthStride] = o.w[from + tap[t]];
                        }
                    }
                }
            }
        });
    }

    /** Zeros the dx pixels of the phases that no filter tap reaches (a stride larger than the filter's reach). */
    private static void zeroUnreachedPhases(Operands o, Phase[] phase) {
        Conv2dProblem p = o.p;
        int planes = p.n() * p.c();
        for (int plane = 0; plane < planes; plane++) {
            int base = o.xo + plane * p.h() * p.w();
            for (Phase f : phase) {
                if (f.taps() > 0) {
                    continue;
                }
                for (int i = 0; i < f.rows; i++) {
                    int row = base + (f.ph + i * p.strideH()) * p.w() + f.pw;
                    for (int j = 0; j < f.cols; j++) {
                        o.x[row + j * p.strideW()] = 0f;
                    }
                }
            }
        }
    }

    /**
     * Backward-filter, NCHW: {@code dwᵀ[(c,r,s)][k] = Σ_images Σ_pixels planes[c, phase(r,s)][f(pixel) + offset(r,s)]
     * · dy[k][pixel]} ({@link FlatFilter}), split over images, groups and pixel chunks, each slice of those tasks
     * ({@link #filterSlices}) adding into its own dwᵀ (and db) partial; the partials are summed in slice order and
     * transposed into dw at the end. With 1 × 1 filters (A read in place) tasks split the output columns instead,
     * each reducing over every pixel into its own columns of one dwᵀ and transposing them into dw itself.
     */
    private static void backwardFilterNchw(Operands o, Blocking b, int pixels, int slicesPerWorker) {
        Conv2dProblem p = o.p;
        int kg = p.kPerGroup();
        int kgPad = roundUp(kg, NR);
        int filter = p.cPerGroup() * p.r() * p.s();
        int pq = p.p() * p.q();
        int groupStride = filter * kgPad;
        int biasAt = p.groups() * groupStride;
        int stride = biasAt + p.k();
        Planes in = p.n() == 0 || pq == 0 ? null : Planes.input(o);
        int[] taps = in == null ? null : in.taps(p);
        if (in != null && in.wp == p.q() && evenlySpaced(taps) && kg >= filter) {
            pointwiseFilter(o, in, taps, b);
            return;
        }
        if (in != null && in.wp == p.q() && evenlySpaced(taps)) {
            // A (x) is read in place (1×1 filters), so nothing is packed twice if tasks split the output columns
            // (panels of dy channels) and each reduces over every pixel: no partials, the C block stays in L2
            int panels = kgPad / NR;
            int tasks = p.groups() * panels;
            int parallel = Parallel.workers(tasks, p.flops(), MIN_FLOPS_PER_THREAD);
            float[] dwT = Workspace.floats(SLOT_PARTIALS, stride);
            Arrays.fill(dwT, 0, stride, 0f);
            Parallel.run(tasks, parallel, (worker, task) -> {
                int g = task / panels;
                int col0 = (task % panels) * NR;
                int cols = Math.min(NR, kg - col0);
                for (int n = 0; n < p.n(); n++) {
                    new FlatFilter(o, in, taps, n, g, 0, pq, col0, cols, dwT, g * groupStride + col0, kgPad).run(b);
                    o.sumBias(n, g, col0, cols, 0, pq, dwT, biasAt);
                }
                // the task's columns of dwᵀ are its filters' rows of dw: transposed here, while they sit in this
                // core's cache, rather than by a pass of their own over all of dwᵀ after the tasks (which read half
                // of it from the other core: 5-12% of conv-1x1's backward-filter)
                MicroKernel.transpose(dwT, g * groupStride + col0, kgPad, o.w, o.wo + (g * kg + col0) * filter, filter,
                        filter, cols);
            });
            o.biasFromPartials(dwT, 1, stride, biasAt);
            return;
        }
        // split the pixels of every image into chunks, and the chunks into slices (filterSlices); each slice
        // adds into its own dwᵀ partial, so the partials sum to the same bits on every run
        int chunks = in == null ? 0 : pixelBlocks(pq, Math.min(pixels, Math.max(NR,
                (int) ((long) pq * p.n() * p.groups() / (8L * Parallel.THREADS)))));
        int tasks = p.n() * p.groups() * chunks;
        int workers = Parallel.workers(tasks, p.flops(), MIN_FLOPS_PER_THREAD);
        int parts = filterSlices(tasks, workers, stride, slicesPerWorker);
        float[] partials = Workspace.floats(SLOT_PARTIALS, parts * stride);
        Arrays.fill(partials, 0, parts * stride, 0f);
        Parallel.runSliced(tasks, parts, workers, (slice, task) -> {
            int chunk = task % chunks;
            int g = (task / chunks) % p.groups();
            int n = task / chunks / p.groups();
            int t0 = (int) ((long) pq * chunk / chunks);
            int t1 = (int) ((long) pq * (chunk + 1) / chunks);
            int base = slice * stride;
            new FlatFilter(o, in, taps, n, g, t0, t1 - t0, 0, kg, partials, base + g * groupStride, kgPad).run(b);
            o.sumBias(n, g, 0, kg, t0, t1 - t0, partials, base + biasAt);
        });
        // dw[g·Kg + k][i] = Σ_slices dwᵀ partial[g][i][k], transposed in blocks of 64 filter entries (each
        // partial line read once, dw written in runs); db from the bias partials
        int iBlocks = (filter + 63) / 64;
        int outTasks = p.groups() * iBlocks;
        int outWorkers = Parallel.workers(outTasks, (double) p.k() * filter * parts, 1 << 16);
        Parallel.run(outTasks, outWorkers, (worker, task) -> {
            int g = task / iBlocks;
            int i0 = (task % iBlocks) * 64;
            int i1 = Math.min(filter, i0 + 64);
            for (int kk = 0; kk < kg; kk++) {
                int dst = o.wo + (g * kg + kk) * filter;
                int from = g * groupStride + kk;
                for (int i = i0; i < i1; i++) {
                    float sum = 0f;
                    for (int part = 0; part < parts; part++) {
                        sum += partials[part * stride + from + i * kgPad];
                    }
                    o.w[dst + i] = sum;
                }
            }
        });
        o.biasFromPartials(partials, parts, stride, biasAt);
    }

    /**
     * Backward-filter when every filter entry reads a run of its own plane (1 × 1 filters; x's planes as in
     * {@link #backwardFilterNchw}) and there are at least as many filters as entries per filter:
     * {@code dw[k][c] = Σ_images Σ_pixels dy[k][pixel] · x[c][pixel]} straight into dw, A being dy read in place and B xᵀ, packed once per call (per block of {@link #PACKED_X_FLOATS}) into panels
     * that every task shares; tasks split the filters, each reducing over every pixel in order. The other
     * orientation (A = x, B = dyᵀ) packs the larger operand, dy, which each panel then serves to fewer rows, and
     * leaves dwᵀ to be transposed (conv-1x1, 1024 filters of 256 channels: 6.4 MB of dy against 1.6 MB of x).
     */
    private static void pointwiseFilter(Operands o, Planes in, int[] taps, Blocking b) {
        Conv2dProblem p = o.p;
        int kg = p.kPerGroup();
        int cg = p.cPerGroup();
        // dw's entries per filter, Cg·R·S: one run of a plane each (1 × 1 filters, or taps that never share a plane)
        int entries = taps.length;
        int groups = p.groups();
        int pq = p.p() * p.q();
        int kc = Math.min(b.kc(), pq);
        int tapStride = entries > 1 ? taps[1] - taps[0] : 0;
        int panels = (entries + NR - 1) / NR;
        int whole = entries / NR;
        int panelFloats = pq * NR;
        long perImage = (long) groups * panels * panelFloats;
        int imagesPerBlock = (int) Math.max(1, Math.min(p.n(), PACKED_X_FLOATS / perImage));
        float[] xT = Workspace.floats(SLOT_PARTIALS, (int) (imagesPerBlock * perImage));
        // about four tasks a thread, whole tiles of rows
        int rowsPerTask = roundUp(Math.max(1, (int) Math.ceil((double) kg * groups / (4.0 * Parallel.THREADS))),
                MicroKernel.MR);
        int rowBlocks = (kg + rowsPerTask - 1) / rowsPerTask;
        int tasks = groups * rowBlocks;
        int workers = Parallel.workers(tasks, p.flops(), MIN_FLOPS_PER_THREAD);
        for (int n0 = 0; n0 < p.n(); n0 += imagesPerBlock) {
            int first = n0;
            int images = Math.min(imagesPerBlock, p.n() - n0);
            int packs = images * groups * panels;
            Parallel.runSmall(packs, Parallel.workers(packs, (double) packs * panelFloats, 1 << 16), (worker, t) -> {
                int panel = t % panels;
                int g = (t / panels) % groups;
                int image = first + t / panels / groups;
                int c0 = panel * NR;
                int cols = Math.min(NR, entries - c0);
                int at = t * panelFloats;
                MicroKernel.transpose(in.data, in.image(image) + g * cg * in.channelStride + taps[c0], tapStride,
                        xT, at, NR, cols, pq);
                for (int k = 0; cols < NR && k < pq; k++) {
                    Arrays.fill(xT, at + k * NR + cols, at + (k + 1) * NR, 0f);
                }
            });
            Parallel.run(tasks, workers, (worker, task) -> {
                int g = task / rowBlocks;
                int r0 = (task % rowBlocks) * rowsPerTask;
                int rows = Math.min(rowsPerTask, kg - r0);
                int c = o.wo + (g * kg + r0) * entries;
                float[] tile = whole < panels ? Workspace.floats(SLOT_TILE, rows * NR) : null;
                for (int i = 0; i < images; i++) {
                    int n = first + i;
                    int a = o.yo + (n * p.k() + g * kg + r0) * pq;
                    int panel0 = (i * groups + g) * panels * panelFloats;
                    for (int k0 = 0; k0 < pq; k0 += kc) {
                        int kLen = Math.min(kc, pq - k0);
                        boolean add = n > 0 || k0 > 0;
                        MicroKernel.panels(o.y, a + k0, pq, 1, xT, panel0 + k0 * NR, panelFloats, kLen, o.w, c, NR,
                                entries, rows, add, whole);
                        if (whole < panels) {
                            // the last panel is partial: through a scratch tile (a whole one would write past the row)
                            int c0 = whole * NR;
                            int cols = entries - c0;
                            MicroKernel.tile(o.y, a + k0, pq, 1, xT, panel0 + whole * panelFloats + k0 * NR, kLen,
                                    tile, 0, NR, rows, false, cols);
                            for (int r = 0; r < rows; r++) {
                                int to = c + r * entries + c0;
                                for (int j = 0; j < cols; j++) {
                                    o.w[to + j] = (add ? o.w[to + j] : 0f) + tile[r * NR + j];
                                }
                            }
                        }
                    }
                    if (o.bias != null) {
                        if (n == 0) {
                            Arrays.fill(o.bias, o.bo + g * kg + r0, o.bo + g * kg + r0 + rows, 0f);
                        }
                        o.sumBias(n, g, r0, rows, 0, pq, o.bias, o.bo);
                    }
                }
            });
        }
    }

    /**
     * Floats of xᵀ that {@link #pointwiseFilter} packs at a time (16 MiB): the images of a larger batch go in blocks.
     */
    static final int PACKED_X_FLOATS = 4 << 20;

    /**
     * The first of {@code total} flat positions in block {@code blk} of {@code blocks}: whole panels shared out as
     * evenly as they go, the last block ending at {@code total}. Blocks of a fixed size left a short last one, and a
     * worker with one block more than the other: conv-1x1 (1568 positions in blocks of 120, 5 panels) gave one of two
     * workers 7 blocks and the other 6 and a scrap (forward, paired, one JVM: 0.96x the time shared out evenly).
     */
    static int blockStart(int total, int blocks, int blk) {
        return blk >= blocks ? total : (int) ((long) ((total + NR - 1) / NR) * blk / blocks) * NR;
    }

    /**
     * Positions per task: the tuned PIXELS, fewer when that would leave under 8 tasks per thread (so a busy core
     * does not hold up the rest), rounded up to whole panels.
     */
    private static int positionsPerTask(long total, int groups, int pixels) {
        long fair = total * groups / (8L * Parallel.THREADS);
        return roundUp((int) Math.max(1, Math.min(pixels, fair)), NR);
    }

    /**
     * Activation planes prepared for the NCHW GEMMs, so that every filter tap of a run of consecutive output
     * positions reads consecutive floats. Plane {@code (n, c, a, b)} holds the input pixels
     * {@code (i·sh + a - top, j·sw + b - left)} for {@code i < hp}, {@code j < wp} (zero outside the input): the
     * zero-padded input split into its {@code sh × sw} stride phases. Output pixel {@code (p, q)} is flat position
     * {@code f = p·wp + q}, and filter tap {@code (r, s)} reads phase
     * {@code (r·dilationH mod sh, s·dilationW mod sw)} at {@code f + (r·dilationH / sh)·wp + s·dilationW / sw}.
     * With stride 1 this is the padded input, and with no padding either the input itself (no copy).
     */
    static final class Planes {
        final float[] data;
        final int base;
        final int sh;
        final int sw;
        final int hp;
        final int wp;
        final int size;
        /** Floats from one channel's planes to the next. */
        final int channelStride;
        final int imageStride;

        private Planes(float[] data, int base, int channels, int sh, int sw, int hp, int wp) {
            this.data = data;
            this.base = base;
            this.sh = sh;
            this.sw = sw;
            this.hp = hp;
            this.wp = wp;
            this.size = hp * wp;
            this.channelStride = sh * sw * size;
            this.imageStride = channels * channelStride;
        }

        int image(int n) {
            return base + n * imageStride;
        }

        /** The planes of x for forward and backward-filter: the problem's padding and stride phases. */
        static Planes input(Operands o) {
            Conv2dProblem p = o.p;
            int sh = p.strideH();
            int sw = p.strideW();
            int hp = p.p() + (p.r() - 1) * p.dilationH() / sh;
            int wp = p.q() + (p.s() - 1) * p.dilationW() / sw;
            return of(o.x, o.xo, p.n(), p.c(), p.h(), p.w(), sh, sw, p.padTop(), p.padLeft(), hp, wp);
        }

        /**
         * The planes of one band of a strided forward: output rows {@code [p0, p0 + rows)} of image {@code n},
         * channels {@code [c0, c0 + cn)} of group {@code g}, in the calling thread's workspace. Plane
         * {@code (c, a, s)} (for each row phase {@code a < strideH} that a filter row reaches and each filter column
         * {@code s}) holds {@code x[c0 + c][(p0 + i)·sh + a - top][q·sw + s·dilationW - left]} for
         * {@code i < filled}, {@code q < Q}: the row phases as in {@link #input}, but each column tap's columns laid
         * out on their own, so that the band's output positions {@code i·Q + q} have no gaps and its product can be
         * written straight into y. Here {@code sw} counts the planes of a row phase (the filter's width) and
         * {@code wp} is Q; the planes are {@code planeRows} rows apart, of which the first {@code filled} are
         * written.
         */
        static Planes columnTaps(Operands o, int n, int g, int c0, int cn, int p0, int filled, int planeRows) {
            Conv2dProblem p = o.p;
            int sh = p.strideH();
            int sw = p.strideW();
            int cols = p.s();
            int q = p.q();
            int inW = p.w();
            int left = p.padLeft();
            int size = planeRows * q;
            float[] dst = Workspace.floats(SLOT_BAND, Math.max(1, cn * sh * cols * size));
            // one input row split into its sw column phases, each with zero margins wide enough for every tap's
            // run of Q: phase b's element j (column j·sw + b) at split[b·pitch + margin + j]
            int margin = Math.max(0, -Math.floorDiv(-left, sw));
            int reachEnd = Math.floorDiv((cols - 1) * p.dilationW() - left, sw) + q;
            int pitch = margin + Math.max(reachEnd, (inW + sw - 1) / sw);
            float[] split = Workspace.floats(SLOT_ROW_PHASES, sw * pitch);
            Arrays.fill(split, 0, sw * pitch, 0f);
            // once per band, not per row (divisions): each column tap's column phase and first element in it, which
            // row phases a filter row reads
            int[] tapPhase = new int[cols];
            int[] tapShift = new int[cols];
            for (int s = 0; s < cols; s++) {
                int col0 = s * p.dilationW() - left;
                tapPhase[s] = Math.floorMod(col0, sw);
                tapShift[s] = Math.floorDiv(col0, sw);
            }
            boolean[] reached = new boolean[sh];
            for (int r = 0; r < p.r(); r++) {
                reached[r * p.dilationH() % sh] = true;
            }
            // stride 2 across a row of exactly Q column pairs, each column phase with a tap that starts at its first
            // element ("home"): the row is split straight into the home taps' planes and the other taps are shifted
            // copies of those (conv-s2: the even columns are tap 1, the odd ones tap 2, tap 0 is tap 2 one to the
            // right), instead of split, then copied once per tap
            int[] home = {-1, -1};
            boolean direct = sw == 2 && inW == 2 * q;
            for (int s = 0; direct && s < cols; s++) {
                if (tapShift[s] == 0 && home[tapPhase[s]] < 0) {
                    home[tapPhase[s]] = s;
                }
            }
            direct &= home[0] >= 0 && home[1] >= 0;
            for (int c = 0; c < cn; c++) {
                int channel = o.xo + (n * p.c() + g * p.cPerGroup() + c0 + c) * p.h() * inW;
                // input rows in order (row i·sh + a of the band is row i of phase a): one sequential read of x
                int row = p0 * sh - p.padTop();
                for (int i = 0; i < filled; i++) {
                    for (int a = 0; a < sh; a++, row++) {
                        if (!reached[a]) {
                            continue;
                        }
                        int at = (c * sh + a) * cols * size + i * q;
                        if (row < 0 || row >= p.h()) {
                            for (int s = 0; s < cols; s++) {
                                Arrays.fill(dst, at + s * size, at + s * size + q, 0f);
                            }
                            continue;
                        }
                        if (direct) {
                            MicroKernel.deinterleave(o.x, channel + row * inW, dst, at + home[0] * size,
                                    at + home[1] * size, q);
                            for (int s = 0; s < cols; s++) {
                                int b = tapPhase[s];
                                if (s != home[b]) {
                                    shiftedRow(dst, at + home[b] * size, tapShift[s], at + s * size, q);
                                }
                            }
                            continue;
                        }
                        splitColumns(o.x, channel + row * inW, inW, sw, split, margin, pitch);
                        for (int s = 0; s < cols; s++) {
                            MicroKernel.copyRow(split, tapPhase[s] * pitch + margin + tapShift[s], dst, at + s * size,
                                    q);
                        }
                    }
                }
            }
            return new Planes(dst, 0, cn, sh, cols, planeRows, q);
        }

        /**
         * {@code a[to + j] = a[from + j + shift]} for {@code j < len}, zero where {@code j + shift} is outside
         * {@code [0, len)}.
         */
        private static void shiftedRow(float[] a, int from, int shift, int to, int len) {
            int lo = Math.min(len, Math.max(0, -shift));
            int hi = Math.max(lo, Math.min(len, len - shift));
            // the zeros are a filter's overhang, a column or two: a loop, not Arrays.fill, whose call costs more
            // than that (2% of conv-s2's forward samples in its one-element fills)
            for (int j = 0; j < lo; j++) {
                a[to + j] = 0f;
            }
            MicroKernel.copyRow(a, from + lo + shift, a, to + lo, hi - lo);
            for (int j = hi; j < len; j++) {
                a[to + j] = 0f;
            }
        }

        /** {@code split[b·pitch + margin + j] = src[row + j·sw + b]} for every column {@code j·sw + b < inW}. */
        private static void splitColumns(float[] src, int row, int inW, int sw, float[] split, int margin,
                                         int pitch) {
            if (sw == 1) {
                MicroKernel.copyRow(src, row, split, margin, inW);
            } else if (sw == 2) {
                MicroKernel.deinterleave(src, row, split, margin, pitch + margin, inW / 2);
                if (inW % 2 != 0) {
                    split[margin + inW / 2] = src[row + inW - 1];
                }
            } else {
                for (int col = 0; col < inW; col++) {
                    split[(col % sw) * pitch + margin + col / sw] = src[row + col];
                }
            }
        }

        /**
         * The offsets of the filter taps of {@code channels} channels in the planes of {@link #columnTaps}, in filter
         * order.
         */
        static int[] columnTapOffsets(Conv2dProblem p, int channels, int planeRows) {
            int sh = p.strideH();
            int size = planeRows * p.q();
            int[] t = new int[channels * p.r() * p.s()];
            for (int c = 0; c < channels; c++) {
                for (int r = 0; r < p.r(); r++) {
                    int rh = r * p.dilationH();
                    for (int s = 0; s < p.s(); s++) {
                        t[(c * p.r() + r) * p.s() + s] = ((c * sh + rh % sh) * p.s() + s) * size + (rh / sh) * p.q();
                    }
                }
            }
            return t;
        }

        /** Offsets of one group's filter taps {@code (c, r, s)}, in filter order, from the group's first plane. */
        int[] taps(Conv2dProblem p) {
            int[] t = new int[p.cPerGroup() * p.r() * p.s()];
            for (int c = 0; c < p.cPerGroup(); c++) {
                for (int r = 0; r < p.r(); r++) {
                    int rh = r * p.dilationH();
                    for (int s = 0; s < p.s(); s++) {
                        int sd = s * p.dilationW();
                        t[(c * p.r() + r) * p.s() + s] = c * channelStride + ((rh % sh) * sw + sd % sw) * size
                                + (rh / sh) * wp + sd / sw;
                    }
                }
            }
            return t;
        }

        /**
         * The planes of {@code images × channels} planes of {@code inH × inW} at {@code src[srcBase...]}, copied
         * into the calling thread's workspace unless the source already has that layout.
         */
        static Planes of(float[] src, int srcBase, int images, int channels, int inH, int inW, int sh, int sw,
                         int top, int left, int hp, int wp) {
            if (sh == 1 && sw == 1 && top == 0 && left == 0 && hp == inH && wp == inW) {
                return new Planes(src, srcBase, channels, 1, 1, hp, wp);
            }
            return copy(src, srcBase, images, channels, inH, inW, sh, sw, top, left, hp, wp, 0);
        }

        /** As {@link #of}, always a copy, with {@code slack} floats to spare after the last plane. */
        static Planes copy(float[] src, int srcBase, int images, int channels, int inH, int inW, int sh, int sw,
                           int top, int left, int hp, int wp, int slack) {
            int phases = sh * sw;
            int size = hp * wp;
            int planes = images * channels;
            float[] dst = Workspace.floats(SLOT_PADDED, Math.toIntExact((long) planes * phases * size + slack));
            int workers = Parallel.workers(planes, (double) planes * phases * size, 1 << 16);
            Parallel.runSmall(planes, workers, (worker, plane) -> {
                int from = srcBase + plane * inH * inW;
                if (sh == 1 && sw == 1) {
                    padPlane(src, from, inH, inW, top, left, dst, plane * size, hp, wp);
                    return;
                }
                for (int a = 0; a < sh; a++) {
                    int out = (plane * phases + a * sw) * size;
                    for (int i = 0; i < hp; i++) {
                        int row = i * sh + a - top;
                        if (row < 0 || row >= inH) {
                            for (int b = 0; b < sw; b++) {
                                Arrays.fill(dst, out + b * size + i * wp, out + b * size + (i + 1) * wp, 0f);
                            }
                        } else {
                            splitRow(src, from + row * inW, inW, left, sw, dst, out + i * wp, size, wp);
                        }
                    }
                }
            });
            return new Planes(dst, 0, channels, sh, sw, hp, wp);
        }

        /**
         * Row {@code row} of the source, shifted right by {@code left}, split into its {@code step} column phases
         * in one pass: {@code dst[at + b·phaseStride + j] = src[row + j·step + b - left]}, zero outside
         * {@code [0, inW)}.
         */
        private static void splitRow(float[] src, int row, int inW, int left, int step, float[] dst, int at,
                                     int phaseStride, int len) {
            // the columns j whose phases all lie inside the row: j·step - left >= 0, j·step + step - 1 - left < inW
            int jFrom = Math.min(len, Math.max(0, Math.floorDiv(left + step - 1, step)));
            int jTo = Math.max(jFrom, Math.min(len, Math.floorDiv(inW - step + left, step) + 1));
            for (int j = 0; j < jFrom; j++) {
                splitEdge(src, row, inW, left, step, dst, at, phaseStride, j);
            }
            if (step == 2) {
                MicroKernel.deinterleave(src, row + jFrom * 2 - left, dst, at + jFrom, at + phaseStride + jFrom,
                        jTo - jFrom);
            } else {
                for (int j = jFrom, c = row + jFrom * step - left; j < jTo; j++, c += step) {
                    for (int b = 0; b < step; b++) {
                        dst[at + b * phaseStride + j] = src[c + b];
                    }
                }
            }
            for (int j = jTo; j < len; j++) {
                splitEdge(src, row, inW, left, step, dst, at, phaseStride, j);
            }
        }

        private static void splitEdge(float[] src, int row, int inW, int left, int step, float[] dst, int at,
                                      int phaseStride, int j) {
            for (int b = 0; b < step; b++) {
                int col = j * step + b - left;
                dst[at + b * phaseStride + j] = col >= 0 && col < inW ? src[row + col] : 0f;
            }
        }

    }

    /**
     * {@code C[m × count] = A[m × depth] · B} over the flat positions {@code [g0, g0 + count)} of all images
     * together (image {@code n} owns {@code [n·grid.count(), (n + 1)·grid.count())}), with
     * {@code B[kd][g] = planes of image(g) at channel0 + taps[kd] + position(g)}: B rows are copied in runs of
     * consecutive positions. A is read in place ({@code depth} floats a row); C is a block with whole panels.
     */
    static final class FlatProduct extends Gemm {
        private final Planes in;
        private final int[] taps;
        private final int channel0;
        private final int perImage;
        private final int g0;

        FlatProduct(Conv2dProblem p, Planes in, int[] taps, int channel0, Grid grid, int g0, int count, float[] a,
                    int aBase, int ars, int aks, int m, float[] c, int ldc) {
            super(p);
            this.in = in;
            this.taps = taps;
            this.channel0 = channel0;
            this.perImage = grid.count();
            this.g0 = g0;
            this.m = m;
            this.n = count;
            this.depth = taps.length;
            this.aArray = a;
            this.aBase = aBase;
            this.ars = ars;
            this.aks = aks;
            this.c = c;
            this.ldc = ldc;
            this.linearC = true;
            this.paddedC = true;
        }

        /**
         * Set (above 0) when C is the output itself across images, the flat positions being each image's output
         * plane in order: column {@code j} is position {@code f} of image {@code n} ({@code g0 + j = n·perImage + f}),
         * at {@code n·cImageStride + f} from a row's start. Panels within one image are written in place, the one
         * where an image ends and the next begins through a scratch tile.
         */
        int cImageStride;

        @Override
        int cColumn(int j) {
            if (cImageStride == 0) {
                return super.cColumn(j);
            }
            int g = g0 + j;
            int img = g / perImage;
            return img * cImageStride + g - img * perImage;
        }

        @Override
        int panelAt(int j, int cols) {
            if (cImageStride == 0) {
                return super.panelAt(j, cols);
            }
            int g = g0 + j;
            int img = g / perImage;
            int f = g - img * perImage;
            return cols == NR && f + NR <= perImage ? img * cImageStride + f : -1;
        }

        @Override
        void packB(float[] dst, int k0, int kc, int n0, int nc) {
            int first = g0 + n0;
            int img = first / perImage;
            int f = first - img * perImage;
            if (nc == NR && f + NR <= perImage) {
                MicroKernel.gatherPanel(in.data, in.image(img) + channel0 + f, taps, k0, kc, dst, 0);
                return;
            }
            int j = 0;
            while (j < nc) {
                img = (first + j) / perImage;
                f = first + j - img * perImage;
                int run = Math.min(perImage - f, nc - j);
                int src = in.image(img) + channel0 + f;
                for (int kk = 0; kk < kc; kk++) {
                    panelCopy(in.data, src + taps[k0 + kk], dst, kc, kk, j, run);
                }
                j += run;
            }
            int pad = roundUp(nc, NR) - nc;
            for (int kk = 0; pad > 0 && kk < kc; kk++) {
                panelZeros(dst, kc, kk, nc, pad);
            }
        }
    }

    /**
     * Copies a C block ({@code m} rows of pitch {@code ldc}) of the flat positions {@code [g0, g0 + count)} of
     * {@code grid} to the pixels they stand for, dropping the gap positions: row {@code i}, image {@code n},
     * pixel {@code (p, q)} goes to {@code out[base + n·imageStride + i·channelStride + p·rowStride + q·colStride]},
     * plus {@code bias[biasOff + i]} when there is a bias.
     */
    static void scatter(float[] c, int ldc, int m, int count, int g0, Grid grid, float[] out, int base,
                        int channelStride, int imageStride, int rowStride, int colStride, float[] bias,
                        int biasOff) {
        int perImage = grid.count();
        int wp = grid.wp();
        // without gap positions, consecutive rows of the grid are consecutive in the output too: one run per image
        boolean rowsJoin = wp == grid.cols() && rowStride == grid.cols() * colStride;
        int j = 0;
        while (j < count) {
            int g = g0 + j;
            int img = g / perImage;
            int f = g - img * perImage;
            int pp = f / wp;
            int q = f - pp * wp;
            int run = Math.min(Math.min(rowsJoin ? perImage - f : wp - q, perImage - f), count - j);
            int valid = rowsJoin ? run : Math.min(run, grid.cols() - q);
            if (valid > 0) {
                int dst = base + img * imageStride + pp * rowStride + q * colStride;
                for (int i = 0; i < m; i++) {
                    float add = bias == null ? 0f : bias[biasOff + i];
                    copyRun(c, i * ldc + j, out, dst + i * channelStride, valid, colStride, add);
                }
            }
            j += run;
        }
    }

    /** {@code dst[to + e·step] = src[from + e] + add} for {@code e < len}. */
    private static void copyRun(float[] src, int from, float[] dst, int to, int len, int step, float add) {
        if (step == 1 && add == 0f) {
            System.arraycopy(src, from, dst, to, len);
        } else if (step == 1) {
            for (int e = 0; e < len; e++) {
                dst[to + e] = src[from + e] + add;
            }
        } else {
            for (int e = 0; e < len; e++) {
                dst[to + e * step] = src[from + e] + add;
            }
        }
    }

    /**
     * Backward-filter, NCHW, over pixels {@code [t0, t0 + count)} of one image and group, for dy channels
     * {@code [col0, col0 + cols)} of the group:
     * {@code dwᵀ[(c,r,s)][k] += Σ_pixels planes[c, phase(r,s)][f(pixel) + offset(r,s)] · dy[k][pixel]}. A's rows are
     * runs of the planes (copied per output row), B is dy transposed, C this worker's dwᵀ partial, whole panels
     * wide.
     */
    static final class FlatFilter extends Gemm {
        private final Planes in;
        private final int[] taps;
        private final int planes;
        private final float[] dy;
        private final int dyPlane0;
        private final int t0;

        FlatFilter(Operands o, Planes in, int[] taps, int image, int g, int t0, int count, int col0, int cols,
                   float[] partial, int at, int ldc) {
            super(o.p);
            this.in = in;
            this.taps = taps;
            int kg = p.kPerGroup();
            this.planes = in.image(image) + g * p.cPerGroup() * in.channelStride;
            this.dyPlane0 = o.yo + (image * p.k() + g * kg + col0) * p.p() * p.q();
            this.t0 = t0;
            this.m = taps.length;
            this.n = cols;
            this.depth = count;
            this.accumulate = true;
            if (in.wp == p.q() && evenlySpaced(taps)) {
                // 1×1 filters without gap positions: A's rows are runs of one stride apart, read in place
                this.aArray = in.data;
                this.aBase = planes + taps[0] + t0;
                this.ars = taps.length > 1 ? taps[1] - taps[0] : 0;
                this.aks = 1;
            }
            this.c = partial;
            this.cBase = at;
            this.ldc = ldc;
            this.linearC = true;
            this.paddedC = true;
            this.dy = o.y;
        }

        @Override
        void packA(float[] dst, int m0, int mc, int k0, int kc) {
            // row by row, each row's runs (one per output row) in turn: the row is written in order and read from
            // one region of its plane; runs of all rows in turn wrote 28 floats into each of 96 rows 1 KB apart
            // (conv-s2) and left a row's lines to be fetched again for its next run (26% of its backward-filter)
            int q0 = p.q();
            int first = t0 + k0;
            for (int i = 0; i < mc; i++) {
                int row = planes + taps[m0 + i];
                int to = i * kc;
                int pp = first / q0;
                int q = first - pp * q0;
                for (int done = 0; done < kc; pp++, q = 0) {
                    int run = Math.min(q0 - q, kc - done);
                    MicroKernel.copyRow(in.data, row + pp * in.wp + q, dst, to + done, run);
                    done += run;
                }
            }
        }

        /** dyᵀ: each panel is its {@code NR} dy channels' runs of positions transposed ({@link MicroKernel#transpose}). */
        @Override
        void packB(float[] dst, int k0, int kc, int n0, int nc) {
            int pq = p.p() * p.q();
            for (int j0 = 0; j0 < nc; j0 += NR) {
                int cols = Math.min(NR, nc - j0);
                int out = (j0 / NR) * kc * NR;
                MicroKernel.transpose(dy, dyPlane0 + (n0 + j0) * pq + t0 + k0, pq, dst, out, NR, cols, kc);
                for (int kk = 0; cols < NR && kk < kc; kk++) {
                    Arrays.fill(dst, out + kk * NR + cols, out + (kk + 1) * NR, 0f);
                }
            }
        }
    }

    private static boolean evenlySpaced(int[] t) {
        for (int i = 2; i < t.length; i++) {
            if (t[i] - t[i - 1] != t[1] - t[0]) {
                return false;
            }
        }
        return true;
    }

    /** Copies {@code len} floats from {@code src[from...]} to columns {@code [j, j + len)} of panel row {@code kk}. */
    static void panelCopy(float[] src, int from, float[] dst, int kc, int kk, int j, int len) {
        int lane = j % NR;
        int at = (j / NR) * kc * NR + kk * NR + lane;
        if (lane > 0) {
            int run = Math.min(NR - lane, len);
            System.arraycopy(src, from, dst, at, run);
            from += run;
            len -= run;
            at += kc * NR - lane;
        }
        int whole = len / NR;
        MicroKernel.copyToPanels(src, from, dst, at, whole, kc * NR);
        if (len > whole * NR) {
            System.arraycopy(src, from + whole * NR, dst, at + whole * kc * NR, len - whole * NR);
        }
    }

    /** Zeros columns {@code [j, j + len)} of panel row {@code kk}. */
    static void panelZeros(float[] dst, int kc, int kk, int j, int len) {
        while (len > 0) {
            int lane = j % NR;
            int run = Math.min(NR - lane, len);
            int at = (j / NR) * kc * NR + kk * NR + lane;
            Arrays.fill(dst, at, at + run, 0f);
            j += run;
            len -= run;
        }
    }

    // ------------------------------------------------------------------------------------------- NHWC

    /**
     * Forward, NHWC: {@code y[pixel][k] = Σ x[pixel + tap][c] · w[k][r,s,c]}; A is im2col(x) rows (channel
     * runs copied), B the filter transposed.
     */
    static final class ForwardNhwc extends Gemm {
        private final Operands o;
        private final int image;
        private final int channel0;
        private final int pixel0;
        private final int weights;

        ForwardNhwc(Operands o, int n, int g, int pixel0, int count) {
            super(o.p);
            this.o = o;
            int kg = p.kPerGroup();
            this.m = count;
            this.n = kg;
            this.depth = p.r() * p.s() * p.cPerGroup();
            this.c = o.y;
            this.cBase = o.yo + (n * p.p() * p.q() + pixel0) * p.k() + g * kg;
            this.ldc = p.k();
            this.linearC = true;
            this.image = o.xo + n * p.h() * p.w() * p.c();
            this.channel0 = g * p.cPerGroup();
            this.pixel0 = pixel0;
            this.weights = o.wo + g * kg * depth;
        }

        @Override
        void packA(float[] dst, int m0, int mc, int k0, int kc) {
            for (int i = 0; i < mc; i++) {
                int t = pixel0 + m0 + i;
                im2colChannelsRow(o, image, channel0, t / p.q(), t % p.q(), k0, kc, dst, i * kc, 1);
            }
        }

        @Override
        void packB(float[] dst, int k0, int kc, int n0, int nc) {
            transposedPanels(o.w, weights, depth, dst, k0, kc, n0, nc);
        }
    }

    /**
     * Writes im2col row entries {@code [k0, k0 + kc)} (index {@code (r·S + s)·Cg + c}) of output pixel
     * {@code (pp, q)} from the NHWC image at {@code image} to {@code dst[at + e·step]}: runs of channels are
     * copied, taps in the padding are zeros.
     */
    static void im2colChannelsRow(Operands o, int image, int channel0, int pp, int q, int k0, int kc, float[] dst,
                                  int at, int step) {
        Conv2dProblem p = o.p;
        int cg = p.cPerGroup();
        int kd = k0;
        int end = k0 + kc;
        while (kd < end) {
            int tap = kd / cg;
            int ch = kd % cg;
            int run = Math.min(cg - ch, end - kd);
            int ih = pp * p.strideH() - p.padTop() + (tap / p.s()) * p.dilationH();
            int iw = q * p.strideW() - p.padLeft() + (tap % p.s()) * p.dilationW();
            int d = at + (kd - k0) * step;
            if (ih >= 0 && ih < p.h() && iw >= 0 && iw < p.w()) {
                int src = image + (ih * p.w() + iw) * p.c() + channel0 + ch;
                if (step == 1) {
                    System.arraycopy(o.x, src, dst, d, run);
                } else {
                    for (int e = 0; e < run; e++) {
                        dst[d + e * step] = o.x[src + e];
                    }
                }
            } else {
                for (int e = 0; e < run; e++) {
                    dst[d + e * step] = 0f;
                }
            }
            kd += run;
        }
    }

    /**
     * Packs {@code B[k][j] = a[base + (n0 + j)·ld + k]} (a row-major matrix read transposed) for
     * {@code k in [k0, k0 + kc)}, {@code j in [0, nc)} into NR-column panels.
     */
    static void transposedPanels(float[] a, int base, int ld, float[] dst, int k0, int kc, int n0, int nc) {
        int panels = (nc + NR - 1) / NR;
        for (int jp = 0; jp < panels; jp++) {
            int out = jp * kc * NR;
            for (int jj = 0; jj < NR; jj++) {
                int j = jp * NR + jj;
                if (j < nc) {
                    int src = base + (n0 + j) * ld + k0;
                    for (int kk = 0; kk < kc; kk++) {
                        dst[out + kk * NR + jj] = a[src + kk];
                    }
                } else {
                    for (int kk = 0; kk < kc; kk++) {
                        dst[out + kk * NR + jj] = 0f;
                    }
                }
            }
        }
    }

    /**
     * Backward-data, NHWC, one phase: {@code dx[pixel][c] = Σ dy[pixel's output for tap][k] · w[k][tap][c]};
     * A is the gathered dy rows (channel runs copied), B the filter's taps.
     */
    static final class DataNhwc extends Gemm {
        private final Operands o;
        private final Phase f;
        private final int pixel0;
        private final int image;
        private final int channel0;
        private final int weights;

        DataNhwc(Operands o, int n, int g, Phase f, int pixel0, int count) {
            super(o.p);
            this.o = o;
            this.f = f;
            int cg = p.cPerGroup();
            int kg = p.kPerGroup();
            this.m = count;
            this.n = cg;
            this.depth = f.taps() * kg;
            this.pixel0 = pixel0;
            this.image = o.yo + n * p.p() * p.q() * p.k();
            this.channel0 = g * kg;
            this.weights = o.wo + g * kg * p.r() * p.s() * cg;
            this.c = o.x;
            this.ldc = p.c();
            this.linearC = p.strideH() == 1 && p.strideW() == 1;
            this.cBase = o.xo + (n * p.h() * p.w() + pixel0) * p.c() + g * cg;
        }

        @Override
        int cRow(int i) {
            int t = pixel0 + i;
            int h = f.ph + (t / f.cols) * p.strideH();
            int w = f.pw + (t % f.cols) * p.strideW();
            return cBase + (h * p.w() + w - pixel0) * p.c();
        }

        @Override
        void packA(float[] dst, int m0, int mc, int k0, int kc) {
            int kg = p.kPerGroup();
            int ns = f.tapS.length;
            for (int i = 0; i < mc; i++) {
                int t = pixel0 + m0 + i;
                int pi = t / f.cols;
                int pj = t % f.cols;
                int kd = k0;
                int end = k0 + kc;
                while (kd < end) {
                    int tap = kd / kg;
                    int k = kd % kg;
                    int run = Math.min(kg - k, end - kd);
                    int op = pi + f.rowShift[tap / ns];
                    int oq = pj + f.colShift[tap % ns];
                    int d = i * kc + kd - k0;
                    if (op >= 0 && op < p.p() && oq >= 0 && oq < p.q()) {
                        System.arraycopy(o.y, image + (op * p.q() + oq) * p.k() + channel0 + k, dst, d, run);
                    } else {
                        Arrays.fill(dst, d, d + run, 0f);
                    }
                    kd += run;
                }
            }
        }

        @Override
        void packB(float[] dst, int k0, int kc, int n0, int nc) {
            int kg = p.kPerGroup();
            int cg = p.cPerGroup();
            int ns = f.tapS.length;
            int panels = (nc + NR - 1) / NR;
            for (int kk = 0; kk < kc; kk++) {
                int kd = k0 + kk;
                int tap = kd / kg;
                int k = kd % kg;
                int r = f.tapR[tap / ns];
                int s = f.tapS[tap % ns];
                int src = weights + ((k * p.r() + r) * p.s() + s) * cg + n0;
                for (int jp = 0; jp < panels; jp++) {
                    int out = jp * kc * NR + kk * NR;
                    int cols = Math.min(NR, nc - jp * NR);
                    System.arraycopy(o.w, src + jp * NR, dst, out, cols);
                    if (cols < NR) {
                        Arrays.fill(dst, out + cols, out + NR, 0f);
                    }
                }
            }
        }
    }

    /**
     * Backward-filter, NHWC: {@code dw[k][r,s,c] += Σ_pixels dy[pixel][k] · x[pixel + tap][c]}; A is dy in
     * place (read down its channel column), B is im2col(x) rows.
     */
    static final class FilterNhwc extends Gemm {
        private final Operands o;
        private final int image;
        private final int channel0;
        private final int pixel0;

        FilterNhwc(Operands o, int n, int g, int pixel0, int count, float[] partial, int partialBase) {
            super(o.p);
            this.o = o;
            int kg = p.kPerGroup();
            int filter = p.r() * p.s() * p.cPerGroup();
            this.m = kg;
            this.n = filter;
            this.depth = count;
            this.accumulate = true;
            this.aArray = o.y;
            this.aBase = o.yo + (n * p.p() * p.q() + pixel0) * p.k() + g * kg;
            this.ars = 1;
            this.aks = p.k();
            this.c = partial;
            this.cBase = partialBase + g * kg * filter;
            this.ldc = filter;
            this.linearC = true;
            this.image = o.xo + n * p.h() * p.w() * p.c();
            this.channel0 = g * p.cPerGroup();
            this.pixel0 = pixel0;
        }

        @Override
        void packB(float[] dst, int k0, int kc, int n0, int nc) {
            float[] row = Workspace.floats(SLOT_TAPS, roundUp(nc, NR));
            int panels = (nc + NR - 1) / NR;
            Arrays.fill(row, nc, panels * NR, 0f);
            for (int kk = 0; kk < kc; kk++) {
                int t = pixel0 + k0 + kk;
                im2colChannelsRow(o, image, channel0, t / p.q(), t % p.q(), n0, nc, row, 0, 1);
                for (int jp = 0; jp < panels; jp++) {
                    System.arraycopy(row, jp * NR, dst, jp * kc * NR + kk * NR, NR);
                }
            }
        }
    }

    // -------------------------------------------------------------------------------------- depthwise

    /** Direct depthwise kernels ({@code groups = C = K}): one filter per channel. */
    static final class Depthwise {

        private Depthwise() {
        }

        static void forward(Operands o) {
            Conv2dProblem p = o.p;
            if (o.nchw && stride1(p)) {
                // blocks of consecutive planes per task: a plane is about a microsecond of work, less than it costs
                // two cores to hand out a task through the shared counter
                Flat f = new Flat(p, p.p(), p.q());
                int planes = p.n() * p.c();
                int tasks = (planes + PLANES_PER_TASK - 1) / PLANES_PER_TASK;
                int workers = Parallel.workers(tasks, p.flops(), MIN_FLOPS_PER_THREAD);
                Parallel.runSmall(tasks, workers, (worker, task) -> {
                    for (int plane = task * PLANES_PER_TASK; plane < Math.min(planes, (task + 1) * PLANES_PER_TASK);
                         plane++) {
                        f.correlate(o.x, o.xo + plane * p.h() * p.w(), p.h(), p.w(), p.padTop(), p.padLeft(), o.w,
                                o.wo + (plane % p.c()) * p.r() * p.s(), false,
                                o.bias == null ? 0f : o.bias[o.bo + plane % p.c()], o.y, o.yo + plane * p.p() * p.q());
                    }
                });
            } else if (o.nchw) {
                int tasks = p.n() * p.c();
                int workers = Parallel.workers(tasks, p.flops(), MIN_FLOPS_PER_THREAD);
                Parallel.runSmall(tasks, workers, (worker, task) -> forwardPlane(o, task / p.c(), task % p.c()));
            } else {
                float[] wt = tapMajorWeights(o);
                int tasks = p.n() * p.p();
                int workers = Parallel.workers(tasks, p.flops(), MIN_FLOPS_PER_THREAD);
                Parallel.runSmall(tasks, workers, (worker, task) -> forwardRowNhwc(o, wt, task / p.p(), task % p.p()));
            }
        }

        /** {@code y[yo + i] += a[ao + i]·b[bo + i]} for {@code i < n}: the NHWC depthwise loops along channels. */
        private static void fmaInto(float[] y, int yo, float[] a, int ao, float[] b, int bo, int n) {
            if (Vectorization.ENABLED) {
                Panama.fmaInto(y, yo, a, ao, b, bo, n);
                return;
            }
            for (int i = 0; i < n; i++) {
                y[yo + i] += a[ao + i] * b[bo + i];
            }
        }

        private static boolean stride1(Conv2dProblem p) {
            return p.strideH() == 1 && p.strideW() == 1;
        }

        /**
         * Stride-1 NCHW depthwise on flat positions: an input plane is copied into a zero-padded plane of width
         * {@code wp = wo + (S-1)·dilationW}, the output is computed at flat positions {@code p·wp + q} (the
         * {@code wp - wo} positions between rows are computed and dropped), and then filter tap {@code t} reads
         * the padded plane at {@code position + offsets[t]}: every loop is a long contiguous one with the
         * accumulator in a register across all taps.
         */
        static final class Flat {
            private final Conv2dProblem p;
            private final int ho;
            private final int wo;
            private final int hp;
            private final int wp;
            private final int count;
            private final int[] offsets;

            Flat(Conv2dProblem p, int ho, int wo) {
                this.p = p;
                this.ho = ho;
                this.wo = wo;
                this.hp = ho + (p.r() - 1) * p.dilationH();
                this.wp = wo + (p.s() - 1) * p.dilationW();
                this.count = (ho - 1) * wp + wo;
                this.offsets = new int[p.r() * p.s()];
                for (int t = 0; t < offsets.length; t++) {
                    offsets[t] = (t / p.s()) * p.dilationH() * wp + (t % p.s()) * p.dilationW();
                }
            }

            /** A zero-padded copy of an input plane, with slack for the last vector's reads. */
            private float[] padded(float[] src, int srcOff, int inH, int inW, int top, int left) {
                float[] xp = Workspace.floats(SLOT_A, hp * wp + NR);
                padPlane(src, srcOff, inH, inW, top, left, xp, 0, hp, wp);
                Arrays.fill(xp, hp * wp, hp * wp + NR, 0f);
                return xp;
            }

            /**
             * {@code out = bias + Σ_t w[t]·in(shifted by tap t)} over a {@code ho × wo} plane, the input padded by
             * {@code top} rows and {@code left} columns (negative: cropped); {@code flip} reads the filter
             * backwards (backward-data). Nine taps (3 × 3) have a vector kernel with the filter in registers that
             * writes the output rows directly; other filters go through the flat positions.
             */
            void correlate(float[] in, int inOff, int inH, int inW, int top, int left, float[] w, int wOff,
                           boolean flip, float bias, float[] out, int outOff) {
                int taps = offsets.length;
                if (Vectorization.ENABLED && p.r() == 3 && p.s() == 3 && p.dilationH() == 1 && p.dilationW() == 1
                        && top == 1 && left == 1 && ho == inH && wo == inW && wo > Vectorization.FLOAT_LANES
                        && inOff >= 1 && inOff + inH * inW < in.length) {
                    Panama.same9(in, inOff, inH, inW, w, wOff, flip, bias, out, outOff);
                    return;
                }
                float[] xp = padded(in, inOff, inH, inW, top, left);
                if (Vectorization.ENABLED && taps == 9 && wo >= Vectorization.FLOAT_LANES) {
                    Panama.correlate9(xp, wp, offsets, w, wOff, flip, bias, out, outOff, ho, wo);
                } else if (Vectorization.ENABLED) {
                    int n = roundUp(count, NR);
                    float[] yp = Workspace.floats(SLOT_B, n);
                    Panama.correlate(xp, offsets, w, wOff, flip, bias, yp, n);
                    for (int r = 0; r < ho; r++) {
                        System.arraycopy(yp, r * wp, out, outOff + r * wo, wo);
                    }
                } else {
                    // scalar: tap by tap over the flat positions, each tap's input window first copied to an array
                    // of its own, so that every array in the loop is indexed by the bare counter and HotSpot
                    // vectorises it without the Vector API (as MicroKernel.scalarColumns); the sum runs in the
                    // same order as one position at a time would (bias, then tap 0, 1, ...)
                    float[] yp = Workspace.floats(SLOT_B, count);
                    float[] window = Workspace.floats(SLOT_C, count);
                    Arrays.fill(yp, 0, count, bias);
                    for (int t = 0; t < taps; t++) {
                        System.arraycopy(xp, offsets[t], window, 0, count);
                        float wt = w[wOff + (flip ? taps - 1 - t : t)];
                        for (int i = 0; i < count; i++) {
                            yp[i] += wt * window[i];
                        }
                    }
                    for (int r = 0; r < ho; r++) {
                        System.arraycopy(yp, r * wp, out, outOff + r * wo, wo);
                    }
                }
            }

            /**
             * Adds one plane's share of dw and db, {@code Σ_pixels dy · x padded and shifted by tap t} and
             * {@code Σ_pixels dy}, into {@code acc[at + t]} and {@code acc[at + taps]}.
             */
            void filterPlane(Operands o, int plane, float[] acc, int at) {
                int taps = offsets.length;
                float[] xp = padded(o.x, o.xo + plane * p.h() * p.w(), p.h(), p.w(), p.padTop(), p.padLeft());
                int dy = o.yo + plane * ho * wo;
                if (Vectorization.ENABLED && taps == 9 && wo >= Vectorization.FLOAT_LANES) {
                    Panama.filter9(o.y, dy, wo, xp, wp, offsets, ho, acc, at);
                    return;
                }
                int n = roundUp(count, NR);
                float[] dyp = Workspace.floats(SLOT_B, n);
                padPlane(o.y, dy, ho, wo, 0, 0, dyp, 0, ho, wp);
                Arrays.fill(dyp, count, n, 0f);
                if (Vectorization.ENABLED) {
                    Panama.dots(dyp, xp, offsets, n, acc, at);
                } else if (taps == 9) {
                    dots9(dyp, xp, offsets, n, acc, at);
                } else {
                    for (int t = 0; t < taps; t++) {
                        acc[at + t] += dot(dyp, 0, xp, offsets[t], n);
                    }
                }
                for (int i = 0; i < n; i++) {
                    acc[at + taps] += dyp[i];
                }
            }

            /**
             * The nine dot products of a 3 × 3 filter, {@code acc[at + t] += Σ dy[i]·x[off[t] + i]}, in one pass over
             * dy: each dy element loaded feeds nine products, where nine separate {@link #dot}s load two floats per
             * product; nine sums in flight also hide the add latency (scalar path).
             */
            private static void dots9(float[] dy, float[] x, int[] off, int n, float[] acc, int at) {
                int o0 = off[0];
                int o1 = off[1];
                int o2 = off[2];
                int o3 = off[3];
                int o4 = off[4];
                int o5 = off[5];
                int o6 = off[6];
                int o7 = off[7];
                int o8 = off[8];
                float s0 = 0f;
                float s1 = 0f;
                float s2 = 0f;
                float s3 = 0f;
                float s4 = 0f;
                float s5 = 0f;
                float s6 = 0f;
                float s7 = 0f;
                float s8 = 0f;
                for (int i = 0; i < n; i++) {
                    float g = dy[i];
                    s0 += g * x[o0 + i];
                    s1 += g * x[o1 + i];
                    s2 += g * x[o2 + i];
                    s3 += g * x[o3 + i];
                    s4 += g * x[o4 + i];
                    s5 += g * x[o5 + i];
                    s6 += g * x[o6 + i];
                    s7 += g * x[o7 + i];
                    s8 += g * x[o8 + i];
                }
                acc[at] += s0;
                acc[at + 1] += s1;
                acc[at + 2] += s2;
                acc[at + 3] += s3;
                acc[at + 4] += s4;
                acc[at + 5] += s5;
                acc[at + 6] += s6;
                acc[at + 7] += s7;
                acc[at + 8] += s8;
            }

            /**
             * The scalar dot product, in eight interleaved sums: one chain of dependent adds would wait out the add
             * latency on every element (the JIT keeps float reductions in order, so it does not vectorise them).
             */
            private static float dot(float[] a, int ao, float[] b, int bo, int n) {
                float s0 = 0f;
                float s1 = 0f;
                float s2 = 0f;
                float s3 = 0f;
                float s4 = 0f;
                float s5 = 0f;
                float s6 = 0f;
                float s7 = 0f;
                int i = 0;
                for (; i + 8 <= n; i += 8) {
                    s0 += a[ao + i] * b[bo + i];
                    s1 += a[ao + i + 1] * b[bo + i + 1];
                    s2 += a[ao + i + 2] * b[bo + i + 2];
                    s3 += a[ao + i + 3] * b[bo + i + 3];
                    s4 += a[ao + i + 4] * b[bo + i + 4];
                    s5 += a[ao + i + 5] * b[bo + i + 5];
                    s6 += a[ao + i + 6] * b[bo + i + 6];
                    s7 += a[ao + i + 7] * b[bo + i + 7];
                }
                for (; i < n; i++) {
                    s0 += a[ao + i] * b[bo + i];
                }
                return ((s0 + s1) + (s2 + s3)) + ((s4 + s5) + (s6 + s7));
            }
        }

        /** The Panama loops of the depthwise kernels; loaded only on the vector path. */
        private static final class Panama {
            private static final jdk.incubator.vector.VectorSpecies<Float> S =
                    jdk.incubator.vector.FloatVector.SPECIES_PREFERRED;

            static void correlate(float[] xp, int[] offsets, float[] w, int wOff, boolean flip, float bias, float[] yp,
                                  int n) {
                int taps = offsets.length;
                for (int f = 0; f < n; f += S.length()) {
                    var acc = jdk.incubator.vector.FloatVector.broadcast(S, bias);
                    for (int t = 0; t < taps; t++) {
                        float wt = w[wOff + (flip ? taps - 1 - t : t)];
                        acc = jdk.incubator.vector.FloatVector.fromArray(S, xp, f + offsets[t])
                                .fma(jdk.incubator.vector.FloatVector.broadcast(S, wt), acc);
                    }
                    acc.intoArray(yp, f);
                }
            }

            private static final jdk.incubator.vector.VectorMask<Float> FIRST =
                    jdk.incubator.vector.VectorMask.fromLong(S, 1L);
            private static final jdk.incubator.vector.VectorMask<Float> LAST =
                    jdk.incubator.vector.VectorMask.fromLong(S, 1L << (S.length() - 1));
            private static final jdk.incubator.vector.FloatVector ZERO = jdk.incubator.vector.FloatVector.zero(S);

            /**
             * The 3 × 3 "same" correlation (stride 1, padding 1, output the size of the input, {@code w} wider than
             * a vector) read straight from the input plane, without a padded copy: rows outside the plane are
             * skipped, and the column before a row's first pixel and after its last (the neighbouring rows' pixels,
             * so one float before and after the plane must be in the array) are replaced by zero lanes. A row's
             * last vector ends at the row's end, as in {@link #correlate9}.
             */
            static void same9(float[] x, int xOff, int h, int w, float[] wt, int wOff, boolean flip, float bias,
                              float[] out, int outOff) {
                int l = S.length();
                int step = flip ? -1 : 1;
                int first = flip ? wOff + 8 : wOff;
                var w0 = jdk.incubator.vector.FloatVector.broadcast(S, wt[first]);
                var w1 = jdk.incubator.vector.FloatVector.broadcast(S, wt[first + step]);
                var w2 = jdk.incubator.vector.FloatVector.broadcast(S, wt[first + 2 * step]);
                var w3 = jdk.incubator.vector.FloatVector.broadcast(S, wt[first + 3 * step]);
                var w4 = jdk.incubator.vector.FloatVector.broadcast(S, wt[first + 4 * step]);
                var w5 = jdk.incubator.vector.FloatVector.broadcast(S, wt[first + 5 * step]);
                var w6 = jdk.incubator.vector.FloatVector.broadcast(S, wt[first + 6 * step]);
                var w7 = jdk.incubator.vector.FloatVector.broadcast(S, wt[first + 7 * step]);
                var w8 = jdk.incubator.vector.FloatVector.broadcast(S, wt[first + 8 * step]);
                int vectors = (w + l - 1) / l;
                int r = 0;
                // two output rows at a time: the two input rows both use are loaded once, and the two sums are
                // independent chains
                for (; r + 1 < h; r += 2) {
                    int mid = xOff + r * w;
                    int dst = outOff + r * w;
                    boolean up = r > 0;
                    boolean down = r + 2 < h;
                    for (int v = 0; v < vectors; v++) {
                        int q = Math.min(v * l, w - l);
                        boolean left = q == 0;
                        boolean right = q + l == w;
                        int at = mid + q;
                        var acc0 = jdk.incubator.vector.FloatVector.broadcast(S, bias);
                        var acc1 = acc0;
                        var b = before(x, at, left);
                        var c = jdk.incubator.vector.FloatVector.fromArray(S, x, at);
                        var a = after(x, at, right);
                        acc0 = b.fma(w3, c.fma(w4, a.fma(w5, acc0)));
                        acc1 = b.fma(w0, c.fma(w1, a.fma(w2, acc1)));
                        b = before(x, at + w, left);
                        c = jdk.incubator.vector.FloatVector.fromArray(S, x, at + w);
                        a = after(x, at + w, right);
                        acc0 = b.fma(w6, c.fma(w7, a.fma(w8, acc0)));
                        acc1 = b.fma(w3, c.fma(w4, a.fma(w5, acc1)));
                        if (up) {
                            acc0 = row3(x, at - w, left, right, w0, w1, w2, acc0);
                        }
                        if (down) {
                            acc1 = row3(x, at + 2 * w, left, right, w6, w7, w8, acc1);
                        }
                        acc0.intoArray(out, dst + q);
                        acc1.intoArray(out, dst + w + q);
                    }
                }
                for (; r < h; r++) {
                    int mid = xOff + r * w;
                    int dst = outOff + r * w;
                    boolean up = r > 0;
                    boolean down = r + 1 < h;
                    for (int v = 0; v < vectors; v++) {
                        int q = Math.min(v * l, w - l);
                        boolean left = q == 0;
                        boolean right = q + l == w;
                        var acc = jdk.incubator.vector.FloatVector.broadcast(S, bias);
                        if (up) {
                            acc = row3(x, mid - w + q, left, right, w0, w1, w2, acc);
                        }
                        acc = row3(x, mid + q, left, right, w3, w4, w5, acc);
                        if (down) {
                            acc = row3(x, mid + w + q, left, right, w6, w7, w8, acc);
                        }
                        acc.intoArray(out, dst + q);
                    }
                }
            }

            /** {@code acc + a·x[at - 1...] + b·x[at...] + c·x[at + 1...]}, the pixel before or after the row zero. */
            private static jdk.incubator.vector.FloatVector row3(float[] x, int at, boolean left, boolean right,
                                                                 jdk.incubator.vector.FloatVector a,
                                                                 jdk.incubator.vector.FloatVector b,
                                                                 jdk.incubator.vector.FloatVector c,
                                                                 jdk.incubator.vector.FloatVector acc) {
                return before(x, at, left).fma(a,
                        jdk.incubator.vector.FloatVector.fromArray(S, x, at).fma(b, after(x, at, right).fma(c, acc)));
            }

            /** {@code x[at - 1...]}, lane 0 zero when {@code at} starts a row. */
            private static jdk.incubator.vector.FloatVector before(float[] x, int at, boolean left) {
                var v = jdk.incubator.vector.FloatVector.fromArray(S, x, at - 1);
                return left ? v.blend(ZERO, FIRST) : v;
            }

            /** {@code x[at + 1...]}, the last lane zero when the vector ends a row. */
            private static jdk.incubator.vector.FloatVector after(float[] x, int at, boolean right) {
                var v = jdk.incubator.vector.FloatVector.fromArray(S, x, at + 1);
                return right ? v.blend(ZERO, LAST) : v;
            }

            /**
             * The 3 × 3 (nine-tap) correlation: the taps' weights and offsets in registers, one output vector per
             * step straight into the output row; a row's last vector is the one ending at the row's end (it may
             * overlap the previous one and store the same values again: no masked store, nothing written or read
             * past the row). {@code wo} is at least the vector length.
             */
            static void correlate9(float[] xp, int wp, int[] off, float[] w, int wOff, boolean flip, float bias,
                                   float[] out, int outOff, int ho, int wo) {
                var s = S;
                int l = s.length();
                int step = flip ? -1 : 1;
                int first = flip ? wOff + 8 : wOff;
                var w0 = jdk.incubator.vector.FloatVector.broadcast(s, w[first]);
                var w1 = jdk.incubator.vector.FloatVector.broadcast(s, w[first + step]);
                var w2 = jdk.incubator.vector.FloatVector.broadcast(s, w[first + 2 * step]);
                var w3 = jdk.incubator.vector.FloatVector.broadcast(s, w[first + 3 * step]);
                var w4 = jdk.incubator.vector.FloatVector.broadcast(s, w[first + 4 * step]);
                var w5 = jdk.incubator.vector.FloatVector.broadcast(s, w[first + 5 * step]);
                var w6 = jdk.incubator.vector.FloatVector.broadcast(s, w[first + 6 * step]);
                var w7 = jdk.incubator.vector.FloatVector.broadcast(s, w[first + 7 * step]);
                var w8 = jdk.incubator.vector.FloatVector.broadcast(s, w[first + 8 * step]);
                int o0 = off[0];
                int o1 = off[1];
                int o2 = off[2];
                int o3 = off[3];
                int o4 = off[4];
                int o5 = off[5];
                int o6 = off[6];
                int o7 = off[7];
                int o8 = off[8];
                int vectors = (wo + l - 1) / l;
                for (int r = 0; r < ho; r++) {
                    int in = r * wp;
                    int dst = outOff + r * wo;
                    for (int v = 0; v < vectors; v++) {
                        int q = Math.min(v * l, wo - l);
                        int at = in + q;
                        var acc = jdk.incubator.vector.FloatVector.broadcast(s, bias);
                        acc = jdk.incubator.vector.FloatVector.fromArray(s, xp, at + o0).fma(w0, acc);
                        acc = jdk.incubator.vector.FloatVector.fromArray(s, xp, at + o1).fma(w1, acc);
                        acc = jdk.incubator.vector.FloatVector.fromArray(s, xp, at + o2).fma(w2, acc);
                        acc = jdk.incubator.vector.FloatVector.fromArray(s, xp, at + o3).fma(w3, acc);
                        acc = jdk.incubator.vector.FloatVector.fromArray(s, xp, at + o4).fma(w4, acc);
                        acc = jdk.incubator.vector.FloatVector.fromArray(s, xp, at + o5).fma(w5, acc);
                        acc = jdk.incubator.vector.FloatVector.fromArray(s, xp, at + o6).fma(w6, acc);
                        acc = jdk.incubator.vector.FloatVector.fromArray(s, xp, at + o7).fma(w7, acc);
                        acc = jdk.incubator.vector.FloatVector.fromArray(s, xp, at + o8).fma(w8, acc);
                        acc.intoArray(out, dst + q);
                    }
                }
            }

            /**
             * {@code acc[at + t] += Σ_pixels dy · xp shifted by tap t} for nine taps and {@code acc[at + 9] += Σ dy}:
             * nine accumulators in registers, each dy vector read once, in place, row by row. A row's last vector
             * is the one ending at the row's end, with the lanes the previous vector already counted zeroed in dy
             * (no masked memory access, nothing read past the row); {@code wo} is at least the vector length.
             */
            static void filter9(float[] dy, int dyOff, int wo, float[] xp, int wp, int[] off, int ho, float[] acc,
                                int at) {
                var s = S;
                int l = s.length();
                var a0 = jdk.incubator.vector.FloatVector.zero(s);
                var a1 = a0;
                var a2 = a0;
                var a3 = a0;
                var a4 = a0;
                var a5 = a0;
                var a6 = a0;
                var a7 = a0;
                var a8 = a0;
                var sum = a0;
                int o0 = off[0];
                int o1 = off[1];
                int o2 = off[2];
                int o3 = off[3];
                int o4 = off[4];
                int o5 = off[5];
                int o6 = off[6];
                int o7 = off[7];
                int o8 = off[8];
                int vectors = (wo + l - 1) / l;
                // the last vector of a row starts at wo - l; its lanes below `counted` were counted already
                int counted = (vectors - 1) * l - (wo - l);
                var seen = s.indexInRange(0, counted);
                for (int r = 0; r < ho; r++) {
                    int row = r * wp;
                    int src = dyOff + r * wo;
                    for (int v = 0; v < vectors; v++) {
                        int q = Math.min(v * l, wo - l);
                        var d = jdk.incubator.vector.FloatVector.fromArray(s, dy, src + q);
                        if (q < v * l) {
                            d = d.blend(0f, seen);
                        }
                        int f = row + q;
                        sum = sum.add(d);
                        a0 = jdk.incubator.vector.FloatVector.fromArray(s, xp, f + o0).fma(d, a0);
                        a1 = jdk.incubator.vector.FloatVector.fromArray(s, xp, f + o1).fma(d, a1);
                        a2 = jdk.incubator.vector.FloatVector.fromArray(s, xp, f + o2).fma(d, a2);
                        a3 = jdk.incubator.vector.FloatVector.fromArray(s, xp, f + o3).fma(d, a3);
                        a4 = jdk.incubator.vector.FloatVector.fromArray(s, xp, f + o4).fma(d, a4);
                        a5 = jdk.incubator.vector.FloatVector.fromArray(s, xp, f + o5).fma(d, a5);
                        a6 = jdk.incubator.vector.FloatVector.fromArray(s, xp, f + o6).fma(d, a6);
                        a7 = jdk.incubator.vector.FloatVector.fromArray(s, xp, f + o7).fma(d, a7);
                        a8 = jdk.incubator.vector.FloatVector.fromArray(s, xp, f + o8).fma(d, a8);
                    }
                }
                acc[at] += Lanes.sum(a0);
                acc[at + 1] += Lanes.sum(a1);
                acc[at + 2] += Lanes.sum(a2);
                acc[at + 3] += Lanes.sum(a3);
                acc[at + 4] += Lanes.sum(a4);
                acc[at + 5] += Lanes.sum(a5);
                acc[at + 6] += Lanes.sum(a6);
                acc[at + 7] += Lanes.sum(a7);
                acc[at + 8] += Lanes.sum(a8);
                acc[at + 9] += Lanes.sum(sum);
            }

            static void fmaInto(float[] y, int yo, float[] a, int ao, float[] b, int bo, int n) {
                int i = 0;
                for (; i <= n - S.length(); i += S.length()) {
                    jdk.incubator.vector.FloatVector.fromArray(S, a, ao + i)
                            .fma(jdk.incubator.vector.FloatVector.fromArray(S, b, bo + i),
                                    jdk.incubator.vector.FloatVector.fromArray(S, y, yo + i))
                            .intoArray(y, yo + i);
                }
                for (; i < n; i++) {
                    y[yo + i] += a[ao + i] * b[bo + i];
                }
            }

            /**
             * {@code dw[at + t] += dot(a[0, n), b[offsets[t], offsets[t] + n))} for every tap, four taps per pass over
             * {@code a} so that four independent accumulators hide the FMA latency; {@code n} is a multiple of
             * the vector length.
             */
            static void dots(float[] a, float[] b, int[] offsets, int n, float[] dw, int at) {
                int taps = offsets.length;
                for (int t = 0; t < taps; t += 4) {
                    int o0 = offsets[t];
                    int o1 = offsets[Math.min(t + 1, taps - 1)];
                    int o2 = offsets[Math.min(t + 2, taps - 1)];
                    int o3 = offsets[Math.min(t + 3, taps - 1)];
                    var zero = jdk.incubator.vector.FloatVector.zero(S);
                    var acc0 = zero;
                    var acc1 = zero;
                    var acc2 = zero;
                    var acc3 = zero;
                    for (int i = 0; i < n; i += S.length()) {
                        var x = jdk.incubator.vector.FloatVector.fromArray(S, a, i);
                        acc0 = x.fma(jdk.incubator.vector.FloatVector.fromArray(S, b, o0 + i), acc0);
                        acc1 = x.fma(jdk.incubator.vector.FloatVector.fromArray(S, b, o1 + i), acc1);
                        acc2 = x.fma(jdk.incubator.vector.FloatVector.fromArray(S, b, o2 + i), acc2);
                        acc3 = x.fma(jdk.incubator.vector.FloatVector.fromArray(S, b, o3 + i), acc3);
                    }
                        dw[at + t] += Lanes.sum(acc0);
                    if (t + 1 < taps) {
                        dw[at + t + 1] += Lanes.sum(acc1);
                    }
                    if (t + 2 < taps) {
                        dw[at + t + 2] += Lanes.sum(acc2);
                    }
                    if (t + 3 < taps) {
                        dw[at + t + 3] += Lanes.sum(acc3);
                    }
                }
            }
        }

        /** NHWC depthwise filters are {@code [C, R, S, 1]}; the kernels want {@code [R·S][C]} to run along C. */
        private static float[] tapMajorWeights(Operands o) {
            Conv2dProblem p = o.p;
            int rs = p.r() * p.s();
            float[] wt = Workspace.floats(SLOT_WEIGHTS, rs * p.c());
            for (int ch = 0; ch < p.c(); ch++) {
                for (int t = 0; t < rs; t++) {
                    wt[t * p.c() + ch] = o.w[o.wo + ch * rs + t];
                }
            }
            return wt;
        }

        private static void forwardPlane(Operands o, int n, int ch) {
            Conv2dProblem p = o.p;
            int xPlane = o.xo + (n * p.c() + ch) * p.h() * p.w();
            int yPlane = o.yo + (n * p.c() + ch) * p.p() * p.q();
            int wBase = o.wo + ch * p.r() * p.s();
            float b = o.bias == null ? 0f : o.bias[o.bo + ch];
            for (int pp = 0; pp < p.p(); pp++) {
                int yRow = yPlane + pp * p.q();
                Arrays.fill(o.y, yRow, yRow + p.q(), b);
                for (int r = 0; r < p.r(); r++) {
                    int ih = pp * p.strideH() - p.padTop() + r * p.dilationH();
                    if (ih < 0 || ih >= p.h()) {
                        continue;
                    }
                    int xRow = xPlane + ih * p.w();
                    for (int s = 0; s < p.s(); s++) {
                        float wv = o.w[wBase + r * p.s() + s];
                        int off = s * p.dilationW() - p.padLeft();
                        int q0 = firstInside(off, p.strideW());
                        int q1 = Math.min(p.q(), lastInside(off, p.strideW(), p.w()) + 1);
                        if (p.strideW() == 1) {
                            int src = xRow + off;
                            for (int q = q0; q < q1; q++) {
                                o.y[yRow + q] += wv * o.x[src + q];
                            }
                        } else {
                            for (int q = q0; q < q1; q++) {
                                o.y[yRow + q] += wv * o.x[xRow + q * p.strideW() + off];
                            }
                        }
                    }
                }
            }
        }

        /** The first {@code q >= 0} with {@code q·stride + off >= 0}. */
        private static int firstInside(int off, int stride) {
            return off >= 0 ? 0 : (-off + stride - 1) / stride;
        }

        /** The last {@code q} with {@code q·stride + off < limit} (may be negative). */
        private static int lastInside(int off, int stride, int limit) {
            return Math.floorDiv(limit - 1 - off, stride);
        }

        private static void forwardRowNhwc(Operands o, float[] wt, int n, int pp) {
            Conv2dProblem p = o.p;
            int ch = p.c();
            for (int q = 0; q < p.q(); q++) {
                int yAt = o.yo + ((n * p.p() + pp) * p.q() + q) * ch;
                if (o.bias == null) {
                    Arrays.fill(o.y, yAt, yAt + ch, 0f);
                } else {
                    System.arraycopy(o.bias, o.bo, o.y, yAt, ch);
                }
                for (int r = 0; r < p.r(); r++) {
                    int ih = pp * p.strideH() - p.padTop() + r * p.dilationH();
                    if (ih < 0 || ih >= p.h()) {
                        continue;
                    }
                    for (int s = 0; s < p.s(); s++) {
                        int iw = q * p.strideW() - p.padLeft() + s * p.dilationW();
                        if (iw < 0 || iw >= p.w()) {
                            continue;
                        }
                        int xAt = o.xo + ((n * p.h() + ih) * p.w() + iw) * ch;
                        int wAt = (r * p.s() + s) * ch;
                        fmaInto(o.y, yAt, wt, wAt, o.x, xAt, ch);
                    }
                }
            }
        }

        static void backwardData(Operands o) {
            Conv2dProblem p = o.p;
            if (o.nchw && stride1(p)) {
                // dx = dy correlated with the flipped filter, dy padded by (R-1)·dilation - pad
                Flat f = new Flat(p, p.h(), p.w());
                int planes = p.n() * p.c();
                int tasks = (planes + PLANES_PER_TASK - 1) / PLANES_PER_TASK;
                int workers = Parallel.workers(tasks, p.flops(), MIN_FLOPS_PER_THREAD);
                Parallel.runSmall(tasks, workers, (worker, task) -> {
                    for (int plane = task * PLANES_PER_TASK; plane < Math.min(planes, (task + 1) * PLANES_PER_TASK);
                         plane++) {
                        f.correlate(o.y, o.yo + plane * p.p() * p.q(), p.p(), p.q(),
                                (p.r() - 1) * p.dilationH() - p.padTop(), (p.s() - 1) * p.dilationW() - p.padLeft(),
                                o.w, o.wo + (plane % p.c()) * p.r() * p.s(), true, 0f, o.x, o.xo + plane * p.h() * p.w());
                    }
                });
            } else if (o.nchw) {
                int tasks = p.n() * p.c();
                int workers = Parallel.workers(tasks, p.flops(), MIN_FLOPS_PER_THREAD);
                Parallel.runSmall(tasks, workers, (worker, task) -> dataPlane(o, task / p.c(), task % p.c()));
            } else {
                float[] wt = tapMajorWeights(o);
                int tasks = p.n() * p.h();
                int workers = Parallel.workers(tasks, p.flops(), MIN_FLOPS_PER_THREAD);
                Parallel.runSmall(tasks, workers, (worker, task) -> dataRowNhwc(o, wt, task / p.h(), task % p.h()));
            }
        }

        /** dx row {@code h} gathers dy row {@code (h + padTop - r·dilationH) / strideH} for each tap that divides. */
        private static void dataPlane(Operands o, int n, int ch) {
            Conv2dProblem p = o.p;
            int dxPlane = o.xo + (n * p.c() + ch) * p.h() * p.w();
            int dyPlane = o.yo + (n * p.c() + ch) * p.p() * p.q();
            int wBase = o.wo + ch * p.r() * p.s();
            int sw = p.strideW();
            for (int h = 0; h < p.h(); h++) {
                int dxRow = dxPlane + h * p.w();
                Arrays.fill(o.x, dxRow, dxRow + p.w(), 0f);
                for (int r = 0; r < p.r(); r++) {
                    int num = h + p.padTop() - r * p.dilationH();
                    if (num < 0 || num % p.strideH() != 0 || num / p.strideH() >= p.p()) {
                        continue;
                    }
                    int dyRow = dyPlane + (num / p.strideH()) * p.q();
                    for (int s = 0; s < p.s(); s++) {
                        float wv = o.w[wBase + r * p.s() + s];
                        // dx[w] += wv · dy[q] where w = q·sw - padLeft + s·dilationW
                        int off = s * p.dilationW() - p.padLeft();
                        int q0 = firstInside(off, sw);
                        int q1 = Math.min(p.q(), lastInside(off, sw, p.w()) + 1);
                        if (sw == 1) {
                            int dst = dxRow + off;
                            for (int q = q0; q < q1; q++) {
                                o.x[dst + q] += wv * o.y[dyRow + q];
                            }
                        } else {
                            for (int q = q0; q < q1; q++) {
                                o.x[dxRow + q * sw + off] += wv * o.y[dyRow + q];
                            }
                        }
                    }
                }
            }
        }

        private static void dataRowNhwc(Operands o, float[] wt, int n, int h) {
            Conv2dProblem p = o.p;
            int ch = p.c();
            for (int w = 0; w < p.w(); w++) {
                int dxAt = o.xo + ((n * p.h() + h) * p.w() + w) * ch;
                Arrays.fill(o.x, dxAt, dxAt + ch, 0f);
                for (int r = 0; r < p.r(); r++) {
                    int num = h + p.padTop() - r * p.dilationH();
                    if (num < 0 || num % p.strideH() != 0 || num / p.strideH() >= p.p()) {
                        continue;
                    }
                    int op = num / p.strideH();
                    for (int s = 0; s < p.s(); s++) {
                        int numw = w + p.padLeft() - s * p.dilationW();
                        if (numw < 0 || numw % p.strideW() != 0 || numw / p.strideW() >= p.q()) {
                            continue;
                        }
                        int dyAt = o.yo + ((n * p.p() + op) * p.q() + numw / p.strideW()) * ch;
                        int wAt = (r * p.s() + s) * ch;
                        fmaInto(o.x, dxAt, wt, wAt, o.y, dyAt, ch);
                    }
                }
            }
        }

        static void backwardFilter(Operands o) {
            Conv2dProblem p = o.p;
            int rs = p.r() * p.s();
            if (o.nchw && stride1(p)) {
                // blocks of consecutive planes, in memory order (one stream for the prefetcher); each plane (image
                // n, channel c) writes its own partials (the taps, then the bias) at [n][c], summed over the
                // images in order at the end: the same bits on every run, whichever thread took which block
                Flat f = new Flat(p, p.p(), p.q());
                int planes = p.n() * p.c();
                int blocks = (planes + PLANES_PER_TASK - 1) / PLANES_PER_TASK;
                int workers = Parallel.workers(blocks, p.flops(), MIN_FLOPS_PER_THREAD);
                int stride = (rs + 1) * p.c();
                int images = Math.max(1, p.n());
                float[] partials = Workspace.floats(SLOT_PARTIALS, images * stride);
                Arrays.fill(partials, 0, images * stride, 0f);
                Parallel.runSmall(blocks, workers, (worker, blk) -> {
                    for (int plane = blk * PLANES_PER_TASK; plane < Math.min(planes, (blk + 1) * PLANES_PER_TASK);
                         plane++) {
                        f.filterPlane(o, plane, partials, plane * (rs + 1));
                    }
                });
                for (int ch = 0; ch < p.c(); ch++) {
                    for (int t = 0; t <= rs; t++) {
                        float sum = 0f;
                        for (int n = 0; n < images; n++) {
                            sum += partials[n * stride + ch * (rs + 1) + t];
                        }
                        if (t < rs) {
                            o.w[o.wo + ch * rs + t] = sum;
                        } else if (o.bias != null) {
                            o.bias[o.bo + ch] = sum;
                        }
                    }
                }
                return;
            }
            if (o.nchw) {
                // one task per channel owns that channel's filter and bias gradient: no partial sums
                int tasks = p.c();
                int workers = Parallel.workers(tasks, p.flops(), MIN_FLOPS_PER_THREAD);
                Parallel.runSmall(tasks, workers, (worker, ch) -> filterChannel(o, ch));
                return;
            }
            // output rows, in slices (two per worker, so a busy core does not hold up the rest) that each add into
            // their own partials, summed in slice order: the same bits on every run
            int tasks = p.n() * p.p();
            int workers = Parallel.workers(tasks, p.flops(), MIN_FLOPS_PER_THREAD);
            int slices = Math.max(1, Math.min(tasks, 2 * workers));
            int stride = (rs + 1) * p.c();
            float[] partials = Workspace.floats(SLOT_PARTIALS, slices * stride);
            Arrays.fill(partials, 0, slices * stride, 0f);
            Parallel.runSliced(tasks, slices, workers,
                    (slice, task) -> filterRowNhwc(o, task / p.p(), task % p.p(), partials, slice * stride));
            for (int ch = 0; ch < p.c(); ch++) {
                for (int t = 0; t <= rs; t++) {
                    float sum = 0f;
                    for (int part = 0; part < slices; part++) {
                        sum += partials[part * stride + t * p.c() + ch];
                    }
                    if (t < rs) {
                        o.w[o.wo + ch * rs + t] = sum;
                    } else if (o.bias != null) {
                        o.bias[o.bo + ch] = sum;
                    }
                }
            }
        }

        private static void filterChannel(Operands o, int ch) {
            Conv2dProblem p = o.p;
            int sw = p.strideW();
            float db = 0f;
            for (int r = 0; r < p.r(); r++) {
                for (int s = 0; s < p.s(); s++) {
                    int off = s * p.dilationW() - p.padLeft();
                    int q0 = firstInside(off, sw);
                    int q1 = Math.min(p.q(), lastInside(off, sw, p.w()) + 1);
                    float acc = 0f;
                    for (int n = 0; n < p.n(); n++) {
                        int xPlane = o.xo + (n * p.c() + ch) * p.h() * p.w();
                        int dyPlane = o.yo + (n * p.c() + ch) * p.p() * p.q();
                        for (int pp = 0; pp < p.p(); pp++) {
                            int ih = pp * p.strideH() - p.padTop() + r * p.dilationH();
                            if (ih < 0 || ih >= p.h()) {
                                continue;
                            }
                            int xRow = xPlane + ih * p.w() + off;
                            int dyRow = dyPlane + pp * p.q();
                            for (int q = q0; q < q1; q++) {
                                acc += o.y[dyRow + q] * o.x[xRow + q * sw];
                            }
                        }
                    }
                    o.w[o.wo + ch * p.r() * p.s() + r * p.s() + s] = acc;
                }
            }
            if (o.bias != null) {
                for (int n = 0; n < p.n(); n++) {
                    int dyPlane = o.yo + (n * p.c() + ch) * p.p() * p.q();
                    for (int i = 0; i < p.p() * p.q(); i++) {
                        db += o.y[dyPlane + i];
                    }
                }
                o.bias[o.bo + ch] = db;
            }
        }

        private static void filterRowNhwc(Operands o, int n, int pp, float[] part, int base) {
            Conv2dProblem p = o.p;
            int ch = p.c();
            int bias = base + p.r() * p.s() * ch;
            for (int q = 0; q < p.q(); q++) {
                int dyAt = o.yo + ((n * p.p() + pp) * p.q() + q) * ch;
                if (o.bias != null) {
                    for (int c = 0; c < ch; c++) {
                        part[bias + c] += o.y[dyAt + c];
                    }
                }
                for (int r = 0; r < p.r(); r++) {
                    int ih = pp * p.strideH() - p.padTop() + r * p.dilationH();
                    if (ih < 0 || ih >= p.h()) {
                        continue;
                    }
                    for (int s = 0; s < p.s(); s++) {
                        int iw = q * p.strideW() - p.padLeft() + s * p.dilationW();
                        if (iw < 0 || iw >= p.w()) {
                            continue;
                        }
                        int xAt = o.xo + ((n * p.h() + ih) * p.w() + iw) * ch;
                        int pAt = base + (r * p.s() + s) * ch;
                        fmaInto(part, pAt, o.y, dyAt, o.x, xAt, ch);
                    }
                }
            }
        }
    }
}
