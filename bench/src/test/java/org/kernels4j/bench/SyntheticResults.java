package org.kernels4j.bench;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Instant;
import java.time.temporal.ChronoUnit;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;

import com.fasterxml.jackson.databind.ObjectMapper;

/**
 * Writes result histories in the files {@code kernels4j bench} writes (JMH JSON with per-iteration raw data,
 * and the metadata beside it), with known true times and noise, for the report and dashboard tests.
 */
final class SyntheticResults {

    private static final ObjectMapper JSON = new ObjectMapper();

    /** Benchmarks of a small history: two of ours with both peers, and the ceilings. */
    static final List<String> KEYS = List.of(
            "ours/cpu/float32/ln-8k-1k/forward", "torch/cpu/float32/ln-8k-1k/forward", "ort/cpu/float32/ln-8k-1k/forward",
            "ours/cpu/float32/conv-r56/forward", "torch/cpu/float32/conv-r56/forward", "ort/cpu/float32/conv-r56/forward",
            "ours/cpu/float32/conv-r56/backward", "torch/cpu/float32/conv-r56/backward",
            "ceiling/cpu/float32/copy/-", "ceiling/cpu/float32/fma/-");

    /** {@link #history}'s slowKey for slowing every benchmark of the last run. */
    static final String EVERY_KEY = "*";

    private SyntheticResults() {
    }

    /** True mean times (ms) of {@link #KEYS}. */
    static Map<String, Double> baseTimes() {
        Map<String, Double> t = new LinkedHashMap<>();
        double[] ms = {12, 30, 20, 40, 60, 45, 90, 130, 60, 20};
        for (int i = 0; i < KEYS.size(); i++) {
            t.put(KEYS.get(i), ms[i]);
        }
        return t;
    }

    /**
     * Writes {@code runs} runs of a machine, a day apart; the last run's time of {@code slowKey} (may be null;
     * {@link #EVERY_KEY}: every benchmark, the ceilings included, as on a loaded host) is multiplied by
     * {@code factor}. Noise is relative, within runs ({@code noise}) and between them
     * ({@code runNoise}).
     */
    static void history(Path dir, String machine, int runs, long seed, double noise, double runNoise, String slowKey,
                        double factor) throws IOException {
        Random rnd = new Random(seed);
        Instant start = Instant.parse("2026-11-01T10:00:00Z");
        for (int r = 0; r < runs; r++) {
            Map<String, double[]> samples = new LinkedHashMap<>();
            for (Map.Entry<String, Double> e : baseTimes().entrySet()) {
                boolean slow = e.getKey().equals(slowKey) || EVERY_KEY.equals(slowKey);
                double mean = e.getValue() * (r == runs - 1 && slow ? factor : 1);
                samples.put(e.getKey(), RegressionCheckTest.run(rnd, mean, runNoise, noise, 5));
            }
            write(dir, machine, String.format("%040x", 0xabc0000L + r), start.plus(r, ChronoUnit.DAYS), samples);
        }
    }

    /** Writes one run: {@code <date>-<commit>.json} and its {@code .meta.json}. */
    static Path write(Path dir, String machine, String commit, Instant date, Map<String, double[]> samples)
            throws IOException {
        Files.createDirectories(dir);
        List<Map<String, Object>> entries = new ArrayList<>();
        for (Map.Entry<String, double[]> e : samples.entrySet()) {
            String[] k = e.getKey().split("/");
            Map<String, Object> params = new LinkedHashMap<>();
            String bench;
            switch (k[0]) {
                case "ours" -> {
                    bench = "Ours." + k[4];
                    params.put("backend", k[1]);
                    params.put("dtype", k[2]);
                    params.put("problem", k[3]);
                }
                case "torch", "ort" -> {
                    bench = (k[0].equals("torch") ? "Torch." : "Ort.") + k[4];
                    params.put("problem", k[3]);
                    if (!k[1].equals("cpu") || !k[2].equals("float32")) {
                        // as bench/torch_gpu_baseline.py writes its entries
                        params.put("backend", k[1]);
                        params.put("dtype", k[2]);
                    }
                }
                case "ceiling" -> bench = "Ceilings." + k[3];
                default -> throw new IllegalArgumentException(e.getKey());
            }
            double[] s = e.getValue();
            double mean = java.util.Arrays.stream(s).average().orElseThrow();
            Map<String, Object> pm = new LinkedHashMap<>();
            pm.put("score", mean);
            pm.put("scoreError", 0.01 * mean);
            pm.put("scoreUnit", "ms/op");
            pm.put("rawData", List.of(s));
            Map<String, Object> entry = new LinkedHashMap<>();
            entry.put("jmhVersion", "1.37");
            entry.put("benchmark", "org.kernels4j.bench." + bench);
            entry.put("mode", "avgt");
            if (!params.isEmpty()) {
                entry.put("params", params);
            }
            entry.put("primaryMetric", pm);
            entry.put("secondaryMetrics", Map.of());
            entries.add(entry);
        }
        String stem = date.toString().replaceAll("[^0-9T]", "").replace('T', '-').substring(0, 15) + "-"
                + commit.substring(0, 10);
        Path json = dir.resolve(stem + ".json");
        JSON.writeValue(json.toFile(), entries);
        new RunMetadata(machine, date.toString(), commit, false, "Synthetic CPU", 2, "Test JDK", "Linux", List.of(), 2,
                false, Map.of("torch", "PyTorch (synthetic)", "ort", "ONNX Runtime (synthetic)"),
                Map.of("ceiling/copy", Ceilings.COPY_BYTES, "ceiling/fma", 2.0e9)).write(RunRecord.metaPath(json));
        return json;
    }
}
