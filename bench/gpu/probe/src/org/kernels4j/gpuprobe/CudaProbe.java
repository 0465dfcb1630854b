package org.kernels4j.gpuprobe;

import static jcuda.driver.JCudaDriver.*;

import java.io.IOException;
import java.io.InputStream;
import java.lang.reflect.Field;
import java.lang.reflect.Modifier;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import java.util.stream.Stream;

import jcuda.CudaException;
import jcuda.Pointer;
import jcuda.driver.CUcontext;
import jcuda.driver.CUdevice;
import jcuda.driver.CUdevice_attribute;
import jcuda.driver.CUdeviceptr;
import jcuda.driver.CUevent;
import jcuda.driver.CUevent_flags;
import jcuda.driver.CUfunction;
import jcuda.driver.CUfunction_attribute;
import jcuda.driver.CUmodule;
import jcuda.driver.CUstream;
import jcuda.driver.CUstream_flags;
import jcuda.driver.JCudaDriver;

/**
 * The CUDA half of the probe, through JCuda's driver API only (what the kernels-cuda backend uses):
 * library and symbols, driver and device properties, a module built here (PTX and cubin) run on
 * fresh random data and checked bit-exactly, and the device-to-device copy bandwidth of our own
 * copy kernel, the ceiling every memory-bound figure is judged against.
 */
final class CudaProbe implements AutoCloseable {

    /** libcuda symbols behind the JCuda calls below (checked against JCuda's imports by prepare.sh). */
    static final List<String> INIT_SYMBOLS = List.of("cuInit", "cuDriverGetVersion", "cuDeviceGetCount",
            "cuDeviceGet", "cuDeviceGetName", "cuDeviceGetAttribute", "cuDeviceTotalMem_v2", "cuDeviceGetPCIBusId",
            "cuDevicePrimaryCtxRetain", "cuDevicePrimaryCtxRelease_v2", "cuCtxSetCurrent", "cuCtxSynchronize",
            "cuMemGetInfo_v2", "cuStreamCreate", "cuStreamSynchronize", "cuStreamDestroy_v2");
    static final List<String> KERNEL_SYMBOLS = List.of("cuModuleLoadData", "cuModuleGetFunction",
            "cuModuleUnload", "cuFuncGetAttribute", "cuMemAlloc_v2", "cuMemFree_v2", "cuMemcpyHtoD_v2",
            "cuMemcpyDtoH_v2", "cuMemsetD32Async", "cuLaunchKernel");
    static final List<String> TIMING_SYMBOLS = List.of("cuEventCreate", "cuEventRecord", "cuEventSynchronize",
            "cuEventElapsedTime", "cuEventDestroy_v2");
    static final List<String> COPY_SYMBOLS = List.of("cuMemcpyDtoDAsync_v2");

    static List<String> usedSymbols() {
        return Stream.of(INIT_SYMBOLS, KERNEL_SYMBOLS, TIMING_SYMBOLS, COPY_SYMBOLS).flatMap(List::stream).toList();
    }

    private static final int NAN_BITS = 0x7FC00000;
    private static final int WARMUP = 3;

    private final int repeats;
    private NativeLibs libcuda;
    private boolean timing;
    private CUdevice device;
    private CUcontext context;
    private CUstream stream;
    private int multiprocessors;
    private long l2Bytes;

    CudaProbe(int repeats) {
        this.repeats = repeats;
    }

    /** libcuda.so.1 present, and which of the functions JCuda imports this driver lacks. */
    void library(Map<String, Object> s) throws Exception {
        libcuda = NativeLibs.open("libcuda.so.1");
        List<String> imports = jcudaImports();
        List<String> missingImports = libcuda.missing(imports);
        s.put("jcuda_driver_imports", imports.size());
        s.put("jcuda_driver_imports_missing", missingImports);
        s.put("probe_symbols_missing", libcuda.missing(usedSymbols()));
        timing = libcuda.missing(TIMING_SYMBOLS).isEmpty();
        s.put("event_timing_available", timing);
        s.put("summary", "libcuda.so.1 loaded; " + missingImports.size() + " of " + imports.size()
                + " JCuda driver imports missing");
        libcuda.require(INIT_SYMBOLS, "driver initialisation");
    }

