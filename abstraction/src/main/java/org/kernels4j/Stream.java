package org.kernels4j;

/**
 * An in-order queue of work on one device (a CUDA stream, an OpenCL command queue). Ops and kernel
 * launches return once the work is queued; {@link #synchronize()} waits for it. Work on different streams
 * may overlap. A stream may be used from several threads; the order of work submitted concurrently from
 * different threads is the order in which the submissions happen to arrive.
 *
 * <p>The CPU backend runs work eagerly on the caller's thread (with its worker pool), so on the CPU a
 * launch has finished when it returns.
 */
public interface Stream extends AutoCloseable {

    /** The device this stream belongs to. */
    Device device();

    /** Blocks until all work queued so far on this stream has finished. */
    void synchronize();

    /** Records an event after the work queued so far, for timing or waiting. */
    Event record();

    /** Whether {@link #close()} released this stream; ops reject closed streams. */
    default boolean isClosed() {
        return false;
    }

    /** Releases the stream after finishing its work; has no effect on a device's default stream. */
    @Override
    void close();
}
