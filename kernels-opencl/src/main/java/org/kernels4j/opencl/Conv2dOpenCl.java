package org.kernels4j.opencl;

import java.util.Map;

import org.jocl.cl_mem;
import org.kernels4j.Conv2d;
import org.kernels4j.DType;
import org.kernels4j.Stream;
import org.kernels4j.Tensor;
import org.kernels4j.spi.Conv2dKernels;
import org.kernels4j.spi.Conv2dProblem;
import org.kernels4j.spi.Debug;
import org.kernels4j.tuning.Parameters;
import org.kernels4j.tuning.ShapeBuckets;
import org.kernels4j.tuning.TuningSpace;

/**
 * 2-D convolution on OpenCL: {@code conv2d.cl}. Forward, backward-data and backward-filter are tiled implicit
 * GEMMs that gather their operands from the tensors (no im2col buffer); backward-filter splits its long
 * reduction (over N*P*Q) into ranges written to a workspace and summed by a second kernel (split-K, no atomics).
 * Depthwise convolutions ({@code groups == C == K}) use direct kernels. Both layouts, any stride, padding,
 * dilation and groups. Index arithmetic is 32-bit inside the GEMMs: problems whose N*P*Q, N*H*W or element
 * counts exceed 2^31 - 1 are rejected before anything is queued.
 */
final class Conv2dOpenCl implements Conv2dKernels {

    private static final String SOURCE_FILE = "conv2d.cl";
    private static final String SOURCE = ProgramCache.resource(SOURCE_FILE);

    /**
     * GEMM tile of each pass: {@code CONV_TM x CONV_TN} outputs per workgroup, reduction slices of
     * {@code CONV_TK}, a {@code CONV_WM x CONV_WN} block per work item; backward-filter also
     * {@code CONV_GROUPS_PER_CU}, the workgroups per compute unit its split-K aims at.
     */
    static final TuningSpace<Conv2dProblem> FORWARD = space("opencl.conv2d.forward").build();
    static final TuningSpace<Conv2dProblem> BACKWARD_DATA = space("opencl.conv2d.backward-data").build();
    static final TuningSpace<Conv2dProblem> BACKWARD_FILTER = space("opencl.conv2d.backward-filter")
            .parameter("CONV_GROUPS_PER_CU", 4, 1, 2, 8, 16)
            .build();

    private static TuningSpace.Builder<Conv2dProblem> space(String id) {
        return TuningSpace.builder(id, Conv2dProblem.class)
                .source(ProgramCache.header())
                .source(SOURCE)
                .parameter("CONV_TM", 64, 16, 32, 128)
                .parameter("CONV_TN", 64, 16, 32, 128)
                .parameter("CONV_TK", 16, 4, 8, 32)
                .parameter("CONV_WM", 4, 1, 2, 8)
                .parameter("CONV_WN", 4, 1, 2, 8)
                .constraint("CONV_WM divides CONV_TM and CONV_WN divides CONV_TN",
                        (t, c) -> t.get("CONV_TM") % t.get("CONV_WM") == 0 && t.get("CONV_TN") % t.get("CONV_WN") == 0)
                .constraint("(CONV_TM/CONV_WM) * (CONV_TN/CONV_WN) <= maxWorkgroupSize",
                        (t, c) -> threads(t) <= c.maxWorkgroupSize())
                .constraint("4 * CONV_TK * (CONV_TM + CONV_TN + 2) <= localMemoryBytes",
                        (t, c) -> 4L * t.get("CONV_TK") * (t.get("CONV_TM") + t.get("CONV_TN") + 2) <= c.localMemoryBytes())
                .bucket(p -> p.format() + "-k" + ShapeBuckets.pow2(p.kPerGroup(), 8, 4096)
                        + "-c" + ShapeBuckets.pow2((long) p.cPerGroup() * p.r() * p.s(), 8, 1 << 14)
                        + "-pq" + ShapeBuckets.pow2((long) p.n() * p.p() * p.q(), 64, 1 << 22));
    }

