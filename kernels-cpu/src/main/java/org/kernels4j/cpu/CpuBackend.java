package org.kernels4j.cpu;

import java.util.List;

import org.kernels4j.Backend;

/** The CPU backend: one device, the whole machine. A single instance per JVM. */
final class CpuBackend implements Backend {

    private static final class Holder {
        static final CpuBackend INSTANCE = new CpuBackend();
    }

    private final CpuDevice device;

    private CpuBackend() {
        this.device = new CpuDevice(this);
    }

    /** The backend, started on first use. */
    static CpuBackend instance() {
        return Holder.INSTANCE;
    }

    CpuDevice device() {
        return device;
    }

    @Override
    public String name() {
        return "cpu";
    }

    @Override
    public List<org.kernels4j.Device> devices() {
        return List.of(device);
    }

    @Override
    public String toString() {
        return "cpu backend (" + Vectorization.DESCRIPTION + ")";
    }
}
