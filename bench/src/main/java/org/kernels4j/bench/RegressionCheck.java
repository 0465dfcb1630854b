package org.kernels4j.bench;

import java.util.List;

import org.apache.commons.math3.distribution.TDistribution;
import org.apache.commons.math3.stat.StatUtils;
import org.apache.commons.math3.stat.inference.TTest;

/**
 * Decides whether the newest run of a benchmark is slower than its history by more than the measured noise.
 *
 * <p>Two kinds of noise are measured and both must be exceeded:
 * <ul>
 *   <li>within a run, iteration to iteration: Welch's t-test (unequal variances) of the newest run's
 *       iteration times against the baseline runs' iteration times, one-sided at {@link #ALPHA};</li>
 *   <li>between runs (JIT decisions, memory layout, machine state differ from fork to fork): with two or more
 *       baseline runs, the newest run's mean must also lie above the one-sided {@code 1 - ALPHA} prediction
 *       bound for a new run's mean, {@code mean + t(k-1) · sd · sqrt(1 + 1/k)} over the k baseline run means.</li>
 * </ul>
 * A fixed percentage plays no part: a 3% change on a quiet benchmark is found, a 20% wobble on a noisy one is
 * not. The same rule in the other direction reports improvements.
 */
final class RegressionCheck {

    /** One-sided false-alarm rate of each test. */
    static final double ALPHA = 0.01;
    /** How many previous runs form the baseline. */
    static final int BASELINE_RUNS = 5;

    /**
     * The outcome for one benchmark; {@code HOST_CHANGED}: a change beyond the noise, but the same run's ceilings
     * moved as well ({@link History#hostChange}), so the machine, not the code, may have changed.
     */
    enum Status { REGRESSION, IMPROVEMENT, UNCHANGED, NO_HISTORY, HOST_CHANGED }

    /**
     * @param baselineRuns runs compared against
     * @param baselineMs   mean of the baseline runs' means
     * @param newestMs     the newest run's mean
     * @param ratio        newest / baseline (above 1: slower)
     * @param ratioLow     lower end of the ratio's {@code 1 - 2·ALPHA} interval
     * @param ratioHigh    upper end
     * @param pValue       one-sided Welch p-value in the direction of the change
     * @param status       the verdict
     */
    record Verdict(int baselineRuns, double baselineMs, double newestMs, double ratio, double ratioLow,
                   double ratioHigh, double pValue, Status status) {

        /** This verdict, a regression or improvement no longer: the host changed under it. */
        Verdict hostChanged() {
            return new Verdict(baselineRuns, baselineMs, newestMs, ratio, ratioLow, ratioHigh, pValue,
                    Status.HOST_CHANGED);
        }
    }

    private RegressionCheck() {
    }

    /** Compares the newest run's iteration times with the baseline runs' (each an array of iteration times). */
    static Verdict compare(List<double[]> baseline, double[] newest) {
        List<double[]> runs = baseline.stream().filter(r -> r.length > 0).toList();
        double newestMean = StatUtils.mean(newest);
        if (runs.isEmpty() || newest.length == 0) {
            return new Verdict(0, Double.NaN, newestMean, Double.NaN, Double.NaN, Double.NaN, Double.NaN,
                    Status.NO_HISTORY);
        }
        int k = runs.size();
        double[] means = runs.stream().mapToDouble(StatUtils::mean).toArray();
        double base = StatUtils.mean(means);
        double[] pooled = runs.stream().flatMapToDouble(java.util.Arrays::stream).toArray();

        // within-run noise: Welch's t-test of the iteration times
        double p = Double.NaN;
        double withinSd = Double.NaN;
        if (newest.length >= 2 && pooled.length >= 2) {
            double vn = StatUtils.variance(newest) / newest.length;
            double vb = StatUtils.variance(pooled) / pooled.length;
            withinSd = Math.sqrt(vn + vb);
            if (withinSd == 0) {
                p = newestMean == StatUtils.mean(pooled) ? 0.5 : 0;
            } else {
                p = new TTest().tTest(newest, pooled) / 2;
            }
        }
        // between-run noise: prediction interval of a new run's mean
        double betweenSd = Double.NaN;
        double tq = Double.NaN;
        if (k >= 2) {
            betweenSd = Math.sqrt(StatUtils.variance(means)) * Math.sqrt(1 + 1.0 / k);
            tq = new TDistribution(k - 1).inverseCumulativeProbability(1 - ALPHA);
        }
        boolean withinSlower = !Double.isNaN(p) && p < ALPHA && newestMean > StatUtils.mean(pooled);
        boolean withinFaster = !Double.isNaN(p) && p < ALPHA && newestMean < StatUtils.mean(pooled);
        boolean betweenSlower = k < 2 || newestMean > base + tq * betweenSd;
        boolean betweenFaster = k < 2 || newestMean < base - tq * betweenSd;
        if (Double.isNaN(p) && k >= 2) {
            // single-iteration runs: only the run-to-run test applies
            withinSlower = newestMean > base;
            withinFaster = newestMean < base;
        }
        Status status = withinSlower && betweenSlower ? Status.REGRESSION
                : withinFaster && betweenFaster ? Status.IMPROVEMENT : Status.UNCHANGED;

        // the ratio's interval uses the larger of the two noise estimates
        double sd;
        double q;
        if (k >= 2) {
            sd = betweenSd;
            q = tq;
        } else {
            sd = Double.isNaN(withinSd) ? 0 : withinSd;
            q = new TDistribution(Math.max(1, newest.length + pooled.length - 2)).inverseCumulativeProbability(1 - ALPHA);
        }
        double ratio = newestMean / base;
        return new Verdict(k, base, newestMean, ratio, 1 + (newestMean - base - q * sd) / base,
                1 + (newestMean - base + q * sd) / base, p, status);
    }
}
