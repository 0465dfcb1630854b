package org.kernels4j.opencl;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.kernels4j.opencl.TestSupport.assertClose;
import static org.kernels4j.opencl.TestSupport.poisoned;
import static org.kernels4j.opencl.TestSupport.random;
import static org.kernels4j.opencl.TestSupport.widen;

import java.util.Random;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.kernels4j.Conv2d;
import org.kernels4j.DType;
import org.kernels4j.Device;
import org.kernels4j.Stream;
import org.kernels4j.Tensor;
import org.kernels4j.reference.ReferenceConv2d;
import org.kernels4j.spi.Conv2dProblem;
import org.kernels4j.tuning.Parameters;
import org.kernels4j.tuning.Tuning;

/** Implicit-GEMM and depthwise convolution on the OpenCL device against the float64 reference. */
class Conv2dOpenClTest {

    private static final double TOL = 2e-5;

    @ParameterizedTest(name = "{0} N={1} C={2} H={3} W={4} K={5} {6}x{7} stride {8}x{9} pad {10},{11},{12},{13} dil {14}x{15} g={16}")
    @CsvSource({
            "NCHW, 2, 3, 7, 7, 4, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1",
            // stride 2, asymmetric padding, dilation: the backward-data gather skips inexact divisions
            "NHWC, 2, 3, 9, 8, 5, 3, 3, 2, 2, 0, 1, 2, 1, 2, 2, 1",
            "NCHW, 1, 4, 6, 9, 6, 2, 3, 2, 1, 1, 0, 0, 2, 1, 2, 2",
            // depthwise: the direct kernels
            "NCHW, 2, 5, 7, 6, 5, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1, 5",
            "NHWC, 2, 5, 7, 6, 5, 3, 3, 1, 1, 1, 1, 1, 1, 2, 2, 5",
            // channel multiplier 2: grouped implicit GEMM with one input channel per group
            "NHWC, 1, 3, 5, 5, 6, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 3",
            // 1x1, sizes that are no multiple of any tile, several row tiles
            "NHWC, 3, 17, 5, 9, 33, 1, 1, 1, 1, 0, 0, 0, 0, 1, 1, 1",
            // a long reduction for the filter gradient: split-K with several ranges
            "NCHW, 4, 8, 16, 16, 8, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1",
    })
    void forwardAndBackward(Conv2d.Format format, int n, int c, int h, int w, int k, int r, int s, int sh, int sw,
                            int pt, int pl, int pb, int pr, int dh, int dw, int groups) {
        Device d = TestSupport.device();
        Stream st = d.defaultStream();
        DType dt = DType.FLOAT32;
        Conv2d conv = Conv2d.builder().format(format).stride(sh, sw).padding(pt, pl, pb, pr).dilation(dh, dw)
                .groups(groups).build();
        int[] xShape = format == Conv2d.Format.NCHW ? new int[] {n, c, h, w} : new int[] {n, h, w, c};
        int[] wShape = format == Conv2d.Format.NCHW ? new int[] {k, c / groups, r, s} : new int[] {k, r, s, c / groups};
        Conv2dProblem p = conv.problem(xShape, wShape, dt);
        Random rnd = new Random(n * 1000L + c * 100L + k * 10L + groups);
        float[] x = random(rnd, n * c * h * w);
        float[] wt = random(rnd, k * (c / groups) * r * s);
        float[] bias = random(rnd, k);
        float[] dy = random(rnd, n * k * p.p() * p.q());
        try (Tensor xt = d.upload(dt, x, xShape);
             Tensor wtt = d.upload(dt, wt, wShape);
             Tensor bt = d.upload(dt, bias, k);
             Tensor dyt = d.upload(dt, dy, p.yShape());
             Tensor y = poisoned(d, dt, p.yShape());
             Tensor dx = poisoned(d, dt, xShape);
             Tensor dwt = poisoned(d, dt, wShape);
             Tensor db = poisoned(d, dt, k)) {
            conv.forward(st, xt, wtt, bt, y);
            conv.backwardData(st, dyt, wtt, dx);
            conv.backwardFilter(st, dyt, xt, dwt, db);
            assertClose("y", y, ReferenceConv2d.forward(p, widen(x, dt), widen(wt, dt), widen(bias, dt)), TOL);
            assertClose("dx", dx, ReferenceConv2d.backwardData(p, widen(dy, dt), widen(wt, dt)), TOL);
            var grads = ReferenceConv2d.backwardFilter(p, widen(dy, dt), widen(x, dt));
            assertClose("dw", dwt, grads.dw(), TOL);
            assertClose("db", db, grads.db(), TOL);
        }
    }

