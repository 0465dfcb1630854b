package org.kernels4j.opencl;

import java.util.concurrent.atomic.AtomicBoolean;

import org.jocl.cl_program;
import org.kernels4j.Device;
import org.kernels4j.Kernel;
import org.kernels4j.LocalMemory;
import org.kernels4j.NDRange;
import org.kernels4j.Stream;
import org.kernels4j.Tensor;

/**
 * A user kernel: its own {@code cl_kernel} over the device's cached program. Closing releases the kernel
 * object; the program stays cached on the device for later compiles of the same source.
 */
final class OpenClKernel implements Kernel {

    private final OpenClDevice device;
    private final CompiledKernel kernel;
    private final AtomicBoolean closed = new AtomicBoolean();

    OpenClKernel(OpenClDevice device, cl_program program, String entryPoint, String sourceName) {
        this.device = device;
        this.kernel = new CompiledKernel(device, program, entryPoint, sourceName);
    }

    @Override
    public Device device() {
        return device;
    }

    @Override
    public String entryPoint() {
        return kernel.entryPoint();
    }

    @Override
    public void launch(Stream stream, NDRange global, NDRange local, Object... args) {
        if (closed.get()) {
            throw new IllegalStateException("kernel " + entryPoint() + " is closed");
        }
        OpenClStream s = device.stream(stream);
        if (global == null) {
            throw new IllegalArgumentException("global: must not be null");
        }
        if (local == null) {
            throw new IllegalArgumentException("local: must not be null");
        }
        if (local.size() > device.capabilities().maxWorkgroupSize()) {
            throw new IllegalArgumentException("local: workgroup of " + local.size() + " work items exceeds the device's "
                    + "maximum " + device.capabilities().maxWorkgroupSize());
        }
        Object[] bound = new Object[args == null ? 0 : args.length];
        for (int i = 0; i < bound.length; i++) {
            Object a = args[i];
            if (a instanceof Tensor t) {
                bound[i] = OpenClTensor.of(t, device, "args[" + i + "]");
            } else if (a instanceof Integer || a instanceof Long || a instanceof Float || a instanceof LocalMemory) {
                bound[i] = a;
            } else {
                throw new IllegalArgumentException("args[" + i + "]: expected a Tensor, Integer, Long, Float or LocalMemory, got "
                        + (a == null ? "null" : a.getClass().getName()));
            }
        }
        kernel.enqueue(s, OpenClDevice.roundUp(global, local), new long[] {local.x(), local.y(), local.z()}, bound);
        s.flush();
    }

    @Override
    public void close() {
        if (closed.compareAndSet(false, true)) {
            kernel.release();
        }
    }

    @Override
    public String toString() {
        return "kernel " + entryPoint() + " on " + device.id();
    }
}