    private static List<String> jcudaImports() throws IOException {
        try (InputStream in = CudaProbe.class.getResourceAsStream("jcuda-driver-imports.txt")) {
            if (in == null) return List.of();
            return new String(in.readAllBytes(), StandardCharsets.UTF_8).lines().filter(l -> !l.isBlank()).toList();
        }
    }

    /** Loads JCuda's driver natives, initialises the driver and retains device 0's primary context. */
    void init(Map<String, Object> s) throws Exception {
        JCudaDriver.setExceptionsEnabled(true); // first use: loads libJCudaDriver (UnsatisfiedLinkError if it cannot)
        try {
            cuInit(0);
        } catch (CudaException e) {
            throw new Report.Unavailable("cuInit failed: " + e.getMessage());
        }
        int[] v = new int[1];
        cuDriverGetVersion(v);
        s.put("driver_api_version", v[0]);
        s.put("driver_api_version_text", (v[0] / 1000) + "." + (v[0] % 1000) / 10);
        int[] count = new int[1];
        cuDeviceGetCount(count);
        s.put("devices", count[0]);
        if (count[0] == 0) throw new Report.Unavailable("the driver reports no CUDA device");
        device = new CUdevice();
        cuDeviceGet(device, 0);
        context = new CUcontext();
        cuDevicePrimaryCtxRetain(context, device);
        cuCtxSetCurrent(context);
        stream = new CUstream();
        cuStreamCreate(stream, CUstream_flags.CU_STREAM_NON_BLOCKING);
        // what the kernel and copy steps size themselves from, read here so that they do not depend
        // on the properties step (one attribute this driver refuses must not hide a working kernel)
        multiprocessors = attr(CUdevice_attribute.CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT);
        l2Bytes = attr(CUdevice_attribute.CU_DEVICE_ATTRIBUTE_L2_CACHE_SIZE);
        s.put("summary", "driver API " + s.get("driver_api_version_text") + ", " + count[0] + " device(s)");
    }

    /** The properties the CUDA backend sizes its launches from, then every attribute the driver answers. */
    void properties(Map<String, Object> s) {
        byte[] name = new byte[256];
        cuDeviceGetName(name, name.length, device);
        String deviceName = new String(name, StandardCharsets.US_ASCII).trim().replace("\0", "");
        int major = attr(CUdevice_attribute.CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR);
        int minor = attr(CUdevice_attribute.CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR);
        long[] total = new long[1];
        cuDeviceTotalMem(total, device);
        long[] free = new long[1];
        long[] ctxTotal = new long[1];
        cuMemGetInfo(free, ctxTotal);
        String[] bus = new String[1];
        cuDeviceGetPCIBusId(bus, 64, device);
        s.put("name", deviceName);
        s.put("compute_capability", major + "." + minor);
        s.put("multiprocessors", multiprocessors);
        s.put("total_memory_bytes", total[0]);
        s.put("free_memory_bytes", free[0]);
        s.put("l2_cache_bytes", l2Bytes);
        s.put("shared_memory_per_block_bytes", attrOrError(CUdevice_attribute.CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK));
        s.put("shared_memory_per_block_optin_bytes", attrOrError(CUdevice_attribute.CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN));
        s.put("shared_memory_per_multiprocessor_bytes", attrOrError(CUdevice_attribute.CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_MULTIPROCESSOR));
        s.put("registers_per_block", attrOrError(CUdevice_attribute.CU_DEVICE_ATTRIBUTE_MAX_REGISTERS_PER_BLOCK));
        s.put("registers_per_multiprocessor", attrOrError(CUdevice_attribute.CU_DEVICE_ATTRIBUTE_MAX_REGISTERS_PER_MULTIPROCESSOR));
        s.put("max_threads_per_block", attrOrError(CUdevice_attribute.CU_DEVICE_ATTRIBUTE_MAX_THREADS_PER_BLOCK));
        s.put("max_threads_per_multiprocessor", attrOrError(CUdevice_attribute.CU_DEVICE_ATTRIBUTE_MAX_THREADS_PER_MULTIPROCESSOR));
        s.put("warp_size", attrOrError(CUdevice_attribute.CU_DEVICE_ATTRIBUTE_WARP_SIZE));
        s.put("pci_bus_id", bus[0]);
        s.put("attributes", allAttributes());
        s.put("summary", String.format("%s, cc %d.%d, %d SMs, %.1f GiB, L2 %.0f MiB, smem/block opt-in %s bytes",
                deviceName, major, minor, multiprocessors, total[0] / (double) (1L << 30), l2Bytes / (double) (1 << 20),
                s.get("shared_memory_per_block_optin_bytes")));
    }

