package org.kernels4j.autotune;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Instant;
import java.util.List;
import java.util.Random;
import java.util.concurrent.TimeUnit;

import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.kernels4j.Backends;
import org.kernels4j.Conv2d;
import org.kernels4j.DType;
import org.kernels4j.Device;
import org.kernels4j.Tensor;
import org.kernels4j.spi.Debug;
import org.kernels4j.tuning.Parameters;
import org.kernels4j.tuning.Tuning;
import org.kernels4j.tuning.TuningSpace;

/**
 * A real op (the CPU backend's conv2d) dispatches with the parameters found in the tuning cache, in this
 * process after {@link Tuning#refresh()} and in a fresh process, as {@code KERNELS4J_DEBUG=2} shows.
 */
class OpsUseCachedParametersTest {

    static final Conv2d CONV = Conv2d.builder().padding(1).build();
    static final int[] X = {2, 8, 13, 11};
    static final int[] W = {16, 8, 3, 3};
    static final int X_COUNT = 2 * 8 * 13 * 11;
    static final int W_COUNT = 16 * 8 * 3 * 3;

    final Device cpu = Backends.require("cpu").defaultDevice();
    TuningCache cache;

    @BeforeEach
    void emptyCache() throws IOException {
        cache = TuningCache.atDefaultLocation();
        cache.clear();
        Tuning.refresh();
    }

    @AfterEach
    void cleanUp() throws IOException {
        Debug.setLevel(0);
        cache.clear();
        Tuning.refresh();
    }

    private float[] run(float[] x, float[] w) {
        try (Tensor tx = cpu.upload(DType.FLOAT32, x, X); Tensor tw = cpu.upload(DType.FLOAT32, w, W);
             Tensor y = CONV.forward(cpu.defaultStream(), tx, tw, null)) {
            return y.toFloatArray();
        }
    }

    /** Writes a cache entry in which {@code tuned} beat the default for the bucket {@code r} was dispatched in. */
    private Parameters cacheNonDefault(Tuning.Resolution r) throws IOException {
        TuningSpace<?> space = Tuning.space(r.kernelId()).orElseThrow();
        Parameters tuned = space.defaults().with("KC", 64).with("MC", 48).with("NC", 96).with("PIXELS", 64);
        assertNotEquals(space.defaults(), tuned);
        assertTrue(space.isValid(tuned, cpu.capabilities()));
        DeviceKey key = DeviceKey.of(cpu);
        String now = Instant.now().toString();
        cache.merge(key, List.of(TuningRun.entry(key, space, DType.FLOAT32, r.bucket(), "test", true, List.of(
                new TuningCache.Result(space.defaults().asMap(), TuningCache.OK, 2.0, 3, true, null, now),
                new TuningCache.Result(tuned.asMap(), TuningCache.OK, 1.0, 3, false, null, now)))));
        return tuned;
    }

    @Test
    void conv2dDispatchesWithTheCachedParameters() throws IOException {
        Random rng = new Random(3);
        float[] x = new float[X_COUNT];
        float[] w = new float[W_COUNT];
        for (int i = 0; i < x.length; i++) {
            x[i] = (float) rng.nextGaussian();
        }
        for (int i = 0; i < w.length; i++) {
            w[i] = (float) rng.nextGaussian();
        }
        float[][] before = new float[1][];
        List<Tuning.Resolution> first = Tuning.trace(() -> before[0] = run(x, w));
        assertEquals(1, first.size(), first.toString());
        assertEquals("cpu.conv2d.forward", first.get(0).kernelId());
        assertEquals(Tuning.Source.DEFAULT, first.get(0).source());

        Parameters tuned = cacheNonDefault(first.get(0));
        Tuning.refresh();

        PrintStream err = System.err;
        ByteArrayOutputStream captured = new ByteArrayOutputStream();
        float[][] after = new float[1][];
        List<Tuning.Resolution> second;
        Debug.setLevel(2);
        System.setErr(new PrintStream(captured, true, StandardCharsets.UTF_8));
        try {
            second = Tuning.trace(() -> after[0] = run(x, w));
        } finally {
            System.setErr(err);
            Debug.setLevel(0);
        }
        assertEquals(Tuning.Source.TUNED, second.get(0).source());
        assertEquals(tuned, second.get(0).parameters());
        String log = captured.toString(StandardCharsets.UTF_8);
        assertTrue(log.contains("tuning cpu.conv2d.forward on cpu:0") && log.contains(tuned.toString())
                && log.contains("(tuned, " + cache.fileFor(DeviceKey.of(cpu))), log);
        assertArrayEquals(before[0], after[0], 1e-4f, "other blocking, same result");
    }

    @Test
    void aSecondProcessDispatchesWithTheCachedParameters() throws Exception {
        List<Tuning.Resolution> first = Tuning.trace(() -> run(new float[X_COUNT], new float[W_COUNT]));
        Parameters tuned = cacheNonDefault(first.get(0));
        Path log = Files.createTempFile("kernels4j-child", ".log");
        String java = Path.of(System.getProperty("java.home"), "bin", "java").toString();
        ProcessBuilder pb = new ProcessBuilder(java, "--add-modules", "jdk.incubator.vector",
                "-Dkernels4j.cache=" + cache.directory(), "-Dkernels4j.backends=cpu", "-cp",
                System.getProperty("java.class.path"), RunConvMain.class.getName())
                .redirectErrorStream(true).redirectOutput(log.toFile());
        pb.environment().put("KERNELS4J_DEBUG", "2");
        Process p = pb.start();
        assertTrue(p.waitFor(2, TimeUnit.MINUTES), "child JVM finished");
        String out = Files.readString(log);
        Files.delete(log);
        assertEquals(0, p.exitValue(), out);
        assertTrue(out.contains("tuning cpu.conv2d.forward on cpu:0") && out.contains(tuned + " (tuned, "), out);
    }
}
