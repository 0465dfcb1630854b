package org.kernels4j.cuda;

/**
 * A CUDA grid or block extent.
 *
 * @param x extent in x, at least 1
 * @param y extent in y, at least 1
 * @param z extent in z, at least 1
 */
record Dim3(int x, int y, int z) {

    Dim3 {
        if (x < 1 || y < 1 || z < 1) {
            throw new IllegalArgumentException("Dim3: every extent must be >= 1, got (" + x + ", " + y + ", " + z + ")");
        }
    }

    static Dim3 of(int x) {
        return new Dim3(x, 1, 1);
    }

    static Dim3 of(int x, int y) {
        return new Dim3(x, y, 1);
    }

    static Dim3 of(int x, int y, int z) {
        return new Dim3(x, y, z);
    }

    /** {@code x * y * z}. */
    long volume() {
        return (long) x * y * z;
    }

    @Override
    public String toString() {
        return "(" + x + ", " + y + ", " + z + ")";
    }
}
