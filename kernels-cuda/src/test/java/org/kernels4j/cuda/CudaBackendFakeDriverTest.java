package org.kernels4j.cuda;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.List;
import java.util.Set;
import java.util.concurrent.atomic.AtomicReference;

import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.kernels4j.DType;
import org.kernels4j.DeviceCapabilities;
import org.kernels4j.Event;
import org.kernels4j.KernelSource;
import org.kernels4j.LayerNorm;
import org.kernels4j.Stream;
import org.kernels4j.Tensor;

/**
 * The backend's Java side on {@link FakeCudaDriver}: discovery's reasons, capabilities, tensors and host
 * transfers, streams and events, interop, and the exact launches the layer-norm op queues (kernel, grid,
 * block and every argument, checked against the parameter types of the real manifest). Kernels are not run
 * here: the CPU emulator (LayerNormKernelEmulationTest) and the GPU checks do that.
 */
class CudaBackendFakeDriverTest {

    private FakeCudaDriver driver;
    private KernelManifest manifest;

    @BeforeEach
    void setUp() {
        driver = new FakeCudaDriver();
        manifest = KernelManifest.load();
    }

    private KernelManifest manifestOrSkip() {
        Assumptions.assumeTrue(manifest != null, "built without CUDA kernels: no manifest to launch against");
        return manifest;
    }

    private CudaDevice device() {
        return (CudaDevice) CudaBackendProvider.start(driver, manifestOrSkip()).defaultDevice();
    }

    private static KernelManifest smallManifest() {
        return KernelManifest.parse("format 1\nnvcc 13.0.88\n");
    }

    @Test
    void noDeviceIsAReasonNotACrash() {
        driver.initResult = CudaDriver.CUDA_ERROR_NO_DEVICE;
        IllegalStateException e = assertThrows(IllegalStateException.class,
                () -> CudaBackendProvider.start(driver, smallManifest()));
        assertTrue(e.getMessage().startsWith("no CUDA device"), e.getMessage());
        driver.initResult = CudaDriver.CUDA_SUCCESS;
        driver.deviceCount = 0;
        assertEquals("no CUDA device",
                assertThrows(IllegalStateException.class, () -> CudaBackendProvider.start(driver, smallManifest()))
                        .getMessage());
    }

    @Test
    void anOlderDriverThanTheCompilerIsNamed() {
        driver.driverVersion = 12040;
        IllegalStateException e = assertThrows(IllegalStateException.class,
                () -> CudaBackendProvider.start(driver, smallManifest()));
        assertTrue(e.getMessage().contains("supports CUDA 12.4") && e.getMessage().contains("nvcc 13.0.88"),
                e.getMessage());
    }

    @Test
    void devicesOlderThanAmpereAreSkipped() {
        driver.ccMajor = 7;
        IllegalStateException e = assertThrows(IllegalStateException.class,
                () -> CudaBackendProvider.start(driver, smallManifest()));
        assertTrue(e.getMessage().contains("compute capability 8.0 or newer")
                && e.getMessage().contains("Fake GPU 0 (compute capability 7.0)"), e.getMessage());
    }

    @Test
    void capabilitiesComeFromTheDriver() {
        CudaDevice d = device();
        DeviceCapabilities c = d.capabilities();
        assertEquals(Set.of(DType.FLOAT32, DType.FLOAT16, DType.BFLOAT16), c.dtypes());
        assertTrue(c.float64() && c.atomics());
        assertEquals(32, c.subgroupSize());
        assertEquals(232448, c.localMemoryBytes());
        assertEquals(1024, c.maxWorkgroupSize());
        assertEquals(132, c.computeUnits());
        assertEquals("13.0", c.driverVersion());
        assertEquals("sm_90", c.architecture());
        assertFalse(c.dialectKernels());
        assertEquals("cuda:0", d.id());
        assertEquals("NVIDIA", d.vendor());
        UnsupportedOperationException e = assertThrows(UnsupportedOperationException.class,
                () -> d.compileKernel(KernelSource.of("k", "__kernel void k() {}", "k")));
        assertTrue(e.getMessage().contains("NVRTC") && e.getMessage().contains("opencl"), e.getMessage());
    }

