package org.kernels4j.cpu;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.Set;

import org.kernels4j.Backend;
import org.kernels4j.DType;
import org.kernels4j.DeviceCapabilities;
import org.kernels4j.Kernel;
import org.kernels4j.KernelSource;
import org.kernels4j.Stream;
import org.kernels4j.Tensor;
import org.kernels4j.spi.AttentionKernels;
import org.kernels4j.spi.Conv2dKernels;
import org.kernels4j.spi.DeviceImplementation;
import org.kernels4j.spi.LayerNormKernels;

/**
 * The CPU as one device: float32 tensors on the Java heap, eager execution, the backend's own Java kernels.
 * It has no local memory or workgroups for dialect kernels ({@code localMemoryBytes} 0,
 * {@code maxWorkgroupSize} 1): {@link #compileKernel} is not supported.
 */
final class CpuDevice implements DeviceImplementation {

    private final CpuBackend backend;
    private final String name;
    private final DeviceCapabilities capabilities;
    private final CpuStream defaultStream;
    private final LayerNormCpu layerNorm = new LayerNormCpu();
    private final AttentionCpu attention = new AttentionCpu();
    private final Conv2dCpu conv2d = new Conv2dCpu();

    CpuDevice(CpuBackend backend) {
        this.backend = backend;
        this.name = cpuName();
        this.capabilities = new DeviceCapabilities(Set.of(DType.FLOAT32), true, true, 0, 0, 1,
                Runtime.getRuntime().availableProcessors(), Runtime.getRuntime().maxMemory(),
                "Java " + Runtime.version() + (Vectorization.ENABLED
                        ? " vector-" + Vectorization.VECTOR_BITS : " scalar"),
                Vectorization.architecture(), false);
        this.defaultStream = new CpuStream(this, true);
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
        return System.getProperty("os.arch", "unknown");
    }

    @Override
    public int index() {
        return 0;
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
        if (dtype != DType.FLOAT32) {
            throw new IllegalArgumentException("dtype: " + dtype + " is not supported on " + id() + " (supported: "
                    + capabilities.dtypes() + ")");
        }
        long n = CpuTensor.elementCount(shape);
        if (n > Integer.MAX_VALUE - 8) {
            throw new IllegalArgumentException("shape: " + Arrays.toString(shape) + " has " + n
                    + " elements, more than a Java array holds (" + (Integer.MAX_VALUE - 8) + ")");
        }
        return new CpuTensor(this, new float[(int) n], 0, shape);
    }

    @Override
    public Stream defaultStream() {
        return defaultStream;
    }

    @Override
    public Stream createStream() {
        return new CpuStream(this, false);
    }

    @Override
    public Kernel compileKernel(KernelSource source) {
        throw new UnsupportedOperationException("the CPU backend runs its own Java kernels and does not compile "
                + "portable-dialect kernels (capabilities().dialectKernels() is false); use the OpenCL backend "
                + "(PoCL runs the dialect on CPUs)");
    }

    /** Work runs eagerly on the calling threads, so everything queued by this thread has finished. */
    @Override
    public void synchronize() {
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
        return id() + " (" + name + ", " + Parallel.THREADS + " threads, " + capabilities.architecture() + ")";
    }

    private static String cpuName() {
        try {
            for (String line : Files.readAllLines(Path.of("/proc/cpuinfo"))) {
                if (line.startsWith("model name")) {
                    int colon = line.indexOf(':');
                    if (colon > 0) {
                        return line.substring(colon + 1).trim();
                    }
                }
            }
        } catch (IOException | RuntimeException e) {
            // not Linux, or not readable: fall back to the JVM's description of the machine
        }
        return System.getProperty("os.arch", "unknown") + " CPU";
    }
}
