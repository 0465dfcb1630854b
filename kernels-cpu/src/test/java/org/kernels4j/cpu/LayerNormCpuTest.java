package org.kernels4j.cpu;

import static org.junit.jupiter.api.Assertions.assertEquals;

import java.util.Arrays;
import java.util.Random;

import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.kernels4j.LayerNorm;
import org.kernels4j.Stream;
import org.kernels4j.Tensor;

class LayerNormCpuTest {

    /** Float64 forward: y, mean, rstd. */
    static double[][] reference(float[] x, float[] g, float[] b, int rows, int cols, boolean rms, float eps) {
        double[] y = new double[rows * cols];
        double[] mean = new double[rows];
        double[] rstd = new double[rows];
        for (int r = 0; r < rows; r++) {
            double m = 0;
            if (!rms) {
                for (int j = 0; j < cols; j++) {
                    m += x[r * cols + j];
                }
                m /= cols;
            }
            double v = 0;
            for (int j = 0; j < cols; j++) {
                double d = x[r * cols + j] - m;
                v += d * d;
            }
            v /= cols;
            double s = 1 / Math.sqrt(v + eps);
            mean[r] = m;
            rstd[r] = s;
            for (int j = 0; j < cols; j++) {
                y[r * cols + j] = (x[r * cols + j] - m) * s * (g == null ? 1 : g[j]) + (b == null ? 0 : b[j]);
            }
        }
        return new double[][] {y, mean, rstd};
    }

    /** Float64 backward from the definitions: dx, dgamma, dbeta. */
    static double[][] referenceBackward(float[] dy, float[] x, float[] g, int rows, int cols, boolean rms, float eps) {
        double[][] f = reference(x, null, null, rows, cols, rms, eps);
        double[] xhat = f[0];
        double[] dx = new double[rows * cols];
        double[] dg = new double[cols];
        double[] db = new double[cols];
        for (int r = 0; r < rows; r++) {
            double s = f[2][r];
            double sg = 0;
            double sgx = 0;
            for (int j = 0; j < cols; j++) {
                int i = r * cols + j;
                double gd = dy[i] * (g == null ? 1 : g[j]);
                sg += gd;
                sgx += gd * xhat[i];
                dg[j] += dy[i] * xhat[i];
                db[j] += dy[i];
            }
            for (int j = 0; j < cols; j++) {
                int i = r * cols + j;
                double gd = dy[i] * (g == null ? 1 : g[j]);
                dx[i] = s * (gd - (rms ? 0 : sg / cols) - xhat[i] * sgx / cols);
            }
        }
        return new double[][] {dx, dg, db};
    }

    @ParameterizedTest(name = "{0} rows x {1} cols, rms={2}, gamma={3}, beta={4}")
    @CsvSource({
            "1, 1, false, true, true",
            "3, 7, false, true, true",
            "5, 1, false, false, false",
            "17, 33, false, true, false",
            "17, 33, true, true, true",
            "2, 1000, true, false, false",
            "0, 5, false, true, true",
            "0, 5, true, true, true",
            "13, 257, false, false, true",
            "64, 4096, false, true, true",
            "300, 131, true, true, false",
            "1031, 64, false, true, true"})
    void forwardAndBackwardMatchFloat64(int rows, int cols, boolean rms, boolean withGamma, boolean withBeta) {
        Random rnd = new Random(rows * 31L + cols);
        float eps = 1e-5f;
        float[] x = Check.random(rnd, rows * cols);
        for (int i = 0; i < x.length; i++) {
            x[i] = x[i] * 2 + 3;   // a mean away from zero exercises the shifted sums
        }
        float[] g = withGamma ? Check.random(rnd, cols) : null;
        float[] b = withBeta ? Check.random(rnd, cols) : null;
        float[] dy = Check.random(rnd, rows * cols);
        LayerNorm ln = rms ? LayerNorm.rmsNorm(eps) : LayerNorm.layerNorm(eps);
        Stream s = Check.device().defaultStream();
        int[] shape = {rows, cols};
        try (Tensor tx = Check.upload(x, shape);
             Tensor tg = g == null ? null : Check.upload(g, cols);
             Tensor tb = b == null ? null : Check.upload(b, cols);
             Tensor ty = Check.poisoned(shape);
             Tensor tm = rms ? null : Check.poisoned(rows);
             Tensor tr = Check.poisoned(rows);
             Tensor tdy = Check.upload(dy, shape);
             Tensor tdx = Check.poisoned(shape);
             Tensor tdg = g == null ? null : Check.poisoned(cols);
             Tensor tdb = Check.poisoned(cols)) {
            ln.forward(s, tx, tg, tb, ty, tm, tr);
            double[][] ref = reference(x, g, b, rows, cols, rms, eps);
            Check.close("y", ref[0], ty);
            if (!rms) {
                Check.close("mean", ref[1], tm);
            }
            Check.close("rstd", ref[2], tr);

            ln.backward(s, tdy, tx, tg, tm, tr, tdx, tdg, tdb);
            double[][] grads = referenceBackward(dy, x, g, rows, cols, rms, eps);
            Check.close("dx", grads[0], tdx);
            if (g != null) {
                Check.close("dgamma", grads[1], tdg);
            }
            Check.close("dbeta", grads[2], tdb);
        }
    }

