package org.kernels4j.bench;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.stream.Stream;

/**
 * Benchmark runs grouped by machine and ordered by date, and the regression check of each machine's newest
 * run against the runs before it.
 */
final class History {

    /** The check of one kernels4j benchmark of a machine's newest run. */
    record Finding(String machine, String key, Measurement newest, RegressionCheck.Verdict verdict) {
    }

    private final Map<String, List<RunRecord>> byMachine = new TreeMap<>();

    History(List<RunRecord> runs) {
        for (RunRecord r : runs) {
            byMachine.computeIfAbsent(r.meta().machine(), m -> new ArrayList<>()).add(r);
        }
        for (List<RunRecord> l : byMachine.values()) {
            l.sort(Comparator.comparing(RunRecord::date));
        }
    }

    /**
     * Reads every JMH result under the given files and folders (folders recursively; JSON files of other kinds
     * there, such as device-check reports, are passed over). A file named directly must be a JMH result.
     */
    static History load(List<Path> paths) {
        List<RunRecord> runs = new ArrayList<>();
        for (Path p : paths) {
            if (Files.isDirectory(p)) {
                try (Stream<Path> s = Files.walk(p)) {
                    for (Path f : s.filter(RunRecord::isResultFile).sorted().toList()) {
                        RunRecord.tryRead(f).ifPresent(runs::add);
                    }
                } catch (IOException e) {
                    throw new UncheckedIOException("reading " + p + ": " + e.getMessage(), e);
                }
            } else if (Files.isRegularFile(p)) {
                runs.add(RunRecord.read(p));
            } else {
                throw new IllegalArgumentException("RESULTS: " + p + " is neither a result file nor a folder");
            }
        }
        return new History(runs);
    }

    /** Machine names, sorted. */
    List<String> machines() {
        return List.copyOf(byMachine.keySet());
    }

    /** A machine's runs, oldest first. */
    List<RunRecord> runs(String machine) {
        return List.copyOf(byMachine.getOrDefault(machine, List.of()));
    }

    /** Whether there is no run at all. */
    boolean isEmpty() {
        return byMachine.isEmpty();
    }

    /**
     * How far a machine's ceilings (memory copy, FMA loop) may move from the earlier runs to the newest one before
     * the newest run's changes are put down to the host rather than the code (tuning knob). On a shared machine
     * another tenant's load slows the ceilings and kernels4j alike: a run whose copy ceiling read 8.4 GB/s against
     * 28 flagged every OpenCL benchmark, none of whose code had changed.
     */
    static final double HOST_TOLERANCE = 1.15;

    /**
     * Every kernels4j benchmark of each machine's newest run, checked against up to
     * {@link RegressionCheck#BASELINE_RUNS} earlier runs of that machine that measured it; where the newest run's
     * ceilings moved by more than {@link #HOST_TOLERANCE}, its regressions and improvements are
     * {@link RegressionCheck.Status#HOST_CHANGED}.
     */
    List<Finding> check() {
        List<Finding> out = new ArrayList<>();
        for (Map.Entry<String, List<RunRecord>> e : byMachine.entrySet()) {
            List<RunRecord> runs = e.getValue();
            RunRecord newest = runs.get(runs.size() - 1);
            boolean hostChanged = hostChange(e.getKey()) > HOST_TOLERANCE;
            for (Measurement m : newest.measurements()) {
                if (!m.impl().equals(Measurement.OURS)) {
                    continue;
                }
                RegressionCheck.Verdict v = RegressionCheck.compare(baseline(runs, m.key()), m.samplesMs());
                if (hostChanged && (v.status() == RegressionCheck.Status.REGRESSION
                        || v.status() == RegressionCheck.Status.IMPROVEMENT)) {
                    v = v.hostChanged();
                }
                out.add(new Finding(e.getKey(), m.key(), m, v));
            }
        }
        return out;
    }

    /**
     * How much a machine's newest run's ceilings moved against its earlier runs: for each ceiling, its best
     * iteration over the mean of the baseline runs' best iterations, or the inverse where it got faster; the
     * largest over the ceilings (1 when there is nothing to compare).
     */
    double hostChange(String machine) {
        List<RunRecord> runs = byMachine.getOrDefault(machine, List.of());
        if (runs.size() < 2) {
            return 1;
        }
        double worst = 1;
        for (Measurement c : runs.get(runs.size() - 1).measurements()) {
            if (!c.impl().equals(Measurement.CEILING)) {
                continue;
            }
            double base = baseline(runs, c.key()).stream()
                    .mapToDouble(s -> java.util.Arrays.stream(s).min().orElse(Double.NaN)).average().orElse(Double.NaN);
            if (base > 0 && c.min() > 0) {
                double ratio = c.min() / base;
                worst = Math.max(worst, Math.max(ratio, 1 / ratio));
            }
        }
        return worst;
    }

    /** The samples of {@code key} in up to {@link RegressionCheck#BASELINE_RUNS} runs before the newest, newest first. */
    private static List<double[]> baseline(List<RunRecord> runs, String key) {
        List<double[]> baseline = new ArrayList<>();
        for (int i = runs.size() - 2; i >= 0 && baseline.size() < RegressionCheck.BASELINE_RUNS; i--) {
            Measurement old = runs.get(i).byKey().get(key);
            if (old != null && old.samplesMs().length > 0) {
                baseline.add(old.samplesMs());
            }
        }
        return baseline;
    }
}
