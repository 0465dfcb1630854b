package org.kernels4j.cpu;

import static org.junit.jupiter.api.Assertions.fail;

import java.util.Random;

import org.kernels4j.Backends;
import org.kernels4j.DType;
import org.kernels4j.Device;
import org.kernels4j.Tensor;

/** Shared test helpers: random data, poisoned outputs and error norms against float64 references. */
final class Check {

    /** Relative error allowed for fp32 results against a float64 reference, relative to the reference's norm. */
    static final double TOLERANCE = 2e-5;

    private Check() {
    }

    static Device device() {
        return Backends.require("cpu").defaultDevice();
    }

    static float[] random(Random rnd, int n) {
        float[] a = new float[n];
        for (int i = 0; i < n; i++) {
            a[i] = (float) rnd.nextGaussian();
        }
        return a;
    }

    static Tensor upload(float[] data, int... shape) {
        return device().upload(DType.FLOAT32, data, shape);
    }

    /** A tensor full of NaN, so any element a kernel fails to write is caught. */
    static Tensor poisoned(int... shape) {
        Tensor t = device().allocate(DType.FLOAT32, shape);
        t.fill(Float.NaN);
        return t;
    }

    /** Fails unless ‖actual − expected‖∞ ≤ tol·max(1, ‖expected‖∞) and every element is finite where expected is. */
    static void close(String what, double[] expected, float[] actual, double tol) {
        if (expected.length != actual.length) {
            fail(what + ": length " + actual.length + ", expected " + expected.length);
        }
        double norm = 1;
        for (double e : expected) {
            if (Double.isFinite(e)) {
                norm = Math.max(norm, Math.abs(e));
            }
        }
        double worst = 0;
        int at = -1;
        for (int i = 0; i < expected.length; i++) {
            double e = expected[i];
            double a = actual[i];
            double err;
            if (Double.isInfinite(e)) {
                err = a == e ? 0 : Double.POSITIVE_INFINITY;
            } else {
                err = Double.isNaN(a) ? Double.POSITIVE_INFINITY : Math.abs(a - e) / norm;
            }
            if (err > worst || Double.isNaN(err)) {
                worst = err;
                at = i;
            }
        }
        if (!(worst <= tol)) {
            fail(what + ": error " + worst + " (relative to norm " + norm + ") at index " + at + ": got "
                    + actual[at] + ", expected " + expected[at]);
        }
    }

    static void close(String what, double[] expected, Tensor actual) {
        close(what, expected, actual.toFloatArray(), TOLERANCE);
    }
}
