package org.kernels4j;

/**
 * A compiled user kernel ({@link Device#compileKernel}), launched over an {@link NDRange} with a workgroup
 * size, KernelAbstractions-style. Thread-safe: each launch binds its own arguments.
 */
public interface Kernel extends AutoCloseable {

    /** The device it was compiled for. */
    Device device();

    /** The entry point's name. */
    String entryPoint();

    /**
     * Queues one launch on {@code stream}.
     *
     * @param global work items in each dimension; need not be a multiple of {@code local} (the kernel is
     *               launched over the next multiple and must bounds-check its global id)
     * @param local  workgroup size in each dimension, at most the device's {@code maxWorkgroupSize} in total
     * @param args   the kernel's parameters in order: {@link Tensor} (a global pointer), {@link Integer},
     *               {@link Long}, {@link Float}, or {@link LocalMemory} (dynamic local memory)
     * @throws IllegalArgumentException for an argument of another type, a tensor of another device or a
     *                                  workgroup that is too large
     */
    void launch(Stream stream, NDRange global, NDRange local, Object... args);

    /** Releases the compiled program. */
    @Override
    void close();
}
