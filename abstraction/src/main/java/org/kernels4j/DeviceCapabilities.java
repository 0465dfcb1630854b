package org.kernels4j;

import java.util.Set;

/**
 * What a device can do, for choosing dtypes and kernels.
 *
 * @param dtypes            element types the device's ops accept
 * @param float64           whether kernels may use double precision
 * @param atomics           whether global 32-bit float atomics are available to kernels
 * @param subgroupSize      warp / subgroup width usable by subgroup reductions, or 0 where kernels have none
 * @param localMemoryBytes  local (shared) memory available to one workgroup
 * @param maxWorkgroupSize  largest workgroup a kernel may be launched with
 * @param computeUnits      multiprocessors, compute units or CPU cores
 * @param globalMemoryBytes device memory size (for the CPU, the JVM's maximum heap)
 * @param driverVersion     driver or runtime version string (part of the tuning cache key)
 * @param architecture      architecture name, e.g. {@code "sm_90"}, {@code "avx512"}; used by the tuning
 *                          defaults' fallback chain
 * @param dialectKernels    whether {@link Device#compileKernel} accepts user kernels in the portable dialect
 */
public record DeviceCapabilities(
        Set<DType> dtypes,
        boolean float64,
        boolean atomics,
        int subgroupSize,
        long localMemoryBytes,
        int maxWorkgroupSize,
        int computeUnits,
        long globalMemoryBytes,
        String driverVersion,
        String architecture,
        boolean dialectKernels) {

    /** Copies the dtype set so the record stays immutable. */
    public DeviceCapabilities {
        dtypes = Set.copyOf(dtypes);
    }

    /** Whether ops on this device accept tensors of that dtype. */
    public boolean supports(DType dtype) {
        return dtypes.contains(dtype);
    }
}
