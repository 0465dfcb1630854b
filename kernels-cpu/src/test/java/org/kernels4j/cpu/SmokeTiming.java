package org.kernels4j.cpu;

import java.lang.management.ManagementFactory;
import java.util.Random;

import org.kernels4j.Attention;
import org.kernels4j.Conv2d;
import org.kernels4j.DType;
import org.kernels4j.LayerNorm;
import org.kernels4j.Stream;
import org.kernels4j.Tensor;
import org.kernels4j.spi.Conv2dProblem;

/**
 * A quick, JMH-free smoke timing of the benchmark problems (benchmark-shapes.md, CPU set) for development:
 * median of a few runs after a warm-up. The figures are indicative only (no forking, no isolation; the
 * development machine is shared); the real benchmarks live in the bench module. Not a test.
 *
 * <p>Run: {@code java --add-modules jdk.incubator.vector -cp <classes> org.kernels4j.cpu.SmokeTiming [filter]}.
 */
public final class SmokeTiming {

    private SmokeTiming() {
    }

    public static void main(String[] args) {
        String filter = args.length > 0 ? args[0] : "";
        int reps = args.length > 1 ? Integer.parseInt(args[1]) : 5;
        System.out.println(Vectorization.DESCRIPTION + ", " + Parallel.THREADS + " threads, "
                + (CPU_CLOCK ? "thread CPU time" : "wall time"));
        Stream s = Check.device().defaultStream();
        Random rnd = new Random(1);
        if (Vectorization.ENABLED) {
            System.out.printf("FMA peak (Vector API loop, %d threads): %.1f GFLOP/s%n", Parallel.THREADS, Peak.gflops());
        }
        System.out.printf("copy bandwidth (arraycopy 64 MiB, 1 thread, read + write): %.1f GB/s%n", copyBandwidth());
        // the register tile alone, each thread on its own copy of one block of the conv GEMMs (A read in place, one
        // packed B block in cache): the ceiling the GEMM passes can reach before packing, copies and scheduling
        System.out.printf("micro-kernel, conv-s2 block (128 rows, A stride 576, depth 256, 1 panel), %d threads: "
                + "%.1f GFLOP/s%n", Parallel.THREADS, tileGflops(128, 576, 256, 1));
        System.out.printf("micro-kernel, conv-1x1 block (96 rows, A stride 256, depth 256, 5 panels), %d threads: "
                + "%.1f GFLOP/s%n", Parallel.THREADS, tileGflops(96, 256, 256, 5));
        if ("ln".startsWith(filter) || filter.startsWith("ln")) {
            layerNorm(s, rnd, "ln-8k-1k", 8192, 1024, reps);
            layerNorm(s, rnd, "ln-4k-4k", 4096, 4096, reps);
        }
        if ("conv".startsWith(filter) || filter.startsWith("conv")) {
            conv(s, rnd, "conv-r56", Conv2d.builder().padding(1).build(), new int[] {8, 64, 56, 56}, new int[] {64, 64, 3, 3}, reps);
            conv(s, rnd, "conv-r28", Conv2d.builder().padding(1).build(), new int[] {8, 128, 28, 28}, new int[] {128, 128, 3, 3}, reps);
            conv(s, rnd, "conv-1x1", Conv2d.builder().build(), new int[] {8, 256, 14, 14}, new int[] {1024, 256, 1, 1}, reps);
            conv(s, rnd, "conv-s2", Conv2d.builder().stride(2).padding(1).build(), new int[] {8, 64, 56, 56}, new int[] {128, 64, 3, 3}, reps);
            conv(s, rnd, "conv-dw", Conv2d.builder().padding(1).groups(256).build(), new int[] {8, 256, 28, 28}, new int[] {256, 1, 3, 3}, reps);
            conv(s, rnd, "conv-dw-nhwc", Conv2d.builder().format(Conv2d.Format.NHWC).padding(1).groups(256).build(), new int[] {8, 28, 28, 256}, new int[] {256, 3, 3, 1}, reps);
            conv(s, rnd, "conv-r56-nhwc", Conv2d.builder().format(Conv2d.Format.NHWC).padding(1).build(), new int[] {8, 56, 56, 64}, new int[] {64, 3, 3, 64}, reps);
        }
        if ("attn".startsWith(filter) || filter.startsWith("attn")) {
            attention(s, rnd, "attn-1k", Attention.CausalMask.NONE, 4, 8, 8, 1024, 64, reps);
            attention(s, rnd, "attn-1k-causal", Attention.CausalMask.TOP_LEFT, 4, 8, 8, 1024, 64, reps);
            attention(s, rnd, "attn-4k-causal", Attention.CausalMask.TOP_LEFT, 1, 8, 8, 4096, 64, reps);
            attention(s, rnd, "attn-gqa", Attention.CausalMask.TOP_LEFT, 2, 16, 4, 2048, 128, reps);
        }
    }

