package org.kernels4j;

/**
 * One device of a backend: where tensors live and ops run. Thread-safe.
 *
 * <p>Memory is allocated with {@link #allocate}; work is ordered on {@link Stream}s. Ops ({@link LayerNorm},
 * {@link Attention}, {@link Conv2d}) run on the device their tensors live on.
 */
public interface Device {

    /** The backend this device belongs to. */
    Backend backend();

    /** The device's name as its driver reports it, e.g. {@code "NVIDIA H100 80GB HBM3"}. */
    String name();

    /** Vendor name as reported by the driver (for the CPU, the JVM's {@code os.arch}). */
    String vendor();

    /** Index of the device within its backend. */
    int index();

    /** A stable identifier {@code backend:index}, e.g. {@code "cuda:0"}, used in messages. */
    default String id() {
        return backend().name() + ":" + index();
    }

    /** What the device can do. */
    DeviceCapabilities capabilities();

    /**
     * Allocates an uninitialised, contiguous (row-major) tensor.
     *
     * @throws IllegalArgumentException for a null or unsupported dtype, or a negative dimension
     */
    Tensor allocate(DType dtype, int... shape);

    /** Allocates a tensor and fills it from {@code data} (converted to {@code dtype}). */
    default Tensor upload(DType dtype, float[] data, int... shape) {
        Tensor t = allocate(dtype, shape);
        try {
            t.copyFrom(data);
            return t;
        } catch (RuntimeException e) {
            t.close();
            throw e;
        }
    }

    /** The device's default stream; closing it has no effect. */
    Stream defaultStream();

    /** A new stream, independent of the default one; close it when done. */
    Stream createStream();

    /**
     * Compiles a user kernel written in the portable dialect (OpenCL C plus the kernels4j shim) for this
     * device. Results are cached per source and defines.
     *
     * @throws UnsupportedOperationException where {@link DeviceCapabilities#dialectKernels()} is false
     * @throws KernelBuildException          with the compiler's log when the build fails
     */
    Kernel compileKernel(KernelSource source);

    /** Blocks until all work queued on every stream of this device has finished. */
    void synchronize();
}
