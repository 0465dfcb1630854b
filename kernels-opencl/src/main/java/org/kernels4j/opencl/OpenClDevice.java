package org.kernels4j.opencl;

import java.util.Arrays;
import java.util.EnumSet;
import java.util.Locale;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;

import org.jocl.CL;
import org.jocl.Pointer;
import org.jocl.Sizeof;
import org.jocl.cl_command_queue;
import org.jocl.cl_context;
import org.jocl.cl_context_properties;
import org.jocl.cl_device_id;
import org.jocl.cl_mem;
import org.jocl.cl_platform_id;
import org.kernels4j.Backend;
import org.kernels4j.DType;
import org.kernels4j.DeviceCapabilities;
import org.kernels4j.Kernel;
import org.kernels4j.KernelSource;
import org.kernels4j.NDRange;
import org.kernels4j.Stream;
import org.kernels4j.Tensor;
import org.kernels4j.spi.AbstractTensor;
import org.kernels4j.spi.AttentionKernels;
import org.kernels4j.spi.Conv2dKernels;
import org.kernels4j.spi.Debug;
import org.kernels4j.spi.DeviceImplementation;
import org.kernels4j.spi.LayerNormKernels;

/**
 * One OpenCL device: its own context, a profiling-enabled in-order default queue, the program cache and the
 * op kernels. Thread-safe.
 */
final class OpenClDevice implements DeviceImplementation {

    /** A device found during discovery, before it is opened. */
    record Found(cl_platform_id platform, cl_device_id device, long type) {
        int rank() {
            return (type & CL.CL_DEVICE_TYPE_GPU) != 0 ? 0 : (type & CL.CL_DEVICE_TYPE_ACCELERATOR) != 0 ? 1 : 2;
        }
    }

    private static final long CL_DEVICE_COMPUTE_CAPABILITY_MAJOR_NV = 0x4000;
    private static final long CL_DEVICE_COMPUTE_CAPABILITY_MINOR_NV = 0x4001;

    private final OpenClBackend backend;
    private final int index;
    final cl_device_id id;
    final cl_context context;
    private final String name;
    private final String vendor;
    private final Set<String> extensions;
    private final long maxAllocation;
    private final DeviceCapabilities capabilities;
    private final OpenClStream defaultStream;
    private final Set<OpenClStream> streams = ConcurrentHashMap.newKeySet();
    final ProgramCache programs;
    private final LayerNormOpenCl layerNorm;
    private final AttentionOpenCl attention;
    private final Conv2dOpenCl conv2d;

    OpenClDevice(OpenClBackend backend, int index, cl_platform_id platform, cl_device_id id) {
        this.backend = backend;
        this.index = index;
        this.id = id;
        this.name = OpenClCalls.deviceString(id, CL.CL_DEVICE_NAME);
        this.vendor = OpenClCalls.deviceString(id, CL.CL_DEVICE_VENDOR);
        // Set.copyOf, not Set.of: some drivers list an extension twice
        this.extensions = Set.copyOf(Arrays.asList(OpenClCalls.deviceString(id, CL.CL_DEVICE_EXTENSIONS).split("\\s+")));
        this.maxAllocation = OpenClCalls.deviceLong(id, CL.CL_DEVICE_MAX_MEM_ALLOC_SIZE);
        cl_context_properties props = new cl_context_properties();
        props.addProperty(CL.CL_CONTEXT_PLATFORM, platform);
        int[] err = new int[1];
        this.context = CL.clCreateContext(props, 1, new cl_device_id[] {id}, null, null, err);
        OpenClCalls.check(err[0], "clCreateContext");
        this.defaultStream = new OpenClStream(this, createQueue(), true, true);
        streams.add(defaultStream);
        String cVersion = OpenClCalls.deviceString(id, CL.CL_DEVICE_OPENCL_C_VERSION);
        boolean subgroupExtension = extensions.contains("cl_khr_subgroups") || extensions.contains("cl_intel_subgroups");
        // cl_khr_subgroups' built-ins need OpenCL C 2.0; cl_intel_subgroups works with 1.2.
        String std = extensions.contains("cl_intel_subgroups") || !subgroupExtension ? ""
                : openClCAtLeast2(cVersion) ? "-cl-std=CL2.0 " : null;
        int subgroupSize = subgroupExtension && std != null ? probeSubgroups(std) : 0;
        this.programs = new ProgramCache(this, (subgroupSize > 0 ? std : "") + "-DK4J_SUBGROUPS=" + (subgroupSize > 0 ? 1 : 0));
        EnumSet<DType> dtypes = EnumSet.of(DType.FLOAT32);
        if (extensions.contains("cl_khr_fp16") || Boolean.getBoolean(OpenClProvider.HALF_STORAGE_PROPERTY)) {
            dtypes.add(DType.FLOAT16);
        }
        this.capabilities = new DeviceCapabilities(
                dtypes,
                extensions.contains("cl_khr_fp64") || OpenClCalls.deviceLong(id, CL.CL_DEVICE_DOUBLE_FP_CONFIG) != 0,
                // float atomics: k4j_atomic_add_float, a compare-and-swap loop on the core 32-bit integer atomics
                true,
                subgroupSize,
                OpenClCalls.deviceLong(id, CL.CL_DEVICE_LOCAL_MEM_SIZE),
                (int) Math.min(Integer.MAX_VALUE, OpenClCalls.deviceSize(id, CL.CL_DEVICE_MAX_WORK_GROUP_SIZE)),
                OpenClCalls.deviceInt(id, CL.CL_DEVICE_MAX_COMPUTE_UNITS),
                OpenClCalls.deviceLong(id, CL.CL_DEVICE_GLOBAL_MEM_SIZE),
                OpenClCalls.deviceString(id, CL.CL_DRIVER_VERSION),
                architecture(),
                true);
        this.layerNorm = new LayerNormOpenCl(this);
        this.attention = new AttentionOpenCl(this);
        this.conv2d = new Conv2dOpenCl(this);
        Debug.log(1, () -> "opencl:" + index + " " + name + " (" + vendor + ", "
                + OpenClCalls.platformString(platform, CL.CL_PLATFORM_VERSION) + "): " + capabilities);
    }

