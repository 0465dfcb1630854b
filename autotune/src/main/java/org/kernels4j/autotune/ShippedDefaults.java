package org.kernels4j.autotune;

import java.io.IOException;
import java.io.InputStream;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.concurrent.ConcurrentHashMap;
import java.util.function.Consumer;

import com.fasterxml.jackson.databind.DeserializationFeature;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;

import org.kernels4j.DType;
import org.kernels4j.tuning.Parameters;
import org.kernels4j.tuning.TuningSpace;

/**
 * Tuned parameters shipped with kernels4j, as class-path resources under
 * {@code org/kernels4j/autotune/defaults/<backend>/}: {@code device-<device>.json},
 * {@code architecture-<architecture>.json}, {@code vendor-<vendor>.json} and {@code generic.json} (names
 * normalised as in {@link DeviceKey#normalize}). A lookup tries them in that order, the way CLBlast's database
 * falls back from a device to its family and vendor; within a file an exact bucket beats {@code "*"}, and an
 * entry with a {@code sourceHash} other than the kernel's is stale and skipped.
 *
 * <p>File format: {@code {"format": 1, "entries": [{"kernel": "...", "dtype": "float32" or "*", "bucket": "..."
 * or "*", "sourceHash": optional, "parameters": {"NAME": value, ...}}]}}. {@code kernels4j cache export
 * --as-defaults} writes such a file from a tuning run.
 */
final class ShippedDefaults {

    static final String ROOT = "org/kernels4j/autotune/defaults/";

    private static final ObjectMapper JSON = new ObjectMapper()
            .disable(DeserializationFeature.FAIL_ON_UNKNOWN_PROPERTIES);

    /**
     * One shipped entry.
     *
     * @param kernel     the kernel id
     * @param dtype      a dtype label or {@code "*"}
     * @param bucket     a shape bucket or {@code "*"}
     * @param sourceHash the kernel source hash it was tuned for, or null for any
     * @param parameters the parameters
     * @param note       where it came from, or null
     */
    record Shipped(String kernel, String dtype, String bucket, String sourceHash, Map<String, Integer> parameters,
                   String note) {
    }

    /** A file of shipped entries. */
    record ShippedFile(int format, List<Shipped> entries) {
        ShippedFile {
            entries = List.copyOf(entries == null ? List.of() : entries);
        }
    }

    /** A shipped match with the level it came from. */
    record Match(Parameters parameters, String origin) {
    }

    private final ClassLoader loader;
    private final Consumer<String> warnings;
    private final Map<String, List<Shipped>> files = new ConcurrentHashMap<>();

    ShippedDefaults(ClassLoader loader, Consumer<String> warnings) {
        this.loader = loader;
        this.warnings = warnings;
    }

    /** The resource names tried for a device, most specific first. */
    static List<String> chain(DeviceKey key) {
        String dir = ROOT + key.backend() + "/";
        return List.of(dir + "device-" + key.device() + ".json", dir + "architecture-" + key.architecture() + ".json",
                dir + "vendor-" + key.vendor() + ".json", dir + "generic.json");
    }

    Optional<Match> find(DeviceKey key, TuningSpace<?> space, DType dtype, String bucket) {
        for (String resource : chain(key)) {
            List<Shipped> entries = files.computeIfAbsent(resource, this::load);
            Shipped exact = null;
            Shipped any = null;
            for (Shipped s : entries) {
                if (!space.kernelId().equals(s.kernel())
                        || !(dtype.label().equals(s.dtype()) || "*".equals(s.dtype()))
                        || (s.sourceHash() != null && !s.sourceHash().equals(space.sourceHash()))
                        || s.parameters() == null) {
                    continue;
                }
                if (bucket.equals(s.bucket()) && exact == null) {
                    exact = s;
                } else if ("*".equals(s.bucket()) && any == null) {
                    any = s;
                }
            }
            Shipped hit = exact != null ? exact : any;
            if (hit != null) {
                String level = resource.substring(resource.lastIndexOf('/') + 1, resource.length() - ".json".length());
                return Optional.of(new Match(Parameters.of(hit.parameters()),
                        "shipped " + key.backend() + "/" + level + (hit.note() == null ? "" : " (" + hit.note() + ")")));
            }
        }
        return Optional.empty();
    }

    private List<Shipped> load(String resource) {
        try (InputStream in = loader.getResourceAsStream(resource)) {
            if (in == null) {
                return List.of();
            }
            JsonNode root = JSON.readTree(in);
            if (root == null || !root.path("format").isInt() || root.get("format").asInt() != TuningCache.FORMAT) {
                warnings.accept("shipped tuning defaults " + resource + " have an unknown format; ignored");
                return List.of();
            }
            return new ArrayList<>(JSON.treeToValue(root, ShippedFile.class).entries());
        } catch (IOException | RuntimeException e) {
            warnings.accept("shipped tuning defaults " + resource + " cannot be read (" + e.getMessage() + "); ignored");
            return List.of();
        }
    }
}
