package org.kernels4j.selftest;

import java.util.function.Supplier;

import org.kernels4j.Stream;
import org.kernels4j.Tensor;
import org.kernels4j.conformance.PlainLowPrecision;
import org.kernels4j.conformance.TestData;
import org.kernels4j.reference.ReferenceAttention;
import org.kernels4j.reference.ReferenceConv2d;
import org.kernels4j.reference.ReferenceLayerNorm;
import org.kernels4j.spi.AttentionKernels;
import org.kernels4j.spi.AttentionProblem;
import org.kernels4j.spi.Conv2dKernels;
import org.kernels4j.spi.Conv2dProblem;
import org.kernels4j.spi.LayerNormKernels;
import org.kernels4j.spi.LayerNormProblem;

/**
 * The self-test backend's "kernels": the float64 references, rounded into the outputs. {@link #fault}
 * injects one kind of error so that the kit's self-test can check that the suite notices it.
 */
final class ReferenceKernels implements LayerNormKernels, AttentionKernels, Conv2dKernels {

    /** Errors to inject. */
    enum Fault {
        /** Correct results. */
        NONE,
        /** Leaves the last element of every output as it was (the poison). */
        SKIP_LAST_ELEMENT,
        /** Scales every output by 1 + 1e-4: five times the fp32 tolerance. */
        SCALE_BY_1E4,
        /** Scales every gradient by 1.02, leaving the forward right: only gradient checks can notice alone. */
        SCALE_GRADIENTS_2PCT,
        /** Writes the plain computation in the op's dtype instead of the rounded reference. */
        PLAIN,
        /** Writes the reference plus three times the plain computation's error (above the 16-bit 2x rule). */
        TRIPLE_PLAIN_ERROR
    }

    static volatile Fault fault = Fault.NONE;

    /** Computes {@code s} at most once: the plain computation serves every output of a call. */
    private static <T> Supplier<T> memo(Supplier<T> s) {
        return new Supplier<>() {
            private T value;

            @Override
            public T get() {
                if (value == null) {
                    value = s.get();
                }
                return value;
            }
        };
    }

    private static double[] read(Tensor t) {
        return t == null ? null : TestData.read(t);
    }

    /** Writes {@code ref}, corrupted as {@link #fault} says; {@code plain} is the plain computation in the op's dtype. */
    private static void write(Tensor t, double[] ref, Supplier<double[]> plain, boolean gradient) {
        if (t == null) {
            return;
        }
        double[] v = ref.clone();
        Fault f = fault;
        switch (f) {
            case SKIP_LAST_ELEMENT -> {
                if (v.length > 0) {
                    v[v.length - 1] = t.toFloatArray()[v.length - 1];
                }
            }
            case SCALE_BY_1E4 -> scale(v, 1 + 1e-4);
            case SCALE_GRADIENTS_2PCT -> {
                if (gradient) {
                    scale(v, 1.02);
                }
            }
            case PLAIN -> v = plain.get();
            case TRIPLE_PLAIN_ERROR -> {
                double[] p = plain.get();
                for (int i = 0; i < v.length; i++) {
                    if (Double.isFinite(ref[i])) {
                        v[i] = ref[i] + 3 * (p[i] - ref[i]);
                    }
                }
            }
            case NONE -> {
            }
        }
        t.copyFrom(TestData.toFloats(v));
    }

    private static void scale(double[] v, double s) {
        for (int i = 0; i < v.length; i++) {
            v[i] *= s;
        }
    }

    @Override
    public void forward(Stream stream, LayerNormProblem p, Tensor x, Tensor gamma, Tensor beta, Tensor y, Tensor mean,
                        Tensor rstd) {
        double[] xs = read(x);
        double[] g = read(gamma);
        double[] b = read(beta);
        var ref = ReferenceLayerNorm.forward(p, xs, g, b);
        Supplier<ReferenceLayerNorm.Forward> plain = memo(() -> PlainLowPrecision.layerNormForward(p.dtype(), p, xs, g, b));
        write(y, ref.y(), () -> plain.get().y(), false);
        write(mean, ref.mean(), () -> plain.get().mean(), false);
        write(rstd, ref.rstd(), () -> plain.get().rstd(), false);
    }

