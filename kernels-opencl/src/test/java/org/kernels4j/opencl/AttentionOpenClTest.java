package org.kernels4j.opencl;

import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.kernels4j.opencl.TestSupport.assertClose;
import static org.kernels4j.opencl.TestSupport.poisoned;
import static org.kernels4j.opencl.TestSupport.random;
import static org.kernels4j.opencl.TestSupport.widen;

import java.util.Random;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.kernels4j.Attention;
import org.kernels4j.DType;
import org.kernels4j.Device;
import org.kernels4j.Stream;
import org.kernels4j.Tensor;
import org.kernels4j.reference.ReferenceAttention;
import org.kernels4j.spi.AttentionProblem;

/** FlashAttention-2 forward and backward on the OpenCL device against the float64 reference. */
class AttentionOpenClTest {

    private static final double TOL = 3e-5;

    @ParameterizedTest(name = "{0} B={1} Hq={2} Hkv={3} Nq={4} Nk={5} d={6}")
    @CsvSource({
            "NONE, 1, 2, 2, 5, 7, 8",
            // causal, square, a partial last tile
            "TOP_LEFT, 1, 1, 1, 37, 37, 16",
            // KV-cache decoding shape, odd head dim, grouped-query
            "BOTTOM_RIGHT, 2, 4, 2, 5, 40, 13",
            // more queries than keys: the first rows see no key (O = 0, lse = -inf, zero gradients)
            "BOTTOM_RIGHT, 1, 2, 1, 40, 5, 8",
            "TOP_LEFT, 1, 1, 1, 40, 5, 32",
            // several key tiles per query block, multi-query (one kv head for four query heads)
            "TOP_LEFT, 1, 4, 1, 70, 70, 64",
            "NONE, 2, 2, 1, 33, 65, 64",
    })
    void forwardAndBackward(Attention.CausalMask mask, int b, int hq, int hkv, int nq, int nk, int d) {
        Device dev = TestSupport.device();
        Stream s = dev.defaultStream();
        DType dt = DType.FLOAT32;
        Random r = new Random(31L * nq + nk * 7L + d);
        float[] q = random(r, b * hq * nq * d);
        float[] k = random(r, b * hkv * nk * d);
        float[] v = random(r, b * hkv * nk * d);
        float[] dO = random(r, b * hq * nq * d);
        Attention att = Attention.of(mask);
        AttentionProblem p = new AttentionProblem(b, hq, hkv, nq, nk, d, att.scaleFor(d), mask, dt);
        try (Tensor qt = dev.upload(dt, q, b, hq, nq, d);
             Tensor kt = dev.upload(dt, k, b, hkv, nk, d);
             Tensor vt = dev.upload(dt, v, b, hkv, nk, d);
             Tensor dOt = dev.upload(dt, dO, b, hq, nq, d);
             Tensor o = poisoned(dev, dt, b, hq, nq, d);
             Tensor lse = poisoned(dev, DType.FLOAT32, b, hq, nq);
             Tensor dq = poisoned(dev, dt, b, hq, nq, d);
             Tensor dk = poisoned(dev, dt, b, hkv, nk, d);
             Tensor dv = poisoned(dev, dt, b, hkv, nk, d)) {
            att.forward(s, qt, kt, vt, o, lse);
            att.backward(s, qt, kt, vt, o, lse, dOt, dq, dk, dv);
            var ref = ReferenceAttention.forward(p, widen(q, dt), widen(k, dt), widen(v, dt));
            assertClose("o", o, ref.o(), TOL);
            assertClose("lse", lse, ref.lse(), TOL);
            var back = ReferenceAttention.backward(p, widen(q, dt), widen(k, dt), widen(v, dt), widen(dO, dt));
            assertClose("dq", dq, back.dq(), TOL);
            assertClose("dk", dk, back.dk(), TOL);
            assertClose("dv", dv, back.dv(), TOL);
        }
    }

    @Test
    void noKeysGiveZeroOutputAndMinusInfinityLse() {
        Device dev = TestSupport.device();
        try (Tensor q = dev.upload(DType.FLOAT32, new float[3 * 16], 1, 1, 3, 16);
             Tensor k = dev.allocate(DType.FLOAT32, 1, 1, 0, 16);
             Tensor v = dev.allocate(DType.FLOAT32, 1, 1, 0, 16);
             Tensor dO = dev.upload(DType.FLOAT32, new float[3 * 16], 1, 1, 3, 16);
             Tensor dk = dev.allocate(DType.FLOAT32, 1, 1, 0, 16);
             Tensor dv = dev.allocate(DType.FLOAT32, 1, 1, 0, 16);
             Tensor o = poisoned(dev, DType.FLOAT32, 1, 1, 3, 16);
             Tensor lse = poisoned(dev, DType.FLOAT32, 1, 1, 3);
             Tensor dq = poisoned(dev, DType.FLOAT32, 1, 1, 3, 16)) {
            Attention att = Attention.create();
            att.forward(dev.defaultStream(), q, k, v, o, lse);
            for (float x : o.toFloatArray()) {
                assertTrue(x == 0f, "o must be 0 without keys, got " + x);
            }
            for (float x : lse.toFloatArray()) {
                assertTrue(x == Float.NEGATIVE_INFINITY, "lse must be -inf without keys, got " + x);
            }
            att.backward(dev.defaultStream(), q, k, v, o, lse, dO, dq, dk, dv);
            for (float x : dq.toFloatArray()) {
                assertTrue(x == 0f, "dq must be 0 without keys, got " + x);
            }
        }
    }

    @Test
    void rejectsHeadDimensionsBeyondTheLimitBeforeWriting() {
        Device dev = TestSupport.device();
        int d = AttentionOpenCl.MAX_HEAD_DIM + 1;
        try (Tensor q = dev.upload(DType.FLOAT32, new float[d], 1, 1, 1, d);
             Tensor o = poisoned(dev, DType.FLOAT32, 1, 1, 1, d);
             Tensor lse = poisoned(dev, DType.FLOAT32, 1, 1, 1)) {
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                    () -> Attention.create().forward(dev.defaultStream(), q, q, q, o, lse));
            assertTrue(e.getMessage().contains("d=" + d), e.getMessage());
            assertTrue(Float.isNaN(o.toFloatArray()[0]) && Float.isNaN(lse.toFloatArray()[0]), "nothing written");
        }
    }
}
