package org.kernels4j.cuda;

import java.nio.ByteBuffer;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;

/**
 * A {@link CudaDriver} without a GPU, for testing the backend's Java side: device memory is host memory
 * (allocations at 256-byte aligned fake addresses; copies and memsets work), kernels are not run but every
 * launch is recorded with its function's name, shape and argument values. Calls that need a current
 * context fail unless {@link #setCurrent} was called on the thread, as the real driver would.
 */
final class FakeCudaDriver implements CudaDriver {

    /** One recorded kernel launch. */
    record Launch(String kernel, Dim3 grid, Dim3 block, int sharedBytes, long stream, Object[] args) {
    }

    int driverVersion = 13000;
    int deviceCount = 1;
    int ccMajor = 9;
    int ccMinor = 0;
    int initResult = CUDA_SUCCESS;
    int occupancy = 4;

    final List<Launch> launches = new ArrayList<>();
    final List<String> loadedImages = new ArrayList<>();
    final Map<String, Integer> calls = new HashMap<>();
    private final TreeMap<Long, byte[]> memory = new TreeMap<>();
    private final Map<Long, String> functionNames = new HashMap<>();
    private final ThreadLocal<Long> current = new ThreadLocal<>();
    private long nextAddress = 0x7f0000000000L;
    private long nextHandle = 0x1000;

    private void count(String call) {
        calls.merge(call, 1, Integer::sum);
    }

    int calls(String call) {
        return calls.getOrDefault(call, 0);
    }

    private void needContext(String call) {
        count(call);
        if (current.get() == null) {
            throw new CudaException(call, 201, "CUDA_ERROR_INVALID_CONTEXT", "no context is current on this thread");
        }
    }

    /** The bytes of the allocation containing {@code address}, positioned at it. */
    ByteBuffer bytesAt(long address, long length) {
        Map.Entry<Long, byte[]> e = memory.floorEntry(address);
        if (e == null || address + length > e.getKey() + e.getValue().length) {
            throw new CudaException("access", 700, "CUDA_ERROR_ILLEGAL_ADDRESS",
                    length + " bytes at 0x" + Long.toHexString(address) + " are not allocated");
        }
        return ByteBuffer.wrap(e.getValue(), (int) (address - e.getKey()), (int) length).slice();
    }

    int allocations() {
        return memory.size();
    }

    @Override
    public void init() {
        count("cuInit");
        if (initResult != CUDA_SUCCESS) {
            throw new CudaException("cuInit", initResult, resultName(initResult), null);
        }
    }

    @Override
    public int driverVersion() {
        return driverVersion;
    }

    @Override
    public int deviceCount() {
        return deviceCount;
    }

    @Override
    public int device(int ordinal) {
        return ordinal;
    }

    @Override
    public String deviceName(int device) {
        return "Fake GPU " + device;
    }

    @Override
    public long deviceTotalMemory(int device) {
        return 80L << 30;
    }

    @Override
    public int deviceAttribute(int device, int attribute) {
        return switch (attribute) {
            case ATTR_MAX_THREADS_PER_BLOCK -> 1024;
            case ATTR_MAX_GRID_DIM_X -> Integer.MAX_VALUE;
            case ATTR_MAX_GRID_DIM_Y, ATTR_MAX_GRID_DIM_Z -> 65535;
            case ATTR_WARP_SIZE -> 32;
            case ATTR_MULTIPROCESSOR_COUNT -> 132;
            case ATTR_COMPUTE_CAPABILITY_MAJOR -> ccMajor;
            case ATTR_COMPUTE_CAPABILITY_MINOR -> ccMinor;
            case ATTR_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN -> 232448;
            default -> 0;
        };
    }

    @Override
    public long primaryContextRetain(int device) {
        return 0xc0de0000L + device;
    }

    @Override
    public void setCurrent(long context) {
        count("cuCtxSetCurrent");
        current.set(context);
    }

    @Override
    public void contextSynchronize() {
        needContext("cuCtxSynchronize");
    }

    @Override
    public long memAlloc(long bytes) {
        needContext("cuMemAlloc");
        if (bytes <= 0) {
            throw new CudaException("cuMemAlloc(" + bytes + " bytes)", 1, "CUDA_ERROR_INVALID_VALUE", null);
        }
        long a = nextAddress;
        nextAddress += (bytes + 255) / 256 * 256 + 256;
        memory.put(a, new byte[Math.toIntExact(bytes)]);
        return a;
    }

    @Override
    public void memFree(long pointer) {
        needContext("cuMemFree");
        if (memory.remove(pointer) == null) {
            throw new CudaException("cuMemFree", 1, "CUDA_ERROR_INVALID_VALUE", "not an allocation");
        }
    }