    @SuppressWarnings("deprecation")
    cl_command_queue createQueue() {
        int[] err = new int[1];
        // clCreateCommandQueue (1.x) rather than ...WithProperties (2.0): it exists on every platform.
        cl_command_queue q = CL.clCreateCommandQueue(context, id, CL.CL_QUEUE_PROFILING_ENABLE, err);
        OpenClCalls.check(err[0], "clCreateCommandQueue");
        return q;
    }

    private static boolean openClCAtLeast2(String cVersion) {
        // "OpenCL C 2.0 ..." / "OpenCL C 3.0 ..."
        String[] parts = cVersion.split("\\s+");
        return parts.length >= 3 && !parts[2].startsWith("1.");
    }

    /**
     * Builds and runs a kernel that reduces through the dialect's subgroup path; returns the subgroup size when
     * it builds and sums correctly, 0 otherwise (the kernels then use the local-memory fallback).
     */
    private int probeSubgroups(String std) {
        String src = """
                #include "kernels4j.h"
                __kernel void k4j_probe(__global int* out) {
                    __local float scratch[64];
                    float s = k4j_group_reduce_add(1.0f, scratch);
                    if (get_local_id(0) == 0) {
                        out[0] = (int) get_max_sub_group_size();
                        out[1] = (int) s;
                    }
                }
                """;
        ProgramCache probe = new ProgramCache(this, std + "-DK4J_SUBGROUPS=1");
        int[] result = new int[2];
        cl_mem out = null;
        try {
            CompiledKernel k = probe.kernel("subgroup-probe", src, java.util.Map.of(), "k4j_probe");
            if (k.maxWorkGroupSize() < 64) {
                return 0;
            }
            int[] err = new int[1];
            out = CL.clCreateBuffer(context, CL.CL_MEM_READ_WRITE, 8, null, err);
            OpenClCalls.check(err[0], "clCreateBuffer");
            k.enqueue(defaultStream, new long[] {64, 1, 1}, new long[] {64, 1, 1}, out);
            OpenClCalls.check(CL.clEnqueueReadBuffer(defaultStream.queue(), out, true, 0, 8, Pointer.to(result), 0,
                    null, null), "clEnqueueReadBuffer");
        } catch (RuntimeException e) {
            Debug.log(1, () -> "opencl: " + name + " lists subgroups but the probe failed, using local memory: " + e.getMessage());
            return 0;
        } finally {
            if (out != null) {
                CL.clReleaseMemObject(out);
            }
            probe.release();
        }
        return result[1] == 64 && result[0] > 0 ? result[0] : 0;
    }

    private String architecture() {
        if (extensions.contains("cl_nv_device_attribute_query")) {
            try {
                int major = OpenClCalls.deviceInt(id, (int) CL_DEVICE_COMPUTE_CAPABILITY_MAJOR_NV);
                int minor = OpenClCalls.deviceInt(id, (int) CL_DEVICE_COMPUTE_CAPABILITY_MINOR_NV);
                return "sm_" + major + minor;
            } catch (IllegalStateException e) {
                // fall through to the name
            }
        }
        return name.toLowerCase(Locale.ROOT).replaceAll("[^a-z0-9]+", "-").replaceAll("(^-|-$)", "");
    }

