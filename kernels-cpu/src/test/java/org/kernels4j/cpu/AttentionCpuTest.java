package org.kernels4j.cpu;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;

import java.util.Random;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.kernels4j.Attention;
import org.kernels4j.Attention.CausalMask;
import org.kernels4j.Stream;
import org.kernels4j.Tensor;

class AttentionCpuTest {

    static int visible(CausalMask mask, int i, int nq, int nk) {
        return switch (mask) {
            case NONE -> nk;
            case TOP_LEFT -> Math.min(nk, i + 1);
            case BOTTOM_RIGHT -> Math.max(0, Math.min(nk, i + 1 + nk - nq));
        };
    }

    /** Float64 attention: {o, lse} and, when dO is given, {dq, dk, dv}. */
    static double[][] reference(float[] q, float[] k, float[] v, float[] dO, int b, int hq, int hkv, int nq, int nk,
                                int d, double scale, CausalMask mask) {
        double[] o = new double[b * hq * nq * d];
        double[] lse = new double[b * hq * nq];
        double[] dq = new double[q.length];
        double[] dk = new double[k.length];
        double[] dv = new double[v.length];
        int group = hq / hkv;
        for (int bi = 0; bi < b; bi++) {
            for (int h = 0; h < hq; h++) {
                int qh = (bi * hq + h) * nq;
                int kh = (bi * hkv + h / group) * nk;
                for (int i = 0; i < nq; i++) {
                    int vis = visible(mask, i, nq, nk);
                    if (vis == 0) {
                        lse[qh + i] = Double.NEGATIVE_INFINITY;
                        continue;
                    }
                    double[] s = new double[vis];
                    double max = Double.NEGATIVE_INFINITY;
                    for (int j = 0; j < vis; j++) {
                        double acc = 0;
                        for (int c = 0; c < d; c++) {
                            acc += (double) q[(qh + i) * d + c] * k[(kh + j) * d + c];
                        }
                        s[j] = acc * scale;
                        max = Math.max(max, s[j]);
                    }
                    double sum = 0;
                    for (int j = 0; j < vis; j++) {
                        sum += Math.exp(s[j] - max);
                    }
                    double l = max + Math.log(sum);
                    lse[qh + i] = l;
                    double[] pj = new double[vis];
                    for (int j = 0; j < vis; j++) {
                        pj[j] = Math.exp(s[j] - l);
                        for (int c = 0; c < d; c++) {
                            o[(qh + i) * d + c] += pj[j] * v[(kh + j) * d + c];
                        }
                    }
                    if (dO == null) {
                        continue;
                    }
                    double rowD = 0;
                    double[] dp = new double[vis];
                    for (int j = 0; j < vis; j++) {
                        for (int c = 0; c < d; c++) {
                            dp[j] += (double) dO[(qh + i) * d + c] * v[(kh + j) * d + c];
                        }
                        rowD += pj[j] * dp[j];
                    }
                    for (int j = 0; j < vis; j++) {
                        double dsij = pj[j] * (dp[j] - rowD);
                        for (int c = 0; c < d; c++) {
                            dv[(kh + j) * d + c] += pj[j] * dO[(qh + i) * d + c];
                            dq[(qh + i) * d + c] += scale * dsij * k[(kh + j) * d + c];
                            dk[(kh + j) * d + c] += scale * dsij * q[(qh + i) * d + c];
                        }
                    }
                }
            }
        }
        return new double[][] {o, lse, dq, dk, dv};
    }

    @ParameterizedTest(name = "B={0} Hq={1} Hkv={2} Nq={3} Nk={4} d={5} {6}")
    @CsvSource({
            "1, 1, 1, 1, 1, 1, NONE",
            "2, 3, 1, 17, 23, 7, TOP_LEFT",
            "1, 4, 2, 70, 130, 33, BOTTOM_RIGHT",
            "1, 2, 2, 130, 70, 16, BOTTOM_RIGHT",
            "1, 2, 2, 130, 70, 16, TOP_LEFT",
            "2, 2, 1, 65, 65, 64, NONE",
            "1, 2, 1, 97, 97, 3, TOP_LEFT",
            "1, 1, 1, 33, 140, 200, NONE",
            "1, 1, 1, 0, 5, 8, NONE",
            "1, 2, 1, 5, 0, 8, TOP_LEFT",
            "0, 2, 1, 5, 5, 8, NONE",
            "1, 8, 2, 200, 200, 128, TOP_LEFT",
            "2, 4, 4, 129, 129, 64, BOTTOM_RIGHT",
            // several key tiles of the forward (256 keys) and query tiles (144 queries): causal panels that stop at
            // their own last key, some in the middle of a key tile, some seeing none of it
            "1, 2, 1, 300, 600, 64, BOTTOM_RIGHT",
            "1, 2, 2, 600, 300, 24, TOP_LEFT",
            "1, 2, 2, 400, 530, 40, NONE"})
    void forwardAndBackwardMatchFloat64(int b, int hq, int hkv, int nq, int nk, int d, CausalMask mask) {
        check(b, hq, hkv, nq, nk, d, mask, Float.NaN);
    }

