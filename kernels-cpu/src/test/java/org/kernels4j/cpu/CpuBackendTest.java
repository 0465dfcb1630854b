package org.kernels4j.cpu;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.FloatBuffer;
import java.util.Set;

import org.junit.jupiter.api.Test;
import org.kernels4j.Backend;
import org.kernels4j.Backends;
import org.kernels4j.DType;
import org.kernels4j.Device;
import org.kernels4j.DeviceCapabilities;
import org.kernels4j.Event;
import org.kernels4j.KernelSource;
import org.kernels4j.LayerNorm;
import org.kernels4j.Stream;
import org.kernels4j.Tensor;

class CpuBackendTest {

    @Test
    void theExpectedKernelPathIsActive() {
        String expected = System.getProperty("kernels4j.cpu.expectVector");
        if (expected != null) {
            assertEquals(Boolean.parseBoolean(expected), Vectorization.ENABLED, Vectorization.DESCRIPTION);
        }
        assertEquals(Vectorization.ENABLED, ModuleLayer.boot().findModule("jdk.incubator.vector").isPresent());
    }

    @Test
    void discoveredThroughServiceLoaderWithItsCapabilities() {
        Backend cpu = Backends.require("cpu");
        assertEquals("cpu", cpu.name());
        assertEquals(1, cpu.devices().size());
        Device d = cpu.defaultDevice();
        assertEquals("cpu:0", d.id());
        DeviceCapabilities c = d.capabilities();
        assertEquals(Set.of(DType.FLOAT32), c.dtypes());
        assertTrue(c.float64());
        assertTrue(c.atomics());
        assertEquals(0, c.subgroupSize());
        assertEquals(Runtime.getRuntime().availableProcessors(), c.computeUnits());
        assertEquals(false, c.dialectKernels());
        assertEquals(Vectorization.architecture(), c.architecture());
        try (CpuTensor wrapped = CpuTensor.wrap(new float[1], 1)) {
            assertSame(d, wrapped.device());
        }
        var e = assertThrows(UnsupportedOperationException.class,
                () -> d.compileKernel(KernelSource.of("k", "__kernel void k() {}", "k")));
        assertTrue(e.getMessage().contains("own Java kernels"), e.getMessage());
        assertThrows(IllegalArgumentException.class, () -> d.allocate(DType.FLOAT16, 3));
        assertThrows(IllegalArgumentException.class, () -> d.allocate(DType.FLOAT32, 2, -1));
    }

    @Test
    void hostTransfersRoundTripThroughEveryBufferKind() {
        Device d = Check.device();
        float[] data = {1, -2, 3.5f, 4, 5, 6};
        try (Tensor t = d.allocate(DType.FLOAT32, 2, 3)) {
            t.copyFrom(data);
            assertArrayEquals(data, t.toFloatArray());

            FloatBuffer heap = FloatBuffer.allocate(8);
            heap.position(1);
            heap.put(new float[] {9, 8, 7, 6, 5, 4}).position(1);
            t.copyFrom(heap.slice(1, 6));
            assertArrayEquals(new float[] {9, 8, 7, 6, 5, 4}, t.toFloatArray());

            ByteBuffer direct = ByteBuffer.allocateDirect(4 * 7).order(ByteOrder.nativeOrder());
            direct.position(4);
            t.copyTo(direct);
            assertEquals(4, direct.position());
            assertEquals(9f, direct.getFloat(4));
            assertEquals(4f, direct.getFloat(24));
            direct.putFloat(4, -1f);
            t.copyFrom(direct);
            assertEquals(-1f, t.toFloatArray()[0]);

            FloatBuffer out = ByteBuffer.allocateDirect(24).order(ByteOrder.nativeOrder()).asFloatBuffer();
            t.copyTo(out);
            assertEquals(5f, out.get(4));

            t.fill(2.5f);
            assertArrayEquals(new float[] {2.5f, 2.5f, 2.5f, 2.5f, 2.5f, 2.5f}, t.toFloatArray());
            assertThrows(IllegalArgumentException.class, () -> t.copyFrom(new float[5]));
            assertThrows(IllegalArgumentException.class,
                    () -> t.copyFrom(ByteBuffer.allocateDirect(24).order(ByteOrder.BIG_ENDIAN.equals(
                            ByteOrder.nativeOrder()) ? ByteOrder.LITTLE_ENDIAN : ByteOrder.BIG_ENDIAN)));
        }
    }

