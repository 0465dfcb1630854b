package org.kernels4j.opencl;

import java.util.concurrent.atomic.AtomicBoolean;

import org.jocl.CL;
import org.jocl.cl_command_queue;
import org.jocl.cl_event;
import org.kernels4j.Event;
import org.kernels4j.Stream;

/** A command queue of one device; in order, profiling-enabled unless adopted from a framework without it. */
final class OpenClStream implements Stream {

    private final OpenClDevice device;
    private final cl_command_queue queue;
    private final boolean profiling;
    private final boolean isDefault;
    private final AtomicBoolean closed = new AtomicBoolean();
    private boolean released;

    OpenClStream(OpenClDevice device, cl_command_queue queue, boolean profiling, boolean isDefault) {
        this.device = device;
        this.queue = queue;
        this.profiling = profiling;
        this.isDefault = isDefault;
    }

    cl_command_queue queue() {
        return queue;
    }

    void checkOpen() {
        if (closed.get()) {
            throw new IllegalStateException("stream of " + device.id() + " is closed");
        }
    }

    @Override
    public OpenClDevice device() {
        return device;
    }

    @Override
    public void synchronize() {
        checkOpen();
        finish();
    }

    /** Waits for the queue; a no-op once closed (the device's synchronize may race with a close). */
    synchronized void finish() {
        if (!released) {
            OpenClCalls.check(CL.clFinish(queue), "clFinish");
        }
    }

    /** Submits what is queued so far without waiting, so that it starts while the caller goes on. */
    void flush() {
        OpenClCalls.check(CL.clFlush(queue), "clFlush");
    }

    @Override
    public Event record() {
        checkOpen();
        cl_event e = new cl_event();
        OpenClCalls.check(CL.clEnqueueMarkerWithWaitList(queue, 0, null, e), "clEnqueueMarkerWithWaitList");
        flush();
        return new OpenClEvent(device, e, profiling);
    }

    @Override
    public void close() {
        if (isDefault || !closed.compareAndSet(false, true)) {
            return;
        }
        device.forget(this);
        synchronized (this) {
            try {
                OpenClCalls.check(CL.clFinish(queue), "clFinish");
            } finally {
                released = true;
                CL.clReleaseCommandQueue(queue);
            }
        }
    }

    @Override
    public String toString() {
        return (isDefault ? "default stream of " : "stream of ") + device.id();
    }
}