    @Override
    public void backward(Stream stream, LayerNormProblem p, Tensor dy, Tensor x, Tensor gamma, Tensor mean, Tensor rstd,
                         Tensor dx, Tensor dgamma, Tensor dbeta) {
        double[] dys = read(dy);
        double[] xs = read(x);
        double[] g = read(gamma);
        var ref = ReferenceLayerNorm.backward(p, dys, xs, g);
        Supplier<ReferenceLayerNorm.Backward> plain = memo(() -> PlainLowPrecision.layerNormBackward(p.dtype(), p, dys, xs, g));
        write(dx, ref.dx(), () -> plain.get().dx(), true);
        write(dgamma, ref.dgamma(), () -> plain.get().dgamma(), true);
        write(dbeta, ref.dbeta(), () -> plain.get().dbeta(), true);
    }

    @Override
    public void forward(Stream stream, AttentionProblem p, Tensor q, Tensor k, Tensor v, Tensor o, Tensor lse) {
        double[] qs = read(q);
        double[] ks = read(k);
        double[] vs = read(v);
        var ref = ReferenceAttention.forward(p, qs, ks, vs);
        Supplier<ReferenceAttention.Forward> plain = memo(() -> PlainLowPrecision.attentionForward(p.dtype(), p, qs, ks, vs));
        write(o, ref.o(), () -> plain.get().o(), false);
        write(lse, ref.lse(), () -> plain.get().lse(), false);
    }

    @Override
    public void backward(Stream stream, AttentionProblem p, Tensor q, Tensor k, Tensor v, Tensor o, Tensor lse,
                         Tensor dO, Tensor dq, Tensor dk, Tensor dv) {
        double[] qs = read(q);
        double[] ks = read(k);
        double[] vs = read(v);
        double[] dOs = read(dO);
        var ref = ReferenceAttention.backward(p, qs, ks, vs, dOs);
        Supplier<ReferenceAttention.Backward> plain =
                memo(() -> PlainLowPrecision.attentionBackward(p.dtype(), p, qs, ks, vs, dOs));
        write(dq, ref.dq(), () -> plain.get().dq(), true);
        write(dk, ref.dk(), () -> plain.get().dk(), true);
        write(dv, ref.dv(), () -> plain.get().dv(), true);
    }

    @Override
    public void forward(Stream stream, Conv2dProblem p, Tensor x, Tensor w, Tensor bias, Tensor y) {
        double[] xs = read(x);
        double[] ws = read(w);
        double[] bs = read(bias);
        write(y, ReferenceConv2d.forward(p, xs, ws, bs), () -> PlainLowPrecision.convForward(p.dtype(), p, xs, ws, bs),
                false);
    }

    @Override
    public void backwardData(Stream stream, Conv2dProblem p, Tensor dy, Tensor w, Tensor dx) {
        double[] dys = read(dy);
        double[] ws = read(w);
        write(dx, ReferenceConv2d.backwardData(p, dys, ws), () -> PlainLowPrecision.convBackwardData(p.dtype(), p, dys, ws),
                true);
    }

    @Override
    public void backwardFilter(Stream stream, Conv2dProblem p, Tensor dy, Tensor x, Tensor dw, Tensor db) {
        double[] dys = read(dy);
        double[] xs = read(x);
        var ref = ReferenceConv2d.backwardFilter(p, dys, xs);
        Supplier<ReferenceConv2d.FilterGradients> plain =
                memo(() -> PlainLowPrecision.convBackwardFilter(p.dtype(), p, dys, xs));
        write(dw, ref.dw(), () -> plain.get().dw(), true);
        write(db, ref.db(), () -> plain.get().db(), true);
    }
}