    /**
     * Backward-filter under tile shapes and split-K targets other than the defaults (more splits, tiles with
     * fewer work items than reduction-table entries, tall and wide blocks), with the workspace poisoned with NaN
     * (this module's tests run with {@link OpenClProvider#POISON_SCRATCH_PROPERTY}): every partial the reduction
     * reads must have been written by its split. The shapes include the cases that failed on PoCL 5.
     */
    @ParameterizedTest(name = "TM={0} TN={1} TK={2} WM={3} WN={4} groups per CU={5}")
    @CsvSource({
            "64, 64, 16, 4, 4, 16",
            "16, 16, 4, 2, 2, 16",
            // 16 work items for 32 table entries per reduction step
            "16, 16, 32, 4, 4, 8",
            "128, 32, 16, 8, 2, 2",
    })
    void filterGradientUnderTileAndSplitOverrides(int tm, int tn, int tk, int wm, int wn, int groupsPerCu) {
        Parameters params = Parameters.of("CONV_TM", tm, "CONV_TN", tn, "CONV_TK", tk, "CONV_WM", wm, "CONV_WN", wn,
                "CONV_GROUPS_PER_CU", groupsPerCu);
        int[][] shapes = {
                // format (0 NCHW, 1 NHWC), N, C, H, W, K, R, S, sh, sw, pt, pl, pb, pr, dh, dw, groups
                {0, 3, 16, 5, 5, 7, 1, 1, 1, 1, 0, 0, 0, 0, 1, 1, 1},
                {1, 1, 2, 7, 7, 8, 1, 2, 2, 1, 0, 0, 0, 0, 1, 1, 2},
                {0, 2, 3, 9, 5, 2, 3, 1, 2, 2, 0, 1, 1, 1, 1, 2, 1},
                {1, 1, 4, 11, 10, 6, 3, 3, 2, 2, 0, 1, 2, 1, 1, 1, 1},
                {0, 1, 33, 10, 10, 31, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1},
                {1, 2, 6, 8, 7, 4, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 2},
                // a long reduction: many split ranges
                {0, 4, 8, 16, 16, 8, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1},
        };
        try (Tuning.Scope scope = Tuning.scoped(Conv2dOpenCl.BACKWARD_FILTER.kernelId(), params)) {
            for (int[] v : shapes) {
                filterGradient(v[0] == 0 ? Conv2d.Format.NCHW : Conv2d.Format.NHWC, v[1], v[2], v[3], v[4], v[5],
                        v[6], v[7], v[8], v[9], v[10], v[11], v[12], v[13], v[14], v[15], v[16]);
            }
        }
    }

    private static void filterGradient(Conv2d.Format format, int n, int c, int h, int w, int k, int r, int s,
                                       int sh, int sw, int pt, int pl, int pb, int pr, int dh, int dw, int groups) {
        Device d = TestSupport.device();
        DType dt = DType.FLOAT32;
        Conv2d conv = Conv2d.builder().format(format).stride(sh, sw).padding(pt, pl, pb, pr).dilation(dh, dw)
                .groups(groups).build();
        int[] xShape = format == Conv2d.Format.NCHW ? new int[] {n, c, h, w} : new int[] {n, h, w, c};
        int[] wShape = format == Conv2d.Format.NCHW ? new int[] {k, c / groups, r, s} : new int[] {k, r, s, c / groups};
        Conv2dProblem p = conv.problem(xShape, wShape, dt);
        Random rnd = new Random(n * 1000L + c * 100L + k * 10L + groups);
        float[] x = random(rnd, n * c * h * w);
        float[] dy = random(rnd, n * k * p.p() * p.q());
        try (Tensor xt = d.upload(dt, x, xShape);
             Tensor dyt = d.upload(dt, dy, p.yShape());
             Tensor dwt = poisoned(d, dt, wShape);
             Tensor db = poisoned(d, dt, k)) {
            conv.backwardFilter(d.defaultStream(), dyt, xt, dwt, db);
            var grads = ReferenceConv2d.backwardFilter(p, widen(dy, dt), widen(x, dt));
            String what = p + " ";
            assertClose(what + "dw", dwt, grads.dw(), TOL);
            assertClose(what + "db", db, grads.db(), TOL);
        }
    }

    @Test
    void emptyBatchGivesZeroFilterGradients() {
        Device d = TestSupport.device();
        Conv2d conv = Conv2d.builder().padding(1).build();
        try (Tensor x = d.allocate(DType.FLOAT32, 0, 2, 4, 4);
             Tensor w = d.upload(DType.FLOAT32, new float[3 * 2 * 9], 3, 2, 3, 3);
             Tensor dy = d.allocate(DType.FLOAT32, 0, 3, 4, 4);
             Tensor y = d.allocate(DType.FLOAT32, 0, 3, 4, 4);
             Tensor dw = poisoned(d, DType.FLOAT32, 3, 2, 3, 3);
             Tensor db = poisoned(d, DType.FLOAT32, 3)) {
            conv.forward(d.defaultStream(), x, w, null, y);
            conv.backwardFilter(d.defaultStream(), dy, x, dw, db);
            assertArrayEquals(new float[3 * 2 * 9], dw.toFloatArray());
            assertArrayEquals(new float[3], db.toFloatArray());
        }
    }
}
