package org.kernels4j.conformance;

import static org.junit.jupiter.api.Assertions.fail;

import java.util.Locale;

import org.kernels4j.DType;

/**
 * The suite's accuracy rule, tied to the dtype of the problem.
 *
 * <p>Errors are measured as the Euclidean norm of {@code actual - reference} over the elements where the
 * float64 reference is finite; elements where it is not (the {@code -inf} log-sum-exp of a row that sees no
 * key) must match it exactly, and an element where the reference is finite must be finite (outputs are
 * poisoned with NaN, so an unwritten element fails here).
 *
 * <ul>
 *   <li><b>fp32</b>: error norm at most {@value #FP32_RELATIVE} times the reference's norm. Why 2e-5: fp32's
 *   unit roundoff is 6e-8 and the longest reductions in the suite have ~4,000 terms, so the expected
 *   (random-walk) error of a plain fp32 computation is about sqrt(4000) * 6e-8 = 4e-6; the kit's self-test
 *   measures the plain fp32 algorithms of {@link PlainLowPrecision} on every suite shape and finds them below
 *   this bound, while any real bug (a wrong element, a missed mask, a wrong gradient term) costs far more
 *   than 1e-4.</li>
 *   <li><b>fp16 / bf16</b>: error norm at most twice that of {@link PlainLowPrecision}, a naive computation
 *   of the same reference in the dtype itself (inputs and every intermediate rounded), which is what
 *   "no worse than a plain half-precision implementation" means. Backends accumulate in fp32 and round
 *   once, so they land far inside this.</li>
 * </ul>
 * Both add a tiny absolute floor of {@value #ABSOLUTE_FLOOR} per element (in norm: times sqrt(n)). The
 * suite's inputs are O(1), so its outputs are O(1) to O(100), and 1e-5 per element is far below what any bug
 * costs; it is needed where an exact result is zero by cancellation, which no relative rule can judge:
 * dQ and dK when every row sees a single key (P = 1, so dS = P(dP - D) = 0) are sums of hundreds of terms
 * that cancel exactly in exact arithmetic and leave ~1e-6 of fp32 noise per element in a correct kernel.
 */
public final class Accuracy {

    /** fp32: allowed error norm relative to the reference's norm. */
    public static final double FP32_RELATIVE = 2e-5;

    /** Absolute error floor per element (used in norm form: {@code ABSOLUTE_FLOOR * sqrt(n)}). */
    public static final double ABSOLUTE_FLOOR = 1e-5;

    /** 16-bit dtypes: allowed multiple of the plain low-precision computation's error norm. */
    public static final double LOW_PRECISION_FACTOR = 2.0;

    private Accuracy() {
    }

    /**
     * Asserts that {@code actual} matches the float64 {@code reference} within the tolerance of
     * {@code dtype}; {@code plain} is the plain computation in {@code dtype} ({@link PlainLowPrecision}),
     * needed for 16-bit dtypes and ignored for fp32.
     */
    public static void assertClose(String what, DType dtype, double[] actual, double[] reference, double[] plain) {
        if (actual.length != reference.length) {
            fail(what + ": expected " + reference.length + " values, got " + actual.length);
        }
        Error e = error(actual, reference, what);
        double tolerance;
        String rule;
        if (dtype == DType.FLOAT32) {
            tolerance = FP32_RELATIVE * e.referenceNorm + ABSOLUTE_FLOOR * Math.sqrt(e.finite);
            rule = "fp32: " + FP32_RELATIVE + " x |ref| + floor";
        } else {
            if (plain == null) {
                throw new IllegalArgumentException("plain: a " + dtype + " comparison needs the plain " + dtype
                        + " computation of the reference");
            }
            Error p = error(plain, reference, what + " (plain " + dtype + " computation in the kit)");
            tolerance = LOW_PRECISION_FACTOR * p.norm + ABSOLUTE_FLOOR * Math.sqrt(e.finite);
            rule = dtype + ": " + LOW_PRECISION_FACTOR + " x plain " + dtype + " error "
                    + fmt(p.norm) + " + floor";
        }
        if (!(e.norm <= tolerance)) {
            fail(String.format(Locale.ROOT,
                    "%s: error norm %s exceeds tolerance %s (%s); |ref| = %s, relative %s; worst element %d: "
                            + "got %s, expected %s",
                    what, fmt(e.norm), fmt(tolerance), rule, fmt(e.referenceNorm),
                    fmt(e.norm / Math.max(e.referenceNorm, Double.MIN_NORMAL)), e.worst, actual[e.worst],
                    reference[e.worst]));
        }
    }

    private record Error(double norm, double referenceNorm, int finite, int worst) {
    }

    private static Error error(double[] actual, double[] reference, String what) {
        double sum = 0;
        double refSum = 0;
        int finite = 0;
        int worst = 0;
        double worstAbs = -1;
        for (int i = 0; i < reference.length; i++) {
            double r = reference[i];
            double a = actual[i];
            if (!Double.isFinite(r)) {
                if (Double.compare(a, r) != 0) {
                    fail(what + ": element " + i + " must be " + r + " (as the reference), got " + a);
                }
                continue;
            }
            if (!Double.isFinite(a)) {
                fail(what + ": element " + i + " is " + a + " where the reference is finite (" + r + ")"
                        + (Double.isNaN(a) ? "; NaN is the poison written before the call, so this element "
                        + "was probably never written" : ""));
            }
            double d = a - r;
            sum += d * d;
            refSum += r * r;
            finite++;
            if (Math.abs(d) > worstAbs) {
                worstAbs = Math.abs(d);
                worst = i;
            }
        }
        return new Error(Math.sqrt(sum), Math.sqrt(refSum), finite, worst);
    }

    private static String fmt(double v) {
        return String.format(Locale.ROOT, "%.3e", v);
    }
}
