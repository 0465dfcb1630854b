import java.io.IOException;
import java.net.URL;
import java.net.URLClassLoader;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;

import javax.tools.ToolProvider;

/**
 * Paired timing of two builds, or of the two CPU paths, in ONE JVM: on a shared machine whose load drifts, two
 * separate runs measure the drift; here the two sides run alternately, call by call, and the figure is the median
 * of the per-pair ratios (an A/A of one jar against itself spans about 0.95-1.07 on the 2-core development host).
 *
 * <pre>
 * java --add-modules jdk.incubator.vector bench/tools/paired/Paired.java MODE ABSTRACTION_JAR JAR_A JAR_B PAIRS PROBLEM...
 *   MODE ab                B/A of two kernels-cpu jars, both on the path this JVM picks (-Dkernels4j.cpu.vector=false: scalar)
 *   MODE scalar-vs-vector  the scalar path (JAR_B) over the vector path (JAR_A); pass one jar twice
 *   PROBLEM                e.g. "conv-s2 fwd", "conv-r28 bwd-filter", "attn-1k bwd", "ln-8k-1k fwd" (see Problems.java)
 *   -Dpaired.overrideB=KERNEL:K=V,...   side B runs with these tuning parameters (pass one jar twice: a knob's A/B)
 * </pre>
 * Each side is a class loader of its own over {@code Problems} (compiled here from the file beside this one), the
 * abstraction jar and its kernels-cpu jar; both sides warm up together for four seconds, then PAIRS pairs of
 * timed blocks (as many calls as take about 40 ms; the per-call mean is one sample), the first block of a pair
 * alternating between the sides.
 */
public final class Paired {
    private static final long WARM_UP_NANOS = 4_000_000_000L;
    private static final long BLOCK_NANOS = 40_000_000L;

    public static void main(String[] a) throws Exception {
        if (a.length < 6 || !List.of("ab", "scalar-vs-vector").contains(a[0])) {
            System.err.println("usage: Paired ab|scalar-vs-vector ABSTRACTION_JAR JAR_A JAR_B PAIRS PROBLEM...");
            System.exit(2);
        }
        boolean paths = a[0].equals("scalar-vs-vector");
        Path abstraction = Path.of(a[1]);
        Path classes = compileProblems(abstraction);
        ClassLoader la = loader(classes, abstraction, Path.of(a[2]));
        ClassLoader lb = loader(classes, abstraction, Path.of(a[3]));
        String override = System.getProperty("paired.overrideB");
        if (override != null) {
            // side B's tuning parameters for one kernel, e.g. cpu.conv2d.forward:KC=192,MC=48 (an A/B of a knob)
            int colon = override.indexOf(':');
            if (colon <= 0) {
                System.err.println("paired.overrideB: expected KERNEL:K=V,..., got '" + override + "'");
                System.exit(2);
            }
            Class<?> parameters = lb.loadClass("org.kernels4j.tuning.Parameters");
            Object values = parameters.getMethod("parse", String.class).invoke(null, override.substring(colon + 1));
            lb.loadClass("org.kernels4j.tuning.Tuning").getMethod("override", String.class, parameters)
                    .invoke(null, override.substring(0, colon), values);
        }
        if (paths) {
            // the CPU backend reads the switch once, when its Vectorization class initialises in each loader
            System.setProperty("kernels4j.cpu.vector", "false");
            Class.forName("org.kernels4j.cpu.Vectorization", true, lb);
            System.setProperty("kernels4j.cpu.vector", "true");
            Class.forName("org.kernels4j.cpu.Vectorization", true, la);
        }
        int pairs = Integer.parseInt(a[4]);
        System.out.printf("%-22s %10s %10s %8s   (%s, %d pairs, median of pair ratios)%n", "problem",
                paths ? "vector ms" : "A ms", paths ? "scalar ms" : "B ms", paths ? "s/v" : "B/A", a[0], pairs);
        for (int i = 5; i < a.length; i++) {
            Runnable ra = (Runnable) la.loadClass("Problems").getMethod("make", String.class).invoke(null, a[i]);
            Runnable rb = (Runnable) lb.loadClass("Problems").getMethod("make", String.class).invoke(null, a[i]);
            // warm up until both sides have run WARM_UP_NANOS (after five calls the JIT was still at work: two runs
            // of the same two jars read 0.62 and 0.94, quartiles ±0.2), then time blocks of calls of about BLOCK_NANOS
            // each, so that one call's hiccup on a shared host weighs less
            long warmed = 0;
            int warmCalls = 0;
            for (long start = System.nanoTime(); System.nanoTime() - start < WARM_UP_NANOS || warmCalls < 5;
                 warmCalls++) {
                long t0 = System.nanoTime();
                ra.run();
                rb.run();
                warmed += System.nanoTime() - t0;
            }
            int calls = (int) Math.max(1, Math.min(100, BLOCK_NANOS * 2 * warmCalls / Math.max(1, warmed)));
            double[] ta = new double[pairs];
            double[] tb = new double[pairs];
            double[] ratio = new double[pairs];
            for (int k = 0; k < pairs; k++) {
                boolean aFirst = k % 2 == 0;
                for (int j = 0; j < 2; j++) {
                    boolean isA = (j == 0) == aFirst;
                    Runnable r = isA ? ra : rb;
                    long t0 = System.nanoTime();
                    for (int c = 0; c < calls; c++) {
                        r.run();
                    }
                    double ms = (System.nanoTime() - t0) / 1e6 / calls;
                    if (isA) {
                        ta[k] = ms;
                    } else {
                        tb[k] = ms;
                    }
                }
                ratio[k] = tb[k] / ta[k];
            }
            Arrays.sort(ta);
            Arrays.sort(tb);
            Arrays.sort(ratio);
            System.out.printf("%-22s %10.3f %10.3f %8.3f   (quartiles of the ratios %.3f, %.3f)%n", a[i], ta[pairs / 2],
                    tb[pairs / 2], ratio[pairs / 2], ratio[pairs / 4], ratio[3 * pairs / 4]);
        }
    }

    private static ClassLoader loader(Path classes, Path abstraction, Path kernels) throws IOException {
        return new URLClassLoader(new URL[] {classes.toUri().toURL(), abstraction.toUri().toURL(),
                kernels.toUri().toURL()}, ClassLoader.getPlatformClassLoader());
    }

    /** Compiles Problems.java (beside this file) against the abstraction jar into a temporary folder. */
    private static Path compileProblems(Path abstraction) throws IOException {
        Path source = Path.of(System.getProperty("jdk.launcher.sourcefile", "bench/tools/paired/Paired.java"))
                .toAbsolutePath().resolveSibling("Problems.java");
        Path out = Files.createTempDirectory("kernels4j-paired");
        int rc = ToolProvider.getSystemJavaCompiler().run(null, null, null, "-d", out.toString(), "-cp",
                abstraction.toString(), source.toString());
        if (rc != 0) {
            throw new IllegalStateException("could not compile " + source);
        }
        return out;
    }
}
