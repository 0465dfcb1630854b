package org.kernels4j.cpu;

import org.kernels4j.Event;

/** A CPU event: the {@link System#nanoTime()} at which it was recorded, after all earlier (eager) work. */
final class CpuEvent implements Event {

    private final CpuDevice device;
    private final long nanos;

    CpuEvent(CpuDevice device, long nanos) {
        this.device = device;
        this.nanos = nanos;
    }

    @Override
    public void synchronize() {
    }

    @Override
    public boolean isComplete() {
        return true;
    }

    @Override
    public double elapsedMillisSince(Event start) {
        if (start == null) {
            throw new IllegalArgumentException("start: must not be null");
        }
        if (!(start instanceof CpuEvent s) || s.device != device) {
            throw new IllegalArgumentException("start: expected an event of " + device.id() + ", got one of another device");
        }
        return (nanos - s.nanos) / 1e6;
    }
}
