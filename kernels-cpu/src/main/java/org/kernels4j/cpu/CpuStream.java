package org.kernels4j.cpu;

import org.kernels4j.Device;
import org.kernels4j.Event;
import org.kernels4j.Stream;

/**
 * A CPU stream. Work runs eagerly on the thread that submits it (helped by the backend's worker pool) and
 * has finished when the call returns, so {@link #synchronize()} has nothing to wait for and events record
 * the time at which they are created.
 */
final class CpuStream implements Stream {

    private final CpuDevice device;
    private final boolean isDefault;
    private volatile boolean closed;

    CpuStream(CpuDevice device, boolean isDefault) {
        this.device = device;
        this.isDefault = isDefault;
    }

    @Override
    public Device device() {
        return device;
    }

    @Override
    public void synchronize() {
        checkOpen();
    }

    @Override
    public Event record() {
        checkOpen();
        return new CpuEvent(device, System.nanoTime());
    }

    @Override
    public void close() {
        if (!isDefault) {
            closed = true;
        }
    }

    private void checkOpen() {
        if (closed) {
            throw new IllegalStateException("stream of " + device.id() + " is closed");
        }
    }

    @Override
    public String toString() {
        return (isDefault ? "default stream" : "stream") + " of " + device.id() + (closed ? " (closed)" : "");
    }
}
