package org.kernels4j.opencl;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Path;
import java.util.List;
import java.util.Map;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.kernels4j.BackendStatus;
import org.kernels4j.Backends;
import org.kernels4j.DType;
import org.kernels4j.Device;
import org.kernels4j.DeviceCapabilities;

/** Discovery: the device and its capabilities here, and an "unavailable" status where no platform exists. */
class BackendDiscoveryTest {

    @Test
    void pocLDeviceIsFoundWithItsCapabilities() {
        Device d = TestSupport.device();
        DeviceCapabilities c = d.capabilities();
        assertEquals("opencl", d.backend().name());
        assertEquals("opencl:0", d.id());
        assertTrue(c.supports(DType.FLOAT32));
        assertTrue(c.dialectKernels());
        assertTrue(c.maxWorkgroupSize() >= 1 && c.localMemoryBytes() > 0 && c.computeUnits() >= 1);
        boolean fp16 = ((OpenClDevice) d).extensions().contains("cl_khr_fp16");
        assertEquals(fp16, c.supports(DType.FLOAT16), "float16 exactly where the device has cl_khr_fp16");
        assertFalse(c.supports(DType.BFLOAT16));
    }

    /** Runs discovery in a fresh JVM whose ICD loader finds no driver. */
    @Test
    void noPlatformIsAnUnavailableReasonNotACrash(@TempDir Path emptyVendors) throws Exception {
        String out = TestSupport.runInFreshJvm(Statuses.class, List.of(),
                Map.of("OCL_ICD_VENDORS", emptyVendors.toString()), 60, "discovery must not hang");
        assertTrue(out.contains("opencl: unavailable: no OpenCL platform"), out);
    }

    /** Prints every backend status, one per line. */
    static final class Statuses {
        public static void main(String[] args) {
            for (BackendStatus s : Backends.statuses()) {
                System.out.println(s);
            }
        }
    }
}
