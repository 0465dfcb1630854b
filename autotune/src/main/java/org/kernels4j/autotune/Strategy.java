package org.kernels4j.autotune;

import java.util.Locale;

/** How the {@link Tuner} chooses the candidates to measure. */
enum Strategy {
    /** Every valid combination. */
    EXHAUSTIVE,
    /** A random sample of the valid combinations (a fraction of them). */
    RANDOM,
    /** From the best so far, its neighbours (one parameter one step up or down) until none is faster. */
    LOCAL,
    /** Exhaustive for spaces of at most {@link #AUTO_EXHAUSTIVE_LIMIT} valid combinations, else local. */
    AUTO;

    static final int AUTO_EXHAUSTIVE_LIMIT = 48;

    static Strategy parse(String s) {
        try {
            return valueOf(s.trim().toUpperCase(Locale.ROOT));
        } catch (IllegalArgumentException e) {
            throw new IllegalArgumentException("strategy: expected exhaustive, random, local or auto, got '" + s + "'");
        }
    }
}
