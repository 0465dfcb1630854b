package org.kernels4j.conformance;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.SplittableRandom;

import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;
import org.kernels4j.DType;
import org.kernels4j.LayerNorm;
import org.kernels4j.Stream;
import org.kernels4j.Tensor;
import org.kernels4j.conformance.ConformanceBackend.Target;
import org.kernels4j.reference.ReferenceLayerNorm;
import org.kernels4j.spi.LayerNormProblem;

/**
 * Layer norm and RMS norm, forward and backward, against {@link ReferenceLayerNorm} on every device and
 * dtype: normalised lengths 1, primes and non-multiples of any tile up to 4097, rank 1 to 3, with and
 * without gamma/beta, rows = 0, a large mean offset (variance cancellation), two epsilons.
 */
class LayerNormConformanceTest {

    /** The normalised lengths every backend must handle, from the list. */
    static final int[] LENGTHS = {1, 3, 7, 31, 64, 127, 1000, 1024, 4097};

    record Case(Target target, LayerNorm.Kind kind, int[] xShape, boolean gamma, boolean beta, float eps,
                double offset) {
        LayerNorm op() {
            return kind == LayerNorm.Kind.LAYER_NORM ? LayerNorm.layerNorm(eps) : LayerNorm.rmsNorm(eps);
        }

        LayerNormProblem problem() {
            int cols = xShape[xShape.length - 1];
            return new LayerNormProblem(kind, eps, TestData.count(xShape) / cols, cols, target.dtype());
        }

        int[] statsShape() {
            return xShape.length == 1 ? new int[] {1} : Arrays.copyOf(xShape, xShape.length - 1);
        }

        @Override
        public String toString() {
            return target + " " + (kind == LayerNorm.Kind.LAYER_NORM ? "layernorm" : "rmsnorm") + " x="
                    + Arrays.toString(xShape) + (gamma ? " gamma" : "") + (beta ? " beta" : "") + " eps=" + eps
                    + (offset != 0 ? " offset=" + offset : "");
        }
    }

    static List<Case> cases() {
        List<Case> out = new ArrayList<>();
        for (Target t : ConformanceBackend.targets()) {
            for (LayerNorm.Kind kind : LayerNorm.Kind.values()) {
                for (int d : LENGTHS) {
                    // Enough rows to cross any row tiling, fewer for long rows to keep the suite quick.
                    int rows = d <= 31 ? 17 : d <= 127 ? 5 : 3;
                    out.add(new Case(t, kind, new int[] {rows, d}, true, true, LayerNorm.DEFAULT_EPSILON, 0));
                }
                out.add(new Case(t, kind, new int[] {37}, true, true, LayerNorm.DEFAULT_EPSILON, 0));
                out.add(new Case(t, kind, new int[] {2, 3, 129}, false, false, LayerNorm.DEFAULT_EPSILON, 0));
                out.add(new Case(t, kind, new int[] {5, 33}, true, false, 1e-2f, 0));
                out.add(new Case(t, kind, new int[] {4, 65}, false, true, LayerNorm.DEFAULT_EPSILON, 0));
                out.add(new Case(t, kind, new int[] {0, 7}, true, true, LayerNorm.DEFAULT_EPSILON, 0));
                out.add(new Case(t, kind, new int[] {3, 513}, true, true, LayerNorm.DEFAULT_EPSILON, 8.0));
            }
            // Random shapes: fixed by default, new ones with another kernels4j.conformance.seed.
            SplittableRandom shapes = TestData.random("layernorm shapes " + t);
            for (int i = 0; i < RANDOM_CASES; i++) {
                int d = shapes.nextInt(1, 2049);
                int[] shape = switch (shapes.nextInt(3)) {
                    case 0 -> new int[] {d};
                    case 1 -> new int[] {shapes.nextInt(0, 10), d};
                    default -> new int[] {shapes.nextInt(1, 4), shapes.nextInt(1, 5), d};
                };
                out.add(new Case(t, shapes.nextBoolean() ? LayerNorm.Kind.LAYER_NORM : LayerNorm.Kind.RMS_NORM, shape,
                        shapes.nextBoolean(), shapes.nextBoolean(), LayerNorm.DEFAULT_EPSILON,
                        shapes.nextBoolean() ? 0 : 2.0));
            }
        }
        return out;
    }

