package org.kernels4j.reference;

import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.SplittableRandom;
import java.util.function.Supplier;

/**
 * Central differences in float64 for checking the references' backward passes against their forward
 * passes: for the loss {@code L = sum(out * g)}, {@code dL/da[i] ~ (L(a + h) - L(a - h)) / 2h}. With
 * {@code h = 1e-5} the truncation error is ~1e-10 and the rounding noise ~1e-11 relative, so a tolerance of
 * 1e-7 is tight.
 */
final class FiniteDifferences {

    static final double STEP = 1e-5;
    static final double TOLERANCE = 1e-7;

    private FiniteDifferences() {
    }

    static double[] gaussian(SplittableRandom rnd, int n) {
        double[] a = new double[n];
        for (int i = 0; i < n; i++) {
            a[i] = rnd.nextGaussian();
        }
        return a;
    }

    static double dot(double[] a, double[] b) {
        double s = 0;
        for (int i = 0; i < a.length; i++) {
            s += a[i] * b[i];
        }
        return s;
    }

    /**
     * Asserts that {@code analytic} is the gradient of {@code sum(forward() * g)} with respect to {@code a},
     * which {@code forward} reads (it is perturbed in place and restored).
     */
    static void check(String what, double[] a, double[] analytic, double[] g, Supplier<double[]> forward) {
        double err = 0;
        double norm = 0;
        for (int i = 0; i < a.length; i++) {
            double keep = a[i];
            a[i] = keep + STEP;
            double plus = dot(forward.get(), g);
            a[i] = keep - STEP;
            double minus = dot(forward.get(), g);
            a[i] = keep;
            double fd = (plus - minus) / (2 * STEP);
            err += (analytic[i] - fd) * (analytic[i] - fd);
            norm += fd * fd;
        }
        err = Math.sqrt(err);
        norm = Math.sqrt(norm);
        assertTrue(err <= TOLERANCE * norm + 1e-9 * Math.sqrt(a.length),
                what + ": backward differs from central differences of forward: error " + err + ", |fd| " + norm);
    }
}
