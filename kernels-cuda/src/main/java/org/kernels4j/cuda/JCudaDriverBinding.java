package org.kernels4j.cuda;

import java.lang.invoke.MethodHandles;
import java.lang.invoke.VarHandle;
import java.nio.ByteBuffer;

import jcuda.NativePointerObject;
import jcuda.Pointer;
import jcuda.driver.CUcontext;
import jcuda.driver.CUdevice;
import jcuda.driver.CUdeviceptr;
import jcuda.driver.CUevent;
import jcuda.driver.CUfunction;
import jcuda.driver.CUmodule;
import jcuda.driver.CUstream;
import jcuda.driver.JCudaDriver;

import org.kernels4j.spi.Debug;

/**
 * {@link CudaDriver} on JCuda 12.6 ({@code libJCudaDriver}, which needs nothing but {@code libcuda.so.1}).
 * The only class of the backend that touches JCuda.
 *
 * <p>JCuda keeps every handle in the private field {@code NativePointerObject.nativePointer}; this class
 * reads and writes it directly, so that handles travel as plain {@code long}s (a framework's stream or
 * device pointer wraps without JCuda types). Device pointers need no such access: JCuda passes a
 * {@code CUdeviceptr} as its native pointer plus its byte offset, so {@code new CUdeviceptr().withByteOffset(a)}
 * is address {@code a}.
 */
final class JCudaDriverBinding implements CudaDriver {

    private static final VarHandle NATIVE_POINTER;

    static {
        try {
            NATIVE_POINTER = MethodHandles.privateLookupIn(NativePointerObject.class, MethodHandles.lookup())
                    .findVarHandle(NativePointerObject.class, "nativePointer", long.class);
        } catch (ReflectiveOperationException | RuntimeException e) {
            throw new IllegalStateException("cannot read JCuda handles (NativePointerObject.nativePointer): " + e, e);
        }
    }

    /**
     * Loads {@code libJCudaDriver}, which links {@code libcuda.so.1}.
     *
     * @throws IllegalStateException "libcuda.so.1 not found (...)" or another reason the library did not load
     */
    static JCudaDriverBinding load() {
        try {
            Class.forName("jcuda.driver.JCudaDriver", true, JCudaDriverBinding.class.getClassLoader());
        } catch (ClassNotFoundException e) {
            throw new IllegalStateException("JCuda is not on the class path (org.jcuda:jcuda): " + e.getMessage(), e);
        } catch (Throwable e) {
            // JCuda's message spans pages (every attempt with its stack trace): the reason is the line naming
            // libcuda; the rest goes to the debug log only (discovery would append a cause's message)
            String m = causeMessage(e);
            Debug.log(2, () -> "cuda: loading JCuda's driver library failed:\n" + m);
            for (String line : m.split("\n")) {
                if (line.contains("libcuda.so")) {
                    throw new IllegalStateException("libcuda.so.1 not found ("
                            + line.substring(line.indexOf("libcuda.so")).strip() + ")");
                }
            }
            throw new IllegalStateException("the JCuda driver library did not load: " + m.lines().findFirst().orElse(m)
                    + " (KERNELS4J_DEBUG=2 prints JCuda's whole message)");
        }
        JCudaDriver.setExceptionsEnabled(false);
        return new JCudaDriverBinding();
    }

    private static String causeMessage(Throwable e) {
        StringBuilder sb = new StringBuilder();
        for (Throwable t = e; t != null; t = t.getCause() == t ? null : t.getCause()) {
            if (t.getMessage() != null && sb.indexOf(t.getMessage()) < 0) {
                sb.append(sb.length() == 0 ? "" : "; ").append(t.getMessage());
            }
        }
        return sb.length() == 0 ? e.getClass().getName() : sb.toString();
    }

    private JCudaDriverBinding() {
    }

    private static long handle(NativePointerObject o) {
        return (long) NATIVE_POINTER.get(o);
    }

    private static <T extends NativePointerObject> T withHandle(T o, long value) {
        NATIVE_POINTER.set(o, value);
        return o;
    }

    private static CUdeviceptr ptr(long address) {
        return (CUdeviceptr) new CUdeviceptr().withByteOffset(address);
    }

    private static CUstream stream(long s) {
        return withHandle(new CUstream(), s);
    }

    private static CUevent event(long e) {
        return withHandle(new CUevent(), e);
    }

    private static CUdevice dev(int d) {
        return withHandle(new CUdevice(), d);
    }

    private static CUfunction function(long f) {
        return withHandle(new CUfunction(), f);
    }

