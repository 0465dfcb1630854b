package org.kernels4j.opencl;

import static org.junit.jupiter.api.Assertions.assertEquals;

import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;
import org.kernels4j.DType;
import org.kernels4j.Device;
import org.kernels4j.Kernel;
import org.kernels4j.KernelSource;
import org.kernels4j.LocalMemory;
import org.kernels4j.NDRange;
import org.kernels4j.Tensor;

/** The dialect header's reductions and float atomics, run on the OpenCL device. */
class DialectTest {

    private static final String REDUCE = """
            #include "kernels4j.h"
            __kernel void reduce(__global const float* x, __global float* out, __global float* total, int seg,
                                 K4J_DYNAMIC_LOCAL(float, scratch)) {
                K4J_BIND_DYNAMIC_LOCAL(float, scratch);
                const int i = (int) get_global_id(0);
                const float v = x[i];
                const float sum = k4j_group_reduce_add(v, scratch);
                const float max = k4j_group_reduce_max(v, scratch);
                const float part = k4j_segment_reduce_add(v, scratch, (uint) seg);
                out[3 * i] = sum;
                out[3 * i + 1] = max;
                out[3 * i + 2] = part;
                k4j_atomic_add_float(total, v);
            }
            """;

    /** Workgroup sizes: a power of two, and ones the tree handles with a partial top level. */
    @ParameterizedTest
    @ValueSource(ints = {64, 96, 7})
    void groupAndSegmentReductionsAndAtomicAdd(int wg) {
        Device dev = TestSupport.device();
        int groups = 3;
        int n = wg * groups;
        int seg = Integer.lowestOneBit(wg) >= 4 ? 4 : 1;
        float[] x = new float[n];
        for (int i = 0; i < n; i++) {
            // small integers: every summation order gives the exact result
            x[i] = (i * 7 % 11) - 5;
        }
        try (Kernel k = dev.compileKernel(KernelSource.of("reduce", REDUCE, "reduce"));
             Tensor xt = dev.upload(DType.FLOAT32, x, n);
             Tensor out = TestSupport.poisoned(dev, DType.FLOAT32, 3 * n);
             Tensor total = dev.upload(DType.FLOAT32, new float[1], 1)) {
            k.launch(dev.defaultStream(), NDRange.of(n), NDRange.of(wg), xt, out, total, seg, LocalMemory.floats(wg));
            float[] o = out.toFloatArray();
            float all = 0;
            for (int g = 0; g < groups; g++) {
                float sum = 0;
                float max = Float.NEGATIVE_INFINITY;
                for (int i = g * wg; i < (g + 1) * wg; i++) {
                    sum += x[i];
                    max = Math.max(max, x[i]);
                }
                all += sum;
                for (int i = g * wg; i < (g + 1) * wg; i++) {
                    float part = 0;
                    for (int j = i / seg * seg; j < i / seg * seg + seg; j++) {
                        part += x[j];
                    }
                    assertEquals(sum, o[3 * i], "group sum at " + i);
                    assertEquals(max, o[3 * i + 1], "group max at " + i);
                    assertEquals(part, o[3 * i + 2], "segment sum at " + i);
                }
            }
            assertEquals(all, total.toFloatArray()[0], "atomic total");
        }
    }
}
