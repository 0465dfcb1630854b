package org.kernels4j.bench;

import java.util.Locale;

/** Forward pass, or backward pass (every input gradient). Named as the benchmark methods are. */
enum Direction {
    FORWARD, BACKWARD;

    /** The name used in benchmark method names and result keys: {@code forward}, {@code backward}. */
    String label() {
        return name().toLowerCase(Locale.ROOT);
    }
}
