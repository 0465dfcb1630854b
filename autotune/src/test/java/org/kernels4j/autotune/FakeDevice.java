package org.kernels4j.autotune;

import java.util.List;
import java.util.Set;

import org.kernels4j.Backend;
import org.kernels4j.DType;
import org.kernels4j.Device;
import org.kernels4j.DeviceCapabilities;
import org.kernels4j.Kernel;
import org.kernels4j.KernelSource;
import org.kernels4j.Stream;
import org.kernels4j.Tensor;

/** A device that only identifies itself: enough for tuning lookups and synthetic workloads. */
final class FakeDevice implements Device {

    private final String name;
    private final String vendor;
    private final DeviceCapabilities caps;
    private final Backend backend;

    FakeDevice(String name, String vendor, String architecture, String driver, int maxWorkgroup) {
        this.name = name;
        this.vendor = vendor;
        this.caps = new DeviceCapabilities(Set.of(DType.FLOAT32), true, true, 0, 32 * 1024, maxWorkgroup, 4,
                1L << 30, driver, architecture, false);
        FakeDevice self = this;
        this.backend = new Backend() {
            @Override
            public String name() {
                return "test";
            }

            @Override
            public List<Device> devices() {
                return List.of(self);
            }
        };
    }

    FakeDevice(String name) {
        this(name, "Fake Vendor", "fakearch", "1.0", 256);
    }

    @Override
    public Backend backend() {
        return backend;
    }

    @Override
    public String name() {
        return name;
    }

    @Override
    public String vendor() {
        return vendor;
    }

    @Override
    public int index() {
        return 0;
    }

    @Override
    public DeviceCapabilities capabilities() {
        return caps;
    }

    @Override
    public Tensor allocate(DType dtype, int... shape) {
        throw new UnsupportedOperationException("fake device");
    }

    @Override
    public Stream defaultStream() {
        throw new UnsupportedOperationException("fake device");
    }

    @Override
    public Stream createStream() {
        throw new UnsupportedOperationException("fake device");
    }

    @Override
    public Kernel compileKernel(KernelSource source) {
        throw new UnsupportedOperationException("fake device");
    }

    @Override
    public void synchronize() {
    }
}
