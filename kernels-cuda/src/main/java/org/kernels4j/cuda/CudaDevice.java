package org.kernels4j.cuda;

import java.lang.reflect.InvocationTargetException;
import java.lang.reflect.Proxy;
import java.util.Set;

import org.kernels4j.Backend;
import org.kernels4j.DType;
import org.kernels4j.DeviceCapabilities;
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
 * One CUDA device, working in its primary context (the context the CUDA runtime, and so PyTorch and other
 * frameworks, use), which every call makes current on the calling thread first: any thread may use the
 * device, and pointers and streams a framework owns are valid here.
 */
final class CudaDevice implements DeviceImplementation {

    private final CudaBackend backend;
    private final CudaDriver driver;
    private final int index;
    private final long context;
    private final String name;
    private final int ccMajor;
    private final int ccMinor;
    private final int[] maxGrid;
    private final long l2Bytes;
    private final DeviceCapabilities capabilities;
    private final CudaStream defaultStream;
    private final CudaKernels kernels;
    private final LayerNormKernels layerNorm;
    private final AttentionKernels attention;
    private final Conv2dKernels conv2d;

    CudaDevice(CudaBackend backend, CudaDriver driver, KernelManifest manifest, int index, int handle, int ccMajor,
               int ccMinor) {
        this.backend = backend;
        this.driver = driver;
        this.index = index;
        this.ccMajor = ccMajor;
        this.ccMinor = ccMinor;
        this.name = driver.deviceName(handle);
        this.maxGrid = new int[] {driver.deviceAttribute(handle, CudaDriver.ATTR_MAX_GRID_DIM_X),
                driver.deviceAttribute(handle, CudaDriver.ATTR_MAX_GRID_DIM_Y),
                driver.deviceAttribute(handle, CudaDriver.ATTR_MAX_GRID_DIM_Z)};
        this.l2Bytes = driver.deviceAttribute(handle, CudaDriver.ATTR_L2_CACHE_SIZE);
        int version = driver.driverVersion();
        this.capabilities = new DeviceCapabilities(
                Set.of(DType.FLOAT32, DType.FLOAT16, DType.BFLOAT16),
                true,
                true,
                driver.deviceAttribute(handle, CudaDriver.ATTR_WARP_SIZE),
                driver.deviceAttribute(handle, CudaDriver.ATTR_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN),
                driver.deviceAttribute(handle, CudaDriver.ATTR_MAX_THREADS_PER_BLOCK),
                driver.deviceAttribute(handle, CudaDriver.ATTR_MULTIPROCESSOR_COUNT),
                driver.deviceTotalMemory(handle),
                (version / 1000) + "." + (version % 1000 / 10),
                "sm_" + ccMajor + ccMinor,
                false);
        this.context = driver.primaryContextRetain(handle);
        driver.setCurrent(context);
        this.defaultStream = new CudaStream(this, driver.streamCreate(0), CudaStream.Kind.DEFAULT);
        this.kernels = new CudaKernels(this, manifest);
        this.layerNorm = new LayerNormCuda(this);
        this.attention = opKernels("AttentionCuda", AttentionKernels.class, "attention");
        this.conv2d = opKernels("Conv2dCuda", Conv2dKernels.class, "conv2d");
    }

    /**
     * The op class {@code org.kernels4j.cuda.<simpleName>} (a constructor taking the {@link CudaDevice}), or,
     * while it is not written yet, kernels that throw {@link UnsupportedOperationException}. Looked up by
     * name so that this module builds whichever ops exist.
     */
    private <K> K opKernels(String simpleName, Class<K> type, String op) {
        Class<?> c;
        try {
            c = Class.forName(CudaDevice.class.getPackageName() + "." + simpleName);
        } catch (ClassNotFoundException e) {
            return type.cast(Proxy.newProxyInstance(type.getClassLoader(), new Class<?>[] {type}, (proxy, m, args) -> {
                if (m.getDeclaringClass() == Object.class) {
                    return switch (m.getName()) {
                        case "toString" -> op + " kernels of " + id() + " (not yet implemented)";
                        case "hashCode" -> System.identityHashCode(proxy);
                        default -> proxy == args[0];
                    };
                }
                throw new UnsupportedOperationException(op + " is not yet implemented on cuda");
            }));
        }
        try {
            return type.cast(c.getDeclaredConstructor(CudaDevice.class).newInstance(this));
        } catch (InvocationTargetException e) {
            throw new IllegalStateException("creating " + c.getName() + " for " + id() + " failed: " + e.getCause(),
                    e.getCause());
        } catch (ReflectiveOperationException | ClassCastException e) {
            throw new IllegalStateException(c.getName() + " must implement " + type.getName()
                    + " and have a constructor taking a CudaDevice: " + e, e);
        }
    }

    CudaDriver driver() {
        return driver;
    }

    long context() {
        return context;
    }

    /** Makes this device's primary context current on the calling thread; every driver call needs it. */
    void makeCurrent() {
        driver.setCurrent(context);
    }

    int computeCapabilityMajor() {
        return ccMajor;
    }

    int computeCapabilityMinor() {
        return ccMinor;
    }

    int[] maxGrid() {
        return maxGrid;
    }

    /** L2 cache size in bytes. */
    long l2Bytes() {
        return l2Bytes;
    }

    CudaKernels kernels() {
        return kernels;
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
        return "NVIDIA";
    }

    @Override
    public int index() {
        return index;
    }

    @Override
    public DeviceCapabilities capabilities() {
        return capabilities;
    }

    @Override
    public Tensor allocate(DType dtype, int... shape) {
        if (dtype == null) {
            throw new IllegalArgumentException("dtype: must not be null");
        }
        AbstractTensor.elementCount(shape);
        return CudaTensor.allocate(this, dtype, shape);
    }

    @Override
    public CudaStream defaultStream() {
        return defaultStream;
    }

    @Override
    public Stream createStream() {
        makeCurrent();
        return new CudaStream(this, driver.streamCreate(0), CudaStream.Kind.OWNED);
    }

    @Override
    public Kernel compileKernel(KernelSource source) {
        throw new UnsupportedOperationException("cuda: user kernels in the portable dialect are not compiled at run "
                + "time (that needs NVRTC, a CUDA toolkit library this backend does not require); kernels4j's own "
                + "CUDA kernels are compiled when it is built. Run '" + (source == null ? "?" : source.name())
                + "' on the opencl backend, which compiles the dialect at run time");
    }

    @Override
    public void synchronize() {
        makeCurrent();
        driver.contextSynchronize();
    }

    @Override
    public LayerNormKernels layerNormKernels() {
        return layerNorm;
    }

    @Override
    public AttentionKernels attentionKernels() {
        return attention;
    }

    @Override
    public Conv2dKernels conv2dKernels() {
        return conv2d;
    }

    @Override
    public String toString() {
        return id() + " (" + name + ", " + capabilities.architecture() + ")";
    }
}
