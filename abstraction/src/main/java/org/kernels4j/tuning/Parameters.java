package org.kernels4j.tuning;

import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Set;

/**
 * An immutable set of named integer launch parameters (tile sizes, workgroup sizes, vector widths, split
 * counts), for example {@code {TILE_M=64, TILE_N=32}}. Names keep the order in which they were given; two
 * sets are equal when they map the same names to the same values, whatever the order.
 */
public final class Parameters {

    private static final Parameters EMPTY = new Parameters(new LinkedHashMap<>());

    private final Map<String, Integer> values;

    private Parameters(LinkedHashMap<String, Integer> values) {
        this.values = Collections.unmodifiableMap(values);
    }

    /** No parameters. */
    public static Parameters empty() {
        return EMPTY;
    }

    /**
     * Parameters from alternating names and values: {@code of("TILE", 16, "VEC", 4)}.
     *
     * @throws IllegalArgumentException when the arguments are not name/value pairs or a name repeats
     */
    public static Parameters of(Object... namesAndValues) {
        if (namesAndValues == null || namesAndValues.length % 2 != 0) {
            throw new IllegalArgumentException("namesAndValues: expected name/value pairs, got "
                    + (namesAndValues == null ? "null" : namesAndValues.length + " arguments"));
        }
        LinkedHashMap<String, Integer> m = new LinkedHashMap<>();
        for (int i = 0; i < namesAndValues.length; i += 2) {
            if (!(namesAndValues[i] instanceof String name) || !(namesAndValues[i + 1] instanceof Integer value)) {
                throw new IllegalArgumentException("namesAndValues: expected (String, Integer) at position " + i
                        + ", got (" + namesAndValues[i] + ", " + namesAndValues[i + 1] + ")");
            }
            put(m, name, value);
        }
        return new Parameters(m);
    }

    /** Parameters with the entries of {@code map}, in its iteration order. */
    public static Parameters of(Map<String, Integer> map) {
        if (map == null) {
            throw new IllegalArgumentException("map: must not be null");
        }
        LinkedHashMap<String, Integer> m = new LinkedHashMap<>();
        map.forEach((k, v) -> put(m, k, v));
        return new Parameters(m);
    }

    /**
     * Parses the {@link #toString()} form {@code {A=1, B=2}} (braces optional, separators {@code ,} or
     * {@code ;} or spaces), as typed on a command line.
     */
    public static Parameters parse(String text) {
        if (text == null) {
            throw new IllegalArgumentException("parameters: must not be null");
        }
        String t = text.trim();
        if (t.startsWith("{") && t.endsWith("}")) {
            t = t.substring(1, t.length() - 1);
        }
        LinkedHashMap<String, Integer> m = new LinkedHashMap<>();
        for (String part : t.split("[,;\\s]+")) {
            if (part.isEmpty()) {
                continue;
            }
            int eq = part.indexOf('=');
            if (eq <= 0) {
                throw new IllegalArgumentException("parameters: expected NAME=value, got '" + part + "' in '" + text + "'");
            }
            try {
                put(m, part.substring(0, eq), Integer.parseInt(part.substring(eq + 1)));
            } catch (NumberFormatException e) {
                throw new IllegalArgumentException("parameters: expected an integer value in '" + part + "'");
            }
        }
        return new Parameters(m);
    }

    private static void put(LinkedHashMap<String, Integer> m, String name, Integer value) {
        if (name == null || !name.matches("[A-Za-z_][A-Za-z0-9_]*")) {
            throw new IllegalArgumentException("parameter name: expected an identifier, got '" + name + "'");
        }
        if (value == null) {
            throw new IllegalArgumentException("parameter " + name + ": value must not be null");
        }
        if (m.put(name, value) != null) {
            throw new IllegalArgumentException("parameter " + name + ": given twice");
        }
    }

    /**
     * The value of {@code name}.
     *
     * @throws IllegalArgumentException when there is no such parameter
     */
    public int get(String name) {
        Integer v = values.get(name);
        if (v == null) {
            throw new IllegalArgumentException("parameter " + name + ": not present in " + this);
        }
        return v;
    }

    /** Whether {@code name} is present. */
    public boolean has(String name) {
        return values.containsKey(name);
    }

    /** The names, in order. */
    public Set<String> names() {
        return values.keySet();
    }

    /** Number of parameters. */
    public int size() {
        return values.size();
    }

    /** An unmodifiable view, in order. */
    public Map<String, Integer> asMap() {
        return values;
    }

    /** A copy with {@code name} set to {@code value} (added at the end when new). */
    public Parameters with(String name, int value) {
        LinkedHashMap<String, Integer> m = new LinkedHashMap<>(values);
        m.put(name, value);
        return of(m);
    }

    /** A copy of these parameters with every entry of {@code other} replacing or adding to them. */
    public Parameters withAll(Parameters other) {
        LinkedHashMap<String, Integer> m = new LinkedHashMap<>(values);
        m.putAll(other.values);
        return new Parameters(m);
    }

    @Override
    public boolean equals(Object o) {
        return o instanceof Parameters p && values.equals(p.values);
    }

    @Override
    public int hashCode() {
        return values.hashCode();
    }

    /** {@code {A=1, B=2}}; {@link #parse} reads it back. */
    @Override
    public String toString() {
        return values.toString();
    }
}
