package org.kernels4j.cpu;

import java.nio.ByteBuffer;
import java.nio.FloatBuffer;
import java.util.Arrays;

import org.kernels4j.DType;
import org.kernels4j.Tensor;
import org.kernels4j.spi.AbstractTensor;

/**
 * A tensor of the CPU backend: float32 elements in a Java heap {@code float[]}, row-major, starting at
 * {@link #arrayOffset()}.
 *
 * <p>For frameworks that already hold their data in a {@code float[]}, {@link #wrap(float[], int...)}
 * (or {@link #view(float[], int, int...)} for a range of a larger array)
 * makes a tensor that <em>is</em> that array (no copy): ops read and write the array directly, and
 * {@link #array()} gives the array of any CPU tensor back, so results can be used without
 * {@link #copyTo(float[])}. Closing a wrapped tensor only marks it closed; the array stays the caller's.
 * As with every tensor, close it when done (an unclosed tensor is reported as a leak when collected).
 *
 * <p>Host transfers are plain array copies; {@code FloatBuffer} and native-order {@code ByteBuffer}
 * transfers use bulk buffer operations (no intermediate copy). The CPU backend runs work eagerly, so the
 * data is current whenever an op has returned. Ops may run on several threads at once only on distinct
 * output tensors, as on every backend.
 */
public final class CpuTensor extends AbstractTensor {

    private final float[] data;
    private final int offset;

    CpuTensor(CpuDevice device, float[] data, int offset, int[] shape) {
        super(device, DType.FLOAT32, shape, null);
        this.data = data;
        this.offset = offset;
    }

    /**
     * A tensor of {@code shape} viewing {@code data} from index {@code offset} (row-major), without copying.
     *
     * @throws IllegalArgumentException when {@code data} or {@code shape} is null, a dimension is negative,
     *                                  or the array is too short
     */
    public static CpuTensor view(float[] data, int offset, int... shape) {
        if (data == null) {
            throw new IllegalArgumentException("data: must not be null");
        }
        long n = elementCount(shape);
        if (offset < 0 || offset + n > data.length) {
            throw new IllegalArgumentException("offset: expected an offset in [0, " + (data.length - n) + "] so that "
                    + n + " elements (shape " + Arrays.toString(shape) + ") fit in an array of " + data.length
                    + ", got " + offset);
        }
        return new CpuTensor(CpuBackend.instance().device(), data, offset, shape);
    }

    /** A tensor of {@code shape} viewing the whole of {@code data}, which must hold exactly that many elements. */
    public static CpuTensor wrap(float[] data, int... shape) {
        if (data == null) {
            throw new IllegalArgumentException("data: must not be null");
        }
        long n = elementCount(shape);
        if (n != data.length) {
            throw new IllegalArgumentException("data: expected " + n + " elements (shape " + Arrays.toString(shape)
                    + "), got an array of " + data.length);
        }
        return view(data, 0, shape);
    }

    /**
     * The backing array; the tensor's elements are {@code array()[arrayOffset() + i]} for
     * {@code i < elementCount()}. Writes to it are seen by later ops.
     *
     * @throws IllegalStateException when the tensor is closed
     */
    public float[] array() {
        checkOpen();
        return data;
    }

    /** Index of the first element in {@link #array()}. */
    public int arrayOffset() {
        return offset;
    }

    /** The backing array of a CPU tensor, for kernels; the ops validated that it is open. */
    static float[] data(Tensor t) {
        return ((CpuTensor) t).data;
    }

    /** The offset of a CPU tensor's first element, for kernels. */
    static int offset(Tensor t) {
        return ((CpuTensor) t).offset;
    }

    private int count() {
        return (int) elementCount();
    }

    @Override
    protected void writeBytes(ByteBuffer src) {
        src.asFloatBuffer().get(0, data, offset, count());
    }

    @Override
    protected void readBytes(ByteBuffer dst) {
        dst.asFloatBuffer().put(0, data, offset, count());
    }

    @Override
    public void copyFrom(float[] src) {
        checkOpen();
        checkLength(src == null ? -1 : src.length, "src");
        System.arraycopy(src, 0, data, offset, count());
    }

    @Override
    public void copyFrom(FloatBuffer src) {
        checkOpen();
        checkLength(src == null ? -1 : src.remaining(), "src");
        src.get(src.position(), data, offset, count());
    }

    @Override
    public void copyTo(float[] dst) {
        checkOpen();
        checkLength(dst == null ? -1 : dst.length, "dst");
        System.arraycopy(data, offset, dst, 0, count());
    }

    @Override
    public void copyTo(FloatBuffer dst) {
        checkOpen();
        checkLength(dst == null ? -1 : dst.remaining(), "dst");
        if (dst.isReadOnly()) {
            throw new IllegalArgumentException("dst: buffer is read-only");
        }
        dst.put(dst.position(), data, offset, count());
    }

    @Override
    public void fill(float value) {
        checkOpen();
        Arrays.fill(data, offset, offset + count(), value);
    }

    private void checkLength(long length, String name) {
        if (length < 0) {
            throw new IllegalArgumentException(name + ": must not be null");
        }
        if (length != elementCount()) {
            throw new IllegalArgumentException(name + ": expected " + elementCount() + " elements (shape "
                    + Arrays.toString(shape()) + "), got " + length);
        }
    }
}
