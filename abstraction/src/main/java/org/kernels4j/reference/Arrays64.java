package org.kernels4j.reference;

/** Argument checks shared by the references; messages name the argument and expected vs actual. */
final class Arrays64 {

    private Arrays64() {
    }

    static <T> T notNull(T value, String name) {
        if (value == null) {
            throw new IllegalArgumentException(name + ": must not be null");
        }
        return value;
    }

    /** Checks that {@code a} holds exactly {@code expected} values. */
    static double[] length(double[] a, long expected, String name) {
        notNull(a, name);
        if (a.length != expected) {
            throw new IllegalArgumentException(name + ": expected " + expected + " values, got " + a.length);
        }
        return a;
    }

    /** Like {@link #length} but {@code null} is allowed (an absent optional argument). */
    static double[] optionalLength(double[] a, long expected, String name) {
        return a == null ? null : length(a, expected, name);
    }

    /** The product of the factors as an array size. */
    static int size(String what, long... factors) {
        long n = 1;
        for (long f : factors) {
            n = Math.multiplyExact(n, f);
        }
        if (n > Integer.MAX_VALUE - 8) {
            throw new IllegalArgumentException(what + ": " + n + " values are too many for a double[] reference");
        }
        return (int) n;
    }
}
