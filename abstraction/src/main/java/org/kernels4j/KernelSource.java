package org.kernels4j;

import java.util.Map;
import java.util.TreeMap;

/**
 * A user kernel in the portable dialect: OpenCL C that includes {@code kernels4j.h}, whose tuned or
 * configurable parameters arrive as preprocessor {@code #define}s (each with an {@code #ifndef} default in
 * the source).
 *
 * @param name       a label for messages and caches
 * @param code       the source text
 * @param entryPoint the {@code __kernel} function to launch
 * @param defines    macro name to value, passed to the compiler as {@code -Dname=value}
 */
public record KernelSource(String name, String code, String entryPoint, Map<String, String> defines) {

    /** Validates the fields and copies the defines in a stable order. */
    public KernelSource {
        if (name == null || name.isBlank()) {
            throw new IllegalArgumentException("name: must not be null or blank");
        }
        if (code == null || code.isBlank()) {
            throw new IllegalArgumentException("code: must not be null or blank");
        }
        if (entryPoint == null || !entryPoint.matches("[A-Za-z_][A-Za-z0-9_]*")) {
            throw new IllegalArgumentException("entryPoint: expected a C identifier, got '" + entryPoint + "'");
        }
        defines = defines == null ? Map.of() : java.util.Collections.unmodifiableMap(new TreeMap<>(defines));
        for (var e : defines.entrySet()) {
            if (!e.getKey().matches("[A-Za-z_][A-Za-z0-9_]*")) {
                throw new IllegalArgumentException("defines: '" + e.getKey() + "' is not a macro name");
            }
            if (e.getValue() == null || e.getValue().matches(".*\\s.*")) {
                throw new IllegalArgumentException("defines: value of " + e.getKey() + " must be a single token, got '"
                        + e.getValue() + "'");
            }
        }
    }

    /** A source with no defines. */
    public static KernelSource of(String name, String code, String entryPoint) {
        return new KernelSource(name, code, entryPoint, Map.of());
    }

    /** The same source with one more define. */
    public KernelSource define(String macro, Object value) {
        var m = new TreeMap<>(defines);
        m.put(macro, String.valueOf(value));
        return new KernelSource(name, code, entryPoint, m);
    }
}
