package org.kernels4j.bench;

import java.util.ArrayList;
import java.util.Comparator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.regex.Pattern;

import org.kernels4j.DType;

/**
 * The benchmarks one {@code bench} run makes, each one JMH benchmark method with its parameters: kernels4j's
 * ops on every chosen backend (the CPU set on cpu and opencl, the GPU set with its dtypes on cuda), the peers
 * on the CPU set, and the two ceilings (the FMA one where the Vector API is readable). Filters keep the items whose
 * {@link Item#key()} they match. Each CPU-set problem and direction is measured on every backend and by the peers
 * one after the other, so that a ratio compares measurements taken under the same load.
 */
final class BenchPlan {

    /**
     * One benchmark: the JMH benchmark class and method, and its parameters.
     *
     * @param key the measurement key, as {@link Measurement#key()} will read it back
     */
    record Item(String key, String benchmarkClass, String method, Map<String, String> params) {
        /** JMH's include pattern for exactly this method. */
        String include() {
            return "^" + Pattern.quote(BenchPlan.class.getPackageName() + "." + benchmarkClass + "." + method) + "$";
        }

        /** {@code problem/direction}, the last two parts of the key. */
        String problemAndDirection() {
            String[] parts = key.split("/");
            return parts[parts.length - 2] + "/" + parts[parts.length - 1];
        }
    }

    private BenchPlan() {
    }

    /**
     * The items for these backends (name to the dtypes its device supports); {@code peers} adds PyTorch (forward and backward) and
     * ONNX Runtime (forward) on the CPU set; {@code ceilings} adds the copy and FMA ceilings. A filter list
     * that is not empty keeps the items whose key any pattern finds (ceilings are kept regardless, since the
     * roofline needs them).
     */
    static List<Item> of(Map<String, Set<DType>> backends, boolean peers, boolean ceilings, List<Pattern> filters) {
        List<Item> items = new ArrayList<>();
        for (Map.Entry<String, Set<DType>> b : backends.entrySet()) {
            String backend = b.getKey();
            BenchProblem.Set set = backend.equals("cuda") ? BenchProblem.Set.GPU : BenchProblem.Set.CPU;
            for (BenchProblem p : ProblemSet.of(set)) {
                for (DType dt : p.dtypes()) {
                    if (!b.getValue().contains(dt)) {
                        continue;
                    }
                    for (Direction dir : Direction.values()) {
                        items.add(item(Measurement.OURS, "Ours", backend, p.name(), dir.label(), dt.label(),
                                params("backend", backend, "problem", p.name(), "dtype", dt.label())));
                    }
                }
            }
        }
        if (peers) {
            for (BenchProblem p : ProblemSet.of(BenchProblem.Set.CPU)) {
                for (Direction dir : Direction.values()) {
                    items.add(item("torch", "Torch", "cpu", p.name(), dir.label(), "float32", params("problem", p.name())));
                }
                items.add(item("ort", "Ort", "cpu", p.name(), "forward", "float32", params("problem", p.name())));
            }
        }
        // the CPU set problem by problem, each direction's benchmarks one after the other (ours on every backend,
        // then the peers): on a shared machine the load drifts over a run, and a ratio of two measurements taken
        // minutes apart measures the drift too (the GPU set, which has no peers here, keeps its place after them)
        List<String> cpuOrder = new ArrayList<>();
        for (BenchProblem p : ProblemSet.of(BenchProblem.Set.CPU)) {
            for (Direction dir : Direction.values()) {
                cpuOrder.add(p.name() + "/" + dir.label());
            }
        }
        items.sort(Comparator.comparingInt(i -> {
            int at = cpuOrder.indexOf(i.problemAndDirection());
            return at < 0 ? cpuOrder.size() : at;
        }));
        List<Item> kept = new ArrayList<>();
        if (ceilings) {
            // the copy ceiling first, next to the layer norm problems it is the roof of (the first of the CPU set):
            // measured at the end of a run, ten minutes later, it compared two different loads of the memory system
            // (its 12.7-17.8 GB/s against layer norm's 8-11 GB/s in three runs on one evening)
            kept.add(item(Measurement.CEILING, "Ceilings", "cpu", "copy", "-", "float32", Map.of()));
        }
        for (Item i : items) {
            if (filters.isEmpty() || filters.stream().anyMatch(f -> f.matcher(i.key()).find())) {
                kept.add(i);
            }
        }
        if (ceilings) {
            if (vectorApi()) {
                kept.add(item(Measurement.CEILING, "Ceilings", "cpu", "fma", "-", "float32", Map.of()));
            }
        }
        return kept;
    }

    /**
     * Whether this JVM reads the Vector API ({@code --add-modules jdk.incubator.vector}); without it the FMA
     * ceiling cannot run and the forks do not get the module either (a trimmed runtime may lack it).
     */
    static boolean vectorApi() {
        return ModuleLayer.boot().findModule("jdk.incubator.vector").isPresent();
    }

    private static Item item(String impl, String cls, String backend, String problem, String direction, String dtype,
                             Map<String, String> params) {
        String method = impl.equals(Measurement.CEILING) ? problem : direction;
        String key = impl + "/" + backend + "/" + dtype + "/" + problem + "/" + direction;
        return new Item(key, cls, method, params);
    }

    private static Map<String, String> params(String... kv) {
        Map<String, String> m = new LinkedHashMap<>();
        for (int i = 0; i < kv.length; i += 2) {
            m.put(kv[i], kv[i + 1]);
        }
        return m;
    }
}
