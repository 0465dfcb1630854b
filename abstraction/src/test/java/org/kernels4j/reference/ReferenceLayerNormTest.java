package org.kernels4j.reference;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.SplittableRandom;

import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.junit.jupiter.api.Test;
import org.kernels4j.DType;
import org.kernels4j.LayerNorm;
import org.kernels4j.spi.LayerNormProblem;

class ReferenceLayerNormTest {

    private static LayerNormProblem problem(String kind, int rows, int cols, float eps) {
        return new LayerNormProblem(LayerNorm.Kind.valueOf(kind), eps, rows, cols, DType.FLOAT32);
    }

    @ParameterizedTest
    @CsvSource({"LAYER_NORM,3,5,true,true", "LAYER_NORM,2,1,true,false", "LAYER_NORM,4,7,false,false",
            "RMS_NORM,3,6,true,true", "RMS_NORM,2,1,false,true", "RMS_NORM,1,9,true,false"})
    void backwardIsTheGradientOfForward(String kind, int rows, int cols, boolean withGamma, boolean withBeta) {
        LayerNormProblem p = problem(kind, rows, cols, 1e-3f);
        SplittableRandom rnd = new SplittableRandom(rows * 31 + cols);
        double[] x = FiniteDifferences.gaussian(rnd, rows * cols);
        double[] gamma = withGamma ? FiniteDifferences.gaussian(rnd, cols) : null;
        double[] beta = withBeta ? FiniteDifferences.gaussian(rnd, cols) : null;
        double[] g = FiniteDifferences.gaussian(rnd, rows * cols);
        ReferenceLayerNorm.Backward b = ReferenceLayerNorm.backward(p, g, x, gamma);
        FiniteDifferences.check(kind + " dx", x, b.dx(), g, () -> ReferenceLayerNorm.forward(p, x, gamma, beta).y());
        double[] ones = gamma != null ? gamma : filled(cols, 1);
        FiniteDifferences.check(kind + " dgamma", ones, b.dgamma(), g,
                () -> ReferenceLayerNorm.forward(p, x, ones, beta).y());
        double[] zeros = beta != null ? beta : filled(cols, 0);
        FiniteDifferences.check(kind + " dbeta", zeros, b.dbeta(), g,
                () -> ReferenceLayerNorm.forward(p, x, gamma, zeros).y());
    }

    private static double[] filled(int n, double v) {
        double[] a = new double[n];
        java.util.Arrays.fill(a, v);
        return a;
    }

    /** Independent of how the reference computes it: normalised rows have mean 0 and mean square var/(var+eps). */
    @Test
    void normalisedRowsHaveTheExpectedMoments() {
        SplittableRandom rnd = new SplittableRandom(1);
        int rows = 4;
        int cols = 50;
        float eps = 0.1f;
        double[] x = FiniteDifferences.gaussian(rnd, rows * cols);
        for (int i = 0; i < x.length; i++) {
            x[i] = 3 + 2 * x[i];
        }
        var ln = ReferenceLayerNorm.forward(problem("LAYER_NORM", rows, cols, eps), x, null, null);
        var rms = ReferenceLayerNorm.forward(problem("RMS_NORM", rows, cols, eps), x, null, null);
        assertNull(rms.mean());
        for (int r = 0; r < rows; r++) {
            double sum = 0;
            double sq = 0;
            for (int c = 0; c < cols; c++) {
                sum += x[r * cols + c];
                sq += x[r * cols + c] * x[r * cols + c];
            }
            double mean = sum / cols;
            double var = sq / cols - mean * mean;
            double ms = sq / cols;
            assertEquals(mean, ln.mean()[r], 1e-12);
            assertEquals(1 / Math.sqrt(var + eps), ln.rstd()[r], 1e-9);
            assertEquals(1 / Math.sqrt(ms + (double) eps), rms.rstd()[r], 1e-12);
            double ym = 0;
            double ysq = 0;
            double rsq = 0;
            for (int c = 0; c < cols; c++) {
                ym += ln.y()[r * cols + c];
                ysq += ln.y()[r * cols + c] * ln.y()[r * cols + c];
                rsq += rms.y()[r * cols + c] * rms.y()[r * cols + c];
            }
            assertEquals(0, ym / cols, 1e-12);
            assertEquals(var / (var + eps), ysq / cols, 1e-9);
            assertEquals(ms / (ms + eps), rsq / cols, 1e-9);
        }
    }

    @Test
    void affineParametersScaleAndShift() {
        SplittableRandom rnd = new SplittableRandom(2);
        LayerNormProblem p = problem("LAYER_NORM", 3, 4, 1e-5f);
        double[] x = FiniteDifferences.gaussian(rnd, 12);
        double[] gamma = FiniteDifferences.gaussian(rnd, 4);
        double[] beta = FiniteDifferences.gaussian(rnd, 4);
        double[] plain = ReferenceLayerNorm.forward(p, x, null, null).y();
        double[] affine = ReferenceLayerNorm.forward(p, x, gamma, beta).y();
        for (int i = 0; i < 12; i++) {
            assertEquals(plain[i] * gamma[i % 4] + beta[i % 4], affine[i], 1e-12);
        }
    }

    @Test
    void zeroRowsGiveEmptyOutputsAndZeroParameterGradients() {
        LayerNormProblem p = problem("LAYER_NORM", 0, 3, 1e-5f);
        var f = ReferenceLayerNorm.forward(p, new double[0], null, null);
        assertEquals(0, f.y().length);
        var b = ReferenceLayerNorm.backward(p, new double[0], new double[0], new double[] {1, 2, 3});
        assertEquals(3, b.dgamma().length);
        assertEquals(0.0, b.dgamma()[2]);
        assertEquals(0.0, b.dbeta()[0]);
    }

    @Test
    void wrongLengthsNameTheArgument() {
        LayerNormProblem p = problem("LAYER_NORM", 2, 3, 1e-5f);
        assertTrue(assertThrows(IllegalArgumentException.class,
                () -> ReferenceLayerNorm.forward(p, new double[5], null, null)).getMessage().startsWith("x:"));
        assertTrue(assertThrows(IllegalArgumentException.class,
                () -> ReferenceLayerNorm.forward(p, new double[6], new double[2], null)).getMessage().startsWith("gamma:"));
        assertTrue(assertThrows(IllegalArgumentException.class,
                () -> ReferenceLayerNorm.backward(p, null, new double[6], null)).getMessage().startsWith("dy:"));
        assertTrue(assertThrows(IllegalArgumentException.class,
                () -> ReferenceLayerNorm.forward(null, new double[6], null, null)).getMessage().startsWith("p:"));
    }
}
