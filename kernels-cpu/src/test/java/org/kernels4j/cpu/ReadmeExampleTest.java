package org.kernels4j.cpu;

import static org.junit.jupiter.api.Assertions.assertEquals;

import java.util.Random;

import org.junit.jupiter.api.Test;
import org.kernels4j.Attention;
import org.kernels4j.Backends;
import org.kernels4j.Conv2d;
import org.kernels4j.DType;
import org.kernels4j.Device;
import org.kernels4j.LayerNorm;
import org.kernels4j.Stream;
import org.kernels4j.Tensor;
import org.kernels4j.reference.ReferenceLayerNorm;

/** The README's examples, as written there, so that they keep compiling and computing the right thing. */
class ReadmeExampleTest {

    @Test
    void layerNormForwardAndBackwardAsInTheReadme() {
        int rows = 7;
        int d = 33;
        Random r = new Random(42);
        float[] xData = random(r, rows * d);
        float[] gammaData = random(r, d);
        float[] betaData = random(r, d);
        float[] dyData = random(r, rows * d);

        Device dev = Backends.require("cpu").defaultDevice();
        Stream s = dev.defaultStream();
        LayerNorm ln = LayerNorm.layerNorm(1e-5f);
        try (Tensor x = dev.upload(DType.FLOAT32, xData, rows, d);
             Tensor gamma = dev.upload(DType.FLOAT32, gammaData, d);
             Tensor beta = dev.upload(DType.FLOAT32, betaData, d);
             LayerNorm.Outputs out = ln.forward(s, x, gamma, beta);
             Tensor dy = dev.upload(DType.FLOAT32, dyData, rows, d);
             LayerNorm.Gradients g = ln.backward(s, dy, x, gamma, out.mean(), out.rstd(), true)) {
            float[] y = out.y().toFloatArray();
            float[] dx = g.dx().toFloatArray();

            var p = ln.problem(new int[] {rows, d}, DType.FLOAT32);
            var ref = ReferenceLayerNorm.forward(p, doubles(xData), doubles(gammaData), doubles(betaData));
            var refGrad = ReferenceLayerNorm.backward(p, doubles(dyData), doubles(xData), doubles(gammaData));
            assertEquals(0, maxRelativeError(y, ref.y()), 1e-5);
            assertEquals(0, maxRelativeError(dx, refGrad.dx()), 1e-5);
        }
    }

    @Test
    void attentionAndConvolutionAsInTheReadme() {
        Device dev = Backends.require("cpu").defaultDevice();
        Stream s = dev.defaultStream();
        Random r = new Random(7);
        try (Tensor q = dev.upload(DType.FLOAT32, random(r, 2 * 4 * 9 * 16), 2, 4, 9, 16);
             Tensor k = dev.upload(DType.FLOAT32, random(r, 2 * 2 * 11 * 16), 2, 2, 11, 16);
             Tensor v = dev.upload(DType.FLOAT32, random(r, 2 * 2 * 11 * 16), 2, 2, 11, 16);
             Tensor dO = dev.upload(DType.FLOAT32, random(r, 2 * 4 * 9 * 16), 2, 4, 9, 16)) {
            Attention attn = Attention.of(Attention.CausalMask.TOP_LEFT);
            try (Attention.Outputs o = attn.forward(s, q, k, v);
                 Attention.Gradients ga = attn.backward(s, q, k, v, o.o(), o.lse(), dO)) {
                assertEquals(q.elementCount(), ga.dq().toFloatArray().length);
                assertEquals(k.elementCount(), ga.dk().toFloatArray().length);
            }
        }
        try (Tensor x = dev.upload(DType.FLOAT32, random(r, 2 * 9 * 9 * 6), 2, 9, 9, 6);
             Tensor w = dev.upload(DType.FLOAT32, random(r, 8 * 3 * 3 * 6), 8, 3, 3, 6);
             Tensor bias = dev.upload(DType.FLOAT32, random(r, 8), 8)) {
            Conv2d conv = Conv2d.builder().format(Conv2d.Format.NHWC).stride(2).padding(1).groups(1).build();
            try (Tensor y = conv.forward(s, x, w, bias);
                 Tensor dy = dev.upload(DType.FLOAT32, random(r, (int) y.elementCount()), y.shape());
                 Conv2d.Gradients gc = conv.backward(s, dy, x, w, true)) {
                assertEquals(5, y.dim(1));
                assertEquals(8, gc.db().elementCount());
            }
        }
    }

    private static float[] random(Random r, int n) {
        float[] a = new float[n];
        for (int i = 0; i < n; i++) {
            a[i] = (float) r.nextGaussian();
        }
        return a;
    }

    private static double[] doubles(float[] a) {
        double[] d = new double[a.length];
        for (int i = 0; i < a.length; i++) {
            d[i] = a[i];
        }
        return d;
    }

    private static double maxRelativeError(float[] got, double[] want) {
        double norm = 0;
        double err = 0;
        for (int i = 0; i < want.length; i++) {
            norm = Math.max(norm, Math.abs(want[i]));
            err = Math.max(err, Math.abs(got[i] - want[i]));
        }
        return err / Math.max(norm, 1e-30);
    }
}
