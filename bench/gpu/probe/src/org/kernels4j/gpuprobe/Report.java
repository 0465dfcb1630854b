package org.kernels4j.gpuprobe;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.regex.Pattern;

/**
 * The probe's findings: one JSON object with a section per step, each with a status
 * ({@code ok}, {@code unavailable}, {@code failed}, {@code skipped}) and, unless ok, the reason.
 * The file is rewritten after every section, so a JVM that dies in native code still leaves
 * everything found before it.
 */
final class Report {

    /** A step's body; it fills its section and throws {@link Unavailable} when a library or device is missing. */
    interface Body {
        void run(Map<String, Object> section) throws Exception;
    }

    /** A missing library, symbol or device: an expected outcome, reported as "unavailable: why". */
    static final class Unavailable extends Exception {
        Unavailable(String why) {
            super(why);
        }
    }

    private final Map<String, Object> root = new LinkedHashMap<>();
    private final Map<String, Object> sections = new LinkedHashMap<>();
    private final Path out;

    Report(Path out) {
        this.out = out;
    }

    void put(String key, Object value) {
        root.put(key, value);
    }

    /** Runs one step; never lets its exception (or error: UnsatisfiedLinkError) escape. Returns whether it succeeded. */
    boolean run(String name, Body body) {
        Map<String, Object> s = new LinkedHashMap<>();
        long t0 = System.nanoTime();
        String status;
        try {
            body.run(s);
            status = "ok";
        } catch (Unavailable e) {
            status = "unavailable";
            s.put("reason", e.getMessage());
        } catch (Throwable e) {
            status = "failed";
            s.put("reason", describe(e));
        }
        s.put("seconds", Math.round((System.nanoTime() - t0) / 1e7) / 100.0);
        Map<String, Object> ordered = new LinkedHashMap<>();
        ordered.put("status", status);
        ordered.putAll(s);
        sections.put(name, ordered);
        System.out.printf("[probe] %-22s %s%s%n", name, status,
                s.containsKey("reason") ? ": " + s.get("reason") : summaryOf(s));
        flush();
        return status.equals("ok");
    }

    /** The status a step ended with, or null if it has not run. */
    String status(String name) {
        return sections.get(name) instanceof Map<?, ?> m ? (String) m.get("status") : null;
    }

    /** Why a step did not succeed, or null if it succeeded or has not run. */
    String reason(String name) {
        return sections.get(name) instanceof Map<?, ?> m ? (String) m.get("reason") : null;
    }

    void skip(String name, String why) {
        Map<String, Object> s = new LinkedHashMap<>();
        s.put("status", "skipped");
        s.put("reason", why);
        sections.put(name, s);
        System.out.printf("[probe] %-22s skipped: %s%n", name, why);
        flush();
    }

    private static String summaryOf(Map<String, Object> s) {
        Object line = s.get("summary");
        return line == null ? "" : " (" + line + ")";
    }

    /**
     * The exception's class and message, and its causes', on one line. JCuda's link errors carry
     * whole nested stack traces in the message: only their first line and the dynamic linker's own
     * words ("cannot open shared object file", "undefined symbol") are kept.
     */
    static String describe(Throwable e) {
        StringBuilder b = new StringBuilder();
        for (Throwable t = e; t != null; t = t.getCause() == t ? null : t.getCause()) {
            if (!b.isEmpty()) b.append(" <- caused by ");
            b.append(t.getClass().getName()).append(": ").append(condense(String.valueOf(t.getMessage())));
        }
        return b.toString();
    }

    private static String condense(String message) {
        List<String> lines = message.lines().toList();
        if (lines.size() <= 1) return message;
        List<String> kept = new ArrayList<>();
        kept.add(lines.getFirst().trim());
        for (String l : lines.subList(1, lines.size())) {
            if (LINKER_WORDS.matcher(l).find() && !kept.contains(l.trim())) kept.add(l.trim());
        }
        return String.join(" | ", kept);
    }

    private static final Pattern LINKER_WORDS = Pattern.compile(
            "cannot open shared object|undefined symbol|version `[^']*' not found|wrong ELF|no such file");

    void flush() {
        try {
            Files.createDirectories(out.toAbsolutePath().getParent());
            Map<String, Object> all = new LinkedHashMap<>(root);
            all.put("sections", sections);
            Files.writeString(out, json(all, 0) + "\n", StandardCharsets.UTF_8);
        } catch (IOException e) {
            System.out.println("[probe] cannot write " + out + ": " + e);
        }
    }

    static String json(Object v, int indent) {
        StringBuilder b = new StringBuilder();
        write(b, v, indent);
        return b.toString();
    }

    private static void write(StringBuilder b, Object v, int indent) {
        String pad = "  ".repeat(indent + 1);
        String end = "  ".repeat(indent);
        if (v == null) {
            b.append("null");
        } else if (v instanceof Map<?, ?> m) {
            if (m.isEmpty()) {
                b.append("{}");
                return;
            }
            b.append("{\n");
            int i = 0;
            for (Map.Entry<?, ?> e : m.entrySet()) {
                b.append(pad);
                string(b, String.valueOf(e.getKey()));
                b.append(": ");
                write(b, e.getValue(), indent + 1);
                b.append(++i < m.size() ? ",\n" : "\n");
            }
            b.append(end).append('}');
        } else if (v instanceof List<?> l) {
            boolean flat = l.stream().noneMatch(x -> x instanceof Map || x instanceof List);
            if (flat) {
                b.append('[');
                for (int i = 0; i < l.size(); i++) {
                    if (i > 0) b.append(", ");
                    write(b, l.get(i), indent + 1);
                }
                b.append(']');
                return;
            }
            b.append("[\n");
            for (int i = 0; i < l.size(); i++) {
                b.append(pad);
                write(b, l.get(i), indent + 1);
                b.append(i + 1 < l.size() ? ",\n" : "\n");
            }
            b.append(end).append(']');
        } else if (v instanceof Double d && (d.isNaN() || d.isInfinite())) {
            string(b, d.toString()); // JSON has no NaN or Infinity
        } else if (v instanceof Float f && (f.isNaN() || f.isInfinite())) {
            string(b, f.toString());
        } else if (v instanceof Number || v instanceof Boolean) {
            b.append(v);
        } else {
            string(b, v.toString());
        }
    }

    private static void string(StringBuilder b, String s) {
        b.append('"');
        for (int i = 0; i < s.length(); i++) {
            char c = s.charAt(i);
            switch (c) {
                case '"' -> b.append("\\\"");
                case '\\' -> b.append("\\\\");
                case '\n' -> b.append("\\n");
                case '\r' -> b.append("\\r");
                case '\t' -> b.append("\\t");
                default -> {
                    if (c < 0x20) b.append(String.format("\\u%04x", (int) c));
                    else b.append(c);
                }
            }
        }
        b.append('"');
    }

    /** A JSON list from anything iterable (keeps call sites short). */
    static List<Object> list(Iterable<?> items) {
        List<Object> l = new ArrayList<>();
        items.forEach(l::add);
        return l;
    }
}
