package org.kernels4j.autotune;

import java.io.IOException;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;

import org.kernels4j.DType;
import org.kernels4j.Device;
import org.kernels4j.tuning.Parameters;
import org.kernels4j.tuning.Tuning;
import org.kernels4j.tuning.TuningSpace;

/**
 * One {@code kernels4j tune} run: for every device, problem and pass, runs the pass once to see which tunable
 * kernels it dispatches ({@link Tuning#trace}), tunes each kernel's space for that shape bucket with the
 * {@link Tuner}, and merges the results into the {@link TuningCache} as soon as each is done. The budget is
 * shared out as the run goes: each pass gets an equal share of what is left, each kernel of the pass an
 * equal share of that. A bucket tuned once in a run is not tuned again for another problem that falls into
 * it.
 */
final class TuningRun {

    /**
     * One line of the final table.
     *
     * @param problem   problem name
     * @param pass      forward, backward, ...
     * @param device    device id
     * @param kernel    kernel id, or empty when the pass has none tunable
     * @param dtype     dtype
     * @param defaultMs the default parameters' median time, NaN when not measured
     * @param tunedMs   the chosen parameters' median time, NaN when not measured
     * @param chosen    the chosen parameters, or null
     * @param note      counts of tried candidates, or why nothing was tuned
     */
    record Row(String problem, String pass, String device, String kernel, DType dtype, double defaultMs,
               double tunedMs, Parameters chosen, String note) {
    }

    /** Progress callbacks. */
    interface Progress {
        void unit(String name, int index, int total);

        void candidate(String text);
    }

    private record Unit(Device device, Problem problem, String pass) {
    }

    /**
     * Runs a pass's share of the budget must fit for tuning to be worth starting: warm-up, the default's
     * timing, one candidate's check and timing, and the confirming re-measure. Passes that do not fit are
     * skipped, leaving their time to the others.
     */
    static final int RUNS_NEEDED = 6;

    private final TuningCache cache;
    private final Tuner tuner;
    private final boolean resume;
    private final Progress progress;
    private final Map<String, String> tunedBuckets = new HashMap<>();

    TuningRun(TuningCache cache, Tuner tuner, boolean resume, Progress progress) {
        this.cache = cache;
        this.tuner = tuner;
        this.resume = resume;
        this.progress = progress;
    }

    /** Tunes every pass of {@code problems} on each device (the problems each device's dtypes allow). */
    List<Row> run(Map<Device, List<Problem>> problems, Duration budget) {
        // problem by problem, each pass on every device in turn, so that a budget that runs out leaves every
        // device with its first problems tuned
        List<Unit> units = new ArrayList<>();
        int longest = problems.values().stream().mapToInt(List::size).max().orElse(0);
        for (int i = 0; i < longest; i++) {
            for (int pass = 0; pass < 3; pass++) {
                for (Map.Entry<Device, List<Problem>> e : problems.entrySet()) {
                    Device d = e.getKey();
                    if (i < e.getValue().size()) {
                        Problem p = e.getValue().get(i);
                        if (pass < p.passes().size() && d.capabilities().supports(p.dtype())) {
                            units.add(new Unit(d, p, p.passes().get(pass)));
                        }
                    }
                }
            }
        }
        Instant deadline = Instant.now().plus(budget);
        List<Row> rows = new ArrayList<>();
        for (int i = 0; i < units.size(); i++) {
            Unit u = units.get(i);
            progress.unit(u.problem().name() + " " + u.pass() + " " + u.problem().dtype() + " on " + u.device().id(),
                    i, units.size());
            Duration left = Duration.between(Instant.now(), deadline);
            if (left.isNegative() || left.isZero()) {
                rows.add(skipped(u, "not tuned: budget spent"));
                continue;
            }
            Instant unitDeadline = Instant.now().plus(left.dividedBy(units.size() - i));
            try {
                rows.addAll(tuneUnit(u, unitDeadline));
            } catch (RuntimeException | OutOfMemoryError e) {
                rows.add(skipped(u, "error: " + e));
            }
        }
        return rows;
    }

    private List<Row> tuneUnit(Unit u, Instant unitDeadline) {
        List<Row> rows = new ArrayList<>();
        try (OpWorkload w = OpWorkload.create(u.problem(), u.pass(), u.device(), u.problem().name().hashCode())) {
            // the first run shows which kernels the pass dispatches; when all ran their defaults, its output
            // is the reference every candidate is compared with
            Workload.Check[] first = new Workload.Check[1];
            long t0 = System.nanoTime();
            List<Tuning.Resolution> trace = Tuning.trace(() -> first[0] = w.check());
            long oneRun = System.nanoTime() - t0;
            Workload.Check reference = trace.stream().allMatch(r -> r.source() == Tuning.Source.DEFAULT)
                    ? first[0] : null;
            LinkedHashMap<String, Tuning.Resolution> kernels = new LinkedHashMap<>();
            for (Tuning.Resolution r : trace) {
                if (r.deviceId().equals(u.device().id())) {
                    kernels.putIfAbsent(r.kernelId() + "|" + r.bucket(), r);
                }
            }
            if (kernels.isEmpty()) {
                rows.add(skipped(u, "no tunable kernel in this pass"));
                return rows;
            }
            long unitNanos = Duration.between(Instant.now(), unitDeadline).toNanos();
            // the first run pays for compilation and a cold JIT: while runs keep getting faster, ask again
            long spent = 0;
            while (oneRun * RUNS_NEEDED > unitNanos && spent + oneRun <= unitNanos / 2) {
                long again = (long) (w.time(0) * 1e6);
                spent += again;
                boolean improving = again < 0.8 * oneRun;
                oneRun = Math.min(oneRun, again);
                if (!improving) {
                    break;
                }
            }
            if (oneRun * RUNS_NEEDED > unitNanos) {
                rows.add(skipped(u, String.format(java.util.Locale.ROOT, "not tuned: one run takes %.0f ms; this "
                        + "pass's share of the budget (%.1f s) fits fewer than %d runs", oneRun / 1e6, unitNanos / 1e9,
                        RUNS_NEEDED)));
                return rows;
            }
            int left = kernels.size();
            for (Tuning.Resolution r : kernels.values()) {
                Duration share = Duration.between(Instant.now(), unitDeadline).dividedBy(left--);
                rows.add(tuneKernel(u, w, r, reference, Instant.now().plus(share.isNegative() ? Duration.ZERO : share)));
            }
        }
        return rows;
    }

