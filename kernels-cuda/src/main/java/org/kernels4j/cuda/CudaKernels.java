package org.kernels4j.cuda;

import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;

import org.kernels4j.Stream;
import org.kernels4j.Tensor;
import org.kernels4j.spi.Debug;

/**
 * Launching the kernels compiled at build time: the one place every CUDA op (layer norm, attention,
 * convolution) goes through. Per device it loads each module once, on first use, from the cubin that
 * matches the device (else the PTX, compiled by the driver) and keeps the function handles.
 *
 * <p>An op launches with
 * <pre>{@code
 * CudaKernels.launch(stream, "ln_fwd_v4_bf16", Dim3.of(blocks), Dim3.of(32, 8), 0,
 *         x, gamma, beta, y, mean, rstd, rows, cols, eps, rms ? 1 : 0);
 * }</pre>
 * Arguments, in the kernel's parameter order: a {@link Tensor} of the stream's device (its device pointer),
 * {@code null} (a null pointer), {@link Long} (a raw device address or a 64-bit integer), {@link Integer},
 * {@link Float}, {@link Double}, or {@code byte[]} (a struct passed by value). Each is checked against the
 * parameter types the PTX declares (count, width, float or integer), the block against the kernel's limit
 * (registers and {@code __launch_bounds__}), the grid against the device's, and dynamic shared memory above
 * 48 KiB is opted into per function. A launch returns once queued.
 *
 * <p>System property {@code kernels4j.cuda.syncEveryLaunch=true} waits for each launch and reports a kernel
 * fault with the kernel's name (slow; for finding which kernel faults). {@code KERNELS4J_DEBUG=2} logs every
 * launch.
 */
final class CudaKernels {

    /** A loaded kernel. */
    record Function(KernelManifest.Entry entry, long handle, int maxThreadsPerBlock, String image) {
    }

    private static final boolean SYNC_EVERY_LAUNCH = Boolean.getBoolean("kernels4j.cuda.syncEveryLaunch");
    private static final int DEFAULT_SHARED_LIMIT = 48 * 1024;

    private final CudaDevice device;
    private final KernelManifest manifest;
    /** Loaded module images by file name (a module can need its cubin and its PTX, for different kernels). */
    private final Map<String, Long> modules = new ConcurrentHashMap<>();
    private final Map<String, Function> functions = new ConcurrentHashMap<>();
    /** Dynamic shared memory each function was opted into, above the default 48 KiB. */
    private final Map<Long, Integer> sharedOptIn = new ConcurrentHashMap<>();

    CudaKernels(CudaDevice device, KernelManifest manifest) {
        this.device = device;
        this.manifest = manifest;
    }

    /**
     * Queues one launch of {@code kernel} on {@code stream} (a stream of a CUDA device); see the class
     * comment for the arguments.
     *
     * @throws IllegalArgumentException for an unknown kernel, arguments that do not match its parameters, or
     *                                  a grid, block or shared-memory size the kernel or device cannot run
     * @throws CudaException            when the driver refuses the launch
     */
    static void launch(Stream stream, String kernel, Dim3 grid, Dim3 block, int sharedBytes, Object... args) {
        CudaStream s = CudaStream.of(stream);
        s.device().kernels().enqueue(s, kernel, grid, block, sharedBytes, args);
    }

    /** The kernel, loading its module on first use. */
    Function function(String kernel) {
        Function f = functions.get(kernel);
        if (f != null) {
            return f;
        }
        KernelManifest.Entry e = manifest.entry(kernel);
        String image = KernelManifest.imageFor(e, device.computeCapabilityMajor(), device.computeCapabilityMinor());
        if (image == null) {
            throw new IllegalArgumentException("kernel: " + e.name() + " is not built for "
                    + device.capabilities().architecture() + " (it exists for " + e.targets() + ")");
        }
        return functions.computeIfAbsent(kernel, k -> {
            device.makeCurrent();
            long module = modules.computeIfAbsent(image, this::loadModule);
            long handle = device.driver().moduleGetFunction(module, e.name());
            int maxThreads = device.driver().functionAttribute(handle, CudaDriver.FUNC_MAX_THREADS_PER_BLOCK);
            Debug.log(2, () -> device.id() + " loaded kernel " + e.name() + " from " + image + ": "
                    + device.driver().functionAttribute(handle, CudaDriver.FUNC_NUM_REGS) + " registers, at most "
                    + maxThreads + " threads per block");
            return new Function(e, handle, maxThreads, image);
        });
    }

    private long loadModule(String image) {
        byte[] bytes = KernelManifest.resource(image);
        if (bytes == null) {
            throw new IllegalStateException("CUDA kernel image " + KernelManifest.RESOURCE_DIR + image
                    + " is listed in the manifest but missing from the jar");
        }
        if (image.endsWith(".ptx")) {
            bytes = Arrays.copyOf(bytes, bytes.length + 1);   // the driver reads PTX as a NUL-terminated string
        }
        try {
            return device.driver().moduleLoadData(bytes);
        } catch (CudaException e) {
            throw new CudaException(e.call() + " of " + image + " on " + device.id() + " (" + device.name() + ", "
                    + device.capabilities().architecture() + "; kernels built with nvcc " + manifest.nvccVersion()
                    + ", driver supports CUDA " + device.capabilities().driverVersion() + ")", e.result(),
                    e.resultName(), null);
        }
    }

