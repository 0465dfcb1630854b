package org.kernels4j.tuning;

import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HexFormat;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Objects;
import java.util.Set;
import java.util.function.Function;

import org.kernels4j.DType;
import org.kernels4j.Device;
import org.kernels4j.DeviceCapabilities;

/**
 * What one kernel lets the autotuner choose: named integer parameters with candidate values, constraints
 * that say which combinations a device can run (divisibility, local-memory size, workgroup limits), a
 * default that is correct on every device, and the shape bucket a problem falls into (tuned parameters are
 * stored per bucket, so that one tuning run serves every problem of similar shape).
 *
 * <p>A kernel declares its space once, as a constant, and asks for its parameters at dispatch:
 * <pre>{@code
 * static final TuningSpace<Conv2dProblem> SPACE = TuningSpace.builder("cpu.conv2d.forward", Conv2dProblem.class)
 *         .sourceOf(Conv2dCpu.class)
 *         .parameter("BLOCK_K", 16, 4, 8, 16, 32)
 *         .parameter("BLOCK_PQ", 64, 16, 32, 64, 128)
 *         .bucket(p -> "k" + ShapeBuckets.pow2(p.k()) + "-pq" + ShapeBuckets.pow2((long) p.p() * p.q()))
 *         .build();
 * ...
 * Parameters tp = SPACE.resolve(device, p.dtype(), p);   // tuned, overridden or default
 * int blockK = tp.get("BLOCK_K");
 * }</pre>
 *
 * <p>The source hash ({@link Builder#source}, {@link Builder#sourceOf}) is part of the tuning cache key: when
 * the kernel's code changes, its old tuning results are ignored. Immutable and thread-safe; building a space
 * registers it with {@link Tuning#spaces()}.
 *
 * @param <P> the problem type whose shape selects the bucket
 */
public final class TuningSpace<P> {

    /**
     * A constraint on a combination of parameters for a device.
     */
    @FunctionalInterface
    public interface Constraint {
        /** Whether a device with {@code capabilities} can run the kernel with {@code parameters}. */
        boolean test(Parameters parameters, DeviceCapabilities capabilities);
    }

    /**
     * One tunable parameter.
     *
     * @param name         identifier, also usable as a preprocessor macro
     * @param defaultValue the value that is correct on every device
     * @param candidates   the values a tuner tries, ascending, including the default
     */
    public record Parameter(String name, int defaultValue, List<Integer> candidates) {
        /** Copies the candidates. */
        public Parameter {
            candidates = List.copyOf(candidates);
        }
    }

    private record NamedConstraint(String description, Constraint constraint) {
    }

    private final String kernelId;
    private final Class<P> problemType;
    private final String sourceHash;
    private final List<Parameter> parameters;
    private final Set<String> codePaths;
    private final List<NamedConstraint> constraints;
    private final Function<? super P, String> bucket;
    private final Parameters defaults;

    private TuningSpace(Builder<P> b) {
        this.kernelId = b.kernelId;
        this.problemType = b.problemType;
        this.sourceHash = b.sourceHash();
        this.parameters = List.copyOf(b.parameters.values());
        this.codePaths = Set.copyOf(b.codePaths);
        this.constraints = List.copyOf(b.constraints);
        this.bucket = b.bucket;
        LinkedHashMap<String, Integer> d = new LinkedHashMap<>();
        for (Parameter p : parameters) {
            d.put(p.name(), p.defaultValue());
        }
        this.defaults = Parameters.of(d);
    }

    /**
     * Starts a space for the kernel {@code kernelId}, by convention {@code backend.op.pass}, e.g.
     * {@code "opencl.layernorm.forward"}; it keys the tuning cache and run-time overrides.
     */
    public static <P> Builder<P> builder(String kernelId, Class<P> problemType) {
        return new Builder<>(kernelId, problemType);
    }

    /** The kernel's identifier. */
    public String kernelId() {
        return kernelId;
    }

    /** The problem type {@link #bucket} accepts. */
    public Class<P> problemType() {
        return problemType;
    }

    /** A short hash of the kernel's source; tuning results for another hash are stale. */
    public String sourceHash() {
        return sourceHash;
    }

    /** The parameters, in declaration order. */
    public List<Parameter> parameters() {
        return parameters;
    }

    /** Whether parameter {@code name} chooses between different code ({@link Builder#codePath}). */
    public boolean selectsCode(String name) {
        return codePaths.contains(name);
    }

