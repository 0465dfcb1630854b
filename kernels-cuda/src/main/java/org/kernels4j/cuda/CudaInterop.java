package org.kernels4j.cuda;

import org.kernels4j.DType;
import org.kernels4j.Device;
import org.kernels4j.Stream;
import org.kernels4j.Tensor;
import org.kernels4j.spi.AbstractTensor;

/**
 * Sharing memory and streams with a framework that already owns them (PyTorch through its Java bindings,
 * DJL, a JNI library): kernels4j's ops then read and write the framework's buffers in place and queue their
 * work in the framework's stream order, with no copies and no extra synchronisation.
 *
 * <p>kernels4j works in each device's <em>primary context</em>, the one the CUDA runtime uses, so device
 * pointers and streams from runtime-API code (everything built on {@code cudaMalloc} and
 * {@code cudaStreamCreate}, PyTorch's caching allocator included) are valid as they are. Memory from a
 * context the framework created itself with {@code cuCtxCreate} is not.
 *
 * <pre>{@code
 * Device gpu = Backends.require("cuda").defaultDevice();
 * try (Tensor x = CudaInterop.wrap(gpu, xPtr, DType.BFLOAT16, 16384, 4096);
 *      Tensor y = CudaInterop.wrap(gpu, yPtr, DType.BFLOAT16, 16384, 4096);
 *      Stream s = CudaInterop.wrapStream(gpu, torchStreamHandle)) {
 *     LayerNorm.layerNorm().forward(s, x, gamma, beta, y, mean, rstd);   // queued on the framework's stream
 * }
 * }</pre>
 * Wrapped tensors and streams are views: closing them frees and destroys nothing (a stream wrapper waits
 * for the work queued so far and releases kernels4j's scratch memory for it). The framework must keep the
 * memory and the stream alive while kernels4j work that uses them is pending.
 */
public final class CudaInterop {

    private CudaInterop() {
    }

    /**
     * A tensor over {@code bytes = product(shape) * dtype.byteSize()} bytes of device memory at
     * {@code devicePointer}, contiguous and row-major. The fast kernels need 16-byte aligned addresses; others
     * take a slower path.
     *
     * @param device        a CUDA device (from {@code Backends.require("cuda")})
     * @param devicePointer a {@code CUdeviceptr} / {@code cudaMalloc} address in the device's primary context
     * @throws IllegalArgumentException for a device of another backend, a null pointer with elements, a pointer
     *                                  not aligned to the dtype, a null dtype or a negative dimension
     */
    public static Tensor wrap(Device device, long devicePointer, DType dtype, int... shape) {
        CudaDevice d = cuda(device);
        if (dtype == null) {
            throw new IllegalArgumentException("dtype: must not be null");
        }
        long n = AbstractTensor.elementCount(shape);
        if (devicePointer == 0 && n > 0) {
            throw new IllegalArgumentException("devicePointer: must not be 0 for a tensor of " + n + " elements");
        }
        if (devicePointer % dtype.byteSize() != 0) {
            throw new IllegalArgumentException("devicePointer: expected an address aligned to " + dtype.byteSize()
                    + " bytes (" + dtype + "), got 0x" + Long.toHexString(devicePointer));
        }
        return CudaTensor.wrap(d, devicePointer, dtype, shape);
    }

    /**
     * A stream over a {@code CUstream} / {@code cudaStream_t} the framework owns ({@code 0} is the legacy
     * default stream). Ops queued on it are ordered with the framework's own work on that stream.
     *
     * @throws IllegalArgumentException for a device of another backend
     */
    public static Stream wrapStream(Device device, long streamHandle) {
        return new CudaStream(cuda(device), streamHandle, CudaStream.Kind.BORROWED);
    }

    /**
     * The device address of a CUDA tensor (allocated by kernels4j or wrapped), to hand to a framework.
     *
     * @throws IllegalArgumentException when {@code tensor} is not a CUDA tensor
     * @throws IllegalStateException    when it is closed
     */
    public static long devicePointer(Tensor tensor) {
        if (tensor == null) {
            throw new IllegalArgumentException("tensor: must not be null");
        }
        return CudaTensor.address(tensor, tensor.device(), "tensor");
    }

    /**
     * The {@code CUstream} handle of a CUDA stream, to order a framework's work after kernels4j's.
     *
     * @throws IllegalArgumentException when {@code stream} is not a CUDA stream
     */
    public static long streamHandle(Stream stream) {
        return CudaStream.of(stream).handle();
    }

    private static CudaDevice cuda(Device device) {
        if (!(device instanceof CudaDevice d)) {
            throw new IllegalArgumentException("device: expected a CUDA device, got "
                    + (device == null ? "null" : device.id()));
        }
        return d;
    }
}
