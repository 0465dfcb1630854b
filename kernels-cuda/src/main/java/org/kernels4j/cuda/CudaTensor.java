package org.kernels4j.cuda;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;

import org.kernels4j.DType;
import org.kernels4j.Device;
import org.kernels4j.Tensor;
import org.kernels4j.spi.AbstractTensor;
import org.kernels4j.spi.HalfFloats;

/**
 * A contiguous tensor in device memory: allocated here ({@code cuMemAlloc}, freed on close) or wrapping
 * memory a framework owns ({@link CudaInterop#wrap}, never freed here).
 *
 * <p>Host transfers first wait for all work on the device ({@code cuCtxSynchronize}), then copy through the
 * device's default stream and wait for the copy: the bytes read are those the queued ops wrote, and the
 * bytes written do not race with ops still reading the old ones. A heap buffer is staged through a direct
 * one, since the driver needs a stable address.
 */
final class CudaTensor extends AbstractTensor {

    private final CudaDevice device;
    private final long address;

    private CudaTensor(CudaDevice device, DType dtype, int[] shape, long address, Runnable free) {
        super(device, dtype, shape, free);
        this.device = device;
        this.address = address;
    }

    /** Allocates an uninitialised tensor; zero elements allocate nothing (address 0). */
    static CudaTensor allocate(CudaDevice device, DType dtype, int[] shape) {
        long bytes = Math.multiplyExact(elementCount(shape), (long) dtype.byteSize());
        if (bytes == 0) {
            return new CudaTensor(device, dtype, shape, 0L, null);
        }
        device.makeCurrent();
        CudaDriver driver = device.driver();
        long p = driver.memAlloc(bytes);
        long context = device.context();
        return new CudaTensor(device, dtype, shape, p, () -> {
            driver.setCurrent(context);
            driver.memFree(p);
        });
    }

    /** A tensor over memory that someone else owns and frees. */
    static CudaTensor wrap(CudaDevice device, long address, DType dtype, int[] shape) {
        return new CudaTensor(device, dtype, shape, address, null);
    }

    /**
     * The device address of {@code t}.
     *
     * @throws IllegalArgumentException when {@code t} is not a tensor of {@code device}
     * @throws IllegalStateException    when it is closed
     */
    static long address(Tensor t, Device device, String what) {
        if (!(t instanceof CudaTensor c) || c.device != device) {
            throw new IllegalArgumentException(what + ": expected a tensor of " + device.id() + ", got "
                    + (t == null ? "null" : t + " (" + t.getClass().getSimpleName() + ")"));
        }
        c.checkOpen();
        return c.address;
    }

    /** The device address, or 0 for null (an absent optional tensor). */
    static long addressOrZero(Tensor t, Device device, String what) {
        return t == null ? 0L : address(t, device, what);
    }

    long address() {
        checkOpen();
        return address;
    }

    @Override
    protected void writeBytes(ByteBuffer src) {
        long bytes = byteSize();
        if (bytes == 0) {
            return;
        }
        ByteBuffer direct = src;
        if (!src.isDirect()) {
            direct = ByteBuffer.allocateDirect(Math.toIntExact(bytes)).order(ByteOrder.nativeOrder());
            direct.put(0, src, src.position(), (int) bytes);
        }
        long stream = device.defaultStream().handle();
        device.makeCurrent();
        CudaDriver d = device.driver();
        d.contextSynchronize();
        d.memcpyHtoDAsync(address, direct, bytes, stream);
        d.streamSynchronize(stream);
    }

    @Override
    protected void readBytes(ByteBuffer dst) {
        long bytes = byteSize();
        if (bytes == 0) {
            return;
        }
        ByteBuffer direct = dst.isDirect() ? dst
                : ByteBuffer.allocateDirect(Math.toIntExact(bytes)).order(ByteOrder.nativeOrder());
        long stream = device.defaultStream().handle();
        device.makeCurrent();
        CudaDriver d = device.driver();
        d.contextSynchronize();
        d.memcpyDtoHAsync(direct, address, bytes, stream);
        d.streamSynchronize(stream);
        if (direct != dst) {
            dst.put(dst.position(), direct, 0, (int) bytes);
        }
    }

    /** Fills on the device (one memset) instead of transferring a host array. */
    @Override
    public void fill(float value) {
        checkOpen();
        long n = elementCount();
        if (n == 0) {
            return;
        }
        long stream = device.defaultStream().handle();
        device.makeCurrent();
        CudaDriver d = device.driver();
        d.contextSynchronize();
        if (dtype() == DType.FLOAT32) {
            d.memsetD32Async(address, Float.floatToRawIntBits(value), n, stream);
        } else {
            d.memsetD16Async(address, HalfFloats.encode(dtype(), value), n, stream);
        }
        d.streamSynchronize(stream);
    }
}