    private static double copyBandwidth() {
        float[] a = new float[16 << 20];
        float[] b = new float[16 << 20];
        double ms = median(() -> System.arraycopy(a, 0, b, 0, a.length), 5);
        return 2.0 * 4 * a.length / ms / 1e6;
    }

    /** {@link MicroKernel#tile} over {@code panels} packed panels, repeated, on every thread at once. */
    private static double tileGflops(int rows, int ars, int kc, int panels) {
        int nr = MicroKernel.NR;
        int iters = 300;
        float[][] a = new float[Parallel.THREADS][];
        float[][] b = new float[Parallel.THREADS][];
        float[][] c = new float[Parallel.THREADS][];
        Random rnd = new Random(2);
        for (int t = 0; t < Parallel.THREADS; t++) {
            a[t] = Check.random(rnd, rows * ars);
            b[t] = Check.random(rnd, kc * nr * panels);
            c[t] = new float[rows * nr * panels];
        }
        Runnable all = () -> Parallel.run(Parallel.THREADS, Parallel.THREADS, (w, t) -> {
            for (int it = 0; it < iters; it++) {
                for (int pn = 0; pn < panels; pn++) {
                    MicroKernel.tile(a[t], 0, ars, 1, b[t], pn * kc * nr, kc, c[t], pn * nr, nr * panels, rows, it > 0);
                }
            }
        });
        double ms = median(all, 5);
        return 2.0 * rows * kc * nr * panels * iters * Parallel.THREADS / ms / 1e6;
    }

    /** Every thread runs independent FMA chains in registers; loaded only on the vector path. */
    private static final class Peak {
        private static final jdk.incubator.vector.VectorSpecies<Float> S = jdk.incubator.vector.FloatVector.SPECIES_PREFERRED;

        static double gflops() {
            int iters = 20_000_000;
            float[] sink = new float[Parallel.THREADS];
            Runnable all = () -> Parallel.run(Parallel.THREADS, Parallel.THREADS, (w, t) -> sink[t] = chains(iters));
            double ms = median(all, 3);
            return 12.0 * 2 * S.length() * iters * Parallel.THREADS / ms / 1e6;
        }

        private static float chains(int iters) {
            var m = jdk.incubator.vector.FloatVector.broadcast(S, 0.999f);
            var c = jdk.incubator.vector.FloatVector.broadcast(S, 0.001f);
            var a0 = jdk.incubator.vector.FloatVector.broadcast(S, 1f);
            var a1 = a0; var a2 = a0; var a3 = a0; var a4 = a0; var a5 = a0;
            var a6 = a0; var a7 = a0; var a8 = a0; var a9 = a0; var a10 = a0; var a11 = a0;
            for (int i = 0; i < iters; i++) {
                a0 = a0.fma(m, c); a1 = a1.fma(m, c); a2 = a2.fma(m, c); a3 = a3.fma(m, c);
                a4 = a4.fma(m, c); a5 = a5.fma(m, c); a6 = a6.fma(m, c); a7 = a7.fma(m, c);
                a8 = a8.fma(m, c); a9 = a9.fma(m, c); a10 = a10.fma(m, c); a11 = a11.fma(m, c);
            }
            return a0.add(a1).add(a2).add(a3).add(a4).add(a5).add(a6).add(a7).add(a8).add(a9).add(a10).add(a11)
                    .reduceLanes(jdk.incubator.vector.VectorOperators.ADD);
        }
    }

    /**
     * With one thread ({@code -Dkernels4j.cpu.threads=1}) the calling thread's CPU time is measured, which
     * stays meaningful on a machine shared with other jobs; otherwise wall time.
     */
    private static final boolean CPU_CLOCK = Parallel.THREADS == 1;

