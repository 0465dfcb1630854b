package org.kernels4j.cuda;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.junit.jupiter.api.Test;
import org.kernels4j.DType;

/** The launch shapes LayerNormCuda chooses stay within what its kernels can run, for every row length. */
class LayerNormShapeTest {

    private static int pack(DType dt) {
        return 16 / dt.byteSize();
    }

    @Test
    void forwardShapesFitTheirKernels() {
        for (DType dt : DType.values()) {
            for (int cols = 1; cols <= 80_000; cols = cols < 300 ? cols + 1 : cols * 9 / 8 + 1) {
                for (int vecs : new int[] {1, 2, 4, 8}) {
                    for (int block : new int[] {64, 128, 256, 512, 1024}) {
                        LayerNormCuda.Shape s = LayerNormCuda.forwardShape(cols, dt, true, vecs, block);
                        String what = dt + " cols=" + cols + " vecs=" + vecs + " block=" + block + ": " + s;
                        assertEquals(0, s.rowThreads() % 32, what);
                        assertTrue(s.rowThreads() >= 32 && s.blockThreads() <= 1024, what);
                        if (s.vecs() > 0) {
                            assertEquals(0, cols % pack(dt), what);
                            assertTrue((long) s.rowThreads() * s.vecs() * pack(dt) >= cols, "row fits: " + what);
                            assertTrue(s.kernel().equals("ln_fwd_v" + s.vecs() + "_" + LayerNormCuda.suffix(dt)), what);
                        } else {
                            assertTrue(s.kernel().startsWith("ln_fwd_any_"), what);
                        }
                    }
                }
                assertTrue(LayerNormCuda.forwardShape(cols, dt, false, 4, 256).kernel().startsWith("ln_fwd_any_"));
            }
        }
    }

    @Test
    void rowsThatFitTheRegistersTakeTheFastPath() {
        assertEquals("ln_fwd_v4_bf16", LayerNormCuda.forwardShape(4096, DType.BFLOAT16, true, 4, 256).kernel());
        assertEquals("ln_fwd_v4_f32", LayerNormCuda.forwardShape(1024, DType.FLOAT32, true, 4, 256).kernel());
        assertEquals("ln_fwd_v8_f32", LayerNormCuda.forwardShape(32768, DType.FLOAT32, true, 4, 256).kernel());
        assertEquals("ln_fwd_any_f32", LayerNormCuda.forwardShape(32772, DType.FLOAT32, true, 4, 256).kernel());
        assertEquals("ln_fwd_any_f32", LayerNormCuda.forwardShape(1023, DType.FLOAT32, true, 4, 256).kernel());
        LayerNormCuda.Shape shortRows = LayerNormCuda.forwardShape(256, DType.BFLOAT16, true, 4, 256);
        assertEquals(32, shortRows.rowThreads(), "a warp per short row");
        assertEquals(8, shortRows.rowsPerBlock());
    }

    /** Shared memory per block of an sm_86/89 GPU and of an H100/H200 (opt-in maximum). */
    private static final int[] SHARED_LIMITS = {99 * 1024, 227 * 1024};

    @Test
    void backwardShapesFitTheirKernels() {
        for (DType dt : DType.values()) {
            for (int cols = 1; cols <= 80_000; cols = cols < 300 ? cols + 1 : cols * 9 / 8 + 1) {
                for (int rowMax : new int[] {128, 256, 512, 1024}) {
                    for (int block : new int[] {64, 128, 256, 512, 1024}) {
                        for (int limit : SHARED_LIMITS) {
                            LayerNormCuda.Shape s = LayerNormCuda.backwardShape(cols, dt, true, rowMax, block, limit);
                            String what = dt + " cols=" + cols + " rowMax=" + rowMax + " block=" + block + " shared="
                                    + limit + ": " + s;
                            assertEquals(0, s.rowThreads() % 32, what);
                            if (s.vecs() > 0) {
                                assertTrue(s.blockThreads() <= LayerNormCuda.backwardMaxThreads(s.vecs()), what);
                                assertTrue(s.rowThreads() <= rowMax, what);
                                assertTrue((long) s.rowThreads() * s.vecs() * pack(dt) >= cols, "row fits: " + what);
                                assertTrue(s.vecs() <= 4, what);
                                assertTrue(LayerNormCuda.backwardSharedBytes(s, cols) <= limit,
                                        "dgamma/dbeta sums fit the shared memory: " + what);
                            } else {
                                assertTrue(s.kernel().startsWith("ln_bwd_dx_any_"), what);
                                assertTrue(s.blockThreads() <= 1024, what);
                            }
                        }
                    }
                }
            }
        }
    }

    @Test
    void benchmarkRowsTakeTheFastBackward() {
        int h100 = 227 * 1024;
        assertEquals("ln_bwd_v2_f32", LayerNormCuda.backwardShape(4096, DType.FLOAT32, true, 512, 256, h100).kernel());
        assertEquals("ln_bwd_v1_bf16", LayerNormCuda.backwardShape(4096, DType.BFLOAT16, true, 512, 256, h100).kernel());
        assertEquals("ln_bwd_v1_f32", LayerNormCuda.backwardShape(1024, DType.FLOAT32, true, 512, 256, h100).kernel());
        assertEquals("ln_bwd_v2_bf16", LayerNormCuda.backwardShape(8192, DType.BFLOAT16, true, 512, 256, h100).kernel());
        LayerNormCuda.Shape longRows = LayerNormCuda.backwardShape(16384, DType.BFLOAT16, true, 512, 256, h100);
        assertEquals("ln_bwd_v4_bf16", longRows.kernel());
        assertEquals(512, longRows.rowThreads());
        assertEquals(128 * 1024, LayerNormCuda.backwardSharedBytes(longRows, 16384));
        // 128 KiB of sums do not fit an sm_86/89 block: the any-shape path there
        assertEquals("ln_bwd_dx_any_bf16",
                LayerNormCuda.backwardShape(16384, DType.BFLOAT16, true, 512, 256, 99 * 1024).kernel());
        // several row-groups per block only as far as their sums fit
        LayerNormCuda.Shape shortRows = LayerNormCuda.backwardShape(1024, DType.BFLOAT16, true, 512, 1024, 16 * 1024);
        assertEquals(2, shortRows.rowsPerBlock(), shortRows.toString());
    }
}
