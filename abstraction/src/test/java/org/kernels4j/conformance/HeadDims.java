package org.kernels4j.conformance;

import static org.junit.jupiter.api.Assertions.fail;

import java.util.Locale;

import org.junit.jupiter.api.Assumptions;
import org.kernels4j.Tensor;

/**
 * Head dimensions a backend may decline. DESIGN.md promises head dims 32..256 on GPU backends and any on
 * the CPU; a GPU backend may reject others with an {@link IllegalArgumentException} that mentions "head dim"
 * (before writing anything). Such a rejection skips the case, after checking that the poisoned outputs
 * were left alone; any other rejection, or a rejection of a head dim inside the promised range, fails it.
 */
public final class HeadDims {

    /** Smallest head dimension every backend must support. */
    public static final int MIN_GUARANTEED = 32;

    /** Largest head dimension every backend must support. */
    public static final int MAX_GUARANTEED = 256;

    private HeadDims() {
    }

    /**
     * Runs {@code call}; when the backend declines {@code headDim} (outside the guaranteed range, an
     * {@link IllegalArgumentException} mentioning "head dim"), checks that every one of {@code poisonedOutputs}
     * still holds only NaN and aborts the test (a skip) with the backend's message; otherwise rethrows.
     */
    public static void runOrSkip(int headDim, Runnable call, Tensor... poisonedOutputs) {
        try {
            call.run();
        } catch (IllegalArgumentException e) {
            if (!declines(headDim, e)) {
                throw e;
            }
            for (Tensor t : poisonedOutputs) {
                float[] a = t.toFloatArray();
                for (int i = 0; i < a.length; i++) {
                    if (!Float.isNaN(a[i])) {
                        fail("the backend declined head dim " + headDim + " but wrote element " + i + " (" + a[i]
                                + ") of an output " + t + " first: " + e.getMessage());
                    }
                }
            }
            Assumptions.abort("backend declines head dim " + headDim + ": " + e.getMessage());
        }
    }

    /** Whether {@code e} is a permitted rejection of head dimension {@code headDim}. */
    public static boolean declines(int headDim, IllegalArgumentException e) {
        boolean guaranteed = headDim >= MIN_GUARANTEED && headDim <= MAX_GUARANTEED;
        String m = e.getMessage() == null ? "" : e.getMessage().toLowerCase(Locale.ROOT);
        return !guaranteed && m.contains("head dim");
    }
}
