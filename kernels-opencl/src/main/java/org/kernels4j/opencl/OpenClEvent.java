package org.kernels4j.opencl;

import java.lang.ref.Cleaner;

import org.jocl.CL;
import org.jocl.Pointer;
import org.jocl.Sizeof;
import org.jocl.cl_event;
import org.kernels4j.Event;

/** A marker in a queue; times come from the driver's profiling counters. Released when unreachable. */
final class OpenClEvent implements Event {

    private static final Cleaner CLEANER = Cleaner.create();

    private final OpenClDevice device;
    private final cl_event event;
    private final boolean profiling;

    OpenClEvent(OpenClDevice device, cl_event event, boolean profiling) {
        this.device = device;
        this.event = event;
        this.profiling = profiling;
        CLEANER.register(this, () -> CL.clReleaseEvent(event));
    }

    @Override
    public void synchronize() {
        OpenClCalls.check(CL.clWaitForEvents(1, new cl_event[] {event}), "clWaitForEvents");
    }

    @Override
    public boolean isComplete() {
        int[] status = new int[1];
        OpenClCalls.check(CL.clGetEventInfo(event, CL.CL_EVENT_COMMAND_EXECUTION_STATUS, Sizeof.cl_int,
                Pointer.to(status), null), "clGetEventInfo");
        if (status[0] < 0) {
            throw new IllegalStateException("the work before this event failed on " + device.id() + ": "
                    + OpenClCalls.errorName(status[0]));
        }
        return status[0] == CL.CL_COMPLETE;
    }

    @Override
    public double elapsedMillisSince(Event start) {
        if (!(start instanceof OpenClEvent s) || s.device != device) {
            throw new IllegalArgumentException("start: expected an event of " + device.id() + ", got "
                    + (start == null ? "null" : start));
        }
        if (!profiling || !s.profiling) {
            throw new IllegalStateException("event timing needs queues created with CL_QUEUE_PROFILING_ENABLE");
        }
        s.synchronize();
        synchronize();
        return (endNanos() - s.endNanos()) / 1e6;
    }

    private long endNanos() {
        long[] t = new long[1];
        OpenClCalls.check(CL.clGetEventProfilingInfo(event, CL.CL_PROFILING_COMMAND_END, Sizeof.cl_ulong,
                Pointer.to(t), null), "clGetEventProfilingInfo");
        return t[0];
    }

    @Override
    public String toString() {
        return "event on " + device.id();
    }
}
