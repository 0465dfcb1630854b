package org.kernels4j.cuda;

import java.util.ArrayList;
import java.util.List;

import org.kernels4j.Backend;
import org.kernels4j.Device;

/** The started CUDA backend: the devices of compute capability 8.0 or newer. */
final class CudaBackend implements Backend {

    private final List<Device> devices;

    /** Creates a device for each ordinal in {@code ordinals} (with its compute capability). */
    CudaBackend(CudaDriver driver, KernelManifest manifest, List<int[]> ordinals) {
        List<Device> ds = new ArrayList<>();
        for (int[] o : ordinals) {
            ds.add(new CudaDevice(this, driver, manifest, ds.size(), o[0], o[1], o[2]));
        }
        this.devices = List.copyOf(ds);
    }

    @Override
    public String name() {
        return "cuda";
    }

    @Override
    public List<Device> devices() {
        return devices;
    }

    @Override
    public String toString() {
        return "cuda " + devices;
    }
}