    private int attr(int attribute) {
        int[] v = new int[1];
        cuDeviceGetAttribute(v, attribute, device);
        return v[0];
    }

    /** The attribute's value, or the driver's error as text (a refused attribute is a fact, not a failure). */
    private Object attrOrError(int attribute) {
        try {
            return attr(attribute);
        } catch (CudaException e) {
            return "error: " + e.getMessage();
        }
    }

    /** Every CU_DEVICE_ATTRIBUTE_* JCuda knows, with the driver's answer or its error. */
    private Map<String, Object> allAttributes() {
        Map<String, Object> m = new LinkedHashMap<>();
        for (Field f : CUdevice_attribute.class.getFields()) {
            if (!Modifier.isStatic(f.getModifiers()) || f.getType() != int.class
                    || !f.getName().startsWith("CU_DEVICE_ATTRIBUTE_") || f.getName().endsWith("_MAX")) continue;
            String key = f.getName().substring("CU_DEVICE_ATTRIBUTE_".length()).toLowerCase();
            try {
                m.put(key, attrOrError(f.getInt(null)));
            } catch (IllegalAccessException e) {
                m.put(key, "error: " + e.getMessage());
            }
        }
        return m;
    }

    /**
     * Loads the probe module from PTX (JIT-compiled by this driver) and from the sm_90 cubin, runs
     * out = fma(a, x, y) on fresh random data with a poisoned output and guard, and compares every
     * element bit for bit with the host's Math.fma.
     */
    void kernel(Map<String, Object> s, Path kernelsDir) throws Exception {
        libcuda.require(KERNEL_SYMBOLS, "module load and launch");
        int major = attr(CUdevice_attribute.CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR);
        int minor = attr(CUdevice_attribute.CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR);
        Path ptx = kernelsDir.resolve("probe.ptx");
        Path cubin = kernelsDir.resolve("probe.sm_" + major + minor + ".cubin");
        long seed = System.nanoTime() ^ 0x5DEECE66DL;
        s.put("seed", seed);
        List<Map<String, Object>> runs = new ArrayList<>();
        boolean allCorrect = true;
        for (Path file : List.of(ptx, cubin)) {
            Map<String, Object> r = new LinkedHashMap<>();
            r.put("module", file.getFileName().toString());
            runs.add(r);
            if (!Files.isRegularFile(file)) {
                r.put("status", "missing (built by prepare.sh for sm_90 only)");
                if (file == ptx) allCorrect = false;
                continue;
            }
            try {
                allCorrect &= runAxpy(file, seed, r);
            } catch (CudaException e) {
                r.put("status", "failed: " + e.getMessage());
                allCorrect = false;
            }
        }
        s.put("runs", runs);
        s.put("summary", runs.stream().map(r -> r.get("module") + " " + r.get("status")).toList().toString());
        if (!allCorrect) throw new IllegalStateException("kernel check failed: " + runs);
    }

