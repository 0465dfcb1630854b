package org.kernels4j.conformance;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.EnumSet;
import java.util.List;

import org.kernels4j.Backend;
import org.kernels4j.DType;
import org.kernels4j.Device;
import org.kernels4j.DeviceCapabilities;
import org.kernels4j.Event;
import org.kernels4j.Kernel;
import org.kernels4j.KernelSource;
import org.kernels4j.Stream;
import org.kernels4j.Tensor;
import org.kernels4j.spi.AbstractTensor;
import org.kernels4j.spi.AttentionKernels;
import org.kernels4j.spi.Conv2dKernels;
import org.kernels4j.spi.DeviceImplementation;
import org.kernels4j.spi.LayerNormKernels;

/**
 * A test-only second device with host-memory tensors, for the "tensors (or stream) from another device"
 * cases when the backend under test has a single device. It has no kernels: the ops must reject mixed
 * devices before dispatching, so any call reaching it fails the test with an {@link AssertionError}.
 *
 * <p>It also makes odd tensors that claim to live on a real device ({@link #tensorClaiming}): a dtype the
 * device does not support, or a non-contiguous layout. Validation must reject those before a backend ever
 * sees them.
 */
public final class ForeignDevice implements DeviceImplementation {

    private final Backend backend = new Backend() {
        @Override
        public String name() {
            return "foreign-test";
        }

        @Override
        public List<Device> devices() {
            return List.of(ForeignDevice.this);
        }
    };

    private final Stream defaultStream = new HostStream(this);

    @Override
    public Backend backend() {
        return backend;
    }

    @Override
    public String name() {
        return "foreign test device (host memory, no kernels)";
    }

    @Override
    public String vendor() {
        return "kernels4j conformance kit";
    }

    @Override
    public int index() {
        return 0;
    }

    @Override
    public DeviceCapabilities capabilities() {
        return new DeviceCapabilities(EnumSet.allOf(DType.class), false, false, 0, 0, 1, 1, Runtime.getRuntime().maxMemory(),
                "test", "host", false);
    }

    @Override
    public Tensor allocate(DType dtype, int... shape) {
        return new HostTensor(this, dtype, shape, true);
    }

    /**
     * A host tensor whose {@link Tensor#device()} is {@code device} although no backend made it; with
     * {@code contiguous = false} it reports a non-row-major layout.
     */
    public static Tensor tensorClaiming(Device device, DType dtype, boolean contiguous, int... shape) {
        return new HostTensor(device, dtype, shape, contiguous);
    }

    @Override
    public Stream defaultStream() {
        return defaultStream;
    }

    @Override
    public Stream createStream() {
        return new HostStream(this);
    }

    @Override
    public Kernel compileKernel(KernelSource source) {
        throw new UnsupportedOperationException("the foreign test device compiles no kernels");
    }

    @Override
    public void synchronize() {
    }

    @Override
    public LayerNormKernels layerNormKernels() {
        throw reached();
    }

    @Override
    public AttentionKernels attentionKernels() {
        throw reached();
    }

    @Override
    public Conv2dKernels conv2dKernels() {
        throw reached();
    }

    private static AssertionError reached() {
        return new AssertionError("an op dispatched to the foreign test device: validation let a call with "
                + "tensors of another device through");
    }

    @Override
    public String toString() {
        return id();
    }

    /** Host memory behind {@link AbstractTensor}'s conversions. */
    private static final class HostTensor extends AbstractTensor {
        private final ByteBuffer data;
        private final boolean contiguous;

        HostTensor(Device device, DType dtype, int[] shape, boolean contiguous) {
            super(device, dtype, shape, null);
            this.data = ByteBuffer.allocate(Math.toIntExact(byteSize())).order(ByteOrder.nativeOrder());
            this.contiguous = contiguous;
        }

        @Override
        protected void writeBytes(ByteBuffer src) {
            data.put(0, src, src.position(), data.capacity());
        }

        @Override
        protected void readBytes(ByteBuffer dst) {
            dst.put(dst.position(), data, 0, data.capacity());
        }

        @Override
        public boolean isContiguous() {
            return contiguous;
        }

        @Override
        public long[] strides() {
            long[] s = super.strides();
            if (!contiguous && s.length > 0) {
                // Column-major, the usual non-row-major layout a framework might hand over.
                long acc = 1;
                int[] shape = shape();
                for (int i = 0; i < s.length; i++) {
                    s[i] = acc;
                    acc *= shape[i];
                }
            }
            return s;
        }
    }

    private static final class HostStream implements Stream {
        private final Device device;

        HostStream(Device device) {
            this.device = device;
        }

        @Override
        public Device device() {
            return device;
        }

        @Override
        public void synchronize() {
        }

        @Override
        public Event record() {
            return new HostEvent(device, System.nanoTime());
        }

        @Override
        public void close() {
        }
    }

    private record HostEvent(Device device, long nanos) implements Event {
        @Override
        public void synchronize() {
        }

        @Override
        public boolean isComplete() {
            return true;
        }

        @Override
        public double elapsedMillisSince(Event start) {
            if (!(start instanceof HostEvent h) || h.device != device) {
                throw new IllegalArgumentException("start: expected an event of " + device.id() + ", got " + start);
            }
            return (nanos - h.nanos) / 1e6;
        }
    }
}
