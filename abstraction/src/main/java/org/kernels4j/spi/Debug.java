package org.kernels4j.spi;

import java.util.function.Supplier;

/**
 * The {@code KERNELS4J_DEBUG} switch (or system property {@code kernels4j.debug}): 1 prints the backend and
 * kernel chosen per op, 2 adds tuned parameters and times, 3 adds generated kernel sources and build options.
 * Output goes to standard error, one line per event, prefixed {@code [kernels4j]}.
 */
public final class Debug {

    private static volatile int level = readLevel();

    private Debug() {
    }

    /** The current level, 0 when off. */
    public static int level() {
        return level;
    }

    /** Changes the level at run time (tests and tools). */
    public static void setLevel(int newLevel) {
        level = Math.max(0, newLevel);
    }

    /** Whether messages of {@code atLevel} are printed. */
    public static boolean enabled(int atLevel) {
        return level >= atLevel;
    }

    /** Prints the message when the level is at least {@code atLevel}. */
    public static void log(int atLevel, Supplier<String> message) {
        if (level >= atLevel) {
            System.err.println("[kernels4j] " + message.get());
        }
    }

    private static int readLevel() {
        String v = System.getProperty("kernels4j.debug");
        if (v == null) {
            v = System.getenv("KERNELS4J_DEBUG");
        }
        if (v == null || v.isBlank()) {
            return 0;
        }
        try {
            return Math.max(0, Integer.parseInt(v.trim()));
        } catch (NumberFormatException e) {
            return 1;
        }
    }
}