    /** The parameter named {@code name}, or null. */
    public Parameter parameter(String name) {
        for (Parameter p : parameters) {
            if (p.name().equals(name)) {
                return p;
            }
        }
        return null;
    }

    /** The defaults, correct on every device. */
    public Parameters defaults() {
        return defaults;
    }

    /** The shape bucket of {@code problem}. */
    public String bucket(P problem) {
        return bucket.apply(problem);
    }

    /** Number of combinations of candidate values, valid or not. */
    public long size() {
        long n = 1;
        for (Parameter p : parameters) {
            n = Math.multiplyExact(n, p.candidates().size());
        }
        return n;
    }

    /**
     * The combination number {@code index} in {@code [0, size())}: a mixed-radix counter over the candidate
     * lists, the last parameter varying fastest.
     */
    public Parameters combination(long index) {
        if (index < 0 || index >= size()) {
            throw new IllegalArgumentException("index: expected 0 <= index < " + size() + ", got " + index);
        }
        LinkedHashMap<String, Integer> m = new LinkedHashMap<>();
        Integer[] values = new Integer[parameters.size()];
        long rest = index;
        for (int i = parameters.size() - 1; i >= 0; i--) {
            List<Integer> c = parameters.get(i).candidates();
            values[i] = c.get((int) (rest % c.size()));
            rest /= c.size();
        }
        for (int i = 0; i < parameters.size(); i++) {
            m.put(parameters.get(i).name(), values[i]);
        }
        return Parameters.of(m);
    }

    /** Every combination that {@link #isValid} on a device with {@code capabilities}. */
    public List<Parameters> validCombinations(DeviceCapabilities capabilities) {
        List<Parameters> out = new ArrayList<>();
        for (long i = 0, n = size(); i < n; i++) {
            Parameters p = combination(i);
            if (isValid(p, capabilities)) {
                out.add(p);
            }
        }
        return out;
    }

    /** Whether {@code parameters} names exactly this space's parameters and meets every constraint. */
    public boolean isValid(Parameters parameters, DeviceCapabilities capabilities) {
        return invalidReason(parameters, capabilities) == null;
    }

    /**
     * Why {@code parameters} cannot run on a device with {@code capabilities}: a missing or unknown name, or
     * the description of the first failing constraint; null when they are valid.
     */
    public String invalidReason(Parameters parameters, DeviceCapabilities capabilities) {
        Objects.requireNonNull(parameters, "parameters");
        for (Parameter p : this.parameters) {
            if (!parameters.has(p.name())) {
                return "parameter " + p.name() + " is missing";
            }
        }
        for (String n : parameters.names()) {
            if (parameter(n) == null) {
                return "parameter " + n + " is not a parameter of " + kernelId + " (expected "
                        + defaults.names() + ")";
            }
        }
        for (NamedConstraint c : constraints) {
            boolean ok;
            try {
                ok = c.constraint().test(parameters, capabilities);
            } catch (RuntimeException e) {
                return "constraint '" + c.description() + "' failed: " + e;
            }
            if (!ok) {
                return "constraint '" + c.description() + "' does not hold";
            }
        }
        return null;
    }

    /**
     * The parameters a dispatch of {@code problem} in {@code dtype} on {@code device} uses:
     * {@link Tuning#parameters(Device, TuningSpace, DType, String)} for this problem's bucket.
     */
    public Parameters resolve(Device device, DType dtype, P problem) {
        return Tuning.parameters(device, this, dtype, bucket(problem));
    }

    @Override
    public String toString() {
        return "TuningSpace(" + kernelId + ", " + parameters.size() + " parameters, " + size()
                + " combinations, default " + defaults + ")";
    }

    /**
     * Builds a {@link TuningSpace}. At least one parameter; the default of each parameter is added to its
     * candidates when missing.
     *
     * @param <P> the problem type
     */
    public static final class Builder<P> {
        private final String kernelId;
        private final Class<P> problemType;
        private final LinkedHashMap<String, Parameter> parameters = new LinkedHashMap<>();
        private final Set<String> codePaths = new LinkedHashSet<>();
        private final List<NamedConstraint> constraints = new ArrayList<>();
        private final MessageDigest digest = sha256();
        private boolean hashed;
        private Function<? super P, String> bucket = p -> "all";

        private Builder(String kernelId, Class<P> problemType) {
            if (kernelId == null || !kernelId.matches("[A-Za-z0-9_.\\-]+")) {
                throw new IllegalArgumentException("kernelId: expected letters, digits, '.', '-' or '_', got '"
                        + kernelId + "'");
            }
            if (problemType == null) {
                throw new IllegalArgumentException("problemType: must not be null");
            }
            this.kernelId = kernelId;
            this.problemType = problemType;
        }

