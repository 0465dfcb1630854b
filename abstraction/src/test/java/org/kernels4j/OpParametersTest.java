package org.kernels4j;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;

import org.junit.jupiter.api.Test;
import org.kernels4j.Attention.CausalMask;
import org.kernels4j.spi.AttentionProblem;

class OpParametersTest {

    @Test
    void visibleKeysFollowTheMaskDefinitions() {
        for (int nq = 0; nq <= 9; nq++) {
            for (int nk = 0; nk <= 9; nk++) {
                for (CausalMask m : CausalMask.values()) {
                    AttentionProblem p = new AttentionProblem(1, 1, 1, nq, nk, 8, 1f, m, DType.FLOAT32);
                    for (int i = 0; i < nq; i++) {
                        int count = 0;
                        for (int j = 0; j < nk; j++) {
                            boolean visible = switch (m) {
                                case NONE -> true;
                                case TOP_LEFT -> j <= i;
                                case BOTTOM_RIGHT -> j <= i + nk - nq;
                            };
                            if (visible) {
                                count++;
                            }
                        }
                        assertEquals(count, p.visibleKeys(i), m + " Nq=" + nq + " Nk=" + nk + " row " + i);
                    }
                }
            }
        }
    }

    @Test
    void attentionScaleAndFlops() {
        assertEquals((float) (1 / Math.sqrt(64)), Attention.create().scaleFor(64));
        assertEquals(0.25f, Attention.create().withScale(0.25f).scaleFor(64));
        assertSame(CausalMask.BOTTOM_RIGHT, Attention.of(CausalMask.BOTTOM_RIGHT).withScale(2f).mask());
        AttentionProblem full = new AttentionProblem(2, 8, 2, 100, 200, 64, 1f, CausalMask.NONE, DType.FLOAT16);
        assertEquals(4.0 * 2 * 8 * 100 * 200 * 64, full.forwardFlops());
        assertEquals(4, full.groupSize());
        AttentionProblem causal = new AttentionProblem(2, 8, 2, 100, 200, 64, 1f, CausalMask.TOP_LEFT, DType.FLOAT16);
        assertEquals(full.forwardFlops() / 2, causal.forwardFlops());
    }

    @Test
    void layerNormFactories() {
        assertEquals(LayerNorm.Kind.LAYER_NORM, LayerNorm.layerNorm().kind());
        assertEquals(LayerNorm.DEFAULT_EPSILON, LayerNorm.layerNorm().epsilon());
        assertEquals(LayerNorm.Kind.RMS_NORM, LayerNorm.rmsNorm(1e-6f).kind());
        assertEquals(0f, LayerNorm.layerNorm(0f).epsilon(), "epsilon 0 is allowed");
        assertThrows(IllegalArgumentException.class, () -> LayerNorm.rmsNorm(-1f));
    }

    @Test
    void dtypeNamesAndSizes() {
        assertSame(DType.FLOAT16, DType.parse("fp16"));
        assertSame(DType.FLOAT16, DType.parse(" Half "));
        assertSame(DType.BFLOAT16, DType.parse("bf16"));
        assertSame(DType.BFLOAT16, DType.parse("BFLOAT16"));
        assertSame(DType.FLOAT32, DType.parse("f32"));
        for (DType t : DType.values()) {
            assertSame(t, DType.parse(t.label()));
            assertSame(t, DType.parse(t.name()));
        }
        assertEquals(4, DType.FLOAT32.byteSize());
        assertEquals(2, DType.BFLOAT16.byteSize());
        assertEquals("float16", DType.FLOAT16.toString());
    }
}
