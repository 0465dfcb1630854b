package org.kernels4j.autotune;

import java.time.Instant;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.Set;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;

import org.kernels4j.DType;
import org.kernels4j.DeviceCapabilities;
import org.kernels4j.tuning.Parameters;
import org.kernels4j.tuning.Tuning;
import org.kernels4j.tuning.TuningSpace;

/**
 * Searches one kernel's {@link TuningSpace} for the fastest correct parameters on one {@link Workload}.
 *
 * <p>The default parameters run first on the verification inputs; their output is the reference. Every
 * candidate then runs on the same inputs into poisoned, canary-guarded outputs (checked concurrently where
 * the workload allows, which compiles OpenCL programs in parallel) and is rejected when it throws, touches a
 * canary or differs from the reference by more than the dtype's tolerance (relative to the reference's
 * largest magnitude). Survivors are timed with device events, one warm-up run then up to
 * {@code maxRepeats} runs over rotating input sets, and the median kept; a candidate whose fastest run is
 * already {@link #ABANDON_FACTOR} times slower than the best median is abandoned. When the fastest is not the
 * default, the two then run alternately and the median ratio of the pairs decides between them (the search's
 * medians were taken minutes apart, and the lowest of many is biased low). Nothing starts after the deadline,
 * except the default's measurement and that comparison, which every outcome needs.
 */
final class Tuner {

    /** A run at least this long (nanoseconds) right before a measurement is warm-up enough. */
    static final long WARM_NANOS = 100_000_000L;

    /**
     * The least warm-up (nanoseconds) of the first measurement to run a value of a code-path parameter: C2 compiles
     * a kernel's outer methods only after many calls, and runs can stop improving for a while on the way there (the
     * CPU convolution's stride-2 Winograd, after 100 ms, read 14.2 ms a call against 9.1 once warm).
     */
    static final long CODE_WARM_NANOS = 1_000_000_000L;
    /** A candidate whose fastest run is this much slower than the best median so far is abandoned. */
    static final double ABANDON_FACTOR = 1.25;
    /** Runs a measurement normally has before it may stop on time. */
    static final int MIN_SAMPLES = 3;
    /** Pairs of runs, at least, that decide between the default and the search's fastest ({@code duel}). */
    static final int DUEL_PAIRS = 7;

    /**
     * How to search.
     *
     * @param strategy   the strategy
     * @param fraction   for {@link Strategy#RANDOM}, the share of the valid combinations to try, in (0, 1]
     * @param maxRepeats timed runs per candidate at most
     * @param seed       for the random strategy
     */
    record Settings(Strategy strategy, double fraction, int maxRepeats, long seed) {
        Settings {
            if (!(fraction > 0 && fraction <= 1)) {
                throw new IllegalArgumentException("fraction: expected a value in (0, 1], got " + fraction);
            }
            if (maxRepeats < 1) {
                throw new IllegalArgumentException("maxRepeats: expected >= 1, got " + maxRepeats);
            }
        }
    }

    /** Progress callbacks. */
    interface Listener {
        /** Called before each candidate is checked or timed. */
        void candidate(Parameters parameters, String phase);
    }

    /**
     * What a search found.
     *
     * @param results        every candidate tried, the default first
     * @param defaultResult  the default's measurement
     * @param best           the fastest verified result (the default when nothing beat it)
     * @param complete       whether the strategy ran to its end before the deadline
     * @param validCount     valid combinations on this device
     */
    record Outcome(List<TuningCache.Result> results, TuningCache.Result defaultResult, TuningCache.Result best,
                   boolean complete, int validCount) {

        long count(String status) {
            return results.stream().filter(r -> r.status().equals(status)).count();
        }
    }

    private final Settings settings;

    Tuner(Settings settings) {
        this.settings = settings;
    }

    /** The largest relative difference from the reference that a candidate may show, per dtype. */
    static double tolerance(DType dtype) {
        return switch (dtype) {
            case FLOAT32 -> 1e-4;
            case FLOAT16 -> 1e-2;
            case BFLOAT16 -> 5e-2;
        };
    }

