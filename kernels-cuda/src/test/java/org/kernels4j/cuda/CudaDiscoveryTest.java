package org.kernels4j.cuda;

import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.junit.jupiter.api.Test;
import org.kernels4j.BackendStatus;
import org.kernels4j.Backends;
import org.kernels4j.Device;

/**
 * Discovery through ServiceLoader on the machine the test runs on: without libcuda or a GPU the cuda backend
 * is listed as unavailable with a reason (and nothing crashes); with one, its devices are sm_80 or newer.
 */
class CudaDiscoveryTest {

    @Test
    void cudaIsListedWithItsDevicesOrTheReasonItIsUnavailable() {
        BackendStatus cuda = Backends.statuses().stream().filter(s -> s.name().equals("cuda")).findFirst().orElse(null);
        assertNotNull(cuda, "the cuda provider is not registered: " + Backends.statuses());
        System.out.println("CudaDiscoveryTest: " + cuda);
        if (!cuda.isAvailable()) {
            String why = cuda.unavailableReason();
            assertFalse(why.contains("\n"), "the reason is one line: " + why);
            assertTrue(why.startsWith("libcuda.so.1 not found") || why.startsWith("no CUDA device")
                    || why.startsWith("built without CUDA kernels") || why.startsWith("the CUDA driver")
                    || why.startsWith("no CUDA device of compute capability"), "unexpected reason: " + why);
            return;
        }
        assertFalse(cuda.backend().devices().isEmpty());
        for (Device d : cuda.backend().devices()) {
            String arch = d.capabilities().architecture();
            assertTrue(arch.matches("sm_\\d+") && Integer.parseInt(arch.substring(3)) >= 80, arch);
        }
    }
}
