package org.kernels4j.autotune;

import org.kernels4j.DType;

/**
 * What the {@link Tuner} runs for each candidate: one pass of an op (or, in tests, a synthetic kernel) whose
 * tunable kernels read their parameters from {@link org.kernels4j.tuning.Tuning} at dispatch. The tuner sets
 * a candidate with {@link org.kernels4j.tuning.Tuning#scoped} around each call.
 */
interface Workload extends AutoCloseable {

    /**
     * The outputs of one run on the verification inputs, written into freshly poisoned outputs guarded by
     * canaries.
     *
     * @param output        every output element, concatenated
     * @param canaryProblem null when every canary is intact, else what was overwritten
     */
    record Check(float[] output, String canaryProblem) {
    }

    /** The problem and pass, for messages. */
    String name();

    /** The storage type of the outputs, which sets the tolerance. */
    DType dtype();

    /** Runs once on the verification inputs and reads the outputs back; callable from several threads at once. */
    Check check();

    /** Runs once on input set {@code rotation % rotations()} and returns its device time in milliseconds. */
    double time(int rotation);

    /** How many input sets {@link #time} rotates through. */
    int rotations();

    /** Whether {@link #check} of different candidates may run concurrently (it compiles programs in parallel). */
    boolean parallelChecks();

    @Override
    void close();
}
