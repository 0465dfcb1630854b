package org.kernels4j.cuda;

import java.nio.ByteBuffer;

/**
 * The CUDA driver API as this backend uses it: the one seam between kernels4j and a Java binding of
 * {@code libcuda}. {@link JCudaDriverBinding} implements it with JCuda; another binding (for example the
 * FFM API) replaces that one class.
 *
 * <p>Handles are the driver's own values as {@code long}s (a {@code CUdeviceptr}, {@code CUstream},
 * {@code CUcontext}...), so that memory and streams owned by a framework can be wrapped. Every method checks
 * the driver's result and throws {@link CudaException} naming the call and the {@code CUresult}. Only
 * long-standing entry points are used: a lazily bound JNI library ends the JVM when it calls a symbol the
 * installed {@code libcuda} lacks, so nothing here may depend on a recent driver.
 *
 * <p>Calls that act on a context (everything but {@link #init}, the device queries and
 * {@link #primaryContextRetain}) need that context current on the calling thread ({@link #setCurrent}).
 */
interface CudaDriver {

    /** {@code CU_DEVICE_ATTRIBUTE_*} values used by the backend (the driver API's ABI constants). */
    int ATTR_MAX_THREADS_PER_BLOCK = 1;
    int ATTR_MAX_GRID_DIM_X = 5;
    int ATTR_MAX_GRID_DIM_Y = 6;
    int ATTR_MAX_GRID_DIM_Z = 7;
    int ATTR_MAX_SHARED_MEMORY_PER_BLOCK = 8;
    int ATTR_WARP_SIZE = 10;
    int ATTR_MULTIPROCESSOR_COUNT = 16;
    int ATTR_L2_CACHE_SIZE = 38;
    int ATTR_COMPUTE_CAPABILITY_MAJOR = 75;
    int ATTR_COMPUTE_CAPABILITY_MINOR = 76;
    int ATTR_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN = 97;

    /** {@code CU_FUNC_ATTRIBUTE_*} values. */
    int FUNC_MAX_THREADS_PER_BLOCK = 0;
    int FUNC_SHARED_SIZE_BYTES = 1;
    int FUNC_NUM_REGS = 4;
    int FUNC_MAX_DYNAMIC_SHARED_SIZE_BYTES = 8;

    /** {@code CUresult} values the backend acts on. */
    int CUDA_SUCCESS = 0;
    int CUDA_ERROR_NO_DEVICE = 100;
    int CUDA_ERROR_NOT_READY = 600;

    /** {@code cuInit(0)}. */
    void init();

    /** {@code cuDriverGetVersion}: e.g. 13000 for CUDA 13.0. */
    int driverVersion();

    /** {@code cuDeviceGetCount}. */
    int deviceCount();

    /** {@code cuDeviceGet}: the device handle of an ordinal. */
    int device(int ordinal);

    /** {@code cuDeviceGetName}. */
    String deviceName(int device);

    /** {@code cuDeviceTotalMem}. */
    long deviceTotalMemory(int device);

    /** {@code cuDeviceGetAttribute}. */
    int deviceAttribute(int device, int attribute);

    /** {@code cuDevicePrimaryCtxRetain}: the device's primary context (the one the CUDA runtime uses). */
    long primaryContextRetain(int device);

    /** {@code cuCtxSetCurrent}. */
    void setCurrent(long context);

    /** {@code cuCtxSynchronize} on the current context. */
    void contextSynchronize();

    /** {@code cuMemAlloc}. */
    long memAlloc(long bytes);

    /** {@code cuMemFree}. */
    void memFree(long pointer);

    /**
     * {@code cuMemcpyHtoDAsync} of {@code bytes} from {@code src} at its position; {@code src} must be direct.
     * Returns once queued; the buffer must stay untouched until the stream has passed the copy.
     */
    void memcpyHtoDAsync(long dst, ByteBuffer src, long bytes, long stream);

    /** {@code cuMemcpyDtoHAsync} into {@code dst} at its position; {@code dst} must be direct. */
    void memcpyDtoHAsync(ByteBuffer dst, long src, long bytes, long stream);

    /** {@code cuMemcpyDtoDAsync}. */
    void memcpyDtoDAsync(long dst, long src, long bytes, long stream);

    /** {@code cuMemsetD32Async}: {@code count} 32-bit words. */
    void memsetD32Async(long dst, int value, long count, long stream);

    /** {@code cuMemsetD16Async}: {@code count} 16-bit words. */
    void memsetD16Async(long dst, short value, long count, long stream);

    /** {@code cuStreamCreate}; flags 0 (default) or 1 (non-blocking). */
    long streamCreate(int flags);

    /** {@code cuStreamSynchronize}. */
    void streamSynchronize(long stream);

    /** {@code cuStreamWaitEvent}. */
    void streamWaitEvent(long stream, long event);

    /** {@code cuStreamDestroy}. */
    void streamDestroy(long stream);

    /** {@code cuEventCreate} with timing enabled. */
    long eventCreate();

    /** {@code cuEventRecord}. */
    void eventRecord(long event, long stream);

    /** {@code cuEventSynchronize}. */
    void eventSynchronize(long event);

    /** {@code cuEventQuery}: true when complete, false when {@code CUDA_ERROR_NOT_READY}. */
    boolean eventQuery(long event);

    /** {@code cuEventElapsedTime} in milliseconds. */
    float eventElapsedTime(long start, long end);

    /** {@code cuEventDestroy}. */
    void eventDestroy(long event);

    /** {@code cuModuleLoadData}: a cubin, or PTX text ending in a NUL byte. */
    long moduleLoadData(byte[] image);

    /** {@code cuModuleGetFunction}. */
    long moduleGetFunction(long module, String name);

    /** {@code cuFuncGetAttribute}. */
    int functionAttribute(long function, int attribute);

    /** {@code cuFuncSetAttribute}. */
    void setFunctionAttribute(long function, int attribute, int value);

    /** {@code cuOccupancyMaxActiveBlocksPerMultiprocessor}. */
    int occupancyMaxActiveBlocksPerMultiprocessor(long function, int blockSize, long dynamicSharedBytes);

    /**
     * {@code cuLaunchKernel}. {@code args} holds one value per kernel parameter, in order: {@link Long}
     * (8 bytes: a device pointer or a 64-bit integer), {@link Integer} (4 bytes), {@link Float},
     * {@link Double}, or {@code byte[]} (a by-value struct).
     */
    void launchKernel(long function, int gridX, int gridY, int gridZ, int blockX, int blockY, int blockZ,
                      int sharedBytes, long stream, Object[] args);

    /** The driver's name of a {@code CUresult}, e.g. {@code "CUDA_ERROR_OUT_OF_MEMORY"}. */
    String resultName(int result);
}
