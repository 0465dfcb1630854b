package org.kernels4j.autotune;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.time.Duration;
import java.time.Instant;
import java.util.List;
import java.util.Map;
import java.util.stream.Collectors;

import org.junit.jupiter.api.Test;
import org.kernels4j.DType;
import org.kernels4j.tuning.Parameters;
import org.kernels4j.tuning.TuningSpace;

/** The tuner's search on a synthetic kernel whose candidates are fast, slow, wrong or overrun their output. */
class TunerTest {

    final FakeDevice device = new FakeDevice("Tuner Device");

    private Tuner.Outcome tune(Strategy strategy, double fraction, double... millis) {
        Tuner t = new Tuner(new Tuner.Settings(strategy, fraction, 5, 7));
        return t.tune(new SyntheticWorkload(device, 100, millis), SyntheticWorkload.SPACE, device.capabilities(),
                null, List.of(), null, Instant.now().plus(Duration.ofMinutes(2)), (p, phase) -> { });
    }

    private static Map<Integer, TuningCache.Result> byMode(Tuner.Outcome o) {
        return o.results().stream().collect(Collectors.toMap(r -> r.parameters().get("MODE"), r -> r));
    }

    @Test
    void picksTheFasterCorrectConfigAndRejectsWrongOnes() {
        // modes: 0 default 20 ms, 1 correct 2 ms, 2 wrong value, 3 overruns its output, 4 correct 300 ms
        Tuner.Outcome o = tune(Strategy.EXHAUSTIVE, 1, 20, 2, 0.5, 0.5, 300);
        assertTrue(o.complete());
        assertEquals(Parameters.of("MODE", SyntheticWorkload.CORRECT_FAST), Parameters.of(o.best().parameters()));
        assertEquals(Parameters.of("MODE", 0), Parameters.of(o.defaultResult().parameters()));
        assertTrue(o.defaultResult().defaultParameters());
        Map<Integer, TuningCache.Result> r = byMode(o);
        assertEquals(5, r.size(), "every candidate has its own result");
        TuningCache.Result wrong = r.get(SyntheticWorkload.WRONG_VALUE);
        assertEquals(TuningCache.REJECTED, wrong.status());
        assertTrue(wrong.note().contains("relative error"), wrong.note());
        TuningCache.Result overrun = r.get(SyntheticWorkload.TOUCHES_CANARY);
        assertEquals(TuningCache.REJECTED, overrun.status());
        assertTrue(overrun.note().contains("canary"), overrun.note());
        assertEquals(TuningCache.ABANDONED, r.get(SyntheticWorkload.CORRECT_VERY_SLOW).status(),
                "a candidate 150x slower than the best is stopped early");
        assertTrue(r.get(SyntheticWorkload.CORRECT_VERY_SLOW).samples() < 5);
        assertEquals(TuningCache.OK, r.get(SyntheticWorkload.CORRECT_FAST).status());
    }

    @Test
    void localSearchWalksToTheFastNeighbour() {
        Tuner.Outcome o = tune(Strategy.LOCAL, 1, 20, 2, 0.5, 0.5, 300);
        assertEquals(SyntheticWorkload.CORRECT_FAST, o.best().parameters().get("MODE"));
        assertEquals(java.util.Set.of(0, 1, 2), byMode(o).keySet(),
                "from the default, mode 1 is the only neighbour; from mode 1, mode 2 (wrong); 3 and 4 are never tried");
    }

    @Test
    void randomSampleTriesAFraction() {
        Tuner.Outcome o = tune(Strategy.RANDOM, 0.4, 1, 1, 1, 1, 1);
        assertEquals(1 + 2, o.results().size(), "the default plus 40% of the 5 valid combinations");
    }

    @Test
    void aDeadlineInThePastStillMeasuresTheDefault() {
        Tuner t = new Tuner(new Tuner.Settings(Strategy.EXHAUSTIVE, 1, 3, 1));
        Tuner.Outcome o = t.tune(new SyntheticWorkload(device, 10, 1, 1, 1, 1, 1), SyntheticWorkload.SPACE,
                device.capabilities(), null, List.of(), null, Instant.now().minusSeconds(1), (p, phase) -> { });
        assertFalse(o.complete());
        assertEquals(1, o.results().size());
        assertEquals(TuningCache.OK, o.defaultResult().status());
    }

    /**
     * A candidate that ran during a quiet spell of the machine: its first three runs 0.75x of its true 12 ms, every
     * later one 1.05x (a neighbour's load), against a steady default of 10 ms. Its search median (9 ms) beats the
     * default; run alternately with the default afterwards it is 1.26x slower, and the default is kept.
     */
    @Test
    void aCandidateMeasuredInAQuietSpellDoesNotBeatTheDefaultItLosesToPaired() {
        Tuner t = new Tuner(new Tuner.Settings(Strategy.EXHAUSTIVE, 1, 3, 1));
        Tuner.Outcome o = t.tune(new QuietSpellWorkload(device), SyntheticWorkload.SPACE, device.capabilities(), null,
                List.of(), null, Instant.now().plus(Duration.ofMinutes(2)), (p, phase) -> { });
        assertEquals(Parameters.of("MODE", 0), Parameters.of(o.best().parameters()), o.results().toString());
        TuningCache.Result lucky = byMode(o).get(SyntheticWorkload.CORRECT_FAST);
        assertEquals(9.0, lucky.millis(), 1e-9, "its search median, as measured");
        assertEquals(9.0 / 1.26, o.defaultResult().millis(), 1e-9, "the default on the search's scale: 9 ms / 1.26");
        assertTrue(o.defaultResult().samples() >= Tuner.DUEL_PAIRS);
    }