    /**
     * Searches {@code space} on {@code workload}.
     *
     * @param capabilities the device's, for the space's constraints
     * @param start        where a local search starts (the cached best, say), or null for the default
     * @param known        results of an interrupted earlier search of the same problem, not measured again
     *                     (the default always is)
     * @param reference    what {@link Workload#check()} returned with every kernel at its default, or null
     *                     to run the default once for it
     * @param deadline     when to stop starting candidates
     * @throws IllegalStateException when the default itself leaves outputs unwritten or touches a canary
     */
    Outcome tune(Workload workload, TuningSpace<?> space, DeviceCapabilities capabilities, Parameters start,
                 List<TuningCache.Result> known, Workload.Check reference, Instant deadline, Listener listener) {
        String kernel = space.kernelId();
        Parameters defaults = space.defaults();
        Workload.Check ref = reference;
        if (ref == null) {
            listener.candidate(defaults, "reference");
            ref = checkOne(workload, kernel, defaults);
        }
        if (ref.canaryProblem() != null) {
            throw new IllegalStateException(workload.name() + ": the default parameters of " + kernel
                    + " fail their own check: " + ref.canaryProblem());
        }
        for (float v : ref.output()) {
            if (Float.isNaN(v)) {
                throw new IllegalStateException(workload.name() + ": the default parameters of " + kernel
                        + " leave outputs unwritten (poison found) or produce NaN; nothing to compare against");
            }
        }
        List<Parameters> valid = space.validCombinations(capabilities);
        if (!space.isValid(defaults, capabilities)) {
            throw new IllegalStateException(kernel + ": default " + defaults + " is not valid on this device: "
                    + space.invalidReason(defaults, capabilities));
        }
        Search s = new Search(workload, space, ref.output(), deadline, listener);
        listener.candidate(defaults, "timing");
        TuningCache.Result def = s.measure(defaults, Phase.FIRST_DEFAULT);
        s.record(def);
        for (TuningCache.Result r : known) {
            if (!Parameters.of(r.parameters()).equals(defaults)) {
                s.record(r);
            }
        }

        Strategy strategy = settings.strategy();
        if (strategy == Strategy.AUTO) {
            strategy = valid.size() <= Strategy.AUTO_EXHAUSTIVE_LIMIT ? Strategy.EXHAUSTIVE : Strategy.LOCAL;
        }
        boolean complete;
        if (strategy == Strategy.LOCAL) {
            complete = s.local(space, capabilities, start != null && space.isValid(start, capabilities) ? start : defaults);
        } else {
            List<Parameters> list = new ArrayList<>(valid);
            list.removeIf(s.results::containsKey);
            if (strategy == Strategy.RANDOM) {
                Collections.shuffle(list, new Random(settings.seed()));
                int n = (int) Math.max(1, Math.ceil(settings.fraction() * valid.size()));
                list = new ArrayList<>(list.subList(0, Math.min(list.size(), n)));
            }
            complete = s.run(list);
        }
        TuningCache.Result fastest = s.best;
        if (fastest != null && !Parameters.of(fastest.parameters()).equals(defaults)) {
            def = s.duel(def, fastest);
        }
        TuningCache.Result best = s.best != null ? s.best : def;
        return new Outcome(List.copyOf(s.results.values()), def, best, complete, valid.size());
    }

    private static Workload.Check checkOne(Workload w, String kernel, Parameters p) {
        Tuning.Scope scope = Tuning.scoped(kernel, p);
        try {
            return w.check();
        } finally {
            scope.close();
        }
    }