    /** Random cases per device and dtype, on top of the fixed list. */
    static final int RANDOM_CASES = 4;

    /** A quarter of the cases, for the allocating variants (same code paths after allocation). */
    static List<Case> someCases() {
        List<Case> all = cases();
        List<Case> out = new ArrayList<>();
        for (int i = 0; i < all.size(); i += 4) {
            out.add(all.get(i));
        }
        return out;
    }

    @BeforeAll
    static void backend() {
        ConformanceBackend.assumeAvailable();
    }

    private record Inputs(double[] x, double[] gamma, double[] beta, double[] dy) {
    }

    private static Inputs inputs(Case c) {
        SplittableRandom rnd = TestData.random(c.toString());
        DType t = c.target().dtype();
        LayerNormProblem p = c.problem();
        int n = p.rows() * p.cols();
        return new Inputs(
                TestData.gaussian(rnd, n, t, c.offset(), 1.0),
                c.gamma() ? TestData.gaussian(rnd, p.cols(), t, 1.0, 0.5) : null,
                c.beta() ? TestData.gaussian(rnd, p.cols(), t, 0.0, 0.5) : null,
                TestData.gaussian(rnd, n, t, 0.0, 1.0));
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("cases")
    void forward(Case c) {
        var device = c.target().device();
        DType t = c.target().dtype();
        LayerNormProblem p = c.problem();
        Inputs in = inputs(c);
        ReferenceLayerNorm.Forward ref = ReferenceLayerNorm.forward(p, in.x(), in.gamma(), in.beta());
        ReferenceLayerNorm.Forward plain = t == DType.FLOAT32 ? null
                : PlainLowPrecision.layerNormForward(t, p, in.x(), in.gamma(), in.beta());
        boolean rms = p.rms();
        try (Stream stream = device.createStream();
             Tensor x = TestData.upload(device, t, in.x(), c.xShape());
             Tensor gamma = in.gamma() == null ? null : TestData.upload(device, t, in.gamma(), p.cols());
             Tensor beta = in.beta() == null ? null : TestData.upload(device, t, in.beta(), p.cols());
             Tensor y = TestData.poisoned(device, t, c.xShape());
             Tensor mean = rms ? null : TestData.poisoned(device, DType.FLOAT32, c.statsShape());
             Tensor rstd = TestData.poisoned(device, DType.FLOAT32, c.statsShape())) {
            c.op().forward(stream, x, gamma, beta, y, mean, rstd);
            Accuracy.assertClose(c + ": y", t, TestData.read(y), ref.y(), plain == null ? null : plain.y());
            if (!rms) {
                Accuracy.assertClose(c + ": mean", t, TestData.read(mean), ref.mean(), plain == null ? null : plain.mean());
            }
            Accuracy.assertClose(c + ": rstd", t, TestData.read(rstd), ref.rstd(), plain == null ? null : plain.rstd());
        }
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("cases")
    void backward(Case c) {
        var device = c.target().device();
        DType t = c.target().dtype();
        LayerNormProblem p = c.problem();
        Inputs in = inputs(c);
        // The saved statistics come from the float64 forward, rounded to their fp32 storage, so that this
        // test judges the backward kernel alone.
        ReferenceLayerNorm.Forward saved = ReferenceLayerNorm.forward(p, in.x(), in.gamma(), in.beta());
        ReferenceLayerNorm.Backward ref = ReferenceLayerNorm.backward(p, in.dy(), in.x(), in.gamma());
        ReferenceLayerNorm.Backward plain = t == DType.FLOAT32 ? null
                : PlainLowPrecision.layerNormBackward(t, p, in.dy(), in.x(), in.gamma());
        boolean rms = p.rms();
        try (Stream stream = device.createStream();
             Tensor dy = TestData.upload(device, t, in.dy(), c.xShape());
             Tensor x = TestData.upload(device, t, in.x(), c.xShape());
             Tensor gamma = in.gamma() == null ? null : TestData.upload(device, t, in.gamma(), p.cols());
             Tensor mean = rms ? null : TestData.upload(device, DType.FLOAT32,
                     TestData.round(DType.FLOAT32, saved.mean()), c.statsShape());
             Tensor rstd = TestData.upload(device, DType.FLOAT32, TestData.round(DType.FLOAT32, saved.rstd()),
                     c.statsShape());
             Tensor dx = TestData.poisoned(device, t, c.xShape());
             Tensor dgamma = c.gamma() ? TestData.poisoned(device, t, p.cols()) : null;
             Tensor dbeta = c.beta() ? TestData.poisoned(device, t, p.cols()) : null) {
            c.op().backward(stream, dy, x, gamma, mean, rstd, dx, dgamma, dbeta);
            Accuracy.assertClose(c + ": dx", t, TestData.read(dx), ref.dx(), plain == null ? null : plain.dx());
            if (dgamma != null) {
                Accuracy.assertClose(c + ": dgamma", t, TestData.read(dgamma), ref.dgamma(),
                        plain == null ? null : plain.dgamma());
            }
            if (dbeta != null) {
                Accuracy.assertClose(c + ": dbeta", t, TestData.read(dbeta), ref.dbeta(),
                        plain == null ? null : plain.dbeta());
            }
        }
    }

    /** The allocating forward and backward give the same accuracy as the out-parameter ones. */
    @ParameterizedTest(name = "{0}")
    @MethodSource("someCases")
    void allocatingVariants(Case c) {
        var device = c.target().device();
        DType t = c.target().dtype();
        LayerNormProblem p = c.problem();
        Inputs in = inputs(c);
        ReferenceLayerNorm.Forward ref = ReferenceLayerNorm.forward(p, in.x(), in.gamma(), in.beta());
        ReferenceLayerNorm.Backward refB = ReferenceLayerNorm.backward(p, in.dy(), in.x(), in.gamma());
        ReferenceLayerNorm.Forward plain = t == DType.FLOAT32 ? null
                : PlainLowPrecision.layerNormForward(t, p, in.x(), in.gamma(), in.beta());
        ReferenceLayerNorm.Backward plainB = t == DType.FLOAT32 ? null
                : PlainLowPrecision.layerNormBackward(t, p, in.dy(), in.x(), in.gamma());
        try (Stream stream = device.createStream();
             Tensor x = TestData.upload(device, t, in.x(), c.xShape());
             Tensor gamma = in.gamma() == null ? null : TestData.upload(device, t, in.gamma(), p.cols());
             Tensor beta = in.beta() == null ? null : TestData.upload(device, t, in.beta(), p.cols());
             Tensor dy = TestData.upload(device, t, in.dy(), c.xShape());
             LayerNorm.Outputs o = c.op().forward(stream, x, gamma, beta);
             LayerNorm.Gradients g = c.op().backward(stream, dy, x, gamma, o.mean(), o.rstd(), true)) {
            Accuracy.assertClose(c + ": y", t, TestData.read(o.y()), ref.y(), plain == null ? null : plain.y());
            Accuracy.assertClose(c + ": rstd", t, TestData.read(o.rstd()), ref.rstd(), plain == null ? null : plain.rstd());
            Accuracy.assertClose(c + ": dx", t, TestData.read(g.dx()), refB.dx(), plainB == null ? null : plainB.dx());
            Accuracy.assertClose(c + ": dbeta", t, TestData.read(g.dbeta()), refB.dbeta(),
                    plainB == null ? null : plainB.dbeta());
            if (g.dgamma() != null) {
                Accuracy.assertClose(c + ": dgamma", t, TestData.read(g.dgamma()), refB.dgamma(),
                        plainB == null ? null : plainB.dgamma());
            }
        }
    }
}
