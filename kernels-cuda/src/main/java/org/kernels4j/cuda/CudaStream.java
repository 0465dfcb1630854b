package org.kernels4j.cuda;

import java.util.concurrent.locks.ReentrantLock;

import org.kernels4j.Event;
import org.kernels4j.Stream;

/**
 * A {@code CUstream}: the device's default stream, one created by {@link CudaDevice#createStream()}, or one a
 * framework owns ({@link CudaInterop#wrapStream}), which is never destroyed here.
 *
 * <p>Each stream has a scratch buffer for ops that need temporary device memory (partial sums): work on one
 * stream runs in order, so consecutive ops can reuse it without waiting. An op holds it for all of its
 * launches ({@link #withWorkspace}), so that ops queued on the same stream from two threads do not share it.
 */
final class CudaStream implements Stream {

    enum Kind {
        /** The device's default stream: never closed. */
        DEFAULT,
        /** Created by kernels4j: destroyed on close. */
        OWNED,
        /** Owned by a framework: close only forgets it. */
        BORROWED
    }

    /** What an op does with the stream's scratch memory. */
    @FunctionalInterface
    interface WorkspaceUse {
        /** Queues the op's work; {@code address} holds at least the bytes asked for, until this returns. */
        void run(long address);
    }

    private final CudaDevice device;
    private final long handle;
    private final Kind kind;
    private final ReentrantLock workspaceLock = new ReentrantLock();
    private long workspace;
    private long workspaceBytes;
    private volatile boolean closed;

    CudaStream(CudaDevice device, long handle, Kind kind) {
        this.device = device;
        this.handle = handle;
        this.kind = kind;
    }

    /**
     * The CUDA stream behind {@code stream}.
     *
     * @throws IllegalArgumentException when it is null or of another backend
     * @throws IllegalStateException    when it was closed
     */
    static CudaStream of(Stream stream) {
        if (!(stream instanceof CudaStream s)) {
            throw new IllegalArgumentException("stream: expected a stream of a CUDA device, got "
                    + (stream == null ? "null" : stream.getClass().getName() + " of " + stream.device().id()));
        }
        if (s.closed) {
            throw new IllegalStateException("stream: " + s + " is closed");
        }
        return s;
    }

    /** The driver's handle ({@code 0} is the legacy default stream). */
    long handle() {
        if (closed) {
            throw new IllegalStateException("stream " + this + " is closed");
        }
        return handle;
    }

    Kind kind() {
        return kind;
    }

    @Override
    public CudaDevice device() {
        return device;
    }

    /** Runs {@code use} with at least {@code bytes} of this stream's scratch memory, grown when too small. */
    void withWorkspace(long bytes, WorkspaceUse use) {
        workspaceLock.lock();
        try {
            if (bytes > workspaceBytes) {
                device.makeCurrent();
                CudaDriver d = device.driver();
                if (workspace != 0) {
                    d.streamSynchronize(handle());   // earlier ops on this stream may still read it
                    d.memFree(workspace);
                    workspace = 0;
                    workspaceBytes = 0;
                }
                long size = Math.max(bytes, 1L << 20);
                workspace = d.memAlloc(size);
                workspaceBytes = size;
            }
            use.run(workspace);
        } finally {
            workspaceLock.unlock();
        }
    }

    @Override
    public void synchronize() {
        device.makeCurrent();
        device.driver().streamSynchronize(handle());
    }

    @Override
    public Event record() {
        return new CudaEvent(device, handle());
    }

    @Override
    public void close() {
        if (kind == Kind.DEFAULT || closed) {
            return;
        }
        workspaceLock.lock();
        try {
            if (closed) {
                return;
            }
            device.makeCurrent();
            CudaDriver d = device.driver();
            d.streamSynchronize(handle);
            if (workspace != 0) {
                d.memFree(workspace);
                workspace = 0;
                workspaceBytes = 0;
            }
            if (kind == Kind.OWNED) {
                d.streamDestroy(handle);
            }
            closed = true;
        } finally {
            workspaceLock.unlock();
        }
    }

    @Override
    public String toString() {
        return device.id() + " " + kind.name().toLowerCase(java.util.Locale.ROOT) + " stream 0x" + Long.toHexString(handle);
    }
}
