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
     * Every kernels4j benchmark of each machine's newest run, checked against up to
     * {@link RegressionCheck#BASELINE_RUNS} earlier runs of that machine that measured it.
     */
    List<Finding> check() {
        List<Finding> out = new ArrayList<>();
        for (Map.Entry<String, List<RunRecord>> e : byMachine.entrySet()) {
            List<RunRecord> runs = e.getValue();
            RunRecord newest = runs.get(runs.size() - 1);
            for (Measurement m : newest.measurements()) {
                if (!m.impl().equals(Measurement.OURS)) {
                    continue;
                }
                List<double[]> baseline = new ArrayList<>();
                for (int i = runs.size() - 2; i >= 0 && baseline.size() < RegressionCheck.BASELINE_RUNS; i--) {
                    Measurement old = runs.get(i).byKey().get(m.key());
                    if (old != null && old.samplesMs().length > 0) {
                        baseline.add(old.samplesMs());
                    }
                }
                out.add(new Finding(e.getKey(), m.key(), m, RegressionCheck.compare(baseline, m.samplesMs())));
            }
        }
        return out;
    }
}