    @Test
    void tensorsRoundTripThroughDeviceMemory() {
        CudaDevice d = device();
        for (DType dt : DType.values()) {
            float[] data = {1f, -2.5f, 3.25f, 0f, 1e-3f, -7f};
            try (Tensor t = d.upload(dt, data, 2, 3)) {
                float[] back = t.toFloatArray();
                for (int i = 0; i < data.length; i++) {
                    assertEquals(org.kernels4j.spi.HalfFloats.round(dt, data[i]), back[i], dt + " element " + i);
                }
                ByteBuffer heap = ByteBuffer.allocate((int) t.byteSize()).order(ByteOrder.nativeOrder());
                t.copyTo(heap);
                ByteBuffer direct = ByteBuffer.allocateDirect((int) t.byteSize()).order(ByteOrder.nativeOrder());
                t.copyTo(direct);
                assertEquals(0, heap.position(), "positions are left unchanged");
                assertEquals(heap, direct);
                t.fill(Float.NaN);
                for (float v : t.toFloatArray()) {
                    assertTrue(Float.isNaN(v), dt + " fill");
                }
                t.copyFrom(heap);
                assertArrayEquals(back, t.toFloatArray(), 0f, dt + " heap buffer upload");
            }
        }
        assertEquals(0, driver.allocations(), "closed tensors free their memory");
        try (Tensor empty = d.allocate(DType.FLOAT32, 0, 5)) {
            assertEquals(0, empty.toFloatArray().length);
            empty.fill(1f);
        }
        assertEquals(0, driver.allocations());
    }

    @Test
    void everyCallMakesTheContextCurrentOnItsThread() throws Exception {
        CudaDevice d = device();
        AtomicReference<Throwable> failure = new AtomicReference<>();
        Thread t = new Thread(() -> {
            try (Tensor x = d.upload(DType.FLOAT32, new float[] {1, 2, 3}, 3)) {
                x.toFloatArray();
                d.synchronize();
            } catch (Throwable e) {
                failure.set(e);
            }
        });
        t.start();
        t.join();
        assertEquals(null, failure.get(), "a fresh thread used the device");
    }

    @Test
    void streamsAndEvents() {
        CudaDevice d = device();
        Stream s = d.createStream();
        Event a = s.record();
        Event b = s.record();
        assertTrue(b.isComplete());
        assertTrue(b.elapsedMillisSince(a) > 0);
        assertThrows(IllegalArgumentException.class, () -> b.elapsedMillisSince(null));
        s.close();
        assertEquals(1, driver.calls("cuStreamDestroy"));
        assertThrows(IllegalStateException.class, s::record);
        d.defaultStream().close();
        d.defaultStream().synchronize();
    }

    @Test
    void interopWrapsWithoutOwning() {
        CudaDevice d = device();
        Tensor owner = d.upload(DType.FLOAT32, new float[] {1, 2, 3, 4}, 4);
        long p = CudaInterop.devicePointer(owner);
        try (Tensor view = CudaInterop.wrap(d, p, DType.FLOAT32, 2, 2);
             Stream s = CudaInterop.wrapStream(d, 0xabcL)) {
            assertArrayEquals(new float[] {1, 2, 3, 4}, view.toFloatArray());
            assertEquals(0xabcL, CudaInterop.streamHandle(s));
        }
        assertEquals(1, driver.allocations(), "closing a view frees nothing");
        assertEquals(0, driver.calls("cuStreamDestroy"), "closing a wrapped stream destroys nothing");
        assertArrayEquals(new float[] {1, 2, 3, 4}, owner.toFloatArray());
        owner.close();
        assertThrows(IllegalArgumentException.class, () -> CudaInterop.wrap(d, 0x1002L, DType.FLOAT32, 4));
        assertThrows(IllegalArgumentException.class, () -> CudaInterop.wrap(d, 0L, DType.FLOAT32, 4));
        assertThrows(IllegalStateException.class, () -> CudaInterop.devicePointer(owner));
    }

    @Test
    void layerNormForwardLaunchesTheVectorKernel() {
        CudaDevice d = device();
        try (Tensor x = d.allocate(DType.BFLOAT16, 64, 4096);
             Tensor g = d.allocate(DType.BFLOAT16, 4096);
             Tensor b = d.allocate(DType.BFLOAT16, 4096);
             Tensor y = d.allocate(DType.BFLOAT16, 64, 4096);
             Tensor mean = d.allocate(DType.FLOAT32, 64);
             Tensor rstd = d.allocate(DType.FLOAT32, 64)) {
            LayerNorm.layerNorm(1e-6f).forward(d.defaultStream(), x, g, b, y, mean, rstd);
            FakeCudaDriver.Launch l = driver.launches.getLast();
            assertEquals("ln_fwd_v4_bf16", l.kernel());
            assertEquals(Dim3.of(128, 2), l.block(), "4 warps per row of 512 packs, 2 rows per block");
            assertEquals(Dim3.of(32), l.grid());
            assertEquals(0, l.sharedBytes());
            assertArrayEquals(new Object[] {addr(x), addr(g), addr(b), addr(y), addr(mean), addr(rstd), 64, 4096, 1e-6f,
                    0}, l.args());
            assertEquals(d.defaultStream().handle(), l.stream());
        }
    }

