package org.kernels4j.cpu;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;

import java.util.ArrayList;
import java.util.List;
import java.util.Random;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.kernels4j.Attention;
import org.kernels4j.Conv2d;
import org.kernels4j.Conv2d.Format;
import org.kernels4j.LayerNorm;
import org.kernels4j.Stream;
import org.kernels4j.Tensor;

/**
 * The same call on the same inputs gives the same bits, every time, on the CPU backend: the reductions that
 * cross tasks (layer norm's dγ/dβ, the filter gradients, attention's dQ) add their parts in a fixed order, not in
 * the order the worker threads happen to finish (which differed from run to run: up to 1e-4 relative in dw of
 * the depthwise benchmark). The problems are large enough to be split over the threads of this machine; on one
 * core every loop runs serially and the test is trivially met.
 */
class RepeatabilityTest {

    private static final int RUNS = 12;

    /** Runs {@code op} {@link #RUNS} times and checks that every output is bit-for-bit that of the first run. */
    private static void assertRepeatable(String what, Stream st, Runnable op, Tensor... outputs) {
        List<float[]> first = new ArrayList<>();
        for (int run = 0; run < RUNS; run++) {
            op.run();
            st.synchronize();
            for (int i = 0; i < outputs.length; i++) {
                float[] now = new float[Math.toIntExact(outputs[i].elementCount())];
                outputs[i].copyTo(now);
                if (run == 0) {
                    first.add(now);
                } else {
                    assertArrayEquals(first.get(i), now, what + ": output " + i + " of run " + run
                            + " differs from run 0");
                }
            }
        }
    }

    @Test
    void layerNormBackward() {
        Random rnd = new Random(11);
        int rows = 512;
        int cols = 1024;
        Stream st = Check.device().defaultStream();
        try (Tensor x = Check.upload(Check.random(rnd, rows * cols), rows, cols);
             Tensor g = Check.upload(Check.random(rnd, cols), cols);
             Tensor b = Check.upload(Check.random(rnd, cols), cols);
             Tensor dy = Check.upload(Check.random(rnd, rows * cols), rows, cols);
             Tensor dx = Check.poisoned(rows, cols);
             Tensor dg = Check.poisoned(cols);
             Tensor db = Check.poisoned(cols);
             LayerNorm.Outputs f = LayerNorm.layerNorm().forward(st, x, g, b)) {
            assertRepeatable("layer norm backward", st,
                    () -> LayerNorm.layerNorm().backward(st, dy, x, g, f.mean(), f.rstd(), dx, dg, db), dx, dg, db);
        }
    }

    @ParameterizedTest(name = "{0} N{1} C{2} H{3} K{4} {5}x{5} stride {6} groups {7}")
    @CsvSource({
            "NCHW, 2, 64, 28, 64, 3, 1, 1",
            "NCHW, 2, 64, 28, 128, 3, 2, 1",
            "NCHW, 4, 128, 28, 128, 3, 1, 128",
            "NCHW, 4, 128, 28, 128, 3, 2, 128",
            "NHWC, 2, 64, 28, 64, 3, 1, 1",
            "NHWC, 4, 128, 28, 128, 3, 1, 128",
    })
    void convolutionBackward(Format format, int n, int c, int h, int k, int r, int stride, int groups) {
        Random rnd = new Random(12);
        Conv2d conv = Conv2d.builder().format(format).padding(r / 2).stride(stride).groups(groups).build();
        Stream st = Check.device().defaultStream();
        int[] xs = format == Format.NCHW ? new int[] {n, c, h, h} : new int[] {n, h, h, c};
        int[] ws = format == Format.NCHW ? new int[] {k, c / groups, r, r} : new int[] {k, r, r, c / groups};
        try (Tensor x = Check.upload(Check.random(rnd, n * c * h * h), xs);
             Tensor w = Check.upload(Check.random(rnd, k * c / groups * r * r), ws);
             Tensor y = conv.forward(st, x, w, null);
             Tensor dy = Check.upload(Check.random(rnd, Math.toIntExact(y.elementCount())), y.shape());
             Tensor dx = Check.poisoned(xs);
             Tensor dw = Check.poisoned(ws);
             Tensor db = Check.poisoned(k)) {
            assertRepeatable("backward-data", st, () -> conv.backwardData(st, dy, w, dx), dx);
            assertRepeatable("backward-filter", st, () -> conv.backwardFilter(st, dy, x, dw, db), dw, db);
        }
    }

    @ParameterizedTest(name = "B{0} H{1}/{2} N{3} d{4} {5}")
    @CsvSource({
            "1, 4, 4, 512, 64, NONE",
            "1, 2, 2, 512, 64, TOP_LEFT",
            "1, 4, 1, 384, 128, TOP_LEFT",
    })
    void attentionBackward(int b, int heads, int kvHeads, int n, int d, Attention.CausalMask mask) {
        Random rnd = new Random(13);
        Attention attn = Attention.of(mask);
        Stream st = Check.device().defaultStream();
        int[] qs = {b, heads, n, d};
        int[] kvs = {b, kvHeads, n, d};
        try (Tensor q = Check.upload(Check.random(rnd, b * heads * n * d), qs);
             Tensor k = Check.upload(Check.random(rnd, b * kvHeads * n * d), kvs);
             Tensor v = Check.upload(Check.random(rnd, b * kvHeads * n * d), kvs);
             Tensor dO = Check.upload(Check.random(rnd, b * heads * n * d), qs);
             Attention.Outputs f = attn.forward(st, q, k, v);
             Tensor dq = Check.poisoned(qs);
             Tensor dk = Check.poisoned(kvs);
             Tensor dv = Check.poisoned(kvs)) {
            assertRepeatable("attention backward", st,
                    () -> attn.backward(st, q, k, v, f.o(), f.lse(), dO, dq, dk, dv), dq, dk, dv);
        }
    }
}
