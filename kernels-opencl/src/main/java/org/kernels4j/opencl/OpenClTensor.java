package org.kernels4j.opencl;

import java.nio.ByteBuffer;

import org.jocl.CL;
import org.jocl.Pointer;
import org.jocl.cl_mem;
import org.kernels4j.DType;
import org.kernels4j.Tensor;
import org.kernels4j.spi.AbstractTensor;

/** A tensor in a {@code cl_mem} buffer (none for zero elements). Host transfers go through the default queue. */
final class OpenClTensor extends AbstractTensor {

    private final OpenClDevice device;
    private final cl_mem mem;

    OpenClTensor(OpenClDevice device, DType dtype, int[] shape, cl_mem mem) {
        super(device, dtype, shape, mem == null ? null : () -> CL.clReleaseMemObject(mem));
        this.device = device;
        this.mem = mem;
    }

    /** The buffer, null for an empty tensor. */
    cl_mem mem() {
        checkOpen();
        return mem;
    }

    /** The tensor as an OpenCL tensor of {@code device}, or an {@link IllegalArgumentException} naming it. */
    static OpenClTensor of(Tensor t, OpenClDevice device, String name) {
        if (t instanceof OpenClTensor ct && ct.device == device) {
            ct.checkOpen();
            return ct;
        }
        throw new IllegalArgumentException(name + ": expected a tensor of " + device.id() + ", got "
                + (t == null ? "null" : t.device().id()));
    }

    /** The buffer of an optional tensor: null when absent or empty. */
    static cl_mem memOrNull(Tensor t, OpenClDevice device, String name) {
        return t == null ? null : of(t, device, name).mem();
    }

    @Override
    protected void writeBytes(ByteBuffer src) {
        if (mem == null || byteSize() == 0) {
            return;
        }
        device.synchronize();
        OpenClStream s = (OpenClStream) device.defaultStream();
        OpenClCalls.check(CL.clEnqueueWriteBuffer(s.queue(), mem, true, 0, byteSize(), Pointer.toBuffer(src), 0,
                null, null), "clEnqueueWriteBuffer");
    }

    @Override
    protected void readBytes(ByteBuffer dst) {
        if (mem == null || byteSize() == 0) {
            return;
        }
        device.synchronize();
        OpenClStream s = (OpenClStream) device.defaultStream();
        OpenClCalls.check(CL.clEnqueueReadBuffer(s.queue(), mem, true, 0, byteSize(), Pointer.toBuffer(dst), 0,
                null, null), "clEnqueueReadBuffer");
    }
}
