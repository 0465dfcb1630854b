package org.kernels4j.cuda;

import java.util.ArrayList;
import java.util.List;

import org.kernels4j.Backend;
import org.kernels4j.spi.BackendProvider;
import org.kernels4j.spi.Debug;

/**
 * The CUDA backend's entry for {@link java.util.ServiceLoader}: name {@code "cuda"}, priority 300.
 *
 * <p>{@link #start()} fails, with the reason, when this jar was built without CUDA kernels (nvcc was absent),
 * when {@code libcuda.so.1} does not load ("libcuda.so.1 not found"), when there is no device ("no CUDA
 * device"), when the driver is older than the CUDA version the kernels were built with, or when no device
 * has compute capability 8.0 or newer (the kernels target sm_80 and later). Discovery then skips the backend.
 */
public final class CudaBackendProvider implements BackendProvider {

    /** The oldest architecture the shipped kernels run on (their PTX is compute_80). */
    static final int MIN_COMPUTE_CAPABILITY = 80;

    /** Creates the provider; nothing native is touched until {@link #start()}. */
    public CudaBackendProvider() {
    }

    @Override
    public String name() {
        return "cuda";
    }

    @Override
    public int priority() {
        return 300;
    }

    @Override
    public Backend start() {
        KernelManifest manifest = KernelManifest.load();
        if (manifest == null) {
            throw new IllegalStateException("built without CUDA kernels (nvcc was not found when "
                    + "kernels4j-kernels-cuda was built)");
        }
        return start(JCudaDriverBinding.load(), manifest);
    }

    /** Starts on {@code driver}; separate from {@link #start()} so that tests can drive it with a fake. */
    static Backend start(CudaDriver driver, KernelManifest manifest) {
        try {
            driver.init();
        } catch (CudaException e) {
            if (e.result() == CudaDriver.CUDA_ERROR_NO_DEVICE) {
                throw new IllegalStateException("no CUDA device (" + e.getMessage() + ")", e);
            }
            throw new IllegalStateException("the CUDA driver did not initialise: " + e.getMessage(), e);
        }
        int version = driver.driverVersion();
        if (version / 1000 < manifest.nvccMajor()) {
            throw new IllegalStateException("the CUDA driver supports CUDA " + version / 1000 + "." + version % 1000 / 10
                    + ", but the kernels were built with nvcc " + manifest.nvccVersion() + ": a driver for CUDA "
                    + manifest.nvccMajor() + ".0 or newer is needed");
        }
        int count = driver.deviceCount();
        if (count == 0) {
            throw new IllegalStateException("no CUDA device");
        }
        List<int[]> usable = new ArrayList<>();
        List<String> tooOld = new ArrayList<>();
        for (int i = 0; i < count; i++) {
            int handle = driver.device(i);
            int major = driver.deviceAttribute(handle, CudaDriver.ATTR_COMPUTE_CAPABILITY_MAJOR);
            int minor = driver.deviceAttribute(handle, CudaDriver.ATTR_COMPUTE_CAPABILITY_MINOR);
            if (major * 10 + minor >= MIN_COMPUTE_CAPABILITY) {
                usable.add(new int[] {handle, major, minor});
            } else {
                tooOld.add(driver.deviceName(handle) + " (compute capability " + major + "." + minor + ")");
            }
        }
        if (!tooOld.isEmpty()) {
            Debug.log(1, () -> "cuda: skipping devices older than compute capability 8.0: " + tooOld);
        }
        if (usable.isEmpty()) {
            throw new IllegalStateException("no CUDA device of compute capability 8.0 or newer (found " + tooOld + ")");
        }
        return new CudaBackend(driver, manifest, usable);
    }
}
