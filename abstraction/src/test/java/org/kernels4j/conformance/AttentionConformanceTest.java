package org.kernels4j.conformance;

import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;

import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;
import org.kernels4j.Attention;
import org.kernels4j.Attention.CausalMask;
import org.kernels4j.DType;
import org.kernels4j.Device;
import org.kernels4j.Stream;
import org.kernels4j.Tensor;
import org.kernels4j.conformance.ConformanceBackend.Target;
import org.kernels4j.reference.ReferenceAttention;
import org.kernels4j.spi.AttentionProblem;

/**
 * Scaled dot-product attention, forward (O and lse) and backward (dQ, dK, dV), against
 * {@link ReferenceAttention} on every device and dtype: sequence lengths 1, 2, 17, 63, 64, 65, 130 with
 * Nq != Nk, head dims 1 to 128 (GPU backends may decline those outside 32..256, see {@link HeadDims}), all
 * three masks including rows that see no key, grouped- and multi-query heads, an explicit scale, and
 * empty batch, query and key dimensions.
 */
class AttentionConformanceTest {

    record Case(Target target, int batch, int heads, int kvHeads, int nq, int nk, int d, CausalMask mask,
                Float scale) {
        Attention op() {
            Attention a = Attention.of(mask);
            return scale == null ? a : a.withScale(scale);
        }

        AttentionProblem problem() {
            return new AttentionProblem(batch, heads, kvHeads, nq, nk, d, op().scaleFor(d), mask, target.dtype());
        }

        int[] qShape() {
            return new int[] {batch, heads, nq, d};
        }

        int[] kShape() {
            return new int[] {batch, kvHeads, nk, d};
        }

        int[] lseShape() {
            return new int[] {batch, heads, nq};
        }

        @Override
        public String toString() {
            return target + " B=" + batch + " H=" + heads + "/" + kvHeads + " Nq=" + nq + " Nk=" + nk + " d=" + d
                    + " " + mask + (scale == null ? "" : " scale=" + scale);
        }
    }

