package org.kernels4j.spi;

import java.lang.ref.Cleaner;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.FloatBuffer;
import java.util.Arrays;
import java.util.concurrent.atomic.AtomicBoolean;

import org.kernels4j.DType;
import org.kernels4j.Device;
import org.kernels4j.Tensor;

/**
 * The shared part of every backend's tensor: shape bookkeeping, the closed state, leak reporting, argument
 * checks and dtype conversion of host transfers. A backend implements raw byte transfers and release.
 */
public abstract class AbstractTensor implements Tensor {

    private static final Cleaner CLEANER = Cleaner.create();
    private static final System.Logger LOG = System.getLogger("org.kernels4j");

    private final Device device;
    private final DType dtype;
    private final int[] shape;
    private final long elementCount;
    private final Release release;
    private final Cleaner.Cleanable cleanable;

    /**
     * @param device    the owning device
     * @param dtype     element type
     * @param shape     dimensions, each >= 0
     * @param freeNative frees the memory; must not refer to this tensor (it also runs when the tensor is
     *                  collected unclosed); null when the memory is managed by the garbage collector
     */
    protected AbstractTensor(Device device, DType dtype, int[] shape, Runnable freeNative) {
        if (dtype == null) {
            throw new IllegalArgumentException("dtype: must not be null");
        }
        this.device = device;
        this.dtype = dtype;
        this.shape = shape.clone();
        this.elementCount = elementCount(this.shape);
        String where = Debug.enabled(1) ? allocationSite() : null;
        this.release = new Release(freeNative, describe(device, dtype, this.shape), where);
        this.cleanable = CLEANER.register(this, release);
    }

    /**
     * Validates a requested shape: not null, every dimension >= 0, element count within a long.
     *
     * @return the number of elements
     */
    public static long elementCount(int[] shape) {
        if (shape == null) {
            throw new IllegalArgumentException("shape: must not be null");
        }
        long n = 1;
        for (int i = 0; i < shape.length; i++) {
            if (shape[i] < 0) {
                throw new IllegalArgumentException("shape: dimension " + i + " is negative in " + Arrays.toString(shape));
            }
            n = Math.multiplyExact(n, (long) shape[i]);
        }
        return n;
    }

    /** Copies exactly {@link #byteSize()} bytes from {@code src} (native order, from its position) to the device. */
    protected abstract void writeBytes(ByteBuffer src);

    /** Copies exactly {@link #byteSize()} bytes from the device into {@code dst} (native order, from its position). */
    protected abstract void readBytes(ByteBuffer dst);

    /** Throws {@link IllegalStateException} when closed. */
    protected final void checkOpen() {
        if (release.closed.get()) {
            throw new IllegalStateException("tensor " + release.description + " is closed");
        }
    }

    @Override
    public final Device device() {
        return device;
    }

    @Override
    public final DType dtype() {
        return dtype;
    }

    @Override
    public final int[] shape() {
        return shape.clone();
    }

    @Override
    public final int rank() {
        return shape.length;
    }

    @Override
    public final int dim(int i) {
        int j = i < 0 ? shape.length + i : i;
        if (j < 0 || j >= shape.length) {
            throw new IndexOutOfBoundsException("dimension " + i + " of a rank-" + shape.length + " tensor");
        }
        return shape[j];
    }

    @Override
    public final long elementCount() {
        return elementCount;
    }

    @Override
    public long[] strides() {
        long[] s = new long[shape.length];
        long acc = 1;
        for (int i = shape.length - 1; i >= 0; i--) {
            s[i] = acc;
            acc *= shape[i];
        }
        return s;
    }

    @Override
    public boolean isContiguous() {
        return true;
    }

    @Override
    public void copyFrom(float[] src) {
        checkOpen();
        checkLength(src == null ? -1 : src.length, "src");
        copyFrom(FloatBuffer.wrap(src));
    }

    @Override
    public void copyFrom(FloatBuffer src) {
        checkOpen();
        checkLength(src == null ? -1 : src.remaining(), "src");
        ByteBuffer bytes = ByteBuffer.allocateDirect(Math.toIntExact(byteSize())).order(ByteOrder.nativeOrder());
        int n = (int) elementCount;
        int base = src.position();
        if (dtype == DType.FLOAT32) {
            bytes.asFloatBuffer().put(0, src, base, n);
        } else {
            for (int i = 0; i < n; i++) {
                bytes.putShort(2 * i, HalfFloats.encode(dtype, src.get(base + i)));
            }
        }
        writeBytes(bytes);
    }

