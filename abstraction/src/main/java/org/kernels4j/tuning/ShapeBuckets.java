package org.kernels4j.tuning;

/**
 * Helpers for {@link TuningSpace.Builder#bucket} functions: sizes rounded so that problems of similar shape
 * share one tuning result.
 */
public final class ShapeBuckets {

    private ShapeBuckets() {
    }

    /** The smallest power of two {@code >= n}; 1 for {@code n <= 1}. */
    public static long pow2(long n) {
        if (n <= 1) {
            return 1;
        }
        if (n > (1L << 62)) {
            throw new IllegalArgumentException("n: expected at most 2^62, got " + n);
        }
        return Long.highestOneBit(n - 1) << 1;
    }

    /**
     * {@code n} clamped to {@code [min, max]} and rounded up to a power of two: sizes below {@code min}
     * share one bucket, as do sizes above {@code max}.
     */
    public static long pow2(long n, long min, long max) {
        if (min < 1 || max < min) {
            throw new IllegalArgumentException("min, max: expected 1 <= min <= max, got " + min + ", " + max);
        }
        return pow2(Math.max(min, Math.min(max, n)));
    }
}
