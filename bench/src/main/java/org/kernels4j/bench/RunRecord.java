package org.kernels4j.bench;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Instant;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Optional;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;

/**
 * One benchmark run: its JMH JSON result ({@code <stem>.json}) read into {@link Measurement}s, and the machine
 * metadata beside it ({@code <stem>.meta.json}, written by {@code kernels4j bench}). A JMH file without
 * metadata still reads: its machine is the folder's name, its date the file's time, its commit unknown.
 */
record RunRecord(Path file, RunMetadata meta, List<Measurement> measurements) {

    private static final ObjectMapper JSON = new ObjectMapper();

    /** The path of the metadata file beside a JMH result file. */
    static Path metaPath(Path jmhJson) {
        String n = jmhJson.getFileName().toString();
        return jmhJson.resolveSibling(n.substring(0, n.length() - ".json".length()) + ".meta.json");
    }

    /** Whether a file is a JMH result (a .json that is not a .meta.json). */
    static boolean isResultFile(Path p) {
        String n = p.getFileName().toString();
        return n.endsWith(".json") && !n.endsWith(".meta.json") && Files.isRegularFile(p);
    }

    /** Reads a JMH JSON result and its metadata. */
    static RunRecord read(Path jmhJson) {
        return tryRead(jmhJson).orElseThrow(() -> new IllegalArgumentException("results: " + jmhJson
                + " is not a JMH JSON result (expected an array of benchmark results)"));
    }

    /** Reads a JMH JSON result and its metadata, or nothing when the file is JSON of another kind. */
    static Optional<RunRecord> tryRead(Path jmhJson) {
        try {
            JsonNode root = JSON.readTree(jmhJson.toFile());
            if (root == null || !root.isArray()) {
                return Optional.empty();
            }
            List<Measurement> ms = new ArrayList<>();
            for (JsonNode b : root) {
                if (!b.has("benchmark") || !b.has("primaryMetric")) {
                    return Optional.empty();
                }
                measurement(b).ifPresent(ms::add);
            }
            Path metaFile = metaPath(jmhJson);
            RunMetadata meta = Files.isRegularFile(metaFile)
                    ? RunMetadata.read(metaFile)
                    : RunMetadata.unknown(jmhJson.toAbsolutePath().getParent().getFileName().toString(),
                            Files.getLastModifiedTime(jmhJson).toInstant());
            return Optional.of(new RunRecord(jmhJson, meta, List.copyOf(ms)));
        } catch (com.fasterxml.jackson.core.JsonProcessingException e) {
            return Optional.empty();
        } catch (IOException e) {
            throw new UncheckedIOException("reading " + jmhJson + ": " + e.getMessage(), e);
        }
    }

    /** The measurements by {@link Measurement#key()}. */
    Map<String, Measurement> byKey() {
        Map<String, Measurement> m = new LinkedHashMap<>();
        for (Measurement x : measurements) {
            m.put(x.key(), x);
        }
        return m;
    }

    /** The ceiling of that name ({@code copy} or {@code fma}) in this run, if it was measured. */
    Optional<Measurement> ceiling(String name) {
        return measurements.stream().filter(m -> m.impl().equals(Measurement.CEILING) && m.problem().equals(name))
                .findFirst();
    }

    /** The run's time, for ordering a history. */
    Instant date() {
        return meta.instant();
    }

    private static Optional<Measurement> measurement(JsonNode b) {
        String bench = b.path("benchmark").asText("");
        int dot = bench.lastIndexOf('.');
        if (dot < 0) {
            return Optional.empty();
        }
        String method = bench.substring(dot + 1);
        String cls = bench.substring(0, dot);
        cls = cls.substring(cls.lastIndexOf('.') + 1);
        JsonNode params = b.path("params");
        JsonNode pm = b.path("primaryMetric");
        double scale = toMillis(pm.path("scoreUnit").asText("ms/op"));
        List<Double> samples = new ArrayList<>();
        for (JsonNode fork : pm.path("rawData")) {
            for (JsonNode v : fork) {
                samples.add(v.asDouble() * scale);
            }
        }
        double[] s = samples.stream().mapToDouble(Double::doubleValue).toArray();
        double score = pm.path("score").asDouble() * scale;
        double err = pm.path("scoreError").asDouble(Double.NaN) * scale;
        return switch (cls) {
            case "Ours" -> Optional.of(new Measurement(Measurement.OURS, params.path("backend").asText(),
                    params.path("problem").asText(), method, params.path("dtype").asText(), score, err, s));
            // the JMH peers run on the CPU in fp32; a merged GPU baseline names its backend and dtype
            case "Torch", "Ort" -> Optional.of(new Measurement(cls.toLowerCase(Locale.ROOT),
                    params.path("backend").asText("cpu"), params.path("problem").asText(), method,
                    params.path("dtype").asText("float32"), score, err, s));
            case "Ceilings" -> Optional.of(new Measurement(Measurement.CEILING, "cpu", method, "-", "float32",
                    score, err, s));
            default -> Optional.empty();
        };
    }

    private static double toMillis(String unit) {
        return switch (unit) {
            case "s/op" -> 1e3;
            case "ms/op" -> 1;
            case "us/op" -> 1e-3;
            case "ns/op" -> 1e-6;
            default -> throw new IllegalArgumentException("results: expected a time-per-operation score unit, got " + unit);
        };
    }
}