    /** Null when {@code out} matches {@code ref} within the tolerance, else why not. */
    static String compare(float[] ref, float[] out, DType dtype) {
        if (out.length != ref.length) {
            return "output has " + out.length + " values, reference " + ref.length;
        }
        double scale = 0;
        for (float v : ref) {
            if (Float.isFinite(v)) {
                scale = Math.max(scale, Math.abs(v));
            }
        }
        scale = Math.max(scale, Float.MIN_NORMAL);
        double worst = 0;
        int at = -1;
        for (int i = 0; i < ref.length; i++) {
            float a = ref[i];
            float b = out[i];
            double d;
            if (Float.isNaN(b)) {
                return "output " + i + " is NaN (unwritten or invalid), reference " + a;
            } else if (Float.isInfinite(a) || Float.isInfinite(b)) {
                d = a == b ? 0 : Double.POSITIVE_INFINITY;
            } else {
                d = Math.abs((double) a - b) / scale;
            }
            if (d > worst) {
                worst = d;
                at = i;
            }
        }
        double tol = tolerance(dtype);
        if (worst > tol) {
            return String.format(java.util.Locale.ROOT, "output %d is %s, the default's %s: relative error %.3g > %.3g",
                    at, out[at], ref[at], worst, tol);
        }
        return null;
    }

    /** Why a measurement is made. */
    private enum Phase {
        /** The default, first: warmed up thoroughly, never abandoned. */
        FIRST_DEFAULT,
        /** A candidate: may be abandoned. */
        CANDIDATE
    }

    /** The state of one search. */
    private final class Search {
        final Workload workload;
        final String kernel;
        final float[] reference;
        final Instant deadline;
        final Listener listener;
        final Map<Parameters, TuningCache.Result> results = new LinkedHashMap<>();
        final Map<Parameters, Long> checkNanos = new java.util.concurrent.ConcurrentHashMap<>();
        /** The values of the space's code-path parameters some measurement has warmed up ("NAME=value"). */
        final Set<String> warmCode = java.util.concurrent.ConcurrentHashMap.newKeySet();
        final TuningSpace<?> space;
        TuningCache.Result best;
        int rotation;

        Search(Workload workload, TuningSpace<?> space, float[] reference, Instant deadline, Listener listener) {
            this.workload = workload;
            this.space = space;
            this.kernel = space.kernelId();
            this.reference = reference;
            this.deadline = deadline;
            this.listener = listener;
        }

        void record(TuningCache.Result r) {
            results.put(Parameters.of(r.parameters()), r);
            best = null;
            for (TuningCache.Result x : results.values()) {
                if (x.ok() && (best == null || x.millis() < best.millis())) {
                    best = x;
                }
            }
        }

        boolean expired() {
            return Instant.now().isAfter(deadline);
        }

        /** Checks then times each candidate in order; false when the deadline cut the list short. */
        boolean run(List<Parameters> candidates) {
            int batch = workload.parallelChecks() ? Math.max(1, Math.min(4, Runtime.getRuntime().availableProcessors())) : 1;
            for (int i = 0; i < candidates.size(); i += batch) {
                if (expired()) {
                    return false;
                }
                List<Parameters> part = candidates.subList(i, Math.min(candidates.size(), i + batch));
                List<String> problems = checkAll(part);
                for (int j = 0; j < part.size(); j++) {
                    Parameters p = part.get(j);
                    if (problems.get(j) != null) {
                        record(rejected(p, problems.get(j)));
                    } else if (expired()) {
                        return false;
                    } else {
                        listener.candidate(p, "timing");
                        record(measure(p, Phase.CANDIDATE));
                    }
                }
            }
            return true;
        }

        /** Local search from {@code start}; false when the deadline stopped it. */
        boolean local(TuningSpace<?> space, DeviceCapabilities caps, Parameters start) {
            Parameters current = start;
            if (!results.containsKey(current)) {
                if (!run(List.of(current))) {
                    return false;
                }
            }
            while (true) {
                Parameters here = best != null ? Parameters.of(best.parameters()) : current;
                List<Parameters> next = new ArrayList<>();
                for (Parameters n : neighbours(space, here)) {
                    if (!results.containsKey(n) && space.isValid(n, caps)) {
                        next.add(n);
                    }
                }
                TuningCache.Result before = best;
                if (next.isEmpty()) {
                    return true;
                }
                if (!run(next)) {
                    return false;
                }
                if (best == before) {
                    return true;
                }
                current = Parameters.of(best.parameters());
            }
        }