    static List<Case> cases() {
        List<Case> out = new ArrayList<>();
        for (Target t : ConformanceBackend.targets()) {
            out.add(new Case(t, 1, 1, 1, 1, 1, 1, CausalMask.NONE, null));
            out.add(new Case(t, 1, 2, 2, 2, 17, 8, CausalMask.NONE, null));
            out.add(new Case(t, 2, 2, 1, 17, 63, 16, CausalMask.TOP_LEFT, null));
            out.add(new Case(t, 1, 4, 2, 63, 17, 32, CausalMask.BOTTOM_RIGHT, null));
            out.add(new Case(t, 1, 3, 3, 64, 65, 40, CausalMask.NONE, null));
            out.add(new Case(t, 1, 2, 1, 65, 64, 64, CausalMask.TOP_LEFT, null));
            out.add(new Case(t, 1, 1, 1, 130, 63, 80, CausalMask.BOTTOM_RIGHT, null));
            out.add(new Case(t, 1, 1, 1, 17, 130, 128, CausalMask.TOP_LEFT, null));
            out.add(new Case(t, 1, 2, 2, 65, 65, 32, CausalMask.BOTTOM_RIGHT, null));
            out.add(new Case(t, 2, 2, 2, 2, 1, 64, CausalMask.NONE, null));
            out.add(new Case(t, 1, 8, 2, 63, 64, 128, CausalMask.NONE, null));
            out.add(new Case(t, 1, 2, 1, 1, 130, 64, CausalMask.BOTTOM_RIGHT, null));
            out.add(new Case(t, 1, 2, 1, 130, 1, 32, CausalMask.TOP_LEFT, null));
            out.add(new Case(t, 2, 2, 2, 7, 9, 1, CausalMask.BOTTOM_RIGHT, null));
            out.add(new Case(t, 1, 1, 1, 17, 33, 256, CausalMask.TOP_LEFT, null));
            out.add(new Case(t, 1, 2, 2, 17, 17, 64, CausalMask.NONE, 0.3f));
            out.add(new Case(t, 1, 2, 1, 5, 0, 32, CausalMask.NONE, null));
            out.add(new Case(t, 1, 2, 2, 5, 0, 32, CausalMask.BOTTOM_RIGHT, null));
            out.add(new Case(t, 1, 2, 2, 0, 7, 32, CausalMask.TOP_LEFT, null));
            out.add(new Case(t, 0, 2, 2, 3, 3, 32, CausalMask.NONE, null));
            // Random shapes: fixed by default, new ones with another kernels4j.conformance.seed. Half of them
            // have head dims every backend supports.
            SplittableRandom shapes = TestData.random("attention shapes " + t);
            for (int i = 0; i < RANDOM_CASES; i++) {
                int kvHeads = shapes.nextInt(1, 4);
                out.add(new Case(t, shapes.nextInt(1, 3), kvHeads * shapes.nextInt(1, 4), kvHeads,
                        shapes.nextInt(0, 80), shapes.nextInt(0, 80),
                        i % 2 == 0 ? shapes.nextInt(HeadDims.MIN_GUARANTEED, 129) : shapes.nextInt(1, 33),
                        CausalMask.values()[shapes.nextInt(3)],
                        shapes.nextBoolean() ? null : (float) shapes.nextDouble(0.05, 0.5)));
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

    private record Inputs(double[] q, double[] k, double[] v, double[] dO) {
    }

    private static Inputs inputs(Case c) {
        SplittableRandom rnd = TestData.random(c.toString());
        DType t = c.target().dtype();
        int nq = TestData.count(c.qShape());
        int nk = TestData.count(c.kShape());
        return new Inputs(TestData.gaussian(rnd, nq, t, 0, 1), TestData.gaussian(rnd, nk, t, 0, 1),
                TestData.gaussian(rnd, nk, t, 0, 1), TestData.gaussian(rnd, nq, t, 0, 1));
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("cases")
    void forward(Case c) {
        Device device = c.target().device();
        DType t = c.target().dtype();
        AttentionProblem p = c.problem();
        Inputs in = inputs(c);
        ReferenceAttention.Forward ref = ReferenceAttention.forward(p, in.q(), in.k(), in.v());
        ReferenceAttention.Forward plain = t == DType.FLOAT32 ? null
                : PlainLowPrecision.attentionForward(t, p, in.q(), in.k(), in.v());
        try (Stream stream = device.createStream();
             Tensor q = TestData.upload(device, t, in.q(), c.qShape());
             Tensor k = TestData.upload(device, t, in.k(), c.kShape());
             Tensor v = TestData.upload(device, t, in.v(), c.kShape());
             Tensor o = TestData.poisoned(device, t, c.qShape());
             Tensor lse = TestData.poisoned(device, DType.FLOAT32, c.lseShape())) {
            HeadDims.runOrSkip(c.d(), () -> c.op().forward(stream, q, k, v, o, lse), o, lse);
            Accuracy.assertClose(c + ": o", t, TestData.read(o), ref.o(), plain == null ? null : plain.o());
            Accuracy.assertClose(c + ": lse", t, TestData.read(lse), ref.lse(), plain == null ? null : plain.lse());
        }
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("cases")
    void backward(Case c) {
        Device device = c.target().device();
        DType t = c.target().dtype();
        AttentionProblem p = c.problem();
        Inputs in = inputs(c);
        // O and lse come from the float64 forward, rounded to their storage, so this judges backward alone.
        ReferenceAttention.Forward saved = ReferenceAttention.forward(p, in.q(), in.k(), in.v());
        ReferenceAttention.Backward ref = ReferenceAttention.backward(p, in.q(), in.k(), in.v(), in.dO());
        ReferenceAttention.Backward plain = t == DType.FLOAT32 ? null
                : PlainLowPrecision.attentionBackward(t, p, in.q(), in.k(), in.v(), in.dO());
        try (Stream stream = device.createStream();
             Tensor q = TestData.upload(device, t, in.q(), c.qShape());
             Tensor k = TestData.upload(device, t, in.k(), c.kShape());
             Tensor v = TestData.upload(device, t, in.v(), c.kShape());
             Tensor o = TestData.upload(device, t, TestData.round(t, saved.o()), c.qShape());
             Tensor lse = TestData.upload(device, DType.FLOAT32, TestData.round(DType.FLOAT32, saved.lse()),
                     c.lseShape());
             Tensor dO = TestData.upload(device, t, in.dO(), c.qShape());
             Tensor dq = TestData.poisoned(device, t, c.qShape());
             Tensor dk = TestData.poisoned(device, t, c.kShape());
             Tensor dv = TestData.poisoned(device, t, c.kShape())) {
            HeadDims.runOrSkip(c.d(), () -> c.op().backward(stream, q, k, v, o, lse, dO, dq, dk, dv), dq, dk, dv);
            Accuracy.assertClose(c + ": dq", t, TestData.read(dq), ref.dq(), plain == null ? null : plain.dq());
            Accuracy.assertClose(c + ": dk", t, TestData.read(dk), ref.dk(), plain == null ? null : plain.dk());
            Accuracy.assertClose(c + ": dv", t, TestData.read(dv), ref.dv(), plain == null ? null : plain.dv());
        }
    }

    /** The allocating forward and backward give the same accuracy as the out-parameter ones. */
    @ParameterizedTest(name = "{0}")
    @MethodSource("someCases")
    void allocatingVariants(Case c) {
        Device device = c.target().device();
        DType t = c.target().dtype();
        AttentionProblem p = c.problem();
        Inputs in = inputs(c);
        ReferenceAttention.Forward ref = ReferenceAttention.forward(p, in.q(), in.k(), in.v());
        ReferenceAttention.Backward refB = ReferenceAttention.backward(p, in.q(), in.k(), in.v(), in.dO());
        ReferenceAttention.Forward plain = t == DType.FLOAT32 ? null
                : PlainLowPrecision.attentionForward(t, p, in.q(), in.k(), in.v());
        ReferenceAttention.Backward plainB = t == DType.FLOAT32 ? null
                : PlainLowPrecision.attentionBackward(t, p, in.q(), in.k(), in.v(), in.dO());
        try (Stream stream = device.createStream();
             Tensor q = TestData.upload(device, t, in.q(), c.qShape());
             Tensor k = TestData.upload(device, t, in.k(), c.kShape());
             Tensor v = TestData.upload(device, t, in.v(), c.kShape());
             Tensor dO = TestData.upload(device, t, in.dO(), c.qShape())) {
            Attention.Outputs[] o = new Attention.Outputs[1];
            HeadDims.runOrSkip(c.d(), () -> o[0] = c.op().forward(stream, q, k, v));
            try (Attention.Outputs out = o[0];
                 Attention.Gradients g = c.op().backward(stream, q, k, v, out.o(), out.lse(), dO)) {
                Accuracy.assertClose(c + ": o", t, TestData.read(out.o()), ref.o(), plain == null ? null : plain.o());
                Accuracy.assertClose(c + ": lse", t, TestData.read(out.lse()), ref.lse(),
                        plain == null ? null : plain.lse());
                Accuracy.assertClose(c + ": dq", t, TestData.read(g.dq()), refB.dq(), plainB == null ? null : plainB.dq());
                Accuracy.assertClose(c + ": dk", t, TestData.read(g.dk()), refB.dk(), plainB == null ? null : plainB.dk());
                Accuracy.assertClose(c + ": dv", t, TestData.read(g.dv()), refB.dv(), plainB == null ? null : plainB.dv());
            }
        }
    }
}