    @Test
    void wrappedArraysAreSharedNotCopied() {
        float[] backing = new float[10];
        float[] x = {1, 2, 3, 4};
        System.arraycopy(x, 0, backing, 3, 4);
        try (CpuTensor tx = CpuTensor.view(backing, 3, 1, 4); CpuTensor ty = CpuTensor.wrap(new float[4], 1, 4);
             Tensor rstd = Check.device().allocate(DType.FLOAT32, 1)) {
            assertSame(backing, tx.array());
            assertEquals(3, tx.arrayOffset());
            LayerNorm.rmsNorm(0f).forward(Check.device().defaultStream(), tx, null, null, ty, null, rstd);
            double rs = Math.sqrt((1 + 4 + 9 + 16) / 4.0);
            for (int i = 0; i < 4; i++) {
                assertEquals(x[i] / rs, ty.array()[i], 1e-6);
            }
            assertEquals(0f, backing[2]);
            assertEquals(0f, backing[7]);
        }
        assertThrows(IllegalArgumentException.class, () -> CpuTensor.view(new float[3], 2, 2));
        assertThrows(IllegalArgumentException.class, () -> CpuTensor.wrap(new float[3], 4));
        CpuTensor closed = CpuTensor.wrap(new float[2], 2);
        closed.close();
        assertThrows(IllegalStateException.class, closed::array);
    }

    @Test
    void streamsAndEventsTimeEagerWork() throws InterruptedException {
        Device d = Check.device();
        try (Stream s = d.createStream()) {
            Event a = s.record();
            Thread.sleep(5);
            Event b = s.record();
            assertTrue(b.isComplete());
            assertTrue(b.elapsedMillisSince(a) >= 4.0, "elapsed " + b.elapsedMillisSince(a));
            assertThrows(IllegalArgumentException.class, () -> b.elapsedMillisSince(null));
            s.close();
            assertThrows(IllegalStateException.class, s::record);
        }
        d.defaultStream().close();
        d.defaultStream().synchronize();
    }

    @Test
    void aFailingTaskIsRethrownOnTheCallerAndTheLoopStillFinishes() {
        int workers = Parallel.workers(1000, 1e9, 1);
        var e = assertThrows(IllegalStateException.class, () -> Parallel.run(1000, workers, (w, t) -> {
            if (t == 500) {
                throw new IllegalStateException("task 500");
            }
        }));
        assertEquals("task 500", e.getMessage());
        int[] hits = new int[1000];
        Parallel.run(1000, workers, (w, t) -> hits[t]++);
        for (int h : hits) {
            assertEquals(1, h);
        }
    }

    /** Runs of small tasks: each task exactly once for any count, and a failure still ends the loop. */
    @Test
    void smallTasksClaimedInRunsRunOnceEachAndFailuresEndTheLoop() {
        for (int tasks : new int[] {1, 2, 31, 33, 1000, 100_003}) {
            int workers = Parallel.workers(tasks, 1e9, 1);
            java.util.concurrent.atomic.AtomicIntegerArray hits = new java.util.concurrent.atomic.AtomicIntegerArray(tasks);
            Parallel.runSmall(tasks, workers, (w, t) -> hits.incrementAndGet(t));
            for (int t = 0; t < tasks; t++) {
                assertEquals(1, hits.get(t), "task " + t + " of " + tasks);
            }
        }
        int workers = Parallel.workers(100_003, 1e9, 1);
        var e = assertThrows(IllegalStateException.class, () -> Parallel.runSmall(100_003, workers, (w, t) -> {
            if (t == 50_001) {
                throw new IllegalStateException("task 50001");
            }
        }));
        assertEquals("task 50001", e.getMessage());
    }
}