    private static long now() {
        return CPU_CLOCK ? ManagementFactory.getThreadMXBean().getCurrentThreadCpuTime() : System.nanoTime();
    }

    private static double median(Runnable r, int reps) {
        r.run();
        r.run();
        double[] t = new double[reps];
        for (int i = 0; i < reps; i++) {
            long t0 = now();
            r.run();
            t[i] = (now() - t0) / 1e6;
        }
        java.util.Arrays.sort(t);
        return t[reps / 2];
    }

    private static Tensor random(Random rnd, int... shape) {
        int n = 1;
        for (int d : shape) {
            n *= d;
        }
        return Check.device().upload(DType.FLOAT32, Check.random(rnd, n), shape);
    }

    private static void layerNorm(Stream s, Random rnd, String name, int rows, int cols, int reps) {
        LayerNorm ln = LayerNorm.layerNorm();
        try (Tensor x = random(rnd, rows, cols); Tensor g = random(rnd, cols); Tensor b = random(rnd, cols);
             Tensor dy = random(rnd, rows, cols); LayerNorm.Outputs out = ln.forward(s, x, g, b);
             LayerNorm.Gradients gr = ln.backward(s, dy, x, g, out.mean(), out.rstd(), true)) {
            double f = median(() -> ln.forward(s, x, g, b, out.y(), out.mean(), out.rstd()), reps);
            double bw = median(() -> ln.backward(s, dy, x, g, out.mean(), out.rstd(), gr.dx(), gr.dgamma(), gr.dbeta()), reps);
            double fBytes = 4.0 * (2.0 * rows * cols + 2 * cols + 2 * rows);
            double bBytes = 4.0 * (3.0 * rows * cols + 3 * cols + 2 * rows);
            System.out.printf("%-16s fwd %8.2f ms %6.1f GB/s   bwd %8.2f ms %6.1f GB/s%n", name, f, fBytes / f / 1e6, bw,
                    bBytes / bw / 1e6);
        }
    }

    private static void conv(Stream s, Random rnd, String name, Conv2d conv, int[] xs, int[] ws, int reps) {
        Conv2dProblem p = conv.problem(xs, ws, DType.FLOAT32);
        try (Tensor x = random(rnd, xs); Tensor w = random(rnd, ws); Tensor b = random(rnd, p.k());
             Tensor y = random(rnd, p.yShape()); Tensor dy = random(rnd, p.yShape()); Tensor dx = random(rnd, xs);
             Tensor dw = random(rnd, ws); Tensor db = random(rnd, p.k())) {
            double f = median(() -> conv.forward(s, x, w, b, y), reps);
            double d = median(() -> conv.backwardData(s, dy, w, dx), reps);
            double fw = median(() -> conv.backwardFilter(s, dy, x, dw, db), reps);
            double gf = p.flops() / 1e6;
            System.out.printf("%-16s fwd %8.2f ms %6.1f GFLOP/s   dgrad %8.2f ms %6.1f   wgrad %8.2f ms %6.1f%n", name,
                    f, gf / f, d, gf / d, fw, gf / fw);
        }
    }

    private static void attention(Stream s, Random rnd, String name, Attention.CausalMask mask, int b, int hq, int hkv,
                                  int n, int d, int reps) {
        Attention att = Attention.of(mask);
        try (Tensor q = random(rnd, b, hq, n, d); Tensor k = random(rnd, b, hkv, n, d); Tensor v = random(rnd, b, hkv, n, d);
             Tensor dO = random(rnd, b, hq, n, d); Attention.Outputs out = att.forward(s, q, k, v);
             Attention.Gradients g = att.backward(s, q, k, v, out.o(), out.lse(), dO)) {
            double f = median(() -> att.forward(s, q, k, v, out.o(), out.lse()), reps);
            double bw = median(() -> att.backward(s, q, k, v, out.o(), out.lse(), dO, g.dq(), g.dk(), g.dv()), reps);
            double flops = 4.0 * b * hq * (double) n * n * d / (mask == Attention.CausalMask.NONE ? 1 : 2);
            System.out.printf("%-16s fwd %8.2f ms %6.1f GFLOP/s   bwd %8.2f ms %6.1f GFLOP/s%n", name, f,
                    flops / f / 1e6, bw, 2.5 * flops / bw / 1e6);
        }
    }
}
