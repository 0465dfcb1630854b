package org.kernels4j.conformance;

import static org.junit.jupiter.api.Assertions.fail;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.SplittableRandom;
import java.util.function.Function;

import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;
import org.kernels4j.Attention;
import org.kernels4j.Attention.CausalMask;
import org.kernels4j.Conv2d;
import org.kernels4j.Conv2d.Format;
import org.kernels4j.DType;
import org.kernels4j.Device;
import org.kernels4j.LayerNorm;
import org.kernels4j.Stream;
import org.kernels4j.Tensor;
import org.kernels4j.conformance.ConformanceBackend.Target;
import org.kernels4j.spi.Conv2dProblem;

/**
 * Finite-difference checks of every device backward against the same device's forward, in fp32 on small
 * problems: for the loss {@code L = sum(out * g)} with random {@code g}, the backward given {@code dOut = g}
 * must match central differences {@code (L(a + h) - L(a - h)) / 2h} of the device forward.
 *
 * <p>This is independent of the float64 references: it catches a backward that is self-consistent with a
 * wrong forward or vice versa. The tolerance is loose ({@value #TOLERANCE} relative, in norm) because the
 * differences of an fp32 forward carry about {@code 1e-7 |L| / h} of rounding noise and {@code h^2} of
 * truncation error; a wrong gradient term is off by far more. Large inputs are checked on a random sample
 * of {@value #SAMPLES} coordinates.
 */
class GradientCheckConformanceTest {

    /** Central-difference step: a power of two, so that most perturbed fp32 values are exact. */
    static final double STEP = 1.0 / 128;

    /** Allowed error norm of the device gradient relative to the finite-difference gradient's norm. */
    static final double TOLERANCE = 5e-3;

    /** Coordinates checked per input at most. */
    static final int SAMPLES = 24;

    record Case(Target target, String label, Function<Case, Problem> setup) {
        @Override
        public String toString() {
            return target + " " + label;
        }
    }

    /**
     * A differentiable device computation: the inputs by name, the forward output for given inputs, and the
     * device backward's gradient of {@code sum(out * g)} for each input.
     */
    interface Problem {
        Map<String, double[]> inputs();

        double[] forward(Map<String, double[]> inputs);

        Map<String, double[]> backward(double[] g);
    }

    static List<Case> cases() {
        List<Case> out = new ArrayList<>();
        for (Target t : ConformanceBackend.fp32Targets()) {
            out.add(new Case(t, "layernorm x=[3,5] gamma beta",
                    c -> layerNorm(c, LayerNorm.layerNorm(), 3, 5, true, true)));
            out.add(new Case(t, "layernorm x=[4,3]", c -> layerNorm(c, LayerNorm.layerNorm(), 4, 3, false, false)));
            out.add(new Case(t, "rmsnorm x=[2,6] gamma beta",
                    c -> layerNorm(c, LayerNorm.rmsNorm(LayerNorm.DEFAULT_EPSILON), 2, 6, true, true)));
            out.add(new Case(t, "rmsnorm x=[3,7] gamma", c -> layerNorm(c, LayerNorm.rmsNorm(1e-3f), 3, 7, true, false)));
            for (CausalMask m : CausalMask.values()) {
                out.add(new Case(t, "attention B=1 H=2/1 Nq=3 Nk=4 d=32 " + m,
                        c -> attention(c, Attention.of(m), 1, 2, 1, 3, 4, 32)));
            }
            out.add(new Case(t, "attention B=1 H=1/1 Nq=4 Nk=2 d=32 BOTTOM_RIGHT scale=0.2",
                    c -> attention(c, Attention.of(CausalMask.BOTTOM_RIGHT).withScale(0.2f), 1, 1, 1, 4, 2, 32)));
            out.add(new Case(t, "conv NCHW groups=2 stride=2 pad=1,0,2,1 bias",
                    c -> conv(c, Conv2d.builder().stride(2).padding(1, 0, 2, 1).groups(2).build(),
                            new int[] {1, 4, 6, 5}, new int[] {4, 2, 3, 3}, true)));
            out.add(new Case(t, "conv NHWC depthwise dilation=2 pad=2 bias",
                    c -> conv(c, Conv2d.builder().format(Format.NHWC).dilation(2).padding(2).groups(3).build(),
                            new int[] {2, 5, 5, 3}, new int[] {3, 3, 3, 1}, true)));
            out.add(new Case(t, "conv NCHW 1x1 stride=1",
                    c -> conv(c, Conv2d.builder().build(), new int[] {2, 3, 3, 2}, new int[] {2, 3, 1, 1}, false)));
        }
        return out;
    }