    private boolean runAxpy(Path file, long seed, Map<String, Object> r) throws IOException {
        byte[] image = Files.readAllBytes(file);
        if (file.toString().endsWith(".ptx")) image = Arrays.copyOf(image, image.length + 1); // NUL-terminated text
        CUmodule module = new CUmodule();
        long t0 = System.nanoTime();
        cuModuleLoadData(module, image);
        r.put("load_ms", (System.nanoTime() - t0) / 1e6);
        try {
            CUfunction f = new CUfunction();
            cuModuleGetFunction(f, module, "axpy_fma");
            r.put("registers", funcAttr(f, CUfunction_attribute.CU_FUNC_ATTRIBUTE_NUM_REGS));
            r.put("ptx_version", funcAttr(f, CUfunction_attribute.CU_FUNC_ATTRIBUTE_PTX_VERSION));
            r.put("binary_version", funcAttr(f, CUfunction_attribute.CU_FUNC_ATTRIBUTE_BINARY_VERSION));

            int n = 10_000_019; // prime: no grid or vector width divides it
            int guard = 256;
            SplittableRandom rnd = new SplittableRandom(seed);
            float a = (float) (rnd.nextDouble() * 4 - 2);
            float[] x = randomFloats(rnd, n);
            float[] y = randomFloats(rnd, n);
            CUdeviceptr dx = alloc(4L * n), dy = alloc(4L * n), dout = alloc(4L * (n + guard));
            try {
                cuMemcpyHtoD(dx, Pointer.to(x), 4L * n);
                cuMemcpyHtoD(dy, Pointer.to(y), 4L * n);
                // the copies ran on the legacy stream, which a non-blocking stream does not wait for
                cuCtxSynchronize();
                cuMemsetD32Async(dout, NAN_BITS, n + guard, stream);
                Pointer params = Pointer.to(Pointer.to(dx), Pointer.to(dy), Pointer.to(dout),
                        Pointer.to(new float[] {a}), Pointer.to(new int[] {n}));
                int block = 256, grid = (n + block - 1) / block;
                Runnable launch = () -> cuLaunchKernel(f, grid, 1, 1, block, 1, 1, 0, stream, params, null);
                launch.run();
                cuStreamSynchronize(stream);
                float[] out = new float[n + guard];
                cuMemcpyDtoH(Pointer.to(out), dout, 4L * (n + guard));
                int wrong = 0, nan = 0, strayWrites = 0;
                for (int i = 0; i < n; i++) {
                    if (Float.isNaN(out[i])) nan++;
                    else if (Float.floatToRawIntBits(out[i]) != Float.floatToRawIntBits(Math.fma(a, x[i], y[i]))) wrong++;
                }
                for (int i = n; i < n + guard; i++) {
                    if (Float.floatToRawIntBits(out[i]) != NAN_BITS) strayWrites++;
                }
                boolean ok = wrong == 0 && nan == 0 && strayWrites == 0;
                r.put("elements", n);
                r.put("bit_exact_mismatches", wrong);
                r.put("unwritten_or_nan", nan);
                r.put("guard_elements_overwritten", strayWrites);
                r.put("status", ok ? "correct" : "WRONG");
                if (timing) {
                    double ms = medianMs(launch);
                    r.put("median_ms", ms);
                    r.put("gb_per_s", 12.0 * n / (ms * 1e6));
                }
                return ok;
            } finally {
                cuMemFree(dx);
                cuMemFree(dy);
                cuMemFree(dout);
            }
        } finally {
            cuModuleUnload(module);
        }
    }

