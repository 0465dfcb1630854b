package org.kernels4j.autotune;

import java.io.IOException;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Comparator;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Optional;

import org.kernels4j.DType;
import org.kernels4j.Device;
import org.kernels4j.tuning.Parameters;
import org.kernels4j.tuning.Tuning;
import org.kernels4j.tuning.TuningSpace;

/**
 * One {@code kernels4j tune} run, in two phases.
 *
 * <p>Survey: every pass runs once on zero-filled inputs ({@link OpWorkload#survey}), which shows the tunable
 * kernels it dispatches ({@link Tuning#trace}) and its device time, without generating any inputs. Passes
 * with nothing to choose (no tunable kernel, only the default valid on this device, every bucket already
 * claimed by another pass) are settled there and cost nothing more.
 *
 * <p>Tuning: the remaining passes, fastest first (they finish their spaces soonest and leave what they did
 * not use to the slower ones), each get an equal share of the time left, but at least an estimate of what a
 * useful search costs (generating the inputs, checking the reference and three candidates, warming up and
 * timing): a short budget is spent on the passes it can tune, and the passes it cannot reach are reported as
 * such. Inside a pass the {@link Tuner} times candidates with device events around the op's launches only;
 * input generation, verification and host copies are paid once per pass or once per candidate. The cost
 * estimates learn, from each pass tuned, how long generating an input element and checking an output element
 * take on this machine. Results are merged into the {@link TuningCache} as soon as each kernel is done; a
 * bucket tuned once in a run is not tuned again for another problem that falls into it.
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
        String name() {
            return problem.name() + " " + pass + " " + problem.dtype() + " on " + device.id();
        }
    }

    /** A surveyed unit with kernels to tune: the kernels' resolutions (one per kernel and bucket). */
    private record Planned(int index, Unit unit, OpWorkload.Survey survey, List<Tuning.Resolution> kernels) {
    }

    /** Candidates besides the default that a pass's budget must allow for it to be worth starting. */
    static final int MIN_CANDIDATES = 3;
    /** Warm-up and timed runs per candidate assumed by the estimate (the tuner stops earlier on slow ones). */
    static final int RUNS_PER_CANDIDATE = 12;
    /** The survey may use at most this share of the budget; passes not surveyed by then are not tuned. */
    static final double SURVEY_SHARE = 0.3;

    private final TuningCache cache;
    private final Tuner tuner;
    private final boolean resume;
    private final Progress progress;
    /** Host nanoseconds to generate and upload one input element, and to check one output element: learned. */
    private double createNanosPerElement = 20;
    private double checkNanosPerElement = 10;

    TuningRun(TuningCache cache, Tuner tuner, boolean resume, Progress progress) {
        this.cache = cache;
        this.tuner = tuner;
        this.resume = resume;
        this.progress = progress;
    }

    /** Tunes every pass of {@code problems} on each device (the problems each device's dtypes allow). */
    List<Row> run(Map<Device, List<Problem>> problems, Duration budget) {
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
        Instant start = Instant.now();
        Instant deadline = start.plus(budget);
        Instant surveyEnd = start.plusMillis((long) (budget.toMillis() * SURVEY_SHARE));
        Row[][] rows = new Row[units.size()][];
        List<Planned> planned = new ArrayList<>();
        for (int i = 0; i < units.size(); i++) {
            Unit u = units.get(i);
            progress.unit("survey: " + u.name(), i, units.size());
            if (Instant.now().isAfter(surveyEnd)) {
                rows[i] = new Row[] {skipped(u, "not tuned: budget spent (the survey of the passes before it took "
                        + SURVEY_SHARE * 100 + "% of it)")};
                continue;
            }
            try {
                OpWorkload.Survey s = OpWorkload.survey(u.problem(), u.pass(), u.device());
                String why = surveyVerdict(u, s);
                if (why != null) {
                    rows[i] = new Row[] {skipped(u, why)};
                } else {
                    planned.add(new Planned(i, u, s, tunable(u, s)));
                }
            } catch (RuntimeException | OutOfMemoryError e) {
                rows[i] = new Row[] {skipped(u, "error: " + e)};
            }
        }
        planned.sort(Comparator.comparingDouble(p -> p.survey().deviceMillis()));
        // a bucket goes to the first (fastest) pass that has it; a pass left without buckets is settled
        Map<String, String> claims = new HashMap<>();
        List<Planned> order = new ArrayList<>();
        for (Planned p : planned) {
            List<Tuning.Resolution> mine = new ArrayList<>();
            List<String> taken = new ArrayList<>();
            for (Tuning.Resolution r : p.kernels()) {
                String key = bucketKey(p.unit(), r);
                String owner = claims.putIfAbsent(key, p.unit().problem().name() + " " + p.unit().pass());
                if (owner == null) {
                    mine.add(r);
                } else {
                    taken.add(r.kernelId() + " bucket " + r.bucket() + " goes to " + owner);
                }
            }
            if (mine.isEmpty()) {
                rows[p.index()] = new Row[] {skipped(p.unit(), "not tuned here: " + String.join("; ", taken))};
            } else {
                order.add(new Planned(p.index(), p.unit(), p.survey(), mine));
            }
        }
        for (int j = 0; j < order.size(); j++) {
            Planned p = order.get(j);
            Unit u = p.unit();
            progress.unit(u.name(), j, order.size());
            long left = Duration.between(Instant.now(), deadline).toNanos();
            long need = minimumNanos(p);
            long share = left / (order.size() - j);
            if (need > left) {
                rows[p.index()] = new Row[] {skipped(u, String.format(Locale.ROOT, "not tuned: budget spent (a useful "
                        + "search needs about %.1f s: inputs, reference and %d candidates checked, %.3f ms a run on "
                        + "the device; %.1f s left)", need / 1e9, MIN_CANDIDATES, p.survey().deviceMillis(),
                        Math.max(0, left) / 1e9))};
                continue;
            }
            try {
                rows[p.index()] = tuneUnit(p, Instant.now().plusNanos(Math.max(share, need))).toArray(Row[]::new);
            } catch (RuntimeException | OutOfMemoryError e) {
                rows[p.index()] = new Row[] {skipped(u, "error: " + e)};
            }
        }
        List<Row> out = new ArrayList<>();
        for (Row[] r : rows) {
            out.addAll(Arrays.asList(r));
        }
        return out;
    }

    /** Why a surveyed pass has nothing to tune, or null when it has. */
    private static String surveyVerdict(Unit u, OpWorkload.Survey s) {
        List<Tuning.Resolution> kernels = kernelsOn(u, s.trace());
        if (kernels.isEmpty()) {
            return "no tunable kernel in this pass";
        }
        if (!tunable(u, s).isEmpty()) {
            return null;
        }
        List<String> why = new ArrayList<>();
        for (Tuning.Resolution r : kernels) {
            Optional<TuningSpace<?>> space = Tuning.space(r.kernelId());
            why.add(space.isEmpty() ? r.kernelId() + ": space not registered"
                    : r.kernelId() + ": only the default is valid on this device (of " + space.get().size() + ")");
        }
        return "nothing to choose: " + String.join("; ", why);
    }

    /** The kernels of {@code s} on {@code u}'s device, one per kernel and bucket. */
    private static List<Tuning.Resolution> kernelsOn(Unit u, List<Tuning.Resolution> trace) {
        LinkedHashMap<String, Tuning.Resolution> kernels = new LinkedHashMap<>();
        for (Tuning.Resolution r : trace) {
            if (r.deviceId().equals(u.device().id())) {
                kernels.putIfAbsent(r.kernelId() + "|" + r.bucket(), r);
            }
        }
        return new ArrayList<>(kernels.values());
    }

    /** The kernels of the pass whose space offers this device more than one valid combination. */
    private static List<Tuning.Resolution> tunable(Unit u, OpWorkload.Survey s) {
        List<Tuning.Resolution> out = new ArrayList<>();
        for (Tuning.Resolution r : kernelsOn(u, s.trace())) {
            Optional<TuningSpace<?>> space = Tuning.space(r.kernelId());
            if (space.isPresent() && space.get().validCombinations(u.device().capabilities()).size() > 1) {
                out.add(r);
            }
        }
        return out;
    }

    private static String bucketKey(Unit u, Tuning.Resolution r) {
        return u.device().id() + "|" + r.kernelId() + "|" + u.problem().dtype() + "|" + r.bucket();
    }

    /**
     * What a useful search of the pass costs: generating its inputs, checking the reference and
     * {@link #MIN_CANDIDATES} candidates, the default's warm-up, and each candidate's runs on the device.
     */
    private long minimumNanos(Planned p) {
        double run = p.survey().deviceMillis() * 1e6;
        double check = checkNanosPerElement * p.survey().outputElements() + 2 * run;
        double create = createNanosPerElement * p.survey().inputElements() * (p.unit().pass().equals("forward") ? 1 : 2);
        return (long) (create + (1 + MIN_CANDIDATES) * check + Tuner.WARM_NANOS
                + (1 + MIN_CANDIDATES) * RUNS_PER_CANDIDATE * run) * p.kernels().size();
    }

    private List<Row> tuneUnit(Planned p, Instant unitDeadline) {
        Unit u = p.unit();
        List<Row> rows = new ArrayList<>();
        long t0 = System.nanoTime();
        try (OpWorkload w = OpWorkload.create(u.problem(), u.pass(), u.device(), u.problem().name().hashCode())) {
            long t1 = System.nanoTime();
            createNanosPerElement = (t1 - t0) / (double) Math.max(1, p.survey().inputElements())
                    / (u.pass().equals("forward") ? 1 : 2);
            // the reference: every kernel of the pass at the parameters it resolves to now (the defaults,
            // unless an earlier run or pass tuned one), which the candidates of each kernel are compared with
            Workload.Check[] first = new Workload.Check[1];
            List<Tuning.Resolution> trace = Tuning.trace(() -> first[0] = w.check());
            checkNanosPerElement = Math.max(0.1, (System.nanoTime() - t1 - p.survey().deviceMillis() * 1e6)
                    / Math.max(1, p.survey().outputElements()));
            Workload.Check reference = trace.stream().allMatch(r -> r.source() == Tuning.Source.DEFAULT)
                    ? first[0] : null;
            int left = p.kernels().size();
            for (Tuning.Resolution r : p.kernels()) {
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
        DeviceKey key = DeviceKey.of(d);
        String problemText = u.problem().name() + " " + u.pass() + ": " + u.problem().describe();
        TuningCache.Entry wanted = entry(key, s, dt, r.bucket(), problemText, false, List.of());
        Optional<TuningCache.Entry> existing = cache.entries(key).stream()
                .filter(e -> e.key().equals(wanted.key())).findFirst();
        if (resume && existing.isPresent() && existing.get().complete() && existing.get().best().isPresent()) {
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