    /** Blocks of {@code blockThreads} threads and {@code sharedBytes} of dynamic shared memory one SM holds. */
    int maxActiveBlocksPerSm(String kernel, int blockThreads, int sharedBytes) {
        Function f = function(kernel);
        device.makeCurrent();
        // the occupancy query counts a function as unable to run with more than the shared memory it is opted into
        optInSharedMemory(f, sharedBytes);
        return device.driver().occupancyMaxActiveBlocksPerMultiprocessor(f.handle(), blockThreads, sharedBytes);
    }

    void enqueue(CudaStream stream, String kernel, Dim3 grid, Dim3 block, int sharedBytes, Object... args) {
        Function f = function(kernel);
        Object[] values = marshal(f.entry(), stream.device(), args);
        checkShape(f, grid, block, sharedBytes);
        device.makeCurrent();
        optInSharedMemory(f, sharedBytes);
        Debug.log(2, () -> device.id() + " launch " + kernel + " grid " + grid + " block " + block
                + (sharedBytes > 0 ? " shared " + sharedBytes : ""));
        device.driver().launchKernel(f.handle(), grid.x(), grid.y(), grid.z(), block.x(), block.y(), block.z(),
                sharedBytes, stream.handle(), values);
        if (SYNC_EVERY_LAUNCH) {
            try {
                device.driver().streamSynchronize(stream.handle());
            } catch (CudaException e) {
                throw new CudaException(e.call() + " after " + kernel + " grid " + grid + " block " + block,
                        e.result(), e.resultName(), null);
            }
        }
    }

    private void checkShape(Function f, Dim3 grid, Dim3 block, int sharedBytes) {
        String k = f.entry().name();
        long threads = (long) block.x() * block.y() * block.z();
        if (threads > f.maxThreadsPerBlock()) {
            throw new IllegalArgumentException("block: " + k + " runs at most " + f.maxThreadsPerBlock()
                    + " threads per block on " + device.id() + ", got " + block + " = " + threads);
        }
        int[] maxGrid = device.maxGrid();
        if (grid.x() > maxGrid[0] || grid.y() > maxGrid[1] || grid.z() > maxGrid[2]) {
            throw new IllegalArgumentException("grid: " + k + " launched with " + grid + ", beyond the device's "
                    + Arrays.toString(maxGrid));
        }
        if (sharedBytes < 0 || sharedBytes > device.capabilities().localMemoryBytes()) {
            throw new IllegalArgumentException("sharedBytes: expected 0.." + device.capabilities().localMemoryBytes()
                    + " for " + k + " on " + device.id() + ", got " + sharedBytes);
        }
    }

    private void optInSharedMemory(Function f, int sharedBytes) {
        if (sharedBytes <= DEFAULT_SHARED_LIMIT || sharedOptIn.getOrDefault(f.handle(), 0) >= sharedBytes) {
            return;
        }
        synchronized (sharedOptIn) {
            if (sharedOptIn.getOrDefault(f.handle(), 0) < sharedBytes) {
                device.driver().setFunctionAttribute(f.handle(), CudaDriver.FUNC_MAX_DYNAMIC_SHARED_SIZE_BYTES,
                        sharedBytes);
                sharedOptIn.put(f.handle(), sharedBytes);
            }
        }
    }

    /** Kernel argument values for the driver, each checked against its PTX parameter type. */
    static Object[] marshal(KernelManifest.Entry entry, CudaDevice device, Object[] args) {
        List<String> params = entry.params();
        if (args.length != params.size()) {
            throw new IllegalArgumentException("args: " + entry.name() + " takes " + params.size() + " arguments "
                    + params + ", got " + args.length);
        }
        Object[] values = new Object[args.length];
        for (int i = 0; i < args.length; i++) {
            String type = params.get(i);
            Object a = args[i];
            Object v = switch (a) {
                case null -> 0L;
                case Tensor t -> CudaTensor.address(t, device, entry.name() + " argument " + i);
                case Long l -> l;
                case Integer n -> n;
                case Float x -> x;
                case Double x -> x;
                case byte[] b -> b;
                default -> throw new IllegalArgumentException("args[" + i + "]: " + entry.name()
                        + " got a " + a.getClass().getName() + "; expected Tensor, null, Long, Integer, Float, Double"
                        + " or byte[]");
            };
            String why = mismatch(type, v);
            if (why != null) {
                throw new IllegalArgumentException("args[" + i + "]: parameter " + i + " of " + entry.name() + " is "
                        + type + ", got " + (a == null ? "null" : a.getClass().getSimpleName() + " " + a) + " (" + why + ")");
            }
            values[i] = v;
        }
        return values;
    }

    private static String mismatch(String type, Object v) {
        if (type.startsWith("b8:") || type.contains(":")) {
            int bytes = Integer.parseInt(type.substring(type.indexOf(':') + 1));
            return v instanceof byte[] b && b.length == bytes ? null : "expected a byte[" + bytes + "] struct";
        }
        return switch (type) {
            case "u64", "s64", "b64" -> v instanceof Long ? null : "expected a 64-bit pointer or integer";
            case "u32", "s32", "b32" -> v instanceof Integer ? null : "expected a 32-bit integer";
            case "f32" -> v instanceof Float ? null : "expected a float";
            case "f64" -> v instanceof Double ? null : "expected a double";
            default -> "parameter type " + type + " is not supported by the launcher";
        };
    }
}