    @Override
    public void copyFrom(ByteBuffer src) {
        checkOpen();
        checkByteBuffer(src, "src");
        writeBytes(src.duplicate().order(ByteOrder.nativeOrder()));
    }

    @Override
    public void copyTo(float[] dst) {
        checkOpen();
        checkLength(dst == null ? -1 : dst.length, "dst");
        copyTo(FloatBuffer.wrap(dst));
    }

    @Override
    public void copyTo(FloatBuffer dst) {
        checkOpen();
        checkLength(dst == null ? -1 : dst.remaining(), "dst");
        if (dst.isReadOnly()) {
            throw new IllegalArgumentException("dst: buffer is read-only");
        }
        ByteBuffer bytes = ByteBuffer.allocateDirect(Math.toIntExact(byteSize())).order(ByteOrder.nativeOrder());
        readBytes(bytes);
        int n = (int) elementCount;
        int base = dst.position();
        if (dtype == DType.FLOAT32) {
            dst.put(base, bytes.asFloatBuffer(), 0, n);
        } else {
            for (int i = 0; i < n; i++) {
                dst.put(base + i, HalfFloats.decode(dtype, bytes.getShort(2 * i)));
            }
        }
    }

    @Override
    public void copyTo(ByteBuffer dst) {
        checkOpen();
        checkByteBuffer(dst, "dst");
        if (dst.isReadOnly()) {
            throw new IllegalArgumentException("dst: buffer is read-only");
        }
        readBytes(dst.duplicate().order(ByteOrder.nativeOrder()));
    }

    @Override
    public void fill(float value) {
        checkOpen();
        float[] a = new float[Math.toIntExact(elementCount)];
        Arrays.fill(a, value);
        copyFrom(a);
    }

    @Override
    public final boolean isClosed() {
        return release.closed.get();
    }

    @Override
    public void close() {
        if (release.closed.compareAndSet(false, true)) {
            release.explicit = true;
            cleanable.clean();
        }
    }

    @Override
    public String toString() {
        return release.description + (isClosed() ? " (closed)" : "");
    }

    private void checkLength(long length, String name) {
        if (length < 0) {
            throw new IllegalArgumentException(name + ": must not be null");
        }
        if (length != elementCount) {
            throw new IllegalArgumentException(name + ": expected " + elementCount + " elements (shape "
                    + Arrays.toString(shape) + "), got " + length);
        }
    }

    private void checkByteBuffer(ByteBuffer b, String name) {
        if (b == null) {
            throw new IllegalArgumentException(name + ": must not be null");
        }
        if (b.order() != ByteOrder.nativeOrder()) {
            throw new IllegalArgumentException(name + ": expected a " + ByteOrder.nativeOrder()
                    + " (native order) buffer, got " + b.order());
        }
        if (b.remaining() != byteSize()) {
            throw new IllegalArgumentException(name + ": expected " + byteSize() + " bytes remaining ("
                    + elementCount + " " + dtype + " elements), got " + b.remaining());
        }
    }

    private static String describe(Device device, DType dtype, int[] shape) {
        return dtype + Arrays.toString(shape) + " on " + (device == null ? "?" : device.id());
    }

    private static String allocationSite() {
        StackTraceElement[] st = new Throwable().getStackTrace();
        StringBuilder sb = new StringBuilder();
        int shown = 0;
        for (StackTraceElement e : st) {
            if (e.getClassName().startsWith("org.kernels4j.spi.") || shown >= 6) {
                continue;
            }
            sb.append("\n    at ").append(e);
            shown++;
        }
        return sb.toString();
    }

    /** Frees once; reports a leak when run by the cleaner instead of close(). */
    private static final class Release implements Runnable {
        final AtomicBoolean closed = new AtomicBoolean();
        final Runnable freeNative;
        final String description;
        final String allocationSite;
        volatile boolean explicit;

        Release(Runnable freeNative, String description, String allocationSite) {
            this.freeNative = freeNative;
            this.description = description;
            this.allocationSite = allocationSite;
        }

        @Override
        public void run() {
            if (!explicit) {
                closed.set(true);
                LOG.log(System.Logger.Level.WARNING, "kernels4j: tensor " + description
                        + " was never closed; freed when it became unreachable"
                        + (allocationSite != null ? ". Allocated" + allocationSite
                        : " (set KERNELS4J_DEBUG=1 to see where it was allocated)"));
            }
            if (freeNative != null) {
                freeNative.run();
            }
        }
    }
}