    private static int threads(Parameters t) {
        return (t.get("CONV_TM") / t.get("CONV_WM")) * (t.get("CONV_TN") / t.get("CONV_WN"));
    }

    private final OpenClDevice device;

    Conv2dOpenCl(OpenClDevice device) {
        this.device = device;
    }

    @Override
    public void forward(Stream stream, Conv2dProblem p, Tensor x, Tensor w, Tensor bias, Tensor y) {
        OpenClStream s = device.stream(stream);
        checkIndexRange(p);
        cl_mem xm = OpenClTensor.memOrNull(x, device, "x");
        cl_mem wm = OpenClTensor.memOrNull(w, device, "w");
        cl_mem bm = OpenClTensor.memOrNull(bias, device, "bias");
        cl_mem ym = OpenClTensor.memOrNull(y, device, "y");
        if ((long) p.n() * p.p() * p.q() == 0) {
            return;
        }
        Parameters tp = FORWARD.resolve(device, p.dtype(), p);
        if (p.depthwise()) {
            direct(s, p, tp, "dw_fwd", (long) p.n() * p.k() * p.p() * p.q(), xm, wm, bm, ym);
        } else {
            gemm(s, p, tp, "conv_fwd", (long) p.n() * p.p() * p.q(), p.kPerGroup(), p.groups(), xm, wm, bm, ym);
        }
        s.flush();
    }

    @Override
    public void backwardData(Stream stream, Conv2dProblem p, Tensor dy, Tensor w, Tensor dx) {
        OpenClStream s = device.stream(stream);
        checkIndexRange(p);
        cl_mem dym = OpenClTensor.memOrNull(dy, device, "dy");
        cl_mem wm = OpenClTensor.memOrNull(w, device, "w");
        cl_mem dxm = OpenClTensor.memOrNull(dx, device, "dx");
        if (p.n() == 0) {
            return;
        }
        Parameters tp = BACKWARD_DATA.resolve(device, p.dtype(), p);
        if (p.depthwise()) {
            direct(s, p, tp, "dw_dgrad", (long) p.n() * p.c() * p.h() * p.w(), dym, wm, dxm);
        } else {
            gemm(s, p, tp, "conv_dgrad", (long) p.n() * p.h() * p.w(), p.cPerGroup(), p.groups(), dym, wm, dxm);
        }
        s.flush();
    }

