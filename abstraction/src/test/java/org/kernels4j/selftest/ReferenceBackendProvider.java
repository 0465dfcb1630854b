package org.kernels4j.selftest;

import java.util.EnumSet;
import java.util.List;
import java.util.Set;

import org.kernels4j.Backend;
import org.kernels4j.DType;
import org.kernels4j.Device;
import org.kernels4j.DeviceCapabilities;
import org.kernels4j.Event;
import org.kernels4j.Kernel;
import org.kernels4j.KernelSource;
import org.kernels4j.Stream;
import org.kernels4j.Tensor;
import org.kernels4j.conformance.ForeignDevice;
import org.kernels4j.spi.AttentionKernels;
import org.kernels4j.spi.BackendProvider;
import org.kernels4j.spi.Conv2dKernels;
import org.kernels4j.spi.DeviceImplementation;
import org.kernels4j.spi.LayerNormKernels;

/**
 * A test-only backend named {@value #NAME} for exercising the conformance kit inside abstraction: it is not
 * a kernel implementation, its "kernels" are the float64 references ({@link ReferenceKernels}) with the
 * results rounded into the output tensors, on host memory, for every dtype. {@link ReferenceKernels#fault}
 * makes it wrong on purpose, so that the kit's self-test can show each check fails when it should.
 */
public final class ReferenceBackendProvider implements BackendProvider {

    /** The backend's name, for {@code kernels4j.conformance.backend}. */
    public static final String NAME = "selftest";

    /** The dtypes the device reports; the self-test narrows it to fp32 for runs about fp32 only. */
    static volatile Set<DType> dtypes = EnumSet.allOf(DType.class);

    @Override
    public String name() {
        return NAME;
    }

    @Override
    public int priority() {
        return 1;
    }

    @Override
    public Backend start() {
        return new SelfTestBackend();
    }

    private static final class SelfTestBackend implements Backend {
        private final List<Device> devices = List.of(new SelfTestDevice(this));

        @Override
        public String name() {
            return NAME;
        }

        @Override
        public List<Device> devices() {
            return devices;
        }
    }

    private static final class SelfTestDevice implements DeviceImplementation {
        private final Backend backend;
        private final ReferenceKernels kernels = new ReferenceKernels();
        private final Stream defaultStream = new SelfTestStream(this);

        SelfTestDevice(Backend backend) {
            this.backend = backend;
        }

        @Override
        public Backend backend() {
            return backend;
        }

        @Override
        public String name() {
            return "float64 references on the host (kit self-test only)";
        }

        @Override
        public String vendor() {
            return "kernels4j";
        }

        @Override
        public int index() {
            return 0;
        }

        @Override
        public DeviceCapabilities capabilities() {
            return new DeviceCapabilities(dtypes, true, false, 0, 0, 1, 1,
                    Runtime.getRuntime().maxMemory(), "1", "host", false);
        }

        @Override
        public Tensor allocate(DType dtype, int... shape) {
            if (dtype == null) {
                throw new IllegalArgumentException("dtype: must not be null");
            }
            return ForeignDevice.tensorClaiming(this, dtype, true, shape);
        }

        @Override
        public Stream defaultStream() {
            return defaultStream;
        }

        @Override
        public Stream createStream() {
            return new SelfTestStream(this);
        }

        @Override
        public Kernel compileKernel(KernelSource source) {
            throw new UnsupportedOperationException("the self-test backend compiles no kernels");
        }

        @Override
        public void synchronize() {
        }

        @Override
        public LayerNormKernels layerNormKernels() {
            return kernels;
        }

        @Override
        public AttentionKernels attentionKernels() {
            return kernels;
        }

        @Override
        public Conv2dKernels conv2dKernels() {
            return kernels;
        }
    }

    private record SelfTestStream(Device device) implements Stream {
        @Override
        public void synchronize() {
        }

        @Override
        public Event record() {
            return new SelfTestEvent(device, System.nanoTime());
        }

        @Override
        public void close() {
        }
    }

    private record SelfTestEvent(Device device, long nanos) implements Event {
        @Override
        public void synchronize() {
        }

        @Override
        public boolean isComplete() {
            return true;
        }

        @Override
        public double elapsedMillisSince(Event start) {
            if (!(start instanceof SelfTestEvent s) || s.device != device) {
                throw new IllegalArgumentException("start: expected an event of " + device.id() + ", got " + start);
            }
            return (nanos - s.nanos) / 1e6;
        }
    }
}
