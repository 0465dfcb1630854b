package org.kernels4j.opencl;

import static org.junit.jupiter.api.Assertions.assertTrue;

import org.jocl.CL;
import org.jocl.Pointer;
import org.junit.jupiter.api.Test;

/** The debug switch that poisons temporary buffers, which this module's tests rely on. */
class ScratchTest {

    @Test
    void poisonedScratchHoldsOnlyNaN() {
        OpenClDevice d = (OpenClDevice) TestSupport.device();
        OpenClStream s = (OpenClStream) d.defaultStream();
        String before = System.getProperty(OpenClProvider.POISON_SCRATCH_PROPERTY);
        System.setProperty(OpenClProvider.POISON_SCRATCH_PROPERTY, "true");
        try (OpenClDevice.Scratch scratch = d.scratch(s, 37, "test scratch")) {
            float[] out = new float[37];
            OpenClCalls.check(CL.clEnqueueReadBuffer(s.queue(), scratch.mem(), true, 0, 4L * out.length,
                    Pointer.to(out), 0, null, null), "clEnqueueReadBuffer");
            for (int i = 0; i < out.length; i++) {
                float v = out[i];
                assertTrue(Float.isNaN(v), () -> "element " + v + " is not NaN");
            }
        } finally {
            if (before == null) {
                System.clearProperty(OpenClProvider.POISON_SCRATCH_PROPERTY);
            } else {
                System.setProperty(OpenClProvider.POISON_SCRATCH_PROPERTY, before);
            }
        }
    }
}
