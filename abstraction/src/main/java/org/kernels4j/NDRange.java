package org.kernels4j;

/**
 * The extent of a kernel launch in up to three dimensions, in work items (global range) or work items per
 * workgroup (local range), as in OpenCL's {@code NDRange} and KernelAbstractions' {@code ndrange}.
 *
 * @param x extent of dimension 0, at least 1
 * @param y extent of dimension 1, at least 1
 * @param z extent of dimension 2, at least 1
 */
public record NDRange(long x, long y, long z) {

    /** Validates that every extent is at least 1. */
    public NDRange {
        if (x < 1 || y < 1 || z < 1) {
            throw new IllegalArgumentException("NDRange: every extent must be >= 1, got (" + x + ", " + y + ", " + z + ")");
        }
    }

    /** A one-dimensional range. */
    public static NDRange of(long x) {
        return new NDRange(x, 1, 1);
    }

    /** A two-dimensional range. */
    public static NDRange of(long x, long y) {
        return new NDRange(x, y, 1);
    }

    /** A three-dimensional range. */
    public static NDRange of(long x, long y, long z) {
        return new NDRange(x, y, z);
    }

    /** Number of dimensions that are not 1, at least 1. */
    public int dimensions() {
        return z > 1 ? 3 : y > 1 ? 2 : 1;
    }

    /** {@code x * y * z}. */
    public long size() {
        return x * y * z;
    }
}