        List<String> checkAll(List<Parameters> part) {
            if (part.size() == 1) {
                return Collections.singletonList(checkAndCompare(part.get(0)));
            }
            ExecutorService pool = Executors.newFixedThreadPool(part.size(), r -> {
                Thread t = new Thread(r, "kernels4j-tuner-check");
                t.setDaemon(true);
                return t;
            });
            try {
                List<Future<String>> fs = new ArrayList<>();
                for (Parameters p : part) {
                    fs.add(pool.submit(() -> checkAndCompare(p)));
                }
                List<String> out = new ArrayList<>();
                for (Future<String> f : fs) {
                    try {
                        out.add(f.get());
                    } catch (ExecutionException e) {
                        out.add("check failed: " + e.getCause());
                    } catch (InterruptedException e) {
                        Thread.currentThread().interrupt();
                        throw new IllegalStateException("interrupted while checking candidates", e);
                    }
                }
                return out;
            } finally {
                pool.shutdownNow();
            }
        }

        String checkAndCompare(Parameters p) {
            listener.candidate(p, "check");
            Workload.Check c;
            long t0 = System.nanoTime();
            try {
                c = checkOne(workload, kernel, p);
            } catch (RuntimeException e) {
                return "failed: " + e;
            }
            checkNanos.put(p, System.nanoTime() - t0);
            if (c.canaryProblem() != null) {
                return "touched a canary: " + c.canaryProblem();
            }
            return compare(reference, c.output(), workload.dtype());
        }

        /**
         * The default against the search's fastest, run alternately (default first, then fastest first, ...) so that
         * each pair sees one load of the machine: at least {@link #DUEL_PAIRS} pairs, up to {@code maxRepeats} while
         * time allows. The fastest was picked as the lowest of many medians measured minutes apart, so on a shared
         * machine its own median is biased low (on the 2-core development host the search's fastest attention
         * forward read 1.17x faster than the default, and ran 1.14x slower paired with it); the median of the pairs'
         * ratios is not. The default's result is then that ratio on the search's scale, the fastest's time over the
         * ratio, so that the cache ranks the two as the pairs did and the default stays below every other candidate
         * when it won (none of them was measured faster than the fastest). A run that fails here leaves both as
         * they were.
         */
        TuningCache.Result duel(TuningCache.Result def, TuningCache.Result fastest) {
            Parameters d = Parameters.of(def.parameters());
            Parameters f = Parameters.of(fastest.parameters());
            listener.candidate(f, "paired with the default");
            List<Double> ratios = new ArrayList<>();
            try {
                timeOnce(d);
                timeOnce(f);
                long start = System.nanoTime();
                long cap = 2 * candidateCapNanos();
                for (int i = 0; i < Math.max(DUEL_PAIRS, settings.maxRepeats()); i++) {
                    double td;
                    double tf;
                    if (i % 2 == 0) {
                        td = timeOnce(d);
                        tf = timeOnce(f);
                    } else {
                        tf = timeOnce(f);
                        td = timeOnce(d);
                    }
                    ratios.add(tf / td);
                    if (ratios.size() >= DUEL_PAIRS && (System.nanoTime() - start > cap || expired())) {
                        break;
                    }
                }
            } catch (RuntimeException e) {
                return def;
            }
            double ratio = median(ratios);
            if (!(ratio > 0 && Double.isFinite(ratio))) {
                return def;
            }
            TuningCache.Result r = new TuningCache.Result(def.parameters(), TuningCache.OK, fastest.millis() / ratio,
                    ratios.size(), true, null, Instant.now().toString());
            record(r);
            return r;
        }

        private double timeOnce(Parameters p) {
            Tuning.Scope scope = Tuning.scoped(kernel, p);
            try {
                return workload.time(rotation++);
            } finally {
                scope.close();
            }
        }