    /**
     * Device-to-device copy bandwidth, counting bytes read plus bytes written, with buffers far
     * larger than L2: our 16-byte copy kernel over a few unroll depths and grid sizes (the best is
     * the ceiling), and the driver's cuMemcpyDtoDAsync for comparison. Each configuration's output
     * is poisoned first and sampled for correctness after its timing.
     */
    void copyBandwidth(Map<String, Object> s, Path kernelsDir, long requestedBytes) throws Exception {
        libcuda.require(KERNEL_SYMBOLS, "the copy kernel");
        if (!timing) throw new Report.Unavailable("libcuda.so.1 lacks an event function " + libcuda.missing(TIMING_SYMBOLS));
        int major = attr(CUdevice_attribute.CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR);
        int minor = attr(CUdevice_attribute.CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR);
        Path file = kernelsDir.resolve("probe.sm_" + major + minor + ".cubin");
        if (!Files.isRegularFile(file)) file = kernelsDir.resolve("probe.ptx");
        byte[] image = Files.readAllBytes(file);
        if (file.toString().endsWith(".ptx")) image = Arrays.copyOf(image, image.length + 1);
        long[] free = new long[1], total = new long[1];
        cuMemGetInfo(free, total);
        long bytes = Math.min(requestedBytes, free[0] / 3) & ~15L;
        long n = bytes / 4;
        s.put("module", file.getFileName().toString());
        s.put("bytes_per_buffer", bytes);
        s.put("buffer_over_l2", l2Bytes > 0 ? bytes / (double) l2Bytes : null);
        s.put("counting", "bytes read + bytes written = 2 x bytes_per_buffer per copy");
        s.put("repeats", repeats);

        CUmodule module = new CUmodule();
        cuModuleLoadData(module, image);
        CUdeviceptr src = alloc(bytes), dst = alloc(bytes);
        try {
            CUfunction fill = function(module, "fill_hash");
            int seed = (int) System.nanoTime();
            Pointer fillParams = Pointer.to(Pointer.to(src), Pointer.to(new long[] {n}), Pointer.to(new int[] {seed}));
            cuLaunchKernel(fill, multiprocessors * 8, 1, 1, 256, 1, 1, 0, stream, fillParams, null);
            cuStreamSynchronize(stream);

            List<Map<String, Object>> configs = new ArrayList<>();
            double best = 0;
            String bestName = null;
            boolean allCorrect = true;
            for (String kernel : List.of("copy_vec4_u1", "copy_vec4_u4")) {
                CUfunction f = function(module, kernel);
                for (int blocksPerSm : new int[] {2, 4, 8, 16}) {
                    int grid = multiprocessors * blocksPerSm;
                    Pointer p = Pointer.to(Pointer.to(src), Pointer.to(dst), Pointer.to(new long[] {n}));
                    cuMemsetD32Async(dst, NAN_BITS, n, stream);
                    double ms = medianMs(() -> cuLaunchKernel(f, grid, 1, 1, 256, 1, 1, 0, stream, p, null));
                    double gbps = 2.0 * bytes / (ms * 1e6);
                    boolean correct = samplesEqual(src, dst, n, seed);
                    allCorrect &= correct;
                    Map<String, Object> c = new LinkedHashMap<>();
                    c.put("kernel", kernel);
                    c.put("grid", grid);
                    c.put("block", 256);
                    c.put("median_ms", ms);
                    c.put("gb_per_s", gbps);
                    c.put("correct", correct);
                    configs.add(c);
                    if (correct && gbps > best) {
                        best = gbps;
                        bestName = kernel + " grid " + grid;
                    }
                }
            }
            s.put("kernel_configs", configs);
            s.put("best_kernel_gb_per_s", best);
            s.put("best_kernel_config", bestName);
            if (libcuda.missing(COPY_SYMBOLS).isEmpty()) {
                double ms = medianMs(() -> cuMemcpyDtoDAsync(dst, src, bytes, stream));
                s.put("cuMemcpyDtoDAsync_median_ms", ms);
                s.put("cuMemcpyDtoDAsync_gb_per_s", 2.0 * bytes / (ms * 1e6));
            }
            s.put("summary", String.format("our copy kernel %.0f GB/s (%s), %.2f GiB buffers", best, bestName,
                    bytes / (double) (1L << 30)));
            if (!allCorrect) throw new IllegalStateException("a copy configuration produced wrong data: " + configs);
        } finally {
            cuMemFree(src);
            cuMemFree(dst);
            cuModuleUnload(module);
        }
    }