    @Test
    void rmsNormWithoutGammaPassesNullPointers() {
        CudaDevice d = device();
        try (Tensor x = d.allocate(DType.FLOAT32, 3, 7);
             Tensor y = d.allocate(DType.FLOAT32, 3, 7);
             Tensor rstd = d.allocate(DType.FLOAT32, 3);
             Stream s = d.createStream()) {
            LayerNorm.rmsNorm(1e-5f).forward(s, x, null, null, y, null, rstd);
            FakeCudaDriver.Launch l = driver.launches.getLast();
            assertEquals("ln_fwd_any_f32", l.kernel(), "7 columns are not a multiple of the 4-float pack");
            assertArrayEquals(new Object[] {addr(x), 0L, 0L, addr(y), 0L, addr(rstd), 3, 7, 1e-5f, 1}, l.args());
        }
    }

    @Test
    void layerNormBackwardLaunchesDxWithPartialsThenTheFinalize() {
        CudaDevice d = device();
        int rows = 1000;
        int cols = 1024;
        try (Tensor x = d.allocate(DType.FLOAT32, rows, cols);
             Tensor dy = d.allocate(DType.FLOAT32, rows, cols);
             Tensor g = d.allocate(DType.FLOAT32, cols);
             Tensor mean = d.allocate(DType.FLOAT32, rows);
             Tensor rstd = d.allocate(DType.FLOAT32, rows);
             Tensor dx = d.allocate(DType.FLOAT32, rows, cols);
             Tensor dg = d.allocate(DType.FLOAT32, cols);
             Tensor db = d.allocate(DType.FLOAT32, cols)) {
            LayerNorm.layerNorm().backward(d.defaultStream(), dy, x, g, mean, rstd, dx, dg, db);
            List<FakeCudaDriver.Launch> ls = driver.launches;
            assertEquals(2, ls.size());
            FakeCudaDriver.Launch main = ls.get(0);
            assertEquals("ln_bwd_v1_f32", main.kernel());
            assertEquals(Dim3.of(256, 1), main.block());
            int grid = Math.min(rows, 132 * driver.occupancy);
            assertEquals(Dim3.of(grid), main.grid());
            Object[] a = main.args();
            assertArrayEquals(new Object[] {addr(dy), addr(x), addr(g), addr(mean), addr(rstd), addr(dx)},
                    java.util.Arrays.copyOf(a, 6));
            long pg = (Long) a[6];
            long pb = (Long) a[7];
            assertEquals((long) grid * cols * 4, pb - pg, "dbeta partials follow the dgamma partials");
            driver.bytesAt(pg, 2L * grid * cols * 4);   // the workspace holds both
            assertArrayEquals(new Object[] {rows, cols, 0}, java.util.Arrays.copyOfRange(a, 8, 11));
            FakeCudaDriver.Launch fin = ls.get(1);
            assertEquals("ln_bwd_finalize_f32", fin.kernel());
            assertEquals(Dim3.of(32), fin.grid());
            assertEquals(Dim3.of(32, LayerNormCuda.FIN_ROWS), fin.block());
            assertArrayEquals(new Object[] {pg, pb, addr(dg), addr(db), grid, cols}, fin.args());
        }
    }

    @Test
    void shortRowsShareABlockAndSumTheirPartialsInSharedMemory() {
        CudaDevice d = device();
        try (Tensor x = d.allocate(DType.FLOAT16, 50, 256);
             Tensor dy = d.allocate(DType.FLOAT16, 50, 256);
             Tensor rstd = d.allocate(DType.FLOAT32, 50);
             Tensor dx = d.allocate(DType.FLOAT16, 50, 256);
             Tensor db = d.allocate(DType.FLOAT16, 256)) {
            LayerNorm.rmsNorm(1e-5f).backward(d.defaultStream(), dy, x, null, null, rstd, dx, null, db);
            FakeCudaDriver.Launch main = driver.launches.get(0);
            assertEquals("ln_bwd_v1_f16", main.kernel());
            assertEquals(Dim3.of(32, 8), main.block());
            assertEquals(2 * 8 * 256 * 4, main.sharedBytes(), "dgamma and dbeta sums of 8 row-groups");
            assertEquals(Dim3.of(7), main.grid(), "ceil(50 / 8) blocks");
            assertEquals(0L, main.args()[6], "no dgamma partials");
            assertNotEquals(0L, main.args()[7]);
            assertEquals(1, main.args()[10], "rms");
            assertArrayEquals(new Object[] {0L, main.args()[7], 0L, addr(db), 7, 256}, driver.launches.get(1).args());
        }
    }

