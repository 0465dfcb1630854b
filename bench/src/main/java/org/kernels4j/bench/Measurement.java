package org.kernels4j.bench;

/**
 * One benchmark's result in one run: what ran ({@code impl} is {@code ours}, {@code torch}, {@code ort} or
 * {@code ceiling}), on which backend and dtype, and its per-iteration times in milliseconds (every measured
 * iteration of every fork), with JMH's score and 99.9% error.
 */
record Measurement(String impl, String backend, String problem, String direction, String dtype,
                   double scoreMs, double errorMs, double[] samplesMs) {

    /** The implementation name of kernels4j's own ops. */
    static final String OURS = "ours";
    /** The implementation name of the ceiling benchmarks (problem {@code copy} or {@code fma}). */
    static final String CEILING = "ceiling";

    /** The identity of this benchmark across runs: impl, backend, dtype, problem and direction. */
    String key() {
        return impl + "/" + backend + "/" + dtype + "/" + problem + "/" + direction;
    }

    /** The key of the kernels4j figure this peer figure compares with (same backend, dtype, problem, direction). */
    String oursKey() {
        return OURS + "/" + backend + "/" + dtype + "/" + problem + "/" + direction;
    }

    /** The fastest iteration (a ceiling is the best the machine did). */
    double min() {
        double m = Double.POSITIVE_INFINITY;
        for (double v : samplesMs) {
            m = Math.min(m, v);
        }
        return samplesMs.length == 0 ? scoreMs : m;
    }

    /** The arithmetic mean of the samples (the score JMH reports for average time). */
    double mean() {
        double s = 0;
        for (double v : samplesMs) {
            s += v;
        }
        return samplesMs.length == 0 ? scoreMs : s / samplesMs.length;
    }
}
