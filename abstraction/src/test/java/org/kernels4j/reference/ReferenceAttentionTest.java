package org.kernels4j.reference;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.SplittableRandom;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.kernels4j.Attention.CausalMask;
import org.kernels4j.DType;
import org.kernels4j.spi.AttentionProblem;

class ReferenceAttentionTest {

    private static AttentionProblem problem(int b, int hq, int hkv, int nq, int nk, int d, float scale, CausalMask m) {
        return new AttentionProblem(b, hq, hkv, nq, nk, d, scale, m, DType.FLOAT32);
    }

    @ParameterizedTest
    @CsvSource({"1,2,1,3,4,5,0.45,NONE", "2,2,2,4,3,3,0.6,TOP_LEFT", "1,4,2,3,5,2,0.5,BOTTOM_RIGHT",
            "1,1,1,5,2,3,0.7,BOTTOM_RIGHT", "1,3,1,2,6,4,1.3,TOP_LEFT"})
    void backwardIsTheGradientOfForward(int b, int hq, int hkv, int nq, int nk, int d, float scale, CausalMask m) {
        AttentionProblem p = problem(b, hq, hkv, nq, nk, d, scale, m);
        SplittableRandom rnd = new SplittableRandom(nq * 100 + nk);
        double[] q = FiniteDifferences.gaussian(rnd, b * hq * nq * d);
        double[] k = FiniteDifferences.gaussian(rnd, b * hkv * nk * d);
        double[] v = FiniteDifferences.gaussian(rnd, b * hkv * nk * d);
        double[] g = FiniteDifferences.gaussian(rnd, q.length);
        ReferenceAttention.Backward grads = ReferenceAttention.backward(p, q, k, v, g);
        FiniteDifferences.check(m + " dq", q, grads.dq(), g, () -> ReferenceAttention.forward(p, q, k, v).o());
        FiniteDifferences.check(m + " dk", k, grads.dk(), g, () -> ReferenceAttention.forward(p, q, k, v).o());
        FiniteDifferences.check(m + " dv", v, grads.dv(), g, () -> ReferenceAttention.forward(p, q, k, v).o());
    }

    /**
     * A second, differently written computation: key/value heads expanded to one per query head, the mask
     * applied as its definition (j <= i, j <= i + Nk - Nq), softmax without the max shift.
     */
    @ParameterizedTest
    @CsvSource({"NONE", "TOP_LEFT", "BOTTOM_RIGHT"})
    void matchesADirectSoftmaxWithExpandedHeads(CausalMask m) {
        int b = 2, hq = 4, hkv = 2, nq = 5, nk = 3, d = 3;
        float scale = 0.8f;
        AttentionProblem p = problem(b, hq, hkv, nq, nk, d, scale, m);
        SplittableRandom rnd = new SplittableRandom(5);
        double[] q = FiniteDifferences.gaussian(rnd, b * hq * nq * d);
        double[] k = FiniteDifferences.gaussian(rnd, b * hkv * nk * d);
        double[] v = FiniteDifferences.gaussian(rnd, b * hkv * nk * d);
        ReferenceAttention.Forward f = ReferenceAttention.forward(p, q, k, v);
        for (int bi = 0; bi < b; bi++) {
            for (int h = 0; h < hq; h++) {
                int kvh = h * hkv / hq;
                for (int i = 0; i < nq; i++) {
                    double[] w = new double[nk];
                    double z = 0;
                    for (int j = 0; j < nk; j++) {
                        boolean visible = m == CausalMask.NONE || (m == CausalMask.TOP_LEFT ? j <= i : j <= i + nk - nq);
                        if (visible) {
                            double s = 0;
                            for (int t = 0; t < d; t++) {
                                s += q[((bi * hq + h) * nq + i) * d + t] * k[((bi * hkv + kvh) * nk + j) * d + t];
                            }
                            w[j] = Math.exp(scale * s);
                            z += w[j];
                        }
                    }
                    int row = (bi * hq + h) * nq + i;
                    if (z == 0) {
                        assertEquals(Double.NEGATIVE_INFINITY, f.lse()[row]);
                    } else {
                        assertEquals(Math.log(z), f.lse()[row], 1e-12);
                    }
                    for (int t = 0; t < d; t++) {
                        double o = 0;
                        for (int j = 0; j < nk; j++) {
                            o += z == 0 ? 0 : w[j] / z * v[((bi * hkv + kvh) * nk + j) * d + t];
                        }
                        assertEquals(o, f.o()[row * d + t], 1e-12, m + " row " + row);
                    }
                }
            }
        }
    }

