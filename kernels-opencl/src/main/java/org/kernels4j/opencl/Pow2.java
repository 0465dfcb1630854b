package org.kernels4j.opencl;

/** Powers of two for workgroup and tile sizes. */
final class Pow2 {

    private Pow2() {
    }

    /** The largest power of two {@code <= n} (n >= 1). */
    static int floor(int n) {
        return Integer.highestOneBit(Math.max(1, n));
    }

    /** The smallest power of two {@code >= n} (n >= 1). */
    static int ceil(int n) {
        return n <= 1 ? 1 : Integer.highestOneBit(n - 1) << 1;
    }
}
