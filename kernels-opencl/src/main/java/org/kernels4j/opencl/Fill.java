package org.kernels4j.opencl;

import org.jocl.CL;
import org.jocl.Pointer;
import org.jocl.cl_mem;

/** Queues buffer fills (outputs that a degenerate problem defines as zero). */
final class Fill {

    private Fill() {
    }

    static void zero(OpenClStream s, OpenClTensor t) {
        cl_mem m = t.mem();
        if (m == null || t.byteSize() == 0) {
            return;
        }
        // every dtype's zero is all-zero bytes; the pattern must divide the size, so use the element size
        byte[] pattern = new byte[t.dtype().byteSize()];
        OpenClCalls.check(CL.clEnqueueFillBuffer(s.queue(), m, Pointer.to(pattern), pattern.length, 0, t.byteSize(),
                0, null, null), "clEnqueueFillBuffer");
    }
}
