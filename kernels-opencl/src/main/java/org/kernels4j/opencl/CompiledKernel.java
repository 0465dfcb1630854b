package org.kernels4j.opencl;

import org.jocl.CL;
import org.jocl.Pointer;
import org.jocl.Sizeof;
import org.jocl.cl_kernel;
import org.jocl.cl_mem;
import org.jocl.cl_program;
import org.kernels4j.KernelBuildException;
import org.kernels4j.LocalMemory;

/**
 * One {@code cl_kernel} with its argument binding. A {@code cl_kernel} holds its arguments between calls, so
 * binding and enqueueing happen under the object's lock.
 */
final class CompiledKernel {

    private final OpenClDevice device;
    private final cl_kernel kernel;
    private final String entryPoint;
    private final long maxWorkGroupSize;
    private boolean released;

    CompiledKernel(OpenClDevice device, cl_program program, String entryPoint, String sourceName) {
        this.device = device;
        this.entryPoint = entryPoint;
        int[] err = new int[1];
        cl_kernel k = CL.clCreateKernel(program, entryPoint, err);
        if (err[0] == CL.CL_INVALID_KERNEL_NAME) {
            throw new KernelBuildException("kernel source '" + sourceName + "' has no __kernel function '"
                    + entryPoint + "'", "");
        }
        OpenClCalls.check(err[0], "clCreateKernel(" + entryPoint + ")");
        this.kernel = k;
        long[] wg = new long[1];
        OpenClCalls.check(CL.clGetKernelWorkGroupInfo(k, device.id, CL.CL_KERNEL_WORK_GROUP_SIZE, Sizeof.size_t,
                Pointer.to(wg), null), "clGetKernelWorkGroupInfo");
        this.maxWorkGroupSize = Sizeof.size_t == 4 ? wg[0] & 0xffffffffL : wg[0];
    }

    String entryPoint() {
        return entryPoint;
    }

    /** The largest workgroup this kernel can run with on its device (registers and local memory permitting). */
    long maxWorkGroupSize() {
        return maxWorkGroupSize;
    }

    /**
     * Binds {@code args} and queues the kernel over {@code global} (already a multiple of {@code local}).
     * Arguments: {@link cl_mem} or null (a buffer; null is the null buffer), {@link OpenClTensor}, {@link Integer},
     * {@link Long}, {@link Float}, {@link LocalMemory}.
     */
    synchronized void enqueue(OpenClStream stream, long[] global, long[] local, Object... args) {
        if (released) {
            throw new IllegalStateException("kernel " + entryPoint + " is closed");
        }
        long threads = local[0] * local[1] * local[2];
        if (threads > maxWorkGroupSize) {
            throw new IllegalArgumentException("local: workgroup of " + threads + " work items exceeds the "
                    + maxWorkGroupSize + " that kernel " + entryPoint + " allows on " + device.id());
        }
        for (int i = 0; i < args.length; i++) {
            Object a = args[i];
            int status;
            if (a == null) {
                status = CL.clSetKernelArg(kernel, i, Sizeof.cl_mem, null);
            } else if (a instanceof cl_mem m) {
                status = CL.clSetKernelArg(kernel, i, Sizeof.cl_mem, Pointer.to(m));
            } else if (a instanceof OpenClTensor t) {
                cl_mem m = t.mem();
                status = CL.clSetKernelArg(kernel, i, Sizeof.cl_mem, m == null ? null : Pointer.to(m));
            } else if (a instanceof Integer v) {
                status = CL.clSetKernelArg(kernel, i, Sizeof.cl_int, Pointer.to(new int[] {v}));
            } else if (a instanceof Long v) {
                status = CL.clSetKernelArg(kernel, i, Sizeof.cl_long, Pointer.to(new long[] {v}));
            } else if (a instanceof Float v) {
                status = CL.clSetKernelArg(kernel, i, Sizeof.cl_float, Pointer.to(new float[] {v}));
            } else if (a instanceof LocalMemory lm) {
                status = CL.clSetKernelArg(kernel, i, lm.bytes(), null);
            } else {
                throw new IllegalArgumentException("args[" + i + "]: expected a Tensor, Integer, Long, Float or "
                        + "LocalMemory, got " + a.getClass().getName());
            }
            if (status != CL.CL_SUCCESS) {
                throw new IllegalArgumentException("args[" + i + "]: kernel " + entryPoint + " rejected "
                        + describe(a) + ": " + OpenClCalls.errorName(status)
                        + " (wrong type or size for that parameter, or too many arguments?)");
            }
        }
        int status = CL.clEnqueueNDRangeKernel(stream.queue(), kernel, 3, null, global, local, 0, null, null);
        if (status == CL.CL_INVALID_KERNEL_ARGS) {
            throw new IllegalArgumentException("args: kernel " + entryPoint + " has parameters that were not set ("
                    + args.length + " given)");
        }
        OpenClCalls.check(status, "clEnqueueNDRangeKernel(" + entryPoint + ")");
    }

    private static String describe(Object a) {
        return a instanceof LocalMemory lm ? "LocalMemory(" + lm.bytes() + " bytes)" : a.getClass().getSimpleName() + " " + a;
    }

    synchronized void release() {
        if (!released) {
            released = true;
            CL.clReleaseKernel(kernel);
        }
    }
}
