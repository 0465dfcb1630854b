package org.kernels4j.opencl;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.util.List;
import java.util.Map;

import org.junit.jupiter.api.Test;
import org.kernels4j.DType;
import org.kernels4j.Device;
import org.kernels4j.LayerNorm;
import org.kernels4j.Stream;
import org.kernels4j.Tensor;

/**
 * The JVM keeps its own signal handlers while the OpenCL driver starts and compiles (PoCL runs LLVM, which
 * replaces them; see {@link JvmSignalHandlers}).
 */
class JvmSignalHandlersTest {

    /** SIGHUP, SIGINT, SIGQUIT, SIGILL, SIGBUS, SIGFPE, SIGSEGV, SIGUSR2, SIGTERM: HotSpot's and LLVM's both. */
    private static final List<Integer> SIGNALS = List.of(1, 2, 3, 4, 7, 8, 11, 12, 15);

    /**
     * In a fresh JVM (so that the driver starts inside the test, whatever ran before in this one): discovery,
     * a program build and a kernel run on the OpenCL device, then every signal's handler is still in libjvm.
     */
    @Test
    void afterDiscoveryAndAKernelTheHandlersAreTheJvms() throws Exception {
        assumeTrue(JvmSignalHandlers.supported(), "needs JDK 22+ (java.lang.foreign) and libc's sigaction");
        String out = TestSupport.runInFreshJvm(HandlersAfterOpenCl.class, List.of("--enable-native-access=ALL-UNNAMED"),
                Map.of(), 120, "the child JVM must finish");
        assertTrue(out.contains("opencl device: opencl:0"), out);
        for (int sig : SIGNALS) {
            String line = out.lines().filter(l -> l.startsWith("signal " + sig + ":")).findFirst().orElse("(none)");
            assertTrue(line.endsWith("/libjvm.so"), "signal " + sig + " handled outside the JVM: " + line + "\n" + out);
        }
    }

    /** Restoring puts back exactly the actions saved, and reports the signals it changed. */
    @Test
    void restorePutsBackWhatChanged() {
        assumeTrue(JvmSignalHandlers.supported(), "needs JDK 22+ (java.lang.foreign) and libc's sigaction");
        TestSupport.device();
        JvmSignalHandlers before = JvmSignalHandlers.save();
        assertArrayEquals(new int[0], before.restore(), "nothing changed, nothing to put back");
        String segv = JvmSignalHandlers.handlerLibrary(11);
        assertTrue(segv != null && segv.endsWith("/libjvm.so"), "SIGSEGV is the JVM's here: " + segv);
    }

    /** Starts the OpenCL backend, runs a layer norm on it, and prints each signal's handler's library. */
    static final class HandlersAfterOpenCl {
        public static void main(String[] args) {
            Device d = TestSupport.device();
            System.out.println("opencl device: " + d.id());
            Stream s = d.defaultStream();
            try (Tensor x = d.upload(DType.FLOAT32, new float[] {1, 2, 3, 4, 5, 6}, 2, 3);
                 Tensor y = d.allocate(DType.FLOAT32, 2, 3);
                 Tensor mean = d.allocate(DType.FLOAT32, 2);
                 Tensor rstd = d.allocate(DType.FLOAT32, 2)) {
                LayerNorm.layerNorm().forward(s, x, null, null, y, mean, rstd);
                s.synchronize();
                System.out.println("y: " + java.util.Arrays.toString(y.toFloatArray()));
            }
            for (int sig : SIGNALS) {
                System.out.println("signal " + sig + ": " + JvmSignalHandlers.handlerLibrary(sig));
            }
        }
    }
}
