package org.kernels4j.bench;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.ArrayList;
import java.util.List;
import java.util.Random;

import org.junit.jupiter.api.Test;

/**
 * Regression detection on synthetic histories whose truth is known: iteration times drawn around a true mean
 * with within-run noise, each run shifted by its own run-to-run offset.
 */
class RegressionCheckTest {

    /** A run: {@code iterations} times around {@code mean * (1 + runOffset)} with relative noise {@code noise}. */
    static double[] run(Random rnd, double mean, double runNoise, double noise, int iterations) {
        double runMean = mean * (1 + runNoise * rnd.nextGaussian());
        double[] t = new double[iterations];
        for (int i = 0; i < iterations; i++) {
            t[i] = runMean * (1 + noise * rnd.nextGaussian());
        }
        return t;
    }

    static List<double[]> history(Random rnd, int runs, double mean, double runNoise, double noise, int iterations) {
        List<double[]> l = new ArrayList<>();
        for (int i = 0; i < runs; i++) {
            l.add(run(rnd, mean, runNoise, noise, iterations));
        }
        return l;
    }

    @Test
    void aTwentyPercentSlowdownWithLowNoiseIsCaught() {
        Random rnd = new Random(7);
        List<double[]> base = history(rnd, 5, 100, 0.01, 0.01, 5);
        RegressionCheck.Verdict v = RegressionCheck.compare(base, run(rnd, 120, 0.01, 0.01, 5));
        assertEquals(RegressionCheck.Status.REGRESSION, v.status(), v.toString());
        assertTrue(v.ratio() > 1.15 && v.ratio() < 1.25, v.toString());
        assertTrue(v.ratioLow() > 1 && v.ratioHigh() > v.ratio(), v.toString());
    }

    @Test
    void aTwentyPercentSlowdownWithLowNoiseIsCaughtAlmostAlways() {
        // 2% noise within and between runs; five earlier runs of three iterations (a quick run's shape)
        int misses = 0;
        int trials = 500;
        for (int seed = 0; seed < trials; seed++) {
            Random rnd = new Random(seed);
            List<double[]> base = history(rnd, 5, 100, 0.02, 0.02, 3);
            if (RegressionCheck.compare(base, run(rnd, 120, 0.02, 0.02, 3)).status()
                    != RegressionCheck.Status.REGRESSION) {
                misses++;
            }
        }
        assertTrue(misses <= trials * 0.01, misses + " misses in " + trials);
    }

    @Test
    void aNoisySeriesWithoutARealChangeIsNotFlagged() {
        Random rnd = new Random(11);
        List<double[]> base = history(rnd, 6, 100, 0.10, 0.15, 5);
        RegressionCheck.Verdict v = RegressionCheck.compare(base, run(rnd, 100, 0.10, 0.15, 5));
        assertEquals(RegressionCheck.Status.UNCHANGED, v.status(), v.toString());
    }

    @Test
    void falseAlarmsOnNoisySeriesStayRare() {
        // a run-to-run offset of 10% defeats a plain t-test on the iterations; the prediction bound holds it
        int alarms = 0;
        int trials = 500;
        for (int seed = 0; seed < trials; seed++) {
            Random rnd = new Random(1000 + seed);
            List<double[]> base = history(rnd, 5, 100, 0.10, 0.05, 5);
            if (RegressionCheck.compare(base, run(rnd, 100, 0.10, 0.05, 5)).status()
                    == RegressionCheck.Status.REGRESSION) {
                alarms++;
            }
        }
        // each test is one-sided at 1%; the two together alarm less often than either alone
        assertTrue(alarms <= trials * 0.02, alarms + " false alarms in " + trials);
    }

    @Test
    void aSmallChangeOnAQuietBenchmarkIsFoundWhereAFixedFivePercentWouldMissIt() {
        Random rnd = new Random(3);
        List<double[]> base = history(rnd, 5, 100, 0.002, 0.002, 5);
        RegressionCheck.Verdict v = RegressionCheck.compare(base, run(rnd, 103, 0.002, 0.002, 5));
        assertEquals(RegressionCheck.Status.REGRESSION, v.status(), v.toString());
    }

    @Test
    void aFasterRunIsAnImprovementNotARegression() {
        Random rnd = new Random(5);
        List<double[]> base = history(rnd, 4, 100, 0.01, 0.01, 5);
        RegressionCheck.Verdict v = RegressionCheck.compare(base, run(rnd, 80, 0.01, 0.01, 5));
        assertEquals(RegressionCheck.Status.IMPROVEMENT, v.status(), v.toString());
        assertTrue(v.ratio() < 0.85, v.toString());
    }

    @Test
    void oneEarlierRunUsesTheIterationNoiseAlone() {
        Random rnd = new Random(9);
        List<double[]> base = history(rnd, 1, 100, 0, 0.01, 5);
        assertEquals(RegressionCheck.Status.REGRESSION,
                RegressionCheck.compare(base, run(rnd, 120, 0, 0.01, 5)).status());
        assertEquals(RegressionCheck.Status.UNCHANGED,
                RegressionCheck.compare(base, run(new Random(10), 100, 0, 0.01, 5)).status());
    }

    @Test
    void noHistoryIsNoVerdict() {
        RegressionCheck.Verdict v = RegressionCheck.compare(List.of(), new double[] {1, 2, 3});
        assertEquals(RegressionCheck.Status.NO_HISTORY, v.status());
        assertEquals(2, v.newestMs(), 1e-12);
    }
}