        TuningCache.Result measure(Parameters p, Phase phase) {
            boolean isDefault = phase == Phase.FIRST_DEFAULT;
            List<Double> samples = new ArrayList<>();
            long start = System.nanoTime();
            long cap = candidateCapNanos();
            String status = TuningCache.OK;
            Tuning.Scope scope = Tuning.scoped(kernel, p);
            try {
                warmUp(p, phase == Phase.FIRST_DEFAULT);
                for (int i = 0; i < settings.maxRepeats(); i++) {
                    samples.add(workload.time(rotation++));
                    double fastest = Collections.min(samples);
                    if (phase == Phase.CANDIDATE && best != null && samples.size() >= 2
                            && fastest > ABANDON_FACTOR * best.millis()) {
                        status = TuningCache.ABANDONED;
                        break;
                    }
                    boolean enough = samples.size() >= MIN_SAMPLES;
                    if ((enough && System.nanoTime() - start > cap) || expired()) {
                        break;
                    }
                }
            } catch (RuntimeException e) {
                return rejected(p, "failed while timed: " + e);
            } finally {
                scope.close();
            }
            return new TuningCache.Result(p.asMap(), status, median(samples), samples.size(), isDefault, null,
                    Instant.now().toString());
        }

        /**
         * Runs {@code p} untimed until it is warm. The default, measured first, runs for at least
         * {@link #WARM_NANOS} and until three runs in a row are no faster than the fastest so far (JIT
         * compilation of the CPU kernels, program builds and caches settle), at most a quarter of the remaining
         * time. The first measurement to run a value of a code-path parameter ({@code TuningSpace.codePath}: an
         * algorithm no measurement has run yet, whose code is still to be compiled) does the same for at least
         * {@link #CODE_WARM_NANOS} (the CPU convolution's stride-2 Winograd, warmed by one run, read 12-212 ms against
         * 7.7 and was abandoned). Any other candidate, whose code an earlier measurement warmed already, runs once
         * unless its check just took {@link #WARM_NANOS} or more.
         */
        void warmUp(Parameters p, boolean thorough) {
            List<String> code = new ArrayList<>();
            for (TuningSpace.Parameter par : space.parameters()) {
                if (space.selectsCode(par.name())) {
                    code.add(par.name() + "=" + p.get(par.name()));
                }
            }
            boolean newCode = !warmCode.containsAll(code);
            warmCode.addAll(code);
            if (!thorough && !newCode) {
                if (checkNanos.getOrDefault(p, 0L) < WARM_NANOS) {
                    workload.time(rotation++);
                }
                return;
            }
            long start = System.nanoTime();
            long floor = newCode ? CODE_WARM_NANOS : WARM_NANOS;
            long cap = Math.max(floor, (deadline.toEpochMilli() - System.currentTimeMillis()) * 250_000L);
            double fastest = Double.POSITIVE_INFINITY;
            int stale = 0;
            while ((stale < 3 || System.nanoTime() - start < floor) && System.nanoTime() - start < cap) {
                double t = workload.time(rotation++);
                if (t < 0.97 * fastest) {
                    stale = 0;
                } else {
                    stale++;
                }
                fastest = Math.min(fastest, t);
            }
        }

        long candidateCapNanos() {
            long left = Math.max(0, deadline.toEpochMilli() - System.currentTimeMillis());
            return Math.max(250, Math.min(3000, left / 3)) * 1_000_000L;
        }

        TuningCache.Result rejected(Parameters p, String why) {
            return new TuningCache.Result(p.asMap(), TuningCache.REJECTED, Double.NaN, 0, false, why,
                    Instant.now().toString());
        }
    }

    /** Each parameter moved one candidate up or down, the others kept. */
    static Set<Parameters> neighbours(TuningSpace<?> space, Parameters p) {
        Set<Parameters> out = new LinkedHashSet<>();
        for (TuningSpace.Parameter par : space.parameters()) {
            List<Integer> c = par.candidates();
            int i = c.indexOf(p.get(par.name()));
            for (int d : new int[] {-1, 1}) {
                int j = i + d;
                if (i >= 0 && j >= 0 && j < c.size()) {
                    out.add(p.with(par.name(), c.get(j)));
                }
            }
        }
        return out;
    }

    static double median(List<Double> samples) {
        double[] a = samples.stream().mapToDouble(Double::doubleValue).toArray();
        Arrays.sort(a);
        int n = a.length;
        return n == 0 ? Double.NaN : n % 2 == 1 ? a[n / 2] : (a[n / 2 - 1] + a[n / 2]) / 2;
    }
}