    /** The device's extensions, as reported by the driver. */
    Set<String> extensions() {
        return extensions;
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
        if (!capabilities.supports(dtype)) {
            throw new IllegalArgumentException("dtype: " + dtype + " is not supported on " + id() + " (" + name
                    + "; supported: " + capabilities.dtypes() + ")");
        }
        long bytes = Math.multiplyExact(AbstractTensor.elementCount(shape), (long) dtype.byteSize());
        return new OpenClTensor(this, dtype, shape, createBuffer(bytes, "shape " + Arrays.toString(shape)));
    }

    /** A new buffer of {@code bytes} (null for 0 bytes: OpenCL has no empty buffers). */
    cl_mem createBuffer(long bytes, String what) {
        if (bytes == 0) {
            return null;
        }
        if (bytes > maxAllocation) {
            throw new IllegalArgumentException(what + ": " + bytes + " bytes exceed the largest buffer " + id() + " ("
                    + name + ") allows, " + maxAllocation + " bytes");
        }
        int[] err = new int[1];
        cl_mem mem = CL.clCreateBuffer(context, CL.CL_MEM_READ_WRITE, bytes, null, err);
        if (err[0] == CL.CL_MEM_OBJECT_ALLOCATION_FAILURE || err[0] == CL.CL_OUT_OF_RESOURCES
                || err[0] == CL.CL_OUT_OF_HOST_MEMORY) {
            throw new IllegalStateException("out of memory on " + id() + " allocating " + bytes + " bytes for " + what
                    + ": " + OpenClCalls.errorName(err[0]));
        }
        OpenClCalls.check(err[0], "clCreateBuffer");
        return mem;
    }

    /**
     * A fp32 scratch buffer for one op call on stream {@code s}, released by the caller once the work using it is
     * queued. With {@value OpenClProvider#POISON_SCRATCH_PROPERTY} it is first filled with NaN on {@code s}.
     */
    Scratch scratch(OpenClStream s, long floats, String what) {
        long bytes = Math.multiplyExact(floats, (long) Sizeof.cl_float);
        Scratch scratch = new Scratch(createBuffer(bytes, what));
        if (scratch.mem() != null && Boolean.getBoolean(OpenClProvider.POISON_SCRATCH_PROPERTY)) {
            try {
                OpenClCalls.check(CL.clEnqueueFillBuffer(s.queue(), scratch.mem(), Pointer.to(new float[] {Float.NaN}),
                        Sizeof.cl_float, 0, bytes, 0, null, null), "clEnqueueFillBuffer");
            } catch (RuntimeException e) {
                scratch.close();
                throw e;
            }
        }
        return scratch;
    }

    /** A temporary buffer; OpenCL keeps it alive until the queued commands that use it have finished. */
    record Scratch(cl_mem mem) implements AutoCloseable {
        @Override
        public void close() {
            if (mem != null) {
                CL.clReleaseMemObject(mem);
            }
        }
    }

    @Override
    public Stream defaultStream() {
        return defaultStream;
    }

    @Override
    public Stream createStream() {
        OpenClStream s = new OpenClStream(this, createQueue(), true, false);
        streams.add(s);
        return s;
    }

    /** Adopts a queue created elsewhere on this device's context (interop). */
    OpenClStream adoptQueue(cl_command_queue queue, boolean profiling) {
        OpenClCalls.check(CL.clRetainCommandQueue(queue), "clRetainCommandQueue");
        OpenClStream s = new OpenClStream(this, queue, profiling, false);
        streams.add(s);
        return s;
    }

    void forget(OpenClStream s) {
        streams.remove(s);
    }

    /** The stream as this device's, or an {@link IllegalArgumentException}. */
    OpenClStream stream(Stream s) {
        if (s instanceof OpenClStream cs && cs.device() == this) {
            cs.checkOpen();
            return cs;
        }
        throw new IllegalArgumentException("stream: expected a stream of " + id() + ", got "
                + (s == null ? "null" : s.device().id()));
    }

    @Override
    public Kernel compileKernel(KernelSource source) {
        if (source == null) {
            throw new IllegalArgumentException("source: must not be null");
        }
        return new OpenClKernel(this, programs.program(source.name(), source.code(), source.defines()),
                source.entryPoint(), source.name());
    }

    @Override
    public void synchronize() {
        for (OpenClStream s : streams) {
            s.finish();
        }
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

    /** Rounds each global extent up to a multiple of the local extent. */
    static long[] roundUp(NDRange global, NDRange local) {
        return new long[] {
                ceilDiv(global.x(), local.x()) * local.x(),
                ceilDiv(global.y(), local.y()) * local.y(),
                ceilDiv(global.z(), local.z()) * local.z()};
    }

    static long ceilDiv(long a, long b) {
        return (a + b - 1) / b;
    }

    @Override
    public String toString() {
        return id() + " (" + name + ")";
    }
}