    @Test
    void groupedQueryGradientsSumOverTheHeadsSharingAKeyHead() {
        int hq = 4, hkv = 2, nq = 3, nk = 4, d = 2;
        SplittableRandom rnd = new SplittableRandom(9);
        double[] q = FiniteDifferences.gaussian(rnd, hq * nq * d);
        double[] k = FiniteDifferences.gaussian(rnd, hkv * nk * d);
        double[] v = FiniteDifferences.gaussian(rnd, hkv * nk * d);
        double[] dO = FiniteDifferences.gaussian(rnd, q.length);
        var grouped = ReferenceAttention.backward(problem(1, hq, hkv, nq, nk, d, 0.5f, CausalMask.TOP_LEFT), q, k, v, dO);
        // the same problem with every key/value head repeated for its query heads
        double[] kx = new double[hq * nk * d];
        double[] vx = new double[hq * nk * d];
        for (int h = 0; h < hq; h++) {
            System.arraycopy(k, (h / 2) * nk * d, kx, h * nk * d, nk * d);
            System.arraycopy(v, (h / 2) * nk * d, vx, h * nk * d, nk * d);
        }
        var expanded = ReferenceAttention.backward(problem(1, hq, hq, nq, nk, d, 0.5f, CausalMask.TOP_LEFT), q, kx, vx, dO);
        assertArrayEquals(expanded.dq(), grouped.dq(), 1e-12);
        for (int h = 0; h < hkv; h++) {
            for (int i = 0; i < nk * d; i++) {
                double sumK = expanded.dk()[(2 * h) * nk * d + i] + expanded.dk()[(2 * h + 1) * nk * d + i];
                double sumV = expanded.dv()[(2 * h) * nk * d + i] + expanded.dv()[(2 * h + 1) * nk * d + i];
                assertEquals(sumK, grouped.dk()[h * nk * d + i], 1e-12);
                assertEquals(sumV, grouped.dv()[h * nk * d + i], 1e-12);
            }
        }
    }

    @Test
    void masksAgreeWhenQueryAndKeyCountsAreEqual() {
        SplittableRandom rnd = new SplittableRandom(4);
        double[] q = FiniteDifferences.gaussian(rnd, 2 * 6 * 3);
        double[] k = FiniteDifferences.gaussian(rnd, 2 * 6 * 3);
        double[] v = FiniteDifferences.gaussian(rnd, 2 * 6 * 3);
        var tl = ReferenceAttention.forward(problem(1, 2, 2, 6, 6, 3, 0.5f, CausalMask.TOP_LEFT), q, k, v);
        var br = ReferenceAttention.forward(problem(1, 2, 2, 6, 6, 3, 0.5f, CausalMask.BOTTOM_RIGHT), q, k, v);
        assertArrayEquals(tl.o(), br.o());
        assertArrayEquals(tl.lse(), br.lse());
    }

    @Test
    void rowsSeeingNoKeyGiveZerosAndMinusInfinity() {
        SplittableRandom rnd = new SplittableRandom(6);
        AttentionProblem none = problem(1, 1, 1, 3, 0, 2, 1f, CausalMask.NONE);
        double[] q = FiniteDifferences.gaussian(rnd, 6);
        var f = ReferenceAttention.forward(none, q, new double[0], new double[0]);
        assertArrayEquals(new double[6], f.o());
        assertArrayEquals(new double[] {Double.NEGATIVE_INFINITY, Double.NEGATIVE_INFINITY, Double.NEGATIVE_INFINITY}, f.lse());
        assertArrayEquals(new double[6], ReferenceAttention.backward(none, q, new double[0], new double[0], q).dq());
        // bottom-right with Nq > Nk: the first Nq - Nk rows see nothing
        AttentionProblem br = problem(1, 1, 1, 4, 2, 2, 1f, CausalMask.BOTTOM_RIGHT);
        double[] q4 = FiniteDifferences.gaussian(rnd, 8);
        double[] k2 = FiniteDifferences.gaussian(rnd, 4);
        var g = ReferenceAttention.forward(br, q4, k2, k2);
        assertEquals(Double.NEGATIVE_INFINITY, g.lse()[1]);
        assertTrue(Double.isFinite(g.lse()[2]));
        assertArrayEquals(k2, new double[] {g.o()[4], g.o()[5], k2[2], k2[3]}, 1e-12, "row 2 sees key 0 only: O = v0");
    }

    @Test
    void wrongLengthsNameTheArgument() {
        AttentionProblem p = problem(1, 2, 1, 3, 4, 2, 1f, CausalMask.NONE);
        assertTrue(assertThrows(IllegalArgumentException.class,
                () -> ReferenceAttention.forward(p, new double[11], new double[8], new double[8])).getMessage().startsWith("q:"));
        assertTrue(assertThrows(IllegalArgumentException.class,
                () -> ReferenceAttention.forward(p, new double[12], new double[8], new double[7])).getMessage().startsWith("v:"));
        assertTrue(assertThrows(IllegalArgumentException.class,
                () -> ReferenceAttention.backward(p, new double[12], new double[8], new double[8], new double[1]))
                .getMessage().startsWith("dO:"));
    }
}