    @ParameterizedTest(name = "rms={0}")
    @CsvSource({"false", "true"})
    void backwardMatchesFiniteDifferencesOfTheReference(boolean rms) {
        int rows = 3;
        int cols = 5;
        float eps = 1e-3f;
        Random rnd = new Random(7);
        float[] x = Check.random(rnd, rows * cols);
        float[] g = Check.random(rnd, cols);
        float[] dy = Check.random(rnd, rows * cols);
        LayerNorm ln = rms ? LayerNorm.rmsNorm(eps) : LayerNorm.layerNorm(eps);
        Stream s = Check.device().defaultStream();
        try (Tensor tx = Check.upload(x, rows, cols); Tensor tg = Check.upload(g, cols);
             Tensor tdy = Check.upload(dy, rows, cols);
             LayerNorm.Outputs out = ln.forward(s, tx, tg, null);
             LayerNorm.Gradients grads = ln.backward(s, tdy, tx, tg, out.mean(), out.rstd(), true)) {
            double h = 1e-3;
            double[] fdx = new double[x.length];
            for (int i = 0; i < x.length; i++) {
                float[] xp = x.clone();
                float[] xm = x.clone();
                xp[i] += (float) h;
                xm[i] -= (float) h;
                double lp = dot(dy, reference(xp, g, null, rows, cols, rms, eps)[0]);
                double lm = dot(dy, reference(xm, g, null, rows, cols, rms, eps)[0]);
                fdx[i] = (lp - lm) / ((xp[i] - xm[i]));
            }
            Check.close("dx vs finite differences", fdx, grads.dx().toFloatArray(), 1e-3);
            double[] fdg = new double[cols];
            for (int j = 0; j < cols; j++) {
                float[] gp = g.clone();
                float[] gm = g.clone();
                gp[j] += (float) h;
                gm[j] -= (float) h;
                fdg[j] = (dot(dy, reference(x, gp, null, rows, cols, rms, eps)[0])
                        - dot(dy, reference(x, gm, null, rows, cols, rms, eps)[0])) / (gp[j] - gm[j]);
            }
            Check.close("dgamma vs finite differences", fdg, grads.dgamma().toFloatArray(), 1e-3);
            double[] db = new double[cols];
            for (int i = 0; i < dy.length; i++) {
                db[i % cols] += dy[i];
            }
            Check.close("dbeta", db, grads.dbeta().toFloatArray(), 1e-5);
        }
    }

    @org.junit.jupiter.api.Test
    void rank1And3ShapesKeepLeadingDimensionsForStatistics() {
        Random rnd = new Random(3);
        float[] x = Check.random(rnd, 2 * 3 * 11);
        Stream s = Check.device().defaultStream();
        try (Tensor tx = Check.upload(x, 2, 3, 11); LayerNorm.Outputs out = LayerNorm.layerNorm().forward(s, tx, null, null);
             Tensor t1 = Check.upload(Arrays.copyOf(x, 11), 11); LayerNorm.Outputs out1 = LayerNorm.layerNorm().forward(s, t1, null, null)) {
            assertEquals(Arrays.toString(new int[] {2, 3}), Arrays.toString(out.mean().shape()));
            assertEquals(Arrays.toString(new int[] {1}), Arrays.toString(out1.rstd().shape()));
            Check.close("y", reference(x, null, null, 6, 11, false, LayerNorm.DEFAULT_EPSILON)[0], out.y());
            Check.close("y rank 1", reference(Arrays.copyOf(x, 11), null, null, 1, 11, false,
                    LayerNorm.DEFAULT_EPSILON)[0], out1.y());
        }
    }

    private static double dot(float[] a, double[] b) {
        double s = 0;
        for (int i = 0; i < a.length; i++) {
            s += a[i] * b[i];
        }
        return s;
    }
}
