package org.kernels4j.conformance;

import java.util.SplittableRandom;

import org.kernels4j.DType;
import org.kernels4j.Device;
import org.kernels4j.Tensor;
import org.kernels4j.spi.HalfFloats;

/**
 * Random inputs, uploads and poisoned outputs for the conformance cases.
 *
 * <p>Inputs are drawn in float64 and rounded to the tensor's dtype before anything else sees them, so the
 * references compute the exact answer for the values the device actually holds: what remains is the
 * device's own arithmetic and output rounding. Seeds derive from the case's name and the system property
 * {@value #SEED_PROPERTY} (default 0), so a failing case reruns identically and another seed explores new
 * data.
 */
public final class TestData {

    /** System property that changes every case's random data. */
    public static final String SEED_PROPERTY = "kernels4j.conformance.seed";

    private TestData() {
    }

    /** A generator for the case named {@code caseName}; the same name and seed property give the same data. */
    public static SplittableRandom random(String caseName) {
        long base = Long.getLong(SEED_PROPERTY, 0L);
        return new SplittableRandom(base * 0x9E3779B97F4A7C15L ^ caseName.hashCode() * 0xC2B2AE3D27D4EB4FL);
    }

    /** {@code n} values from N(mean, std^2), each rounded to {@code dtype}. */
    public static double[] gaussian(SplittableRandom rnd, int n, DType dtype, double mean, double std) {
        double[] a = new double[n];
        for (int i = 0; i < n; i++) {
            a[i] = round(dtype, mean + std * rnd.nextGaussian());
        }
        return a;
    }

    /** {@code v} rounded to the precision of {@code dtype}. */
    public static double round(DType dtype, double v) {
        return HalfFloats.round(dtype, (float) v);
    }

    /** Each value rounded to {@code dtype}. */
    public static double[] round(DType dtype, double[] a) {
        double[] r = new double[a.length];
        for (int i = 0; i < a.length; i++) {
            r[i] = round(dtype, a[i]);
        }
        return r;
    }

    /** The values as floats (exact for values already rounded to a dtype). */
    public static float[] toFloats(double[] a) {
        float[] f = new float[a.length];
        for (int i = 0; i < a.length; i++) {
            f[i] = (float) a[i];
        }
        return f;
    }

    /** The values as doubles. */
    public static double[] toDoubles(float[] a) {
        double[] d = new double[a.length];
        for (int i = 0; i < a.length; i++) {
            d[i] = a[i];
        }
        return d;
    }

    /** Uploads {@code values} (already representable in {@code dtype}) as a new tensor. */
    public static Tensor upload(Device device, DType dtype, double[] values, int... shape) {
        return device.upload(dtype, toFloats(values), shape);
    }

    /** A new tensor filled with NaN, so that an element the op does not write fails the comparison. */
    public static Tensor poisoned(Device device, DType dtype, int... shape) {
        Tensor t = device.allocate(dtype, shape);
        t.fill(Float.NaN);
        return t;
    }

    /** The tensor's contents as doubles (waits for the device's queued work, as every host transfer does). */
    public static double[] read(Tensor t) {
        return toDoubles(t.toFloatArray());
    }

    /** Product of the dimensions as an int (conformance problems are small). */
    public static int count(int... shape) {
        long n = 1;
        for (int d : shape) {
            n *= d;
        }
        return Math.toIntExact(n);
    }
}