    /** Compares src and dst over a few 1 MiB windows (start, end, random middles). */
    private boolean samplesEqual(CUdeviceptr src, CUdeviceptr dst, long n, int seed) {
        cuStreamSynchronize(stream);
        int window = (int) Math.min(n, 1 << 18);
        SplittableRandom rnd = new SplittableRandom(seed);
        long[] starts = new long[8];
        starts[0] = 0;
        starts[1] = n - window;
        for (int i = 2; i < starts.length; i++) starts[i] = rnd.nextLong(n - window + 1);
        float[] a = new float[window], b = new float[window];
        for (long start : starts) {
            cuMemcpyDtoH(Pointer.to(a), src.withByteOffset(4 * start), 4L * window);
            cuMemcpyDtoH(Pointer.to(b), dst.withByteOffset(4 * start), 4L * window);
            for (int i = 0; i < window; i++) {
                if (Float.floatToRawIntBits(a[i]) != Float.floatToRawIntBits(b[i])) return false;
            }
        }
        return true;
    }

    /** Median over {@code repeats} event-timed calls of {@code op}, after {@link #WARMUP} untimed ones. */
    private double medianMs(Runnable op) {
        for (int i = 0; i < WARMUP; i++) op.run();
        CUevent[] start = new CUevent[repeats], end = new CUevent[repeats];
        for (int i = 0; i < repeats; i++) {
            start[i] = new CUevent();
            end[i] = new CUevent();
            cuEventCreate(start[i], CUevent_flags.CU_EVENT_DEFAULT);
            cuEventCreate(end[i], CUevent_flags.CU_EVENT_DEFAULT);
        }
        try {
            for (int i = 0; i < repeats; i++) {
                cuEventRecord(start[i], stream);
                op.run();
                cuEventRecord(end[i], stream);
            }
            cuEventSynchronize(end[repeats - 1]);
            double[] ms = new double[repeats];
            float[] t = new float[1];
            for (int i = 0; i < repeats; i++) {
                cuEventElapsedTime(t, start[i], end[i]);
                ms[i] = t[0];
            }
            Arrays.sort(ms);
            return repeats % 2 == 1 ? ms[repeats / 2] : (ms[repeats / 2 - 1] + ms[repeats / 2]) / 2;
        } finally {
            for (int i = 0; i < repeats; i++) {
                cuEventDestroy(start[i]);
                cuEventDestroy(end[i]);
            }
        }
    }

    private static CUfunction function(CUmodule module, String name) {
        CUfunction f = new CUfunction();
        cuModuleGetFunction(f, module, name);
        return f;
    }

    private static int funcAttr(CUfunction f, int attribute) {
        int[] v = new int[1];
        cuFuncGetAttribute(v, attribute, f);
        return v[0];
    }

    private static CUdeviceptr alloc(long bytes) {
        CUdeviceptr p = new CUdeviceptr();
        cuMemAlloc(p, bytes);
        return p;
    }

    private static float[] randomFloats(SplittableRandom rnd, int n) {
        float[] v = new float[n];
        for (int i = 0; i < n; i++) v[i] = (float) (rnd.nextDouble() * 2 - 1);
        return v;
    }

    /** The retained primary context, for JCublas to run in. */
    boolean ready() {
        return context != null;
    }

    CUstream stream() {
        return stream;
    }

    @Override
    public void close() {
        if (context == null) return;
        try {
            cuCtxSynchronize();
            if (stream != null) cuStreamDestroy(stream);
            cuDevicePrimaryCtxRelease(device);
        } catch (CudaException e) {
            System.out.println("[probe] releasing the CUDA context: " + e.getMessage());
        }
    }
}
