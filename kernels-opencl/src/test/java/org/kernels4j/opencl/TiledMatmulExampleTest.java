package org.kernels4j.opencl;

import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.kernels4j.opencl.TestSupport.assertClose;
import static org.kernels4j.opencl.TestSupport.poisoned;
import static org.kernels4j.opencl.TestSupport.random;

import java.util.Random;

import org.junit.jupiter.api.Test;
import org.kernels4j.DType;
import org.kernels4j.Device;
import org.kernels4j.Kernel;
import org.kernels4j.KernelBuildException;
import org.kernels4j.KernelSource;
import org.kernels4j.LocalMemory;
import org.kernels4j.NDRange;
import org.kernels4j.Stream;
import org.kernels4j.Tensor;

/**
 * The low-level API: a user kernel written in the portable dialect, compiled with {@code Device.compileKernel}
 * and launched over an ndrange that is not a multiple of the workgroup. The first kernel is the README example.
 */
class TiledMatmulExampleTest {

    /** C[m x n] = A[m x k] * B[k x n], one TILE x TILE block of C per workgroup, tiles staged in local memory. */
    static final String MATMUL = """
            #include "kernels4j.h"
            #ifndef TILE
            #define TILE 16
            #endif
            __kernel void matmul(__global const float* a, __global const float* b, __global float* c,
                                 int m, int n, int k) {
                __local float as[TILE][TILE];
                __local float bs[TILE][TILE];
                const int col = get_global_id(0), row = get_global_id(1);
                const int tx = get_local_id(0), ty = get_local_id(1);
                float acc = 0.0f;
                for (int t0 = 0; t0 < k; t0 += TILE) {
                    as[ty][tx] = row < m && t0 + tx < k ? a[row * k + t0 + tx] : 0.0f;
                    bs[ty][tx] = t0 + ty < k && col < n ? b[(t0 + ty) * n + col] : 0.0f;
                    barrier(CLK_LOCAL_MEM_FENCE);
                    for (int i = 0; i < TILE; ++i) {
                        acc = mad(as[ty][i], bs[i][tx], acc);
                    }
                    barrier(CLK_LOCAL_MEM_FENCE);
                }
                if (row < m && col < n) {
                    c[row * n + col] = acc;
                }
            }
            """;

    /** The same with its tiles in dynamic local memory, sized per launch (TILE is a launch argument here). */
    static final String MATMUL_DYNAMIC = """
            #include "kernels4j.h"
            __kernel void matmul_dyn(__global const float* a, __global const float* b, __global float* c,
                                     int m, int n, int k, int tile,
                                     K4J_DYNAMIC_LOCAL(float, as), K4J_DYNAMIC_LOCAL(float, bs)) {
                K4J_BIND_DYNAMIC_LOCAL(float, as);
                K4J_BIND_DYNAMIC_LOCAL(float, bs);
                const int col = get_global_id(0), row = get_global_id(1);
                const int tx = get_local_id(0), ty = get_local_id(1);
                float acc = 0.0f;
                for (int t0 = 0; t0 < k; t0 += tile) {
                    as[ty * tile + tx] = row < m && t0 + tx < k ? a[row * k + t0 + tx] : 0.0f;
                    bs[ty * tile + tx] = t0 + ty < k && col < n ? b[(t0 + ty) * n + col] : 0.0f;
                    barrier(CLK_LOCAL_MEM_FENCE);
                    for (int i = 0; i < tile; ++i) {
                        acc = mad(as[ty * tile + i], bs[i * tile + tx], acc);
                    }
                    barrier(CLK_LOCAL_MEM_FENCE);
                }
                if (row < m && col < n) {
                    c[row * n + col] = acc;
                }
            }
            """;

    private static double[] reference(float[] a, float[] b, int m, int n, int k) {
        double[] c = new double[m * n];
        for (int i = 0; i < m; i++) {
            for (int j = 0; j < n; j++) {
                double s = 0;
                for (int p = 0; p < k; p++) {
                    s += (double) a[i * k + p] * b[p * n + j];
                }
                c[i * n + j] = s;
            }
        }
        return c;
    }

    @Test
    void tiledMatmulWithStaticLocalMemory() {
        Device dev = TestSupport.device();
        int m = 37;
        int n = 29;
        int k = 51;
        Random r = new Random(7);
        float[] a = random(r, m * k);
        float[] b = random(r, k * n);
        try (Kernel matmul = dev.compileKernel(KernelSource.of("matmul", MATMUL, "matmul").define("TILE", 8));
             Tensor at = dev.upload(DType.FLOAT32, a, m, k);
             Tensor bt = dev.upload(DType.FLOAT32, b, k, n);
             Tensor ct = poisoned(dev, DType.FLOAT32, m, n)) {
            Stream s = dev.defaultStream();
            // 29 x 37 work items, rounded up to 32 x 40 by the launch; the kernel bounds-checks
            matmul.launch(s, NDRange.of(n, m), NDRange.of(8, 8), at, bt, ct, m, n, k);
            s.synchronize();
            assertClose("c", ct, reference(a, b, m, n, k), 1e-6);
        }
    }

    @Test
    void tiledMatmulWithDynamicLocalMemory() {
        Device dev = TestSupport.device();
        int m = 20;
        int n = 33;
        int k = 17;
        int tile = 4;
        Random r = new Random(8);
        float[] a = random(r, m * k);
        float[] b = random(r, k * n);
        try (Kernel matmul = dev.compileKernel(KernelSource.of("matmul-dynamic", MATMUL_DYNAMIC, "matmul_dyn"));
             Tensor at = dev.upload(DType.FLOAT32, a, m, k);
             Tensor bt = dev.upload(DType.FLOAT32, b, k, n);
             Tensor ct = poisoned(dev, DType.FLOAT32, m, n)) {
            Stream s = dev.createStream();
            matmul.launch(s, NDRange.of(n, m), NDRange.of(tile, tile), at, bt, ct, m, n, k, tile,
                    LocalMemory.floats(tile * tile), LocalMemory.floats(tile * tile));
            s.close();
            assertClose("c", ct, reference(a, b, m, n, k), 1e-6);
        }
    }

    @Test
    void buildErrorsCarryTheCompilerLog() {
        Device dev = TestSupport.device();
        KernelBuildException e = assertThrows(KernelBuildException.class, () -> dev.compileKernel(
                KernelSource.of("broken", "__kernel void f(__global float* x) { x[0] = undefined_name; }", "f")));
        org.junit.jupiter.api.Assertions.assertTrue(e.buildLog().contains("undefined_name"), e.buildLog());
        assertThrows(KernelBuildException.class, () -> dev.compileKernel(KernelSource.of("matmul", MATMUL, "nope")));
    }

    @Test
    void launchRejectsBadArguments() {
        Device dev = TestSupport.device();
        try (Kernel matmul = dev.compileKernel(KernelSource.of("matmul", MATMUL, "matmul"));
             Tensor t = dev.allocate(DType.FLOAT32, 4)) {
            Stream s = dev.defaultStream();
            assertThrows(IllegalArgumentException.class,
                    () -> matmul.launch(s, NDRange.of(16, 16), NDRange.of(16, 16), t, t, t, 1, 1, "1"));
            assertThrows(IllegalArgumentException.class, () -> matmul.launch(s, NDRange.of(16, 16),
                    NDRange.of(dev.capabilities().maxWorkgroupSize() + 1L, 1), t, t, t, 1, 1, 1));
            assertThrows(IllegalArgumentException.class,
                    () -> matmul.launch(s, NDRange.of(16, 16), NDRange.of(16, 16), t, t, t, 1.0, 1, 1));
        }
    }
}
