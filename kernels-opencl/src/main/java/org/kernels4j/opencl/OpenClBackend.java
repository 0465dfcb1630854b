package org.kernels4j.opencl;

import java.util.List;

import org.kernels4j.Backend;
import org.kernels4j.Device;

/** The started OpenCL backend: the devices of every platform, GPUs first. */
final class OpenClBackend implements Backend {

    static final String NAME = "opencl";

    private volatile List<Device> devices = List.of();

    void setDevices(List<OpenClDevice> list) {
        devices = List.copyOf(list);
    }

    @Override
    public String name() {
        return NAME;
    }

    @Override
    public List<Device> devices() {
        return devices;
    }

    @Override
    public String toString() {
        return "opencl backend " + devices.stream().map(Device::name).toList();
    }
}