    @Override
    public void memcpyHtoDAsync(long dst, ByteBuffer src, long bytes, long stream) {
        needContext("cuMemcpyHtoDAsync");
        if (!src.isDirect()) {
            throw new IllegalArgumentException("the binding needs a direct buffer");
        }
        bytesAt(dst, bytes).put(src.duplicate().limit(src.position() + (int) bytes));
    }

    @Override
    public void memcpyDtoHAsync(ByteBuffer dst, long src, long bytes, long stream) {
        needContext("cuMemcpyDtoHAsync");
        if (!dst.isDirect()) {
            throw new IllegalArgumentException("the binding needs a direct buffer");
        }
        dst.duplicate().put(bytesAt(src, bytes));
    }

    @Override
    public void memcpyDtoDAsync(long dst, long src, long bytes, long stream) {
        needContext("cuMemcpyDtoDAsync");
        bytesAt(dst, bytes).put(bytesAt(src, bytes));
    }

    @Override
    public void memsetD32Async(long dst, int value, long count, long stream) {
        needContext("cuMemsetD32Async");
        ByteBuffer b = bytesAt(dst, count * 4).order(java.nio.ByteOrder.nativeOrder());
        for (int i = 0; i < count; i++) {
            b.putInt(i * 4, value);
        }
    }

    @Override
    public void memsetD16Async(long dst, short value, long count, long stream) {
        needContext("cuMemsetD16Async");
        ByteBuffer b = bytesAt(dst, count * 2).order(java.nio.ByteOrder.nativeOrder());
        for (int i = 0; i < count; i++) {
            b.putShort(i * 2, value);
        }
    }

    @Override
    public long streamCreate(int flags) {
        needContext("cuStreamCreate");
        return nextHandle++;
    }

    @Override
    public void streamSynchronize(long stream) {
        needContext("cuStreamSynchronize");
    }

    @Override
    public void streamWaitEvent(long stream, long event) {
        needContext("cuStreamWaitEvent");
    }

    @Override
    public void streamDestroy(long stream) {
        needContext("cuStreamDestroy");
    }

    @Override
    public long eventCreate() {
        needContext("cuEventCreate");
        return nextHandle++;
    }

    @Override
    public void eventRecord(long event, long stream) {
        needContext("cuEventRecord");
    }

    @Override
    public void eventSynchronize(long event) {
        needContext("cuEventSynchronize");
    }

    @Override
    public boolean eventQuery(long event) {
        needContext("cuEventQuery");
        return true;
    }

    @Override
    public float eventElapsedTime(long start, long end) {
        needContext("cuEventElapsedTime");
        return (end - start) * 0.5f;
    }

    @Override
    public void eventDestroy(long event) {
        count("cuEventDestroy");
    }

    @Override
    public long moduleLoadData(byte[] image) {
        needContext("cuModuleLoadData");
        boolean elf = image.length > 4 && image[0] == 0x7f && image[1] == 'E' && image[2] == 'L' && image[3] == 'F';
        boolean ptx = image.length > 0 && image[image.length - 1] == 0;
        if (!elf && !ptx) {
            throw new CudaException("cuModuleLoadData", 200, "CUDA_ERROR_INVALID_IMAGE", null);
        }
        loadedImages.add(elf ? "cubin" : "ptx");
        return nextHandle++;
    }

    @Override
    public long moduleGetFunction(long module, String name) {
        needContext("cuModuleGetFunction");
        long h = nextHandle++;
        functionNames.put(h, name);
        return h;
    }

    @Override
    public int functionAttribute(long function, int attribute) {
        needContext("cuFuncGetAttribute");
        String name = functionNames.get(function);
        return switch (attribute) {
            case FUNC_MAX_THREADS_PER_BLOCK -> name.startsWith("ln_bwd_v") ? 512 : 1024;
            case FUNC_NUM_REGS -> 32;
            default -> 0;
        };
    }

    @Override
    public void setFunctionAttribute(long function, int attribute, int value) {
        needContext("cuFuncSetAttribute");
    }

    @Override
    public int occupancyMaxActiveBlocksPerMultiprocessor(long function, int blockSize, long dynamicSharedBytes) {
        needContext("cuOccupancyMaxActiveBlocksPerMultiprocessor");
        return occupancy;
    }

    @Override
    public void launchKernel(long function, int gridX, int gridY, int gridZ, int blockX, int blockY, int blockZ,
                             int sharedBytes, long stream, Object[] args) {
        needContext("cuLaunchKernel");
        launches.add(new Launch(functionNames.get(function), Dim3.of(gridX, gridY, gridZ),
                Dim3.of(blockX, blockY, blockZ), sharedBytes, stream, args.clone()));
    }

    @Override
    public String resultName(int result) {
        return switch (result) {
            case CUDA_SUCCESS -> "CUDA_SUCCESS";
            case CUDA_ERROR_NO_DEVICE -> "CUDA_ERROR_NO_DEVICE";
            default -> "CUresult " + result;
        };
    }
}