    private void check(int result, String call) {
        if (result != CUDA_SUCCESS) {
            throw new CudaException(call, result, resultName(result), resultDescription(result));
        }
    }

    @Override
    public String resultName(int result) {
        String[] s = new String[1];
        if (JCudaDriver.cuGetErrorName(result, s) == CUDA_SUCCESS && s[0] != null) {
            return s[0];
        }
        return "CUresult " + result;
    }

    private static String resultDescription(int result) {
        String[] s = new String[1];
        return JCudaDriver.cuGetErrorString(result, s) == CUDA_SUCCESS ? s[0] : null;
    }

    @Override
    public void init() {
        check(JCudaDriver.cuInit(0), "cuInit");
    }

    @Override
    public int driverVersion() {
        int[] v = new int[1];
        check(JCudaDriver.cuDriverGetVersion(v), "cuDriverGetVersion");
        return v[0];
    }

    @Override
    public int deviceCount() {
        int[] n = new int[1];
        check(JCudaDriver.cuDeviceGetCount(n), "cuDeviceGetCount");
        return n[0];
    }

    @Override
    public int device(int ordinal) {
        CUdevice d = new CUdevice();
        check(JCudaDriver.cuDeviceGet(d, ordinal), "cuDeviceGet(" + ordinal + ")");
        return (int) handle(d);
    }

    @Override
    public String deviceName(int device) {
        byte[] name = new byte[256];
        check(JCudaDriver.cuDeviceGetName(name, name.length, dev(device)), "cuDeviceGetName");
        int n = 0;
        while (n < name.length && name[n] != 0) {
            n++;
        }
        return new String(name, 0, n, java.nio.charset.StandardCharsets.UTF_8);
    }

    @Override
    public long deviceTotalMemory(int device) {
        long[] m = new long[1];
        check(JCudaDriver.cuDeviceTotalMem(m, dev(device)), "cuDeviceTotalMem");
        return m[0];
    }

    @Override
    public int deviceAttribute(int device, int attribute) {
        int[] v = new int[1];
        check(JCudaDriver.cuDeviceGetAttribute(v, attribute, dev(device)), "cuDeviceGetAttribute(" + attribute + ")");
        return v[0];
    }

    @Override
    public long primaryContextRetain(int device) {
        CUcontext c = new CUcontext();
        check(JCudaDriver.cuDevicePrimaryCtxRetain(c, dev(device)), "cuDevicePrimaryCtxRetain");
        return handle(c);
    }

    @Override
    public void setCurrent(long context) {
        check(JCudaDriver.cuCtxSetCurrent(withHandle(new CUcontext(), context)), "cuCtxSetCurrent");
    }

    @Override
    public void contextSynchronize() {
        check(JCudaDriver.cuCtxSynchronize(), "cuCtxSynchronize");
    }

    @Override
    public long memAlloc(long bytes) {
        CUdeviceptr p = new CUdeviceptr();
        check(JCudaDriver.cuMemAlloc(p, bytes), "cuMemAlloc(" + bytes + " bytes)");
        return handle(p);
    }

    @Override
    public void memFree(long pointer) {
        check(JCudaDriver.cuMemFree(ptr(pointer)), "cuMemFree");
    }

    @Override
    public void memcpyHtoDAsync(long dst, ByteBuffer src, long bytes, long s) {
        check(JCudaDriver.cuMemcpyHtoDAsync(ptr(dst), Pointer.toBuffer(src), bytes, stream(s)),
                "cuMemcpyHtoDAsync(" + bytes + " bytes)");
    }

    @Override
    public void memcpyDtoHAsync(ByteBuffer dst, long src, long bytes, long s) {
        check(JCudaDriver.cuMemcpyDtoHAsync(Pointer.toBuffer(dst), ptr(src), bytes, stream(s)),
                "cuMemcpyDtoHAsync(" + bytes + " bytes)");
    }

    @Override
    public void memcpyDtoDAsync(long dst, long src, long bytes, long s) {
        check(JCudaDriver.cuMemcpyDtoDAsync(ptr(dst), ptr(src), bytes, stream(s)),
                "cuMemcpyDtoDAsync(" + bytes + " bytes)");
    }

    @Override
    public void memsetD32Async(long dst, int value, long count, long s) {
        check(JCudaDriver.cuMemsetD32Async(ptr(dst), value, count, stream(s)), "cuMemsetD32Async");
    }