    @Test
    void zeroRowsLaunchNothingAndZeroTheParameterGradients() {
        CudaDevice d = device();
        try (Tensor x = d.allocate(DType.BFLOAT16, 0, 8);
             Tensor dy = d.allocate(DType.BFLOAT16, 0, 8);
             Tensor g = d.allocate(DType.BFLOAT16, 8);
             Tensor mean = d.allocate(DType.FLOAT32, 0);
             Tensor rstd = d.allocate(DType.FLOAT32, 0);
             Tensor dx = d.allocate(DType.BFLOAT16, 0, 8);
             Tensor dg = d.allocate(DType.BFLOAT16, 8);
             Tensor y = d.allocate(DType.BFLOAT16, 0, 8)) {
            dg.fill(Float.NaN);
            LayerNorm ln = LayerNorm.layerNorm();
            ln.forward(d.defaultStream(), x, g, null, y, mean, rstd);
            ln.backward(d.defaultStream(), dy, x, g, mean, rstd, dx, dg, null);
            assertTrue(driver.launches.isEmpty(), "no kernel for zero rows: " + driver.launches);
            assertArrayEquals(new float[8], dg.toFloatArray(), 0f);
        }
    }

    @Test
    void misalignedFrameworkMemoryTakesTheScalarPath() {
        CudaDevice d = device();
        try (Tensor buf = d.allocate(DType.FLOAT32, 2 * 64 + 1);
             Tensor y = d.allocate(DType.FLOAT32, 2, 64);
             Tensor rstd = d.allocate(DType.FLOAT32, 2);
             Tensor mean = d.allocate(DType.FLOAT32, 2)) {
            Tensor x = CudaInterop.wrap(d, CudaInterop.devicePointer(buf) + 4, DType.FLOAT32, 2, 64);
            LayerNorm.layerNorm().forward(d.defaultStream(), x, null, null, y, mean, rstd);
            assertEquals("ln_fwd_any_f32", driver.launches.getLast().kernel());
        }
    }

    @Test
    void launcherChecksArgumentsAgainstThePtxParameters() {
        CudaDevice d = device();
        CudaStream s = d.defaultStream();
        try (Tensor t = d.allocate(DType.FLOAT32, 4)) {
            IllegalArgumentException count = assertThrows(IllegalArgumentException.class,
                    () -> CudaKernels.launch(s, "ln_bwd_finalize_f32", Dim3.of(1), Dim3.of(32), 0, t, t, t));
            assertTrue(count.getMessage().contains("takes 6 arguments"), count.getMessage());
            IllegalArgumentException type = assertThrows(IllegalArgumentException.class,
                    () -> CudaKernels.launch(s, "ln_bwd_finalize_f32", Dim3.of(1), Dim3.of(32), 0, t, t, t, t, 1L, 4));
            assertTrue(type.getMessage().contains("parameter 4") && type.getMessage().contains("u32"),
                    type.getMessage());
            IllegalArgumentException block = assertThrows(IllegalArgumentException.class,
                    () -> CudaKernels.launch(s, "ln_bwd_v1_f32", Dim3.of(1), Dim3.of(1024), 0,
                            t, t, t, t, t, t, null, null, 1, 4, 0));
            assertTrue(block.getMessage().contains("at most 512 threads"), block.getMessage());
            assertThrows(IllegalArgumentException.class,
                    () -> CudaKernels.launch(s, "no_such_kernel", Dim3.of(1), Dim3.of(32), 0));
            assertTrue(driver.launches.isEmpty(), "nothing was launched");
        }
    }

    @Test
    void modulesLoadOnceFromTheCubinOfTheDevice() {
        driver.ccMajor = 8;
        driver.ccMinor = 7;
        CudaDevice d = device();
        CudaKernels.Function f = d.kernels().function("ln_fwd_v1_f32");
        assertEquals("layernorm.sm_86.cubin", f.image());
        assertSame(f, d.kernels().function("ln_fwd_v1_f32"));
        d.kernels().function("ln_fwd_v2_f32");
        assertEquals(List.of("cubin"), driver.loadedImages);
    }

    @Test
    void newerArchitecturesLoadThePtx() {
        driver.ccMajor = 10;
        driver.ccMinor = 0;
        CudaDevice d = device();
        assertEquals("layernorm.ptx", d.kernels().function("ln_fwd_v1_f32").image());
        assertEquals(List.of("ptx"), driver.loadedImages, "PTX reaches the driver NUL-terminated");
    }

    private static long addr(Tensor t) {
        return CudaInterop.devicePointer(t);
    }
}
