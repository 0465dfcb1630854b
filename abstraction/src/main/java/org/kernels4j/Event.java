package org.kernels4j;

/** A point in a {@link Stream}'s work, recorded by {@link Stream#record()}; used to wait and to time. */
public interface Event {

    /** Blocks until the work before the event has finished. */
    void synchronize();

    /** Whether the work before the event has finished, without blocking. */
    boolean isComplete();

    /**
     * Milliseconds of device time between {@code start} and this event, both on the same device; waits for
     * this event first.
     *
     * @throws IllegalArgumentException when {@code start} is null or from another device
     */
    double elapsedMillisSince(Event start);
}
