package org.kernels4j.opencl;

import org.jocl.CL;
import org.jocl.Pointer;
import org.jocl.Sizeof;
import org.jocl.cl_command_queue;
import org.jocl.cl_context;
import org.jocl.cl_device_id;
import org.jocl.cl_mem;
import org.kernels4j.DType;
import org.kernels4j.Device;
import org.kernels4j.Stream;
import org.kernels4j.Tensor;
import org.kernels4j.spi.AbstractTensor;

/**
 * Interop with OpenCL objects that a framework owns, through JOCL's handle types.
 *
 * <p>Each kernels4j OpenCL device has its own context ({@link #context(Device)}); OpenCL buffers and queues
 * only work within the context that created them, so a framework that wants to share memory with kernels4j
 * allocates its buffers and creates its queues in that context, then wraps them:
 * <pre>{@code
 * Device dev = Backends.require("opencl").defaultDevice();
 * cl_context ctx = OpenClInterop.context(dev);
 * cl_mem mine = CL.clCreateBuffer(ctx, CL.CL_MEM_READ_WRITE, 4L * rows * cols, null, null);
 * try (Tensor x = OpenClInterop.wrap(dev, mine, DType.FLOAT32, rows, cols);
 *      Stream s = OpenClInterop.wrap(dev, myQueue)) {
 *     LayerNorm.layerNorm().forward(s, x, null, null, y, mean, rstd);   // queued on myQueue
 * }
 * }</pre>
 * Wrapping retains the handle (clRetain*) and closing the wrapper releases only that reference, so the
 * framework's own handle stays valid. Nothing is copied. The other direction, {@link #buffer(Tensor)} and
 * {@link #queue(Stream)}, hands out kernels4j's handles without retaining them.
 */
public final class OpenClInterop {

    private OpenClInterop() {
    }

    /** The OpenCL context of a kernels4j OpenCL device. */
    public static cl_context context(Device device) {
        return openCl(device).context;
    }

    /** The OpenCL device handle of a kernels4j OpenCL device. */
    public static cl_device_id deviceId(Device device) {
        return openCl(device).id;
    }

    /**
     * Wraps a buffer of {@code device}'s context as a contiguous row-major tensor, without copying.
     *
     * @throws IllegalArgumentException when the device is not an OpenCL device, the buffer is null, belongs to
     *                                  another context or is smaller than the shape needs, or the dtype is
     *                                  unsupported or the shape invalid
     */
    public static Tensor wrap(Device device, cl_mem buffer, DType dtype, int... shape) {
        OpenClDevice d = openCl(device);
        if (buffer == null) {
            throw new IllegalArgumentException("buffer: must not be null");
        }
        if (dtype == null) {
            throw new IllegalArgumentException("dtype: must not be null");
        }
        if (!d.capabilities().supports(dtype)) {
            throw new IllegalArgumentException("dtype: " + dtype + " is not supported on " + d.id() + " (supported: "
                    + d.capabilities().dtypes() + ")");
        }
        long bytes = Math.multiplyExact(AbstractTensor.elementCount(shape), (long) dtype.byteSize());
        cl_context ctx = new cl_context();
        OpenClCalls.check(CL.clGetMemObjectInfo(buffer, CL.CL_MEM_CONTEXT, Sizeof.cl_context, Pointer.to(ctx), null),
                "clGetMemObjectInfo(CL_MEM_CONTEXT)");
        if (!ctx.equals(d.context)) {
            throw new IllegalArgumentException("buffer: belongs to another OpenCL context than " + d.id()
                    + "'s; allocate it in OpenClInterop.context(device)");
        }
        long[] size = new long[1];
        OpenClCalls.check(CL.clGetMemObjectInfo(buffer, CL.CL_MEM_SIZE, Sizeof.size_t, Pointer.to(size), null),
                "clGetMemObjectInfo(CL_MEM_SIZE)");
        if (size[0] < bytes) {
            throw new IllegalArgumentException("buffer: holds " + size[0] + " bytes, the shape "
                    + java.util.Arrays.toString(shape) + " of " + dtype + " needs " + bytes);
        }
        OpenClCalls.check(CL.clRetainMemObject(buffer), "clRetainMemObject");
        return new OpenClTensor(d, dtype, shape, buffer);
    }

    /**
     * Wraps an in-order command queue of {@code device}'s context and device as a stream. Event timing on it
     * needs the queue to have been created with {@code CL_QUEUE_PROFILING_ENABLE}. Closing the stream waits for
     * the queue's work and releases kernels4j's reference.
     *
     * @throws IllegalArgumentException when the queue is null, of another context or device, or out of order
     *                                  (the ops rely on the order of the kernels they queue)
     */
    public static Stream wrap(Device device, cl_command_queue queue) {
        OpenClDevice d = openCl(device);
        if (queue == null) {
            throw new IllegalArgumentException("queue: must not be null");
        }
        cl_context ctx = new cl_context();
        OpenClCalls.check(CL.clGetCommandQueueInfo(queue, CL.CL_QUEUE_CONTEXT, Sizeof.cl_context, Pointer.to(ctx), null),
                "clGetCommandQueueInfo(CL_QUEUE_CONTEXT)");
        cl_device_id dev = new cl_device_id();
        OpenClCalls.check(CL.clGetCommandQueueInfo(queue, CL.CL_QUEUE_DEVICE, Sizeof.cl_device_id, Pointer.to(dev), null),
                "clGetCommandQueueInfo(CL_QUEUE_DEVICE)");
        if (!ctx.equals(d.context) || !dev.equals(d.id)) {
            throw new IllegalArgumentException("queue: belongs to another OpenCL context or device than " + d.id()
                    + "; create it in OpenClInterop.context(device) for OpenClInterop.deviceId(device)");
        }
        long[] props = new long[1];
        OpenClCalls.check(CL.clGetCommandQueueInfo(queue, CL.CL_QUEUE_PROPERTIES, Sizeof.cl_ulong, Pointer.to(props), null),
                "clGetCommandQueueInfo(CL_QUEUE_PROPERTIES)");
        if ((props[0] & CL.CL_QUEUE_OUT_OF_ORDER_EXEC_MODE_ENABLE) != 0) {
            throw new IllegalArgumentException("queue: is out of order; kernels4j streams must be in-order queues");
        }
        return d.adoptQueue(queue, (props[0] & CL.CL_QUEUE_PROFILING_ENABLE) != 0);
    }

    /** The buffer behind an OpenCL tensor (null for an empty one); valid while the tensor is open. */
    public static cl_mem buffer(Tensor tensor) {
        if (!(tensor instanceof OpenClTensor t)) {
            throw new IllegalArgumentException("tensor: expected a tensor of the opencl backend, got "
                    + (tensor == null ? "null" : tensor.device().id()));
        }
        return t.mem();
    }

    /** The command queue behind an OpenCL stream; valid while the stream is open. */
    public static cl_command_queue queue(Stream stream) {
        if (!(stream instanceof OpenClStream s)) {
            throw new IllegalArgumentException("stream: expected a stream of the opencl backend, got "
                    + (stream == null ? "null" : stream.device().id()));
        }
        s.checkOpen();
        return s.queue();
    }

    private static OpenClDevice openCl(Device device) {
        if (device instanceof OpenClDevice d) {
            return d;
        }
        throw new IllegalArgumentException("device: expected a device of the opencl backend, got "
                + (device == null ? "null" : device.id()));
    }
}