        /** Adds a parameter with its default and the candidates the tuner tries. */
        public Builder<P> parameter(String name, int defaultValue, int... candidates) {
            if (name == null || !name.matches("[A-Za-z_][A-Za-z0-9_]*")) {
                throw new IllegalArgumentException("name: expected an identifier, got '" + name + "'");
            }
            if (parameters.containsKey(name)) {
                throw new IllegalArgumentException("name: parameter " + name + " declared twice in " + kernelId);
            }
            int[] c = Arrays.copyOf(candidates, candidates.length + 1);
            c[candidates.length] = defaultValue;
            List<Integer> sorted = Arrays.stream(c).distinct().sorted().boxed().toList();
            parameters.put(name, new Parameter(name, defaultValue, sorted));
            return this;
        }

        /**
         * Adds a parameter whose values choose between different code (algorithms), not sizes within one: a tuner
         * warms a candidate up in full the first time it runs one of its values (on the JVM, code no earlier
         * candidate ran is still being compiled, and would be timed, and abandoned, at a fraction of its speed).
         */
        public Builder<P> codePath(String name, int defaultValue, int... candidates) {
            parameter(name, defaultValue, candidates);
            codePaths.add(name);
            return this;
        }

        /**
         * Adds a constraint, described for messages (e.g. {@code "TILE_M * TILE_N <= maxWorkgroupSize"}).
         * The defaults must meet it on every device.
         */
        public Builder<P> constraint(String description, Constraint constraint) {
            if (description == null || constraint == null) {
                throw new IllegalArgumentException("constraint: description and predicate must not be null");
            }
            constraints.add(new NamedConstraint(description, constraint));
            return this;
        }

        /** The shape bucket of a problem; without it every problem shares the bucket {@code "all"}. */
        public Builder<P> bucket(Function<? super P, String> bucket) {
            if (bucket == null) {
                throw new IllegalArgumentException("bucket: must not be null");
            }
            this.bucket = bucket;
            return this;
        }

        /** Adds kernel source text (e.g. OpenCL C) to the source hash. */
        public Builder<P> source(String text) {
            if (text == null) {
                throw new IllegalArgumentException("text: must not be null");
            }
            digest.update(text.getBytes(StandardCharsets.UTF_8));
            hashed = true;
            return this;
        }

        /**
         * Adds the compiled bytes of {@code classes} and of their nested classes (a Java kernel's own code) to
         * the source hash.
         */
        public Builder<P> sourceOf(Class<?>... classes) {
            for (Class<?> top : classes) {
                Class<?>[] nest = top.getNestMembers();
                Arrays.sort(nest, java.util.Comparator.comparing(Class::getName));
                for (Class<?> c : nest) {
                    String file = c.getName().substring(c.getName().lastIndexOf('.') + 1) + ".class";
                    try (InputStream in = c.getResourceAsStream(file)) {
                        if (in == null) {
                            throw new IllegalArgumentException("sourceOf: class file of " + c.getName() + " not found");
                        }
                        digest.update(in.readAllBytes());
                    } catch (IOException e) {
                        throw new UncheckedIOException("reading class file of " + c.getName(), e);
                    }
                }
            }
            hashed = true;
            return this;
        }

        /** The space; registers it with {@link Tuning#spaces()}. */
        public TuningSpace<P> build() {
            if (parameters.isEmpty()) {
                throw new IllegalArgumentException(kernelId + ": a tuning space needs at least one parameter");
            }
            TuningSpace<P> s = new TuningSpace<>(this);
            Tuning.register(s);
            return s;
        }

        private String sourceHash() {
            if (!hashed) {
                throw new IllegalArgumentException(kernelId + ": declare the kernel's source with source() or sourceOf()"
                        + " so that stale tuning results are detected");
            }
            try {
                MessageDigest d = (MessageDigest) digest.clone();
                return HexFormat.of().formatHex(d.digest(), 0, 8);
            } catch (CloneNotSupportedException e) {
                throw new IllegalStateException(e);
            }
        }

        private static MessageDigest sha256() {
            try {
                return MessageDigest.getInstance("SHA-256");
            } catch (NoSuchAlgorithmException e) {
                throw new IllegalStateException("SHA-256 is required of every JDK", e);
            }
        }
    }
}
