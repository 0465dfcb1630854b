package org.kernels4j;

/**
 * A kernel argument that reserves local (shared) memory for each workgroup, sized per launch: the dialect's
 * dynamic local memory. In the kernel the parameter is a {@code __local} pointer.
 *
 * @param bytes bytes per workgroup, at least 1
 */
public record LocalMemory(long bytes) {

    /** Validates the size. */
    public LocalMemory {
        if (bytes < 1) {
            throw new IllegalArgumentException("LocalMemory: bytes must be >= 1, got " + bytes);
        }
    }

    /** Local memory for {@code count} floats. */
    public static LocalMemory floats(int count) {
        return new LocalMemory(4L * count);
    }
}
