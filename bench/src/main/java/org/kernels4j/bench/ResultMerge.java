package org.kernels4j.bench;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Path;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.SerializationFeature;
import com.fasterxml.jackson.databind.node.ArrayNode;

/** Appends the benchmarks of another JMH-format JSON file (an external baseline) to a run's result file. */
final class ResultMerge {

    private static final ObjectMapper JSON = new ObjectMapper().enable(SerializationFeature.INDENT_OUTPUT);

    private ResultMerge() {
    }

    /**
     * Appends every entry of {@code include} to the array in {@code result}; returns how many.
     *
     * @throws IllegalArgumentException when {@code include} is not an array of JMH benchmark results
     */
    static int append(Path result, Path include) {
        try {
            JsonNode run = JSON.readTree(result.toFile());
            JsonNode extra = JSON.readTree(include.toFile());
            if (!(run instanceof ArrayNode target) || extra == null || !extra.isArray()) {
                throw new IllegalArgumentException("include: " + include + " is not a JMH JSON result (expected an array)");
            }
            for (JsonNode b : extra) {
                if (!b.has("benchmark") || !b.path("primaryMetric").has("rawData")) {
                    throw new IllegalArgumentException("include: " + include + " has an entry without benchmark and "
                            + "primaryMetric.rawData: " + b);
                }
            }
            target.addAll((ArrayNode) extra);
            JSON.writeValue(result.toFile(), target);
            return extra.size();
        } catch (IOException e) {
            throw new UncheckedIOException("merging " + include + " into " + result + ": " + e.getMessage(), e);
        }
    }
}
