package org.kernels4j.opencl;

import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.kernels4j.opencl.TestSupport.assertClose;
import static org.kernels4j.opencl.TestSupport.poisoned;
import static org.kernels4j.opencl.TestSupport.random;
import static org.kernels4j.opencl.TestSupport.widen;

import java.util.Random;

import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.kernels4j.Attention;
import org.kernels4j.Backend;
import org.kernels4j.Conv2d;
import org.kernels4j.DType;
import org.kernels4j.Device;
import org.kernels4j.LayerNorm;
import org.kernels4j.Stream;
import org.kernels4j.Tensor;
import org.kernels4j.reference.ReferenceAttention;
import org.kernels4j.reference.ReferenceConv2d;
import org.kernels4j.reference.ReferenceLayerNorm;
import org.kernels4j.spi.AttentionProblem;
import org.kernels4j.spi.Conv2dProblem;
import org.kernels4j.spi.LayerNormProblem;

/**
 * The float16 paths of every kernel (vload_half/vstore_half storage, float32 math), on a backend started with
 * {@link OpenClProvider#HALF_STORAGE_PROPERTY} so that they run on devices without cl_khr_fp16 too (PoCL).
 * Inputs are float16 values, so the only rounding beyond float32's is the final store: a relative error of
 * 1e-3 is about twice float16's half-ulp.
 */
class HalfStorageTest {

    private static final double TOL = 1e-3;
    private static final DType F16 = DType.FLOAT16;
    private static Device device;

    @BeforeAll
    static void startWithHalfStorage() throws Exception {
        System.setProperty(OpenClProvider.HALF_STORAGE_PROPERTY, "true");
        try {
            Backend b = new OpenClProvider().start();
            device = b.defaultDevice();
        } finally {
            System.clearProperty(OpenClProvider.HALF_STORAGE_PROPERTY);
        }
        assertTrue(device.capabilities().supports(F16));
    }

    @AfterAll
    static void finish() {
        device.synchronize();
    }

    @Test
    void layerNorm() {
        int rows = 6;
        int cols = 20;
        Random r = new Random(1);
        float[] x = random(r, rows * cols);
        float[] g = random(r, cols);
        float[] dy = random(r, rows * cols);
        LayerNormProblem p = new LayerNormProblem(LayerNorm.Kind.LAYER_NORM, 1e-5f, rows, cols, F16);
        Stream s = device.defaultStream();
        try (Tensor xt = device.upload(F16, x, rows, cols);
             Tensor gt = device.upload(F16, g, cols);
             Tensor dyt = device.upload(F16, dy, rows, cols);
             Tensor y = poisoned(device, F16, rows, cols);
             Tensor mean = poisoned(device, DType.FLOAT32, rows);
             Tensor rstd = poisoned(device, DType.FLOAT32, rows);
             Tensor dx = poisoned(device, F16, rows, cols);
             Tensor dg = poisoned(device, F16, cols);
             Tensor db = poisoned(device, F16, cols)) {
            LayerNorm ln = LayerNorm.layerNorm(1e-5f);
            ln.forward(s, xt, gt, null, y, mean, rstd);
            ln.backward(s, dyt, xt, gt, mean, rstd, dx, dg, db);
            var f = ReferenceLayerNorm.forward(p, widen(x, F16), widen(g, F16), null);
            var b = ReferenceLayerNorm.backward(p, widen(dy, F16), widen(x, F16), widen(g, F16));
            assertClose("y", y, f.y(), TOL);
            assertClose("rstd", rstd, f.rstd(), 1e-5);
            assertClose("dx", dx, b.dx(), TOL);
            assertClose("dgamma", dg, b.dgamma(), TOL);
            assertClose("dbeta", db, b.dbeta(), TOL);
        }
    }

    @Test
    void attention() {
        int nq = 9;
        int nk = 12;
        int d = 16;
        Random r = new Random(2);
        float[] q = random(r, 2 * nq * d);
        float[] k = random(r, nk * d);
        float[] v = random(r, nk * d);
        float[] dO = random(r, 2 * nq * d);
        Attention att = Attention.of(Attention.CausalMask.BOTTOM_RIGHT);
        AttentionProblem p = new AttentionProblem(1, 2, 1, nq, nk, d, att.scaleFor(d), att.mask(), F16);
        Stream s = device.defaultStream();
        try (Tensor qt = device.upload(F16, q, 1, 2, nq, d);
             Tensor kt = device.upload(F16, k, 1, 1, nk, d);
             Tensor vt = device.upload(F16, v, 1, 1, nk, d);
             Tensor dOt = device.upload(F16, dO, 1, 2, nq, d);
             Tensor o = poisoned(device, F16, 1, 2, nq, d);
             Tensor lse = poisoned(device, DType.FLOAT32, 1, 2, nq);
             Tensor dq = poisoned(device, F16, 1, 2, nq, d);
             Tensor dk = poisoned(device, F16, 1, 1, nk, d);
             Tensor dv = poisoned(device, F16, 1, 1, nk, d)) {
            att.forward(s, qt, kt, vt, o, lse);
            // the backward's reference uses the float16-rounded O the forward stored
            att.backward(s, qt, kt, vt, o, lse, dOt, dq, dk, dv);
            var f = ReferenceAttention.forward(p, widen(q, F16), widen(k, F16), widen(v, F16));
            var b = ReferenceAttention.backward(p, widen(q, F16), widen(k, F16), widen(v, F16), widen(dO, F16));
            assertClose("o", o, f.o(), TOL);
            assertClose("lse", lse, f.lse(), 1e-5);
            assertClose("dq", dq, b.dq(), 2 * TOL);
            assertClose("dk", dk, b.dk(), 2 * TOL);
            assertClose("dv", dv, b.dv(), TOL);
        }
    }

    @Test
    void conv2dImplicitGemmAndDepthwise() {
        for (int groups : new int[] {1, 4}) {
            Conv2d conv = Conv2d.builder().format(Conv2d.Format.NHWC).stride(2).padding(1).groups(groups).build();
            int[] xShape = {2, 7, 6, 4};
            int[] wShape = {4, 3, 3, 4 / groups};
            Conv2dProblem p = conv.problem(xShape, wShape, F16);
            Random r = new Random(3 + groups);
            float[] x = random(r, 2 * 7 * 6 * 4);
            float[] w = random(r, 4 * 9 * (4 / groups));
            float[] dy = random(r, 2 * 4 * p.p() * p.q());
            Stream s = device.defaultStream();
            try (Tensor xt = device.upload(F16, x, xShape);
                 Tensor wt = device.upload(F16, w, wShape);
                 Tensor dyt = device.upload(F16, dy, p.yShape());
                 Tensor y = poisoned(device, F16, p.yShape());
                 Tensor dx = poisoned(device, F16, xShape);
                 Tensor dw = poisoned(device, F16, wShape);
                 Tensor db = poisoned(device, F16, 4)) {
                conv.forward(s, xt, wt, null, y);
                conv.backwardData(s, dyt, wt, dx);
                conv.backwardFilter(s, dyt, xt, dw, db);
                assertClose("y groups=" + groups, y, ReferenceConv2d.forward(p, widen(x, F16), widen(w, F16), null), TOL);
                assertClose("dx groups=" + groups, dx, ReferenceConv2d.backwardData(p, widen(dy, F16), widen(w, F16)), TOL);
                var g = ReferenceConv2d.backwardFilter(p, widen(dy, F16), widen(x, F16));
                assertClose("dw groups=" + groups, dw, g.dw(), TOL);
                assertClose("db groups=" + groups, db, g.db(), TOL);
            }
        }
    }
}
