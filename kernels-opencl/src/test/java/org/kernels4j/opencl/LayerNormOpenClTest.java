package org.kernels4j.opencl;

import static org.kernels4j.opencl.TestSupport.assertClose;
import static org.kernels4j.opencl.TestSupport.poisoned;
import static org.kernels4j.opencl.TestSupport.random;
import static org.kernels4j.opencl.TestSupport.widen;
import static org.junit.jupiter.api.Assertions.assertEquals;

import java.util.Arrays;
import java.util.Random;

import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.kernels4j.DType;
import org.kernels4j.Device;
import org.kernels4j.LayerNorm;
import org.kernels4j.Stream;
import org.kernels4j.Tensor;
import org.kernels4j.reference.ReferenceLayerNorm;
import org.kernels4j.spi.LayerNormProblem;

/** Layer norm and RMS norm on the OpenCL device against the float64 reference. */
class LayerNormOpenClTest {

    private static final double TOL = 2e-5;

    @ParameterizedTest(name = "{0} rows={1} cols={2} gamma={3} beta={4}")
    @CsvSource({
            // short rows share a workgroup (team of 1 or 2), odd length: scalar loads
            "LAYER_NORM, 3, 7, true, true",
            "RMS_NORM, 1, 1, true, false",
            // a multiple of 4: float4 loads
            "LAYER_NORM, 5, 1024, false, true",
            "RMS_NORM, 17, 12, false, false",
            // long rows: the whole workgroup on one row, more rows than backward teams (several per team)
            "LAYER_NORM, 33, 4100, true, true",
            "LAYER_NORM, 300, 36, true, false",
    })
    void forwardAndBackward(LayerNorm.Kind kind, int rows, int cols, boolean withGamma, boolean withBeta) {
        Device d = TestSupport.device();
        Stream s = d.defaultStream();
        DType dt = DType.FLOAT32;
        Random r = new Random(rows * 131L + cols);
        float[] x = random(r, rows * cols);
        // a large common offset: the variance must not come from E[x^2] - E[x]^2
        for (int i = 0; i < x.length; i++) {
            x[i] = 3f * x[i] + 50f;
        }
        float[] g = random(r, cols);
        float[] b = random(r, cols);
        float[] dy = random(r, rows * cols);
        LayerNorm ln = kind == LayerNorm.Kind.LAYER_NORM ? LayerNorm.layerNorm(1e-5f) : LayerNorm.rmsNorm(1e-5f);
        LayerNormProblem p = new LayerNormProblem(kind, 1e-5f, rows, cols, dt);
        int[] shape = {rows, cols};
        try (Tensor xt = d.upload(dt, x, shape);
             Tensor gt = withGamma ? d.upload(dt, g, cols) : null;
             Tensor bt = withBeta ? d.upload(dt, b, cols) : null;
             Tensor dyt = d.upload(dt, dy, shape);
             Tensor y = poisoned(d, dt, shape);
             Tensor mean = kind == LayerNorm.Kind.LAYER_NORM ? poisoned(d, DType.FLOAT32, rows) : null;
             Tensor rstd = poisoned(d, DType.FLOAT32, rows);
             Tensor dx = poisoned(d, dt, shape);
             Tensor dg = withGamma ? poisoned(d, dt, cols) : null;
             Tensor db = poisoned(d, dt, cols)) {
            ln.forward(s, xt, gt, bt, y, mean, rstd);
            ln.backward(s, dyt, xt, gt, mean, rstd, dx, dg, db);
            double[] gd = withGamma ? widen(g, dt) : null;
            var ref = ReferenceLayerNorm.forward(p, widen(x, dt), gd, withBeta ? widen(b, dt) : null);
            assertClose("y", y, ref.y(), TOL);
            if (mean != null) {
                assertClose("mean", mean, ref.mean(), TOL);
            }
            assertClose("rstd", rstd, ref.rstd(), TOL);
            var back = ReferenceLayerNorm.backward(p, widen(dy, dt), widen(x, dt), gd);
            assertClose("dx", dx, back.dx(), TOL);
            if (dg != null) {
                assertClose("dgamma", dg, back.dgamma(), TOL);
            }
            assertClose("dbeta", db, back.dbeta(), TOL);
        }
    }

    @org.junit.jupiter.api.Test
    void zeroRowsWriteNothingButZeroParameterGradients() {
        Device d = TestSupport.device();
        Stream s = d.defaultStream();
        LayerNorm ln = LayerNorm.layerNorm();
        try (Tensor x = d.allocate(DType.FLOAT32, 0, 5);
             Tensor gamma = d.upload(DType.FLOAT32, new float[] {1, 2, 3, 4, 5}, 5);
             Tensor y = d.allocate(DType.FLOAT32, 0, 5);
             Tensor mean = d.allocate(DType.FLOAT32, 0);
             Tensor rstd = d.allocate(DType.FLOAT32, 0);
             Tensor dx = d.allocate(DType.FLOAT32, 0, 5);
             Tensor dg = poisoned(d, DType.FLOAT32, 5);
             Tensor db = poisoned(d, DType.FLOAT32, 5)) {
            ln.forward(s, x, gamma, null, y, mean, rstd);
            ln.backward(s, x, x, gamma, mean, rstd, dx, dg, db);
            assertEquals(Arrays.toString(new float[5]), Arrays.toString(dg.toFloatArray()));
            assertEquals(Arrays.toString(new float[5]), Arrays.toString(db.toFloatArray()));
        }
    }
}