    @Override
    public void backwardFilter(Stream stream, Conv2dProblem p, Tensor dy, Tensor x, Tensor dw, Tensor db) {
        OpenClStream s = device.stream(stream);
        checkIndexRange(p);
        cl_mem dym = OpenClTensor.memOrNull(dy, device, "dy");
        cl_mem xm = OpenClTensor.memOrNull(x, device, "x");
        cl_mem dwm = OpenClTensor.memOrNull(dw, device, "dw");
        cl_mem dbm = OpenClTensor.memOrNull(db, device, "db");
        if (p.n() == 0) {
            // sums over no image
            Fill.zero(s, OpenClTensor.of(dw, device, "dw"));
            if (db != null) {
                Fill.zero(s, OpenClTensor.of(db, device, "db"));
            }
            s.flush();
            return;
        }
        Parameters tp = BACKWARD_FILTER.resolve(device, p.dtype(), p);
        if (!p.depthwise()) {
            tp = fitted(p, tp, "conv_wgrad");
        }
        Map<String, String> defines = defines(p, tp);
        int redWg = Integer.parseInt(defines.get("CONV_RED_WG"));
        if (p.depthwise()) {
            CompiledKernel k = kernel(defines, "dw_wgrad");
            long taps = (long) p.k() * p.r() * p.s();
            Debug.log(1, () -> describe("backward-filter", p, "dw_wgrad", defines));
            k.enqueue(s, new long[] {taps * redWg, 1, 1}, new long[] {redWg, 1, 1}, shapeArgs(p, dym, xm, dwm));
        } else {
            int taps = p.cPerGroup() * p.r() * p.s();
            int red = p.n() * p.p() * p.q();
            int tm = tp.get("CONV_TM");
            int tn = tp.get("CONV_TN");
            int tk = tp.get("CONV_TK");
            long tiles = OpenClDevice.ceilDiv(p.kPerGroup(), tm) * OpenClDevice.ceilDiv(taps, tn) * p.groups();
            long target = (long) device.capabilities().computeUnits() * tp.get("CONV_GROUPS_PER_CU");
            long wantSplits = Math.max(1, Math.min(target / Math.max(1, tiles), OpenClDevice.ceilDiv(red, 4L * tk)));
            int chunk = (int) (OpenClDevice.ceilDiv(OpenClDevice.ceilDiv(red, wantSplits), tk) * tk);
            int splits = (int) OpenClDevice.ceilDiv(red, chunk);
            long total = (long) p.k() * taps;
            Debug.log(1, () -> describe("backward-filter", p, "conv_wgrad (split-K " + splits + " x " + chunk
                    + ") + conv_split_reduce", defines));
            try (OpenClDevice.Scratch ws = device.scratch(s, splits * total, "conv2d split-K workspace")) {
                CompiledKernel k = kernel(defines, "conv_wgrad");
                int threads = threads(tp);
                Object[] args = shapeArgs(p, dym, xm, ws.mem(), splits, chunk);
                k.enqueue(s, new long[] {OpenClDevice.ceilDiv(p.kPerGroup(), tm) * threads,
                        OpenClDevice.ceilDiv(taps, tn), (long) p.groups() * splits}, new long[] {threads, 1, 1}, args);
                CompiledKernel reduce = kernel(defines, "conv_split_reduce");
                long wg = Math.min(256, reduce.maxWorkGroupSize());
                reduce.enqueue(s, new long[] {OpenClDevice.ceilDiv(total, wg) * wg, 1, 1}, new long[] {wg, 1, 1},
                        ws.mem(), splits, (int) total, dwm);
            }
        }
        if (db != null) {
            kernel(defines, "conv_bias_grad").enqueue(s, new long[] {(long) p.k() * redWg, 1, 1},
                    new long[] {redWg, 1, 1}, dym, dbm, p.n(), p.k(), p.p(), p.q());
        }
        s.flush();
    }

    /** One GEMM pass: rows x cols outputs per group, {@code buffers} then the shape. */
    private void gemm(OpenClStream s, Conv2dProblem p, Parameters resolved, String entry, long rows, int cols,
                      int groups, Object... buffers) {
        Parameters tp = fitted(p, resolved, entry);
        Map<String, String> defines = defines(p, tp);
        int threads = threads(tp);
        Debug.log(1, () -> describe(entry.equals("conv_fwd") ? "forward" : "backward-data", p, entry, defines));
        kernel(defines, entry).enqueue(s, new long[] {OpenClDevice.ceilDiv(rows, tp.get("CONV_TM")) * threads,
                        OpenClDevice.ceilDiv(cols, tp.get("CONV_TN")), groups}, new long[] {threads, 1, 1},
                shapeArgs(p, buffers));
    }

    /** A depthwise kernel with one work item per output element. */
    private void direct(OpenClStream s, Conv2dProblem p, Parameters tp, String entry, long elements, Object... buffers) {
        Map<String, String> defines = defines(p, tp);
        CompiledKernel k = kernel(defines, entry);
        long wg = Math.min(256, k.maxWorkGroupSize());
        Debug.log(1, () -> describe(entry.equals("dw_fwd") ? "forward" : "backward-data", p, entry, defines));
        k.enqueue(s, new long[] {OpenClDevice.ceilDiv(elements, wg) * wg, 1, 1}, new long[] {wg, 1, 1},
                shapeArgs(p, buffers));
    }

