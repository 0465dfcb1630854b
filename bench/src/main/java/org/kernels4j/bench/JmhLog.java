package org.kernels4j.bench;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.List;

/** The JMH log of a bench run: where a failed benchmark's exception is found for the one-line message. */
final class JmhLog {

    private JmhLog() {
    }

    /** The last exception line of the log, or a pointer to the log. */
    static String lastError(Path log) {
        try {
            List<String> lines = Files.readAllLines(log, StandardCharsets.UTF_8);
            for (int i = lines.size() - 1; i >= 0; i--) {
                String l = lines.get(i).trim();
                if (l.matches("^([a-zA-Z_$][\\w$]*\\.)+[A-Z][\\w$]*(Exception|Error)\\b.*") || l.startsWith("<failure>")) {
                    return l.length() > 200 ? l.substring(0, 200) + "..." : l;
                }
            }
        } catch (IOException e) {
            return "see the log (" + e.getMessage() + ")";
        }
        return "see the log";
    }

    /** Appends the whole of {@code part} to {@code log} (best effort, as {@link #append}). */
    static void appendFile(Path log, Path part) {
        try {
            Files.write(log, Files.readAllBytes(part), StandardOpenOption.APPEND, StandardOpenOption.CREATE);
        } catch (IOException e) {
            // the benchmark's result and error line are printed by the caller either way
        }
    }

    static void append(Path log, String line) {
        try {
            Files.writeString(log, line + System.lineSeparator(), StandardCharsets.UTF_8, StandardOpenOption.APPEND,
                    StandardOpenOption.CREATE);
        } catch (IOException e) {
            // the message is also printed by the caller
        }
    }
}