    @Test
    void explicitScale() {
        check(1, 2, 1, 19, 31, 12, CausalMask.BOTTOM_RIGHT, 0.7f);
    }

    private static void check(int b, int hq, int hkv, int nq, int nk, int d, CausalMask mask, float scale) {
        Random rnd = new Random(b * 1000003L + hq * 1009L + nq * 31L + nk * 7L + d);
        float[] q = Check.random(rnd, b * hq * nq * d);
        float[] k = Check.random(rnd, b * hkv * nk * d);
        float[] v = Check.random(rnd, b * hkv * nk * d);
        float[] dO = Check.random(rnd, b * hq * nq * d);
        Attention att = Float.isNaN(scale) ? Attention.of(mask) : Attention.of(mask).withScale(scale);
        Stream s = Check.device().defaultStream();
        int[] qs = {b, hq, nq, d};
        int[] ks = {b, hkv, nk, d};
        try (Tensor tq = Check.upload(q, qs); Tensor tk = Check.upload(k, ks); Tensor tv = Check.upload(v, ks);
             Tensor to = Check.poisoned(qs); Tensor tl = Check.poisoned(b, hq, nq); Tensor tdO = Check.upload(dO, qs);
             Tensor tdq = Check.poisoned(qs); Tensor tdk = Check.poisoned(ks); Tensor tdv = Check.poisoned(ks)) {
            att.forward(s, tq, tk, tv, to, tl);
            double[][] ref = reference(q, k, v, dO, b, hq, hkv, nq, nk, d, att.scaleFor(d), mask);
            Check.close("o", ref[0], to);
            Check.close("lse", ref[1], tl);
            att.backward(s, tq, tk, tv, to, tl, tdO, tdq, tdk, tdv);
            Check.close("dq", ref[2], tdq);
            Check.close("dk", ref[3], tdk);
            Check.close("dv", ref[4], tdv);
        }
    }

    /**
     * Scratch is not cleared between calls, and causal backward leaves parts of it unwritten (key panels a tile's
     * first rows do not see): a call on NaN inputs first must not leak NaN into the next call's gradients.
     */
    @Test
    void scratchLeftByANanCallDoesNotReachTheNextCall() {
        int[] qs = {1, 2, 200, 64};
        int[] ks = {1, 1, 200, 64};
        float[] nanQ = new float[2 * 200 * 64];
        float[] nanK = new float[200 * 64];
        java.util.Arrays.fill(nanQ, Float.NaN);
        java.util.Arrays.fill(nanK, Float.NaN);
        Attention att = Attention.of(CausalMask.TOP_LEFT);
        Stream s = Check.device().defaultStream();
        for (int round = 0; round < 2; round++) {
            try (Tensor q = Check.upload(nanQ, qs); Tensor k = Check.upload(nanK, ks);
                 Tensor v = Check.upload(nanK, ks); Tensor dO = Check.upload(nanQ, qs);
                 Attention.Outputs out = att.forward(s, q, k, v);
                 Attention.Gradients g = att.backward(s, q, k, v, out.o(), out.lse(), dO)) {
                assertEquals(true, Float.isNaN(g.dq().toFloatArray()[0]));
            }
        }
        check(1, 2, 1, 200, 200, 64, CausalMask.TOP_LEFT, Float.NaN);
    }