    private Row tuneKernel(Unit u, OpWorkload w, Tuning.Resolution r, Workload.Check reference, Instant deadline) {
        Device d = u.device();
        DType dt = u.problem().dtype();
        Optional<TuningSpace<?>> space = Tuning.space(r.kernelId());
        if (space.isEmpty()) {
            return new Row(u.problem().name(), u.pass(), d.id(), r.kernelId(), dt, Double.NaN, Double.NaN, null,
                    "space not registered");
        }
        TuningSpace<?> s = space.get();
        String bucketKey = d.id() + "|" + s.kernelId() + "|" + dt + "|" + r.bucket();
        String claimedBy = tunedBuckets.get(bucketKey);
        if (claimedBy != null) {
            return new Row(u.problem().name(), u.pass(), d.id(), s.kernelId(), dt, Double.NaN, Double.NaN, null,
                    "bucket " + r.bucket() + " already tuned on " + claimedBy);
        }
        DeviceKey key = DeviceKey.of(d);
        String problemText = u.problem().name() + " " + u.pass() + ": " + u.problem().describe();
        TuningCache.Entry wanted = entry(key, s, dt, r.bucket(), problemText, false, List.of());
        Optional<TuningCache.Entry> existing = cache.entries(key).stream()
                .filter(e -> e.key().equals(wanted.key())).findFirst();
        if (resume && existing.isPresent() && existing.get().complete() && existing.get().best().isPresent()) {
            tunedBuckets.put(bucketKey, u.problem().name());
            TuningCache.Entry e = existing.get();
            return new Row(u.problem().name(), u.pass(), d.id(), s.kernelId(), dt,
                    e.defaultResult().map(TuningCache.Result::millis).orElse(Double.NaN), e.best().get().millis(),
                    Parameters.of(e.best().get().parameters()), "cached, complete (--resume)");
        }
        List<TuningCache.Result> known = resume && existing.isPresent()
                && existing.get().problem().equals(problemText) ? existing.get().results() : List.of();
        Parameters start = existing.flatMap(TuningCache.Entry::best).map(b -> Parameters.of(b.parameters())).orElse(null);
        Tuner.Outcome o = tuner.tune(w, s, d.capabilities(), start, known, reference, deadline,
                (p, phase) -> progress.candidate(s.kernelId() + " " + phase + " " + p));
        tunedBuckets.put(bucketKey, u.problem().name());
        TuningCache.Entry done = entry(key, s, dt, r.bucket(), problemText, o.complete(), o.results());
        try {
            cache.merge(key, List.of(done));
        } catch (IOException e) {
            return new Row(u.problem().name(), u.pass(), d.id(), s.kernelId(), dt, o.defaultResult().millis(),
                    o.best().millis(), Parameters.of(o.best().parameters()), "NOT SAVED: " + e);
        }
        Tuning.refresh();
        TuningCache.Entry merged = cache.entries(key).stream().filter(e -> e.key().equals(done.key())).findFirst()
                .orElse(done);
        TuningCache.Result best = merged.best().orElse(o.best());
        String note = o.results().size() + " tried of " + o.validCount() + " valid: " + o.count(TuningCache.OK)
                + " ok, " + o.count(TuningCache.REJECTED) + " rejected, " + o.count(TuningCache.ABANDONED)
                + " abandoned" + (o.complete() ? "" : ", stopped by the budget");
        return new Row(u.problem().name(), u.pass(), d.id(), s.kernelId(), dt, o.defaultResult().millis(),
                best.millis(), Parameters.of(best.parameters()), note);
    }

    static TuningCache.Entry entry(DeviceKey key, TuningSpace<?> s, DType dt, String bucket, String problem,
                                   boolean complete, List<TuningCache.Result> results) {
        return new TuningCache.Entry(key.backend(), key.device(), key.driver(), key.library(), s.sourceHash(),
                s.kernelId(), dt.label(), bucket, problem, complete, Instant.now().toString(), results);
    }

    private static Row skipped(Unit u, String why) {
        return new Row(u.problem().name(), u.pass(), u.device().id(), "", u.problem().dtype(), Double.NaN, Double.NaN,
                null, why);
    }
}
