package org.kernels4j.cuda;

import java.lang.ref.Cleaner;

import org.kernels4j.Event;

/** A recorded {@code CUevent}; destroyed when it becomes unreachable (events have no close in the API). */
final class CudaEvent implements Event {

    private static final Cleaner CLEANER = Cleaner.create();

    private final CudaDevice device;
    private final long handle;

    /** Creates an event and records it on {@code stream}. */
    CudaEvent(CudaDevice device, long stream) {
        this.device = device;
        device.makeCurrent();
        CudaDriver driver = device.driver();
        long e = driver.eventCreate();
        try {
            driver.eventRecord(e, stream);
        } catch (RuntimeException ex) {
            driver.eventDestroy(e);
            throw ex;
        }
        this.handle = e;
        long context = device.context();
        CLEANER.register(this, () -> {
            driver.setCurrent(context);
            driver.eventDestroy(e);
        });
    }

    long handle() {
        return handle;
    }

    CudaDevice device() {
        return device;
    }

    @Override
    public void synchronize() {
        device.makeCurrent();
        device.driver().eventSynchronize(handle);
    }

    @Override
    public boolean isComplete() {
        device.makeCurrent();
        return device.driver().eventQuery(handle);
    }

    @Override
    public double elapsedMillisSince(Event start) {
        if (start == null) {
            throw new IllegalArgumentException("start: must not be null");
        }
        if (!(start instanceof CudaEvent s) || s.device != device) {
            throw new IllegalArgumentException("start: expected an event of " + device.id() + ", got "
                    + (start instanceof CudaEvent s2 ? "one of " + s2.device.id() : start.getClass().getName()));
        }
        synchronize();
        return device.driver().eventElapsedTime(s.handle, handle);
    }
}
