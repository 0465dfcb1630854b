package org.kernels4j.opencl;

import java.util.ArrayList;
import java.util.List;

import org.jocl.CL;
import org.jocl.cl_device_id;
import org.jocl.cl_platform_id;
import org.kernels4j.Backend;
import org.kernels4j.spi.BackendProvider;
import org.kernels4j.spi.Debug;

/**
 * The OpenCL backend's entry point for {@link java.util.ServiceLoader}: name {@code "opencl"}, priority 200.
 *
 * <p>{@link #start()} loads JOCL, which opens {@code libOpenCL.so.1} (the ICD loader), and opens every device of
 * every platform, GPUs first. A machine without the loader, without a platform or without a device gets an
 * exception whose message says which, and discovery reports the backend as unavailable. A driver that replaces
 * the JVM's signal handlers meanwhile (PoCL, through LLVM) gets them put back ({@link JvmSignalHandlers}).
 *
 * <p>Dtypes: float32 on every device; float16 on devices with {@code cl_khr_fp16}, or on every device when the
 * system property {@value #HALF_STORAGE_PROPERTY} is {@code true} (the kernels only store float16, through
 * OpenCL's core {@code vload_half}/{@code vstore_half}, and compute in float32, so they need no fp16 arithmetic).
 */
public final class OpenClProvider implements BackendProvider {

    /** System property that offers float16 tensors on devices without {@code cl_khr_fp16}. */
    public static final String HALF_STORAGE_PROPERTY = "kernels4j.opencl.halfStorage";

    /**
     * System property that fills every temporary buffer an op uses (split-K workspaces, partial sums) with NaN
     * before its kernels run, so that a kernel reading an element nobody wrote gives NaN instead of whatever the
     * allocator left there (often zeros on a CPU driver, garbage on a GPU). Read at each op call; for tests
     * and debugging (it costs one buffer fill per temporary).
     */
    public static final String POISON_SCRATCH_PROPERTY = "kernels4j.opencl.poisonScratch";

    /** Used by {@link java.util.ServiceLoader}; does not touch native code. */
    public OpenClProvider() {
    }

    @Override
    public String name() {
        return OpenClBackend.NAME;
    }

    @Override
    public int priority() {
        return 200;
    }

    @Override
    public Backend start() throws Exception {
        // PoCL starts LLVM, which replaces the JVM's signal handlers, when it opens its devices (JvmSignalHandlers)
        JvmSignalHandlers jvm = JvmSignalHandlers.save();
        try {
            return openDevices();
        } finally {
            jvm.restore();
        }
    }

    private static Backend openDevices() {
        cl_platform_id[] platforms = platforms();
        OpenClBackend backend = new OpenClBackend();
        List<String> skipped = new ArrayList<>();
        List<OpenClDevice.Found> found = new ArrayList<>();
        for (cl_platform_id p : platforms) {
            String platformName = OpenClCalls.platformString(p, CL.CL_PLATFORM_NAME);
            int[] count = new int[1];
            int status = CL.clGetDeviceIDs(p, CL.CL_DEVICE_TYPE_ALL, 0, null, count);
            if (status == CL.CL_DEVICE_NOT_FOUND || count[0] == 0) {
                skipped.add(platformName + ": no device");
                continue;
            }
            OpenClCalls.check(status, "clGetDeviceIDs");
            cl_device_id[] ids = new cl_device_id[count[0]];
            OpenClCalls.check(CL.clGetDeviceIDs(p, CL.CL_DEVICE_TYPE_ALL, ids.length, ids, null), "clGetDeviceIDs");
            for (cl_device_id id : ids) {
                found.add(new OpenClDevice.Found(p, id, OpenClCalls.deviceLong(id, CL.CL_DEVICE_TYPE)));
            }
        }
        // GPUs and accelerators first: the backend's default device is the first one.
        found.sort((a, b) -> Integer.compare(a.rank(), b.rank()));
        List<OpenClDevice> devices = new ArrayList<>();
        for (OpenClDevice.Found f : found) {
            try {
                devices.add(new OpenClDevice(backend, devices.size(), f.platform(), f.device()));
            } catch (RuntimeException e) {
                String what = OpenClCalls.deviceString(f.device(), CL.CL_DEVICE_NAME) + ": " + e.getMessage();
                skipped.add(what);
                Debug.log(1, () -> "opencl: skipping device " + what);
            }
        }
        if (devices.isEmpty()) {
            throw new IllegalStateException("no usable OpenCL device" + (skipped.isEmpty() ? "" : " (" + String.join("; ", skipped) + ")"));
        }
        backend.setDevices(devices);
        return backend;
    }

    private static cl_platform_id[] platforms() {
        int[] count = new int[1];
        int status;
        try {
            status = CL.clGetPlatformIDs(0, null, count);
        } catch (LinkageError e) {
            throw new IllegalStateException("libOpenCL.so.1 could not be loaded (install an OpenCL ICD loader, e.g. "
                    + "ocl-icd-libopencl1, and a driver): " + rootMessage(e), e);
        }
        if (status == CL.CL_PLATFORM_NOT_FOUND_KHR || (status == CL.CL_SUCCESS && count[0] == 0)) {
            throw new IllegalStateException("no OpenCL platform (no driver registered under /etc/OpenCL/vendors"
                    + (System.getenv("OCL_ICD_VENDORS") != null ? " or OCL_ICD_VENDORS=" + System.getenv("OCL_ICD_VENDORS") : "")
                    + ")");
        }
        OpenClCalls.check(status, "clGetPlatformIDs");
        cl_platform_id[] platforms = new cl_platform_id[count[0]];
        OpenClCalls.check(CL.clGetPlatformIDs(platforms.length, platforms, null), "clGetPlatformIDs");
        return platforms;
    }

    private static String rootMessage(Throwable e) {
        Throwable t = e;
        while (t.getCause() != null && t.getCause() != t) {
            t = t.getCause();
        }
        return t.getMessage() != null ? t.getMessage() : t.getClass().getSimpleName();
    }
}
