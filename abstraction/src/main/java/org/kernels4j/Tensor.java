package org.kernels4j;

import java.nio.ByteBuffer;
import java.nio.FloatBuffer;

/**
 * A dense, contiguous (row-major) array on a {@link Device}, with a shape and a {@link DType}.
 *
 * <p>Host transfers block the caller and first wait for all work queued on the tensor's device, so the
 * data read is what the ops wrote. {@code float[]} and {@link FloatBuffer} transfers convert to and from
 * the tensor's dtype (round to nearest even); {@link ByteBuffer} transfers copy the raw element bytes in
 * the tensor's dtype and need a native-order buffer. A buffer must have exactly {@link #elementCount()}
 * elements ({@link #byteSize()} bytes) remaining; they are read or written from its position, and the
 * position is left unchanged.
 *
 * <p>Tensors hold device memory: close them. A tensor that becomes unreachable unclosed is freed and
 * reported as a leak. Using a closed tensor throws {@link IllegalStateException}.
 */
public interface Tensor extends AutoCloseable {

    /** The device holding the data. */
    Device device();

    /** The element type. */
    DType dtype();

    /** A copy of the shape. */
    int[] shape();

    /** Number of dimensions. */
    int rank();

    /** Size of dimension {@code i}; negative {@code i} counts from the end ({@code -1} is the last). */
    int dim(int i);

    /** Product of the dimensions. */
    long elementCount();

    /** {@code elementCount() * dtype().byteSize()}. */
    default long byteSize() {
        return elementCount() * dtype().byteSize();
    }

    /** Strides in elements; always row-major for tensors allocated by kernels4j. */
    long[] strides();

    /** Whether the elements are contiguous in row-major order. */
    boolean isContiguous();

    /** Copies {@code src} (exactly {@link #elementCount()} values) into the tensor. */
    void copyFrom(float[] src);

    /** Copies the buffer's remaining values (exactly {@link #elementCount()}) into the tensor. */
    void copyFrom(FloatBuffer src);

    /** Copies the buffer's remaining bytes (exactly {@link #byteSize()}: elements in this dtype, native order). */
    void copyFrom(ByteBuffer src);

    /** Copies the tensor into {@code dst} (exactly {@link #elementCount()} values). */
    void copyTo(float[] dst);

    /** Copies the tensor into the buffer's remaining slots (exactly {@link #elementCount()}). */
    void copyTo(FloatBuffer dst);

    /** Copies the tensor's raw bytes (this dtype, native order) into the buffer's remaining {@link #byteSize()} bytes. */
    void copyTo(ByteBuffer dst);

    /** The contents as a new {@code float[]}. */
    default float[] toFloatArray() {
        long n = elementCount();
        if (n > Integer.MAX_VALUE - 8) {
            throw new IllegalStateException("tensor has " + n + " elements, too many for a float[]");
        }
        float[] a = new float[(int) n];
        copyTo(a);
        return a;
    }

    /** Sets every element to {@code value} (converted to the dtype). */
    void fill(float value);

    /** Whether {@link #close()} was called. */
    boolean isClosed();

    /** Frees the memory; idempotent. */
    @Override
    void close();
}