    @Override
    public void memsetD16Async(long dst, short value, long count, long s) {
        check(JCudaDriver.cuMemsetD16Async(ptr(dst), value, count, stream(s)), "cuMemsetD16Async");
    }

    @Override
    public long streamCreate(int flags) {
        CUstream s = new CUstream();
        check(JCudaDriver.cuStreamCreate(s, flags), "cuStreamCreate");
        return handle(s);
    }

    @Override
    public void streamSynchronize(long s) {
        check(JCudaDriver.cuStreamSynchronize(stream(s)), "cuStreamSynchronize");
    }

    @Override
    public void streamWaitEvent(long s, long e) {
        check(JCudaDriver.cuStreamWaitEvent(stream(s), event(e), 0), "cuStreamWaitEvent");
    }

    @Override
    public void streamDestroy(long s) {
        check(JCudaDriver.cuStreamDestroy(stream(s)), "cuStreamDestroy");
    }

    @Override
    public long eventCreate() {
        CUevent e = new CUevent();
        check(JCudaDriver.cuEventCreate(e, 0), "cuEventCreate");
        return handle(e);
    }

    @Override
    public void eventRecord(long e, long s) {
        check(JCudaDriver.cuEventRecord(event(e), stream(s)), "cuEventRecord");
    }

    @Override
    public void eventSynchronize(long e) {
        check(JCudaDriver.cuEventSynchronize(event(e)), "cuEventSynchronize");
    }

    @Override
    public boolean eventQuery(long e) {
        int r = JCudaDriver.cuEventQuery(event(e));
        if (r == CUDA_ERROR_NOT_READY) {
            return false;
        }
        check(r, "cuEventQuery");
        return true;
    }

    @Override
    public float eventElapsedTime(long start, long end) {
        float[] ms = new float[1];
        check(JCudaDriver.cuEventElapsedTime(ms, event(start), event(end)), "cuEventElapsedTime");
        return ms[0];
    }

    @Override
    public void eventDestroy(long e) {
        check(JCudaDriver.cuEventDestroy(event(e)), "cuEventDestroy");
    }

    @Override
    public long moduleLoadData(byte[] image) {
        CUmodule m = new CUmodule();
        check(JCudaDriver.cuModuleLoadData(m, image), "cuModuleLoadData");
        return handle(m);
    }

    @Override
    public long moduleGetFunction(long module, String name) {
        CUfunction f = new CUfunction();
        check(JCudaDriver.cuModuleGetFunction(f, withHandle(new CUmodule(), module), name),
                "cuModuleGetFunction(" + name + ")");
        return handle(f);
    }

    @Override
    public int functionAttribute(long f, int attribute) {
        int[] v = new int[1];
        check(JCudaDriver.cuFuncGetAttribute(v, attribute, function(f)), "cuFuncGetAttribute(" + attribute + ")");
        return v[0];
    }

    @Override
    public void setFunctionAttribute(long f, int attribute, int value) {
        check(JCudaDriver.cuFuncSetAttribute(function(f), attribute, value),
                "cuFuncSetAttribute(" + attribute + ", " + value + ")");
    }

    @Override
    public int occupancyMaxActiveBlocksPerMultiprocessor(long f, int blockSize, long dynamicSharedBytes) {
        int[] n = new int[1];
        check(JCudaDriver.cuOccupancyMaxActiveBlocksPerMultiprocessor(n, function(f), blockSize, dynamicSharedBytes),
                "cuOccupancyMaxActiveBlocksPerMultiprocessor");
        return n[0];
    }

    @Override
    public void launchKernel(long f, int gridX, int gridY, int gridZ, int blockX, int blockY, int blockZ,
                             int sharedBytes, long s, Object[] args) {
        NativePointerObject[] params = new NativePointerObject[args.length];
        for (int i = 0; i < args.length; i++) {
            Object a = args[i];
            params[i] = switch (a) {
                case Long v -> Pointer.to(new long[] {v});
                case Integer v -> Pointer.to(new int[] {v});
                case Float v -> Pointer.to(new float[] {v});
                case Double v -> Pointer.to(new double[] {v});
                case byte[] v -> Pointer.to(v);
                default -> throw new IllegalArgumentException("kernel argument " + i + ": unsupported type "
                        + (a == null ? "null" : a.getClass().getName()));
            };
        }
        check(JCudaDriver.cuLaunchKernel(function(f), gridX, gridY, gridZ, blockX, blockY, blockZ, sharedBytes,
                stream(s), Pointer.to(params), null), "cuLaunchKernel");
    }
}