    @Test
    void gradientsMatchFiniteDifferencesOfTheReference() {
        int b = 1;
        int hq = 2;
        int hkv = 1;
        int nq = 3;
        int nk = 4;
        int d = 3;
        CausalMask mask = CausalMask.BOTTOM_RIGHT;
        Random rnd = new Random(11);
        float[] q = Check.random(rnd, b * hq * nq * d);
        float[] k = Check.random(rnd, b * hkv * nk * d);
        float[] v = Check.random(rnd, b * hkv * nk * d);
        float[] dO = Check.random(rnd, b * hq * nq * d);
        double scale = 1 / Math.sqrt(d);
        Stream s = Check.device().defaultStream();
        try (Tensor tq = Check.upload(q, b, hq, nq, d); Tensor tk = Check.upload(k, b, hkv, nk, d);
             Tensor tv = Check.upload(v, b, hkv, nk, d); Tensor tdO = Check.upload(dO, b, hq, nq, d);
             Attention.Outputs out = Attention.of(mask).forward(s, tq, tk, tv);
             Attention.Gradients g = Attention.of(mask).backward(s, tq, tk, tv, out.o(), out.lse(), tdO)) {
            float[][] inputs = {q, k, v};
            Tensor[] grads = {g.dq(), g.dk(), g.dv()};
            for (int which = 0; which < 3; which++) {
                float[] x = inputs[which];
                double[] fd = new double[x.length];
                for (int i = 0; i < x.length; i++) {
                    float keep = x[i];
                    x[i] = keep + 1e-2f;
                    double lp = loss(reference(q, k, v, null, b, hq, hkv, nq, nk, d, scale, mask)[0], dO);
                    x[i] = keep - 1e-2f;
                    double lm = loss(reference(q, k, v, null, b, hq, hkv, nq, nk, d, scale, mask)[0], dO);
                    x[i] = keep;
                    fd[i] = (lp - lm) / 2e-2;
                }
                Check.close("gradient " + which + " vs finite differences", fd, grads[which].toFloatArray(), 1e-3);
            }
        }
    }

    @Test
    void rowsThatSeeNoKeyGiveZeroOutputMinusInfinityLseAndZeroGradients() {
        // bottom-right with Nq > Nk: the first Nq - Nk rows see nothing
        int nq = 9;
        int nk = 4;
        int d = 5;
        Random rnd = new Random(5);
        Stream s = Check.device().defaultStream();
        try (Tensor q = Check.upload(Check.random(rnd, nq * d), 1, 1, nq, d);
             Tensor k = Check.upload(Check.random(rnd, nk * d), 1, 1, nk, d);
             Tensor v = Check.upload(Check.random(rnd, nk * d), 1, 1, nk, d);
             Tensor dO = Check.upload(Check.random(rnd, nq * d), 1, 1, nq, d);
             Attention.Outputs out = Attention.of(CausalMask.BOTTOM_RIGHT).forward(s, q, k, v);
             Attention.Gradients g = Attention.of(CausalMask.BOTTOM_RIGHT).backward(s, q, k, v, out.o(), out.lse(), dO)) {
            float[] o = out.o().toFloatArray();
            float[] lse = out.lse().toFloatArray();
            float[] dq = g.dq().toFloatArray();
            for (int i = 0; i < nq - nk; i++) {
                assertEquals(Float.NEGATIVE_INFINITY, lse[i]);
                for (int c = 0; c < d; c++) {
                    assertEquals(0f, o[i * d + c]);
                    assertEquals(0f, dq[i * d + c]);
                }
            }
            assertEquals(true, Float.isFinite(lse[nq - nk]));
        }
    }

    private static double loss(double[] o, float[] dO) {
        double sum = 0;
        for (int i = 0; i < o.length; i++) {
            sum += o[i] * dO[i];
        }
        return sum;
    }

    /**
     * The backward's task order visits every (head, key tile) once and each head's key tiles in order (dq's turns
     * rely on it), for head counts that do and do not divide into the thread groups.
     */
    @Test
    void backwardTaskOrderIsAPermutationInKeyTileOrderPerHead() {
        int[][] cases = {{32, 8, 2}, {5, 3, 2}, {1, 4, 2}, {3, 1, 2}, {7, 2, 3}, {4, 5, 1}, {2, 3, 16}};
        for (int[] c : cases) {
            int heads = c[0];
            int keyTiles = c[1];
            int threads = c[2];
            boolean[] seen = new boolean[heads * keyTiles];
            int[] nextTile = new int[heads];
            for (int order = 0; order < heads * keyTiles; order++) {
                int task = AttentionCpu.backwardTask(order, heads, keyTiles, threads);
                assertFalse(seen[task], "task " + task + " twice, case " + java.util.Arrays.toString(c));
                seen[task] = true;
                assertEquals(nextTile[task / keyTiles]++, task % keyTiles, "key tile order, case "
                        + java.util.Arrays.toString(c));
            }
        }
        // two threads: heads 0 and 1 take turns key tile by key tile, then heads 2 and 3
        int[] expect = {0, 3, 1, 4, 2, 5, 6, 9, 7, 10, 8, 11};
        for (int order = 0; order < expect.length; order++) {
            assertEquals(expect[order], AttentionCpu.backwardTask(order, 4, 3, 2));
        }
    }
}