    @BeforeAll
    static void backend() {
        ConformanceBackend.assumeAvailable();
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("cases")
    void backwardMatchesFiniteDifferencesOfForward(Case c) {
        Problem problem = c.setup().apply(c);
        SplittableRandom rnd = TestData.random(c.toString() + " g");
        Map<String, double[]> base = problem.inputs();
        double[] out0 = problem.forward(base);
        double[] g = TestData.gaussian(rnd, out0.length, DType.FLOAT32, 0, 1);
        Map<String, double[]> grads = problem.backward(g);
        for (var e : base.entrySet()) {
            String name = e.getKey();
            double[] a = e.getValue();
            double[] analytic = grads.get(name);
            int[] coords = sample(rnd, a.length);
            double[] fd = new double[coords.length];
            double[] dev = new double[coords.length];
            for (int i = 0; i < coords.length; i++) {
                int j = coords[i];
                double keep = a[j];
                double plus = (float) (keep + STEP);
                double minus = (float) (keep - STEP);
                a[j] = plus;
                double lPlus = dot(problem.forward(base), g);
                a[j] = minus;
                double lMinus = dot(problem.forward(base), g);
                a[j] = keep;
                fd[i] = (lPlus - lMinus) / (plus - minus);
                dev[i] = analytic[j];
            }
            compare(c + " d/d" + name, dev, fd, coords);
        }
    }

    private static void compare(String what, double[] dev, double[] fd, int[] coords) {
        double err = 0;
        double norm = 0;
        int worst = 0;
        for (int i = 0; i < fd.length; i++) {
            if (!Double.isFinite(dev[i])) {
                fail(what + ": device gradient at " + coords[i] + " is " + dev[i]);
            }
            double d = dev[i] - fd[i];
            err += d * d;
            norm += fd[i] * fd[i];
            if (Math.abs(d) > Math.abs(dev[worst] - fd[worst])) {
                worst = i;
            }
        }
        err = Math.sqrt(err);
        norm = Math.sqrt(norm);
        double tol = TOLERANCE * norm + 1e-4 * Math.sqrt(fd.length);
        if (!(err <= tol)) {
            fail(String.format(Locale.ROOT, "%s: device backward differs from finite differences of the device "
                            + "forward: error norm %.3e > %.3e (|fd| = %.3e); worst at element %d: backward %.6g, "
                            + "finite difference %.6g", what, err, tol, norm, coords[worst], dev[worst], fd[worst]));
        }
    }

    private static int[] sample(SplittableRandom rnd, int n) {
        if (n <= SAMPLES) {
            int[] all = new int[n];
            for (int i = 0; i < n; i++) {
                all[i] = i;
            }
            return all;
        }
        return rnd.ints(0, n).distinct().limit(SAMPLES).toArray();
    }

    private static double dot(double[] a, double[] b) {
        double s = 0;
        for (int i = 0; i < a.length; i++) {
            s += a[i] * b[i];
        }
        return s;
    }

    // ------------------------------------------------------------------ the three ops as Problems

    private static Problem layerNorm(Case c, LayerNorm op, int rows, int cols, boolean withGamma, boolean withBeta) {
        Device device = c.target().device();
        SplittableRandom rnd = TestData.random(c.toString());
        Map<String, double[]> in = new LinkedHashMap<>();
        in.put("x", TestData.gaussian(rnd, rows * cols, DType.FLOAT32, 0.5, 1));
        if (withGamma) {
            in.put("gamma", TestData.gaussian(rnd, cols, DType.FLOAT32, 1, 0.5));
        }
        if (withBeta) {
            in.put("beta", TestData.gaussian(rnd, cols, DType.FLOAT32, 0, 0.5));
        }
        boolean rms = op.kind() == LayerNorm.Kind.RMS_NORM;
        return new Problem() {
            @Override
            public Map<String, double[]> inputs() {
                return in;
            }

            @Override
            public double[] forward(Map<String, double[]> a) {
                try (Stream s = device.createStream();
                     Tensor x = TestData.upload(device, DType.FLOAT32, a.get("x"), rows, cols);
                     Tensor gamma = optional(device, a.get("gamma"), cols);
                     Tensor beta = optional(device, a.get("beta"), cols);
                     LayerNorm.Outputs o = op.forward(s, x, gamma, beta)) {
                    return TestData.read(o.y());
                }
            }

            @Override
            public Map<String, double[]> backward(double[] g) {
                try (Stream s = device.createStream();
                     Tensor x = TestData.upload(device, DType.FLOAT32, in.get("x"), rows, cols);
                     Tensor gamma = optional(device, in.get("gamma"), cols);
                     Tensor beta = optional(device, in.get("beta"), cols);
                     Tensor dy = TestData.upload(device, DType.FLOAT32, g, rows, cols);
                     LayerNorm.Outputs o = op.forward(s, x, gamma, beta);
                     Tensor dx = TestData.poisoned(device, DType.FLOAT32, rows, cols);
                     Tensor dgamma = withGamma ? TestData.poisoned(device, DType.FLOAT32, cols) : null;
                     Tensor dbeta = withBeta ? TestData.poisoned(device, DType.FLOAT32, cols) : null) {
                    op.backward(s, dy, x, gamma, rms ? null : o.mean(), o.rstd(), dx, dgamma, dbeta);
                    Map<String, double[]> r = new LinkedHashMap<>();
                    r.put("x", TestData.read(dx));
                    if (dgamma != null) {
                        r.put("gamma", TestData.read(dgamma));
                    }
                    if (dbeta != null) {
                        r.put("beta", TestData.read(dbeta));
                    }
                    return r;
                }
            }
        };
    }

    private static Problem attention(Case c, Attention op, int b, int hq, int hkv, int nq, int nk, int d) {
        Device device = c.target().device();
        SplittableRandom rnd = TestData.random(c.toString());
        int[] qShape = {b, hq, nq, d};
        int[] kShape = {b, hkv, nk, d};
        Map<String, double[]> in = new LinkedHashMap<>();
        in.put("q", TestData.gaussian(rnd, TestData.count(qShape), DType.FLOAT32, 0, 1));
        in.put("k", TestData.gaussian(rnd, TestData.count(kShape), DType.FLOAT32, 0, 1));
        in.put("v", TestData.gaussian(rnd, TestData.count(kShape), DType.FLOAT32, 0, 1));
        return new Problem() {
            @Override
            public Map<String, double[]> inputs() {
                return in;
            }

            @Override
            public double[] forward(Map<String, double[]> a) {
                try (Stream s = device.createStream();
                     Tensor q = TestData.upload(device, DType.FLOAT32, a.get("q"), qShape);
                     Tensor k = TestData.upload(device, DType.FLOAT32, a.get("k"), kShape);
                     Tensor v = TestData.upload(device, DType.FLOAT32, a.get("v"), kShape);
                     Tensor o = TestData.poisoned(device, DType.FLOAT32, qShape);
                     Tensor lse = TestData.poisoned(device, DType.FLOAT32, b, hq, nq)) {
                    HeadDims.runOrSkip(d, () -> op.forward(s, q, k, v, o, lse), o, lse);
                    return TestData.read(o);
                }
            }

            @Override
            public Map<String, double[]> backward(double[] g) {
                try (Stream s = device.createStream();
                     Tensor q = TestData.upload(device, DType.FLOAT32, in.get("q"), qShape);
                     Tensor k = TestData.upload(device, DType.FLOAT32, in.get("k"), kShape);
                     Tensor v = TestData.upload(device, DType.FLOAT32, in.get("v"), kShape);
                     Tensor dO = TestData.upload(device, DType.FLOAT32, g, qShape);
                     Attention.Outputs o = op.forward(s, q, k, v);
                     Attention.Gradients gr = op.backward(s, q, k, v, o.o(), o.lse(), dO)) {
                    return Map.of("q", TestData.read(gr.dq()), "k", TestData.read(gr.dk()), "v", TestData.read(gr.dv()));
                }
            }
        };
    }

    private static Problem conv(Case c, Conv2d op, int[] xShape, int[] wShape, boolean withBias) {
        Device device = c.target().device();
        Conv2dProblem p = op.problem(xShape, wShape, DType.FLOAT32);
        SplittableRandom rnd = TestData.random(c.toString());
        Map<String, double[]> in = new LinkedHashMap<>();
        in.put("x", TestData.gaussian(rnd, TestData.count(xShape), DType.FLOAT32, 0, 1));
        in.put("w", TestData.gaussian(rnd, TestData.count(wShape), DType.FLOAT32, 0, 1));
        if (withBias) {
            in.put("bias", TestData.gaussian(rnd, p.k(), DType.FLOAT32, 0, 1));
        }
        return new Problem() {
            @Override
            public Map<String, double[]> inputs() {
                return in;
            }

            @Override
            public double[] forward(Map<String, double[]> a) {
                try (Stream s = device.createStream();
                     Tensor x = TestData.upload(device, DType.FLOAT32, a.get("x"), xShape);
                     Tensor w = TestData.upload(device, DType.FLOAT32, a.get("w"), wShape);
                     Tensor bias = optional(device, a.get("bias"), p.k());
                     Tensor y = TestData.poisoned(device, DType.FLOAT32, p.yShape())) {
                    op.forward(s, x, w, bias, y);
                    return TestData.read(y);
                }
            }

            @Override
            public Map<String, double[]> backward(double[] g) {
                try (Stream s = device.createStream();
                     Tensor x = TestData.upload(device, DType.FLOAT32, in.get("x"), xShape);
                     Tensor w = TestData.upload(device, DType.FLOAT32, in.get("w"), wShape);
                     Tensor dy = TestData.upload(device, DType.FLOAT32, g, p.yShape());
                     Conv2d.Gradients gr = op.backward(s, dy, x, w, withBias)) {
                    Map<String, double[]> r = new LinkedHashMap<>();
                    r.put("x", TestData.read(gr.dx()));
                    r.put("w", TestData.read(gr.dw()));
                    if (withBias) {
                        r.put("bias", TestData.read(gr.db()));
                    }
                    return r;
                }
            }
        };
    }

    private static Tensor optional(Device device, double[] values, int n) {
        return values == null ? null : TestData.upload(device, DType.FLOAT32, values, n);
    }
}