    /** As above, but the candidate is faster in every run: it wins the pairs too, and their ratio is the speedup. */
    @Test
    void aCandidateFasterInEveryRunWinsThePairs() {
        Tuner t = new Tuner(new Tuner.Settings(Strategy.EXHAUSTIVE, 1, 3, 1));
        QuietSpellWorkload w = new QuietSpellWorkload(device);
        w.later = 0.8;
        Tuner.Outcome o = t.tune(w, SyntheticWorkload.SPACE, device.capabilities(), null, List.of(), null,
                Instant.now().plus(Duration.ofMinutes(2)), (p, phase) -> { });
        assertEquals(SyntheticWorkload.CORRECT_FAST, o.best().parameters().get("MODE"));
        assertEquals(9.0 / (12 * 0.8 / 10), o.defaultResult().millis(), 1e-9);
    }

    /**
     * A workload that reports made-up times without waiting, over {@link SyntheticWorkload}'s correct outputs
     * (subclasses decide the times by the parameters in force).
     */
    private abstract static class UnwaitedWorkload implements Workload {
        final FakeDevice device;
        private final String name;
        private final SyntheticWorkload modes;

        UnwaitedWorkload(FakeDevice device, String name, double... millisPerMode) {
            this.device = device;
            this.name = name;
            this.modes = new SyntheticWorkload(device, 100, millisPerMode);
        }

        @Override
        public String name() {
            return name;
        }

        @Override
        public DType dtype() {
            return DType.FLOAT32;
        }

        @Override
        public Check check() {
            return modes.check();
        }

        @Override
        public int rotations() {
            return 2;
        }

        @Override
        public boolean parallelChecks() {
            return false;
        }

        @Override
        public void close() {
        }
    }

    /**
     * {@link SyntheticWorkload}'s modes, timed without waiting: the default 10 ms every run, mode 1 12 ms times 0.75
     * for its first three runs and {@link #later} after them, the other correct mode 30 ms.
     */
    private static final class QuietSpellWorkload extends UnwaitedWorkload {
        private int fastRuns;
        double later = 1.05;

        QuietSpellWorkload(FakeDevice device) {
            super(device, "quiet spell", 10, 12, 1, 1, 30);
        }

        @Override
        public double time(int rotation) {
            int mode = SyntheticWorkload.SPACE.resolve(device, DType.FLOAT32, 100).get("MODE");
            return switch (mode) {
                case SyntheticWorkload.CORRECT_SLOW -> 10;
                case SyntheticWorkload.CORRECT_FAST -> 12 * (fastRuns++ < 3 ? 0.75 : later);
                default -> 30;
            };
        }
    }

    /**
     * A code-path parameter ({@code TuningSpace.codePath}) whose other value is an algorithm no run has compiled yet:
     * its first 8 runs take 60 ms, later ones 2 ms, against a steady default of 10 ms. Warmed up once like the rest
     * (one run), it would be timed cold and abandoned; warmed up in full as a new code path, it wins.
     */
    @Test
    void aColdCodePathIsWarmedUpBeforeItIsTimed() {
        TuningSpace<Integer> space = TuningSpace.builder("test.cold-code", Integer.class)
                .source("cold code v1")
                .codePath("ALGORITHM", 0, 1)
                .bucket(n -> "n" + n)
                .build();
        assertTrue(space.selectsCode("ALGORITHM"));
        assertFalse(SyntheticWorkload.SPACE.selectsCode("MODE"), "a plain parameter is no code path");
        int[] coldRuns = {0};
        Workload cold = new UnwaitedWorkload(device, "cold code", 1) {
            @Override
            public double time(int rotation) {
                return space.resolve(device, DType.FLOAT32, 100).get("ALGORITHM") == 0 ? 10
                        : coldRuns[0]++ < 8 ? 60 : 2;
            }
        };
        Tuner t = new Tuner(new Tuner.Settings(Strategy.EXHAUSTIVE, 1, 5, 1));
        Tuner.Outcome o = t.tune(cold, space, device.capabilities(), null, List.of(), null,
                Instant.now().plus(Duration.ofMinutes(2)), (p, phase) -> { });
        TuningCache.Result other = o.results().stream().filter(r -> r.parameters().get("ALGORITHM") == 1).findFirst()
                .orElseThrow();
        assertEquals(TuningCache.OK, other.status(), o.results().toString());
        assertEquals(1, o.best().parameters().get("ALGORITHM"), o.results().toString());
    }

    @Test
    void comparisonUsesTheDtypeTolerance() {
        float[] ref = {1f, -2f, 4f, Float.NEGATIVE_INFINITY};
        assertEquals(null, Tuner.compare(ref, new float[] {1f, -2f, 4.0001f, Float.NEGATIVE_INFINITY}, DType.FLOAT32));
        assertTrue(Tuner.compare(ref, new float[] {1f, -2f, 4.01f, Float.NEGATIVE_INFINITY}, DType.FLOAT32) != null);
        assertTrue(Tuner.compare(ref, new float[] {1f, -2f, 4.01f, Float.NEGATIVE_INFINITY}, DType.BFLOAT16) == null);
        assertTrue(Tuner.compare(ref, new float[] {Float.NaN, -2f, 4f, Float.NEGATIVE_INFINITY}, DType.BFLOAT16)
                .contains("NaN"));
        assertTrue(Tuner.compare(ref, new float[] {1f, -2f, 4f, 0f}, DType.FLOAT32) != null);
    }
}
