package org.kernels4j.opencl;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.concurrent.TimeUnit;

import org.kernels4j.Backends;
import org.kernels4j.DType;
import org.kernels4j.Device;
import org.kernels4j.Tensor;
import org.kernels4j.spi.HalfFloats;

/** Shared pieces of this module's tests: the PoCL device, random data, poisoning and error measures. */
final class TestSupport {

    /** What an output holds before an op runs, so that elements the op never writes fail the comparison. */
    static final float POISON = Float.NaN;

    private TestSupport() {
    }

    /** The first OpenCL device (PoCL's CPU device on the development machine and in CI). */
    static Device device() {
        return Backends.require("opencl").defaultDevice();
    }

    /**
     * Runs {@code main} in a fresh JVM on this test's class path, with {@code jvmOptions} and {@code environment}
     * added; asserts that it ends within {@code seconds} ({@code what} says why it must) with exit code 0, and returns
     * its output (stdout and stderr).
     */
    static String runInFreshJvm(Class<?> main, List<String> jvmOptions, Map<String, String> environment, int seconds,
                                String what) throws IOException, InterruptedException {
        List<String> command = new ArrayList<>();
        command.add(Path.of(System.getProperty("java.home"), "bin", "java").toString());
        command.addAll(jvmOptions);
        command.addAll(List.of("-cp", System.getProperty("java.class.path"), main.getName()));
        ProcessBuilder pb = new ProcessBuilder(command);
        pb.environment().putAll(environment);
        pb.redirectErrorStream(true);
        Process proc = pb.start();
        assertTrue(proc.waitFor(seconds, TimeUnit.SECONDS), what);
        String out = new String(proc.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        assertEquals(0, proc.exitValue(), out);
        return out;
    }

    static float[] random(Random r, int n) {
        float[] a = new float[n];
        for (int i = 0; i < n; i++) {
            a[i] = (float) r.nextGaussian();
        }
        return a;
    }

    /** The values as the device stores them in {@code dtype}, widened to double for the reference. */
    static double[] widen(float[] a, DType dtype) {
        double[] d = new double[a.length];
        for (int i = 0; i < a.length; i++) {
            d[i] = HalfFloats.round(dtype, a[i]);
        }
        return d;
    }

    static Tensor upload(Device d, DType dtype, float[] data, int... shape) {
        return d.upload(dtype, data, shape);
    }

    static Tensor poisoned(Device d, DType dtype, int... shape) {
        Tensor t = d.allocate(dtype, shape);
        t.fill(POISON);
        return t;
    }

    /**
     * ||actual - expected||_2 / max(||expected||_2, 0.01 * sqrt(n)): relative to the reference's norm, with a
     * floor for outputs that are nearly all zero (where float32 rounding of cancelling terms dominates).
     * A NaN, or an infinity the reference does not have, gives +inf.
     */
    static double relativeError(float[] actual, double[] expected) {
        assertEquals(expected.length, actual.length, "length");
        double diff = 0;
        double norm = 0;
        for (int i = 0; i < actual.length; i++) {
            if (!Double.isFinite(actual[i]) && actual[i] != expected[i]) {
                return Double.POSITIVE_INFINITY;
            }
            double e = expected[i];
            double dd = Double.isInfinite(e) && actual[i] == e ? 0 : actual[i] - e;
            diff += dd * dd;
            norm += Double.isFinite(e) ? e * e : 0;
        }
        return Math.sqrt(diff / Math.max(norm, 1e-4 * actual.length));
    }

    static void assertClose(String what, Tensor actual, double[] expected, double tolerance) {
        float[] a = actual.toFloatArray();
        double err = relativeError(a, expected);
        assertTrue(err <= tolerance, () -> what + ": relative error " + err + " exceeds " + tolerance
                + firstMismatch(a, expected));
    }

    private static String firstMismatch(float[] a, double[] e) {
        int worst = 0;
        double w = -1;
        for (int i = 0; i < a.length; i++) {
            double d = Double.isNaN(a[i]) ? Double.POSITIVE_INFINITY : Math.abs(a[i] - e[i]);
            if (d > w) {
                w = d;
                worst = i;
            }
        }
        return a.length == 0 ? "" : " (worst at " + worst + ": got " + a[worst] + ", expected " + e[worst] + ")";
    }

    static double[] toDouble(float[] a) {
        double[] d = new double[a.length];
        for (int i = 0; i < a.length; i++) {
            d[i] = a[i];
        }
        return d;
    }
}