    /**
     * The pass's parameters, with the tile halved (the larger side first) until its workgroup fits both the
     * device and the compiled kernel (whose limit can be lower: registers).
     */
    private Parameters fitted(Conv2dProblem p, Parameters tp, String entry) {
        Parameters t = tp;
        while (true) {
            boolean deviceFits = threads(t) <= device.capabilities().maxWorkgroupSize();
            if (deviceFits && threads(t) <= kernel(defines(p, t), entry).maxWorkGroupSize()) {
                return t;
            }
            int tm = t.get("CONV_TM");
            int tn = t.get("CONV_TN");
            if (tm <= t.get("CONV_WM") && tn <= t.get("CONV_WN")) {
                throw new IllegalStateException("conv2d kernel " + entry + " cannot run even one workgroup of "
                        + threads(t) + " work items on " + device.id());
            }
            t = tm >= tn && tm > t.get("CONV_WM") ? t.with("CONV_TM", tm / 2) : t.with("CONV_TN", tn / 2);
        }
    }

    private static Object[] shapeArgs(Conv2dProblem p, Object... leading) {
        Object[] shape = {p.n(), p.c(), p.h(), p.w(), p.k(), p.r(), p.s(), p.p(), p.q(), p.strideH(), p.strideW(),
                p.padTop(), p.padLeft(), p.dilationH(), p.dilationW(), p.groups()};
        Object[] all = new Object[leading.length + shape.length];
        System.arraycopy(leading, 0, all, 0, leading.length);
        System.arraycopy(shape, 0, all, leading.length, shape.length);
        return all;
    }

    private Map<String, String> defines(Conv2dProblem p, Parameters tp) {
        int redWg = Pow2.floor(Math.min(256, device.capabilities().maxWorkgroupSize()));
        Map<String, String> d = new java.util.TreeMap<>();
        d.put("K4J_DTYPE", Dtypes.define(p.dtype()));
        d.put("CONV_NHWC", p.format() == Conv2d.Format.NHWC ? "1" : "0");
        for (String name : new String[] {"CONV_TM", "CONV_TN", "CONV_TK", "CONV_WM", "CONV_WN"}) {
            d.put(name, String.valueOf(tp.get(name)));
        }
        d.put("CONV_RED_WG", String.valueOf(redWg));
        return d;
    }

    private CompiledKernel kernel(Map<String, String> defines, String entry) {
        return device.programs.kernel(SOURCE_FILE, SOURCE, defines, entry);
    }

    private void checkIndexRange(Conv2dProblem p) {
        long limit = Integer.MAX_VALUE;
        long[] sizes = {(long) p.n() * p.p() * p.q(), (long) p.n() * p.h() * p.w(),
                (long) p.n() * p.c() * p.h() * p.w(), (long) p.n() * p.k() * p.p() * p.q(),
                (long) p.k() * p.cPerGroup() * p.r() * p.s()};
        for (long v : sizes) {
            if (v > limit) {
                throw new IllegalArgumentException("x: convolution of " + java.util.Arrays.toString(p.xShape())
                        + " with filter " + java.util.Arrays.toString(p.wShape()) + " is too large for the OpenCL "
                        + "kernels' 32-bit indexing (a size of " + v + " exceeds " + limit + ")");
            }
        }
    }

    private String describe(String pass, Conv2dProblem p, String kernels, Map<String, String> defines) {
        return String.format("%s conv2d %s %s x%s w%s stride %dx%d pad %d,%d,%d,%d dilation %dx%d groups %d %s: %s %s",
                device.id(), pass, p.format(), java.util.Arrays.toString(p.xShape()),
                java.util.Arrays.toString(p.wShape()), p.strideH(), p.strideW(), p.padTop(), p.padLeft(),
                p.padBottom(), p.padRight(), p.dilationH(), p.dilationW(), p.groups(), p.dtype(), kernels, defines);
    }
}
