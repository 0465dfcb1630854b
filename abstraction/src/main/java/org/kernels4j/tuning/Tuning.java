package org.kernels4j.tuning;

import java.util.ArrayList;
import java.util.Collection;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.ServiceConfigurationError;
import java.util.ServiceLoader;
import java.util.concurrent.ConcurrentHashMap;

import org.kernels4j.DType;
import org.kernels4j.Device;
import org.kernels4j.spi.Debug;

/**
 * The one place where kernels get their launch parameters at dispatch, and where applications read and
 * override them.
 *
 * <p>For a kernel's {@link TuningSpace}, a device, a dtype and a shape bucket, the parameters come from, in
 * order of precedence:
 * <ol>
 *   <li>an override: {@link #scoped} on the current thread, else {@link #override(String, Parameters)} for the
 *       whole JVM (an override may name only some parameters; the others come from the next sources);</li>
 *   <li>a {@link TuningLookup} registered with {@link ServiceLoader} ({@code kernels4j-autotune}: the tuning
 *       cache written by {@code kernels4j tune}, then the defaults shipped for the device, its architecture
 *       or its vendor);</li>
 *   <li>the kernel's default, correct on every device.</li>
 * </ol>
 * Parameters from a lookup that do not fit the space (unknown names, a failed constraint on this device) are
 * ignored; an override that does not fit is an error. With {@code KERNELS4J_DEBUG=2} every dispatch prints
 * its parameters and their source. Thread-safe.
 */
public final class Tuning {

    /** Where a dispatch's parameters came from. */
    public enum Source {
        /** {@link #scoped} or {@link #override(String, Parameters)}. */
        OVERRIDE,
        /** Measured on this device by the autotuner (the tuning cache). */
        TUNED,
        /** Shipped with kernels4j for this device, its architecture or vendor. */
        SHIPPED,
        /** The kernel's own default. */
        DEFAULT
    }

    /**
     * The parameters one dispatch uses, with their source.
     *
     * @param deviceId   the device, e.g. {@code "opencl:0"}
     * @param kernelId   the kernel's {@link TuningSpace#kernelId()}
     * @param dtype      the dtype of the problem
     * @param bucket     the problem's shape bucket
     * @param parameters the parameters
     * @param source     where they came from
     * @param origin     details of the source (a cache file, a shipped entry), empty when none
     */
    public record Resolution(String deviceId, String kernelId, DType dtype, String bucket, Parameters parameters,
                             Source source, String origin) {
        @Override
        public String toString() {
            return kernelId + " on " + deviceId + " " + dtype + " bucket " + bucket + ": " + parameters + " ("
                    + source.name().toLowerCase(java.util.Locale.ROOT) + (origin.isEmpty() ? "" : ", " + origin) + ")";
        }
    }

    /** Restores the previous thread-local override when closed. */
    public interface Scope extends AutoCloseable {
        /** Ends the override on this thread. */
        @Override
        void close();
    }

    private record MemoKey(Device device, String kernelId, String sourceHash, DType dtype, String bucket) {
    }

    private static final System.Logger LOG = System.getLogger("org.kernels4j");
    private static final Map<String, TuningSpace<?>> SPACES = new ConcurrentHashMap<>();
    private static final Map<String, Parameters> OVERRIDES = new ConcurrentHashMap<>();
    private static final ThreadLocal<Map<String, Parameters>> SCOPED = ThreadLocal.withInitial(HashMap::new);
    private static final ThreadLocal<List<Resolution>> TRACE = new ThreadLocal<>();
    private static final Map<MemoKey, Optional<TuningLookup.Found>> MEMO = new ConcurrentHashMap<>();
    private static volatile List<TuningLookup> lookups;

    private Tuning() {
    }

    /**
     * The parameters for a dispatch of {@code space}'s kernel on {@code device} for a problem of {@code dtype} in
     * {@code bucket}. Call it on the thread that dispatches (thread-local overrides apply there).
     *
     * @throws IllegalArgumentException when an override does not fit the space on this device
     */
    public static Parameters parameters(Device device, TuningSpace<?> space, DType dtype, String bucket) {
        Resolution r = resolve(device, space, dtype, bucket);
        List<Resolution> trace = TRACE.get();
        if (trace != null) {
            trace.add(r);
        }
        Debug.log(2, () -> "tuning " + r);
        return r.parameters();
    }

    /**
     * What {@link #parameters} would return, with its source, without tracing or printing: to read the
     * parameters an op uses.
     */
    public static Resolution resolve(Device device, TuningSpace<?> space, DType dtype, String bucket) {
        if (device == null || space == null || dtype == null || bucket == null) {
            throw new IllegalArgumentException("device, space, dtype and bucket must not be null");
        }
        String id = space.kernelId();
        Parameters over = SCOPED.get().get(id);
        if (over == null) {
            over = OVERRIDES.get(id);
        }
        Optional<TuningLookup.Found> found = MEMO.computeIfAbsent(
                new MemoKey(device, id, space.sourceHash(), dtype, bucket), k -> lookup(device, space, dtype, bucket));
        Parameters base = found.map(TuningLookup.Found::parameters).orElse(space.defaults());
        if (over != null) {
            Parameters merged = base.withAll(over);
            String why = space.invalidReason(merged, device.capabilities());
            if (why != null) {
                throw new IllegalArgumentException("override of " + id + " " + over + ": " + why + " on "
                        + device.id());
            }
            return new Resolution(device.id(), id, dtype, bucket, merged, Source.OVERRIDE, "");
        }
        return found.map(f -> new Resolution(device.id(), id, dtype, bucket, f.parameters(), f.source(), f.origin()))
                .orElseGet(() -> new Resolution(device.id(), id, dtype, bucket, space.defaults(), Source.DEFAULT, ""));
    }

    /**
     * Overrides (some of) {@code kernelId}'s parameters in this JVM, on every device, until
     * {@link #clearOverride}. The values are checked against the space's constraints at each dispatch.
     *
     * @throws IllegalArgumentException when the kernel's space is known and lacks one of the names
     */
    public static void override(String kernelId, Parameters parameters) {
        checkNames(kernelId, parameters);
        OVERRIDES.put(kernelId, parameters);
    }

    /** The JVM-wide override of {@code kernelId}, if any. */
    public static Optional<Parameters> overrideOf(String kernelId) {
        return Optional.ofNullable(OVERRIDES.get(kernelId));
    }

    /** Removes the JVM-wide override of {@code kernelId}. */
    public static void clearOverride(String kernelId) {
        OVERRIDES.remove(kernelId);
    }

    /** Removes every JVM-wide override. */
    public static void clearOverrides() {
        OVERRIDES.clear();
    }

    /**
     * Overrides {@code kernelId}'s parameters on the current thread only, until the returned scope is closed;
     * scopes nest. This is how the autotuner runs a candidate through the real op.
     */
    public static Scope scoped(String kernelId, Parameters parameters) {
        checkNames(kernelId, parameters);
        Map<String, Parameters> m = SCOPED.get();
        Parameters previous = m.put(kernelId, parameters);
        return () -> {
            if (previous == null) {
                m.remove(kernelId);
            } else {
                m.put(kernelId, previous);
            }
        };
    }

    /**
     * Runs {@code action} on this thread and returns every parameter resolution its dispatches made, in
     * order: which tunable kernels an op uses, for which buckets, with which parameters.
     */
    public static List<Resolution> trace(Runnable action) {
        List<Resolution> previous = TRACE.get();
        List<Resolution> mine = new ArrayList<>();
        TRACE.set(mine);
        try {
            action.run();
        } finally {
            TRACE.set(previous);
            if (previous != null) {
                previous.addAll(mine);
            }
        }
        return List.copyOf(mine);
    }

    /** Forgets remembered lookups, so that dispatches see a tuning cache that changed since. */
    public static void refresh() {
        for (TuningLookup l : lookups()) {
            try {
                l.refresh();
            } catch (RuntimeException e) {
                LOG.log(System.Logger.Level.WARNING, "kernels4j: tuning lookup " + l.getClass().getName()
                        + " failed to refresh: " + e);
            }
        }
        MEMO.clear();
    }

    /** Every tuning space built in this JVM so far (kernels build theirs when their class loads). */
    public static Collection<TuningSpace<?>> spaces() {
        return List.copyOf(SPACES.values());
    }

    /** The space of {@code kernelId}, if it has been built in this JVM. */
    public static Optional<TuningSpace<?>> space(String kernelId) {
        return Optional.ofNullable(SPACES.get(kernelId));
    }

    static void register(TuningSpace<?> space) {
        SPACES.put(space.kernelId(), space);
    }

    private static void checkNames(String kernelId, Parameters parameters) {
        if (kernelId == null || parameters == null) {
            throw new IllegalArgumentException("kernelId and parameters must not be null");
        }
        TuningSpace<?> s = SPACES.get(kernelId);
        if (s != null) {
            for (String n : parameters.names()) {
                if (s.parameter(n) == null) {
                    throw new IllegalArgumentException("parameters: " + n + " is not a parameter of " + kernelId
                            + " (expected some of " + s.defaults().names() + ")");
                }
            }
        }
    }

    private static Optional<TuningLookup.Found> lookup(Device device, TuningSpace<?> space, DType dtype,
                                                       String bucket) {
        for (TuningLookup l : lookups()) {
            Optional<TuningLookup.Found> f;
            try {
                f = l.find(device, space, dtype, bucket);
            } catch (RuntimeException e) {
                LOG.log(System.Logger.Level.WARNING, "kernels4j: tuning lookup " + l.getClass().getName()
                        + " failed for " + space.kernelId() + "; using the next source: " + e);
                continue;
            }
            if (f == null || f.isEmpty()) {
                continue;
            }
            String why = space.invalidReason(f.get().parameters(), device.capabilities());
            if (why == null) {
                return f;
            }
            Debug.log(1, () -> "tuning: ignored " + f.get().parameters() + " for " + space.kernelId() + " from "
                    + f.get().origin() + ": " + why);
        }
        return Optional.empty();
    }

    private static List<TuningLookup> lookups() {
        List<TuningLookup> l = lookups;
        if (l == null) {
            synchronized (Tuning.class) {
                l = lookups;
                if (l == null) {
                    l = loadLookups();
                    lookups = l;
                }
            }
        }
        return l;
    }

    private static List<TuningLookup> loadLookups() {
        List<TuningLookup> out = new ArrayList<>();
        var it = ServiceLoader.load(TuningLookup.class, Tuning.class.getClassLoader()).iterator();
        while (true) {
            try {
                if (!it.hasNext()) {
                    break;
                }
                out.add(it.next());
            } catch (ServiceConfigurationError | LinkageError e) {
                LOG.log(System.Logger.Level.WARNING, "kernels4j: a tuning lookup failed to load; kernels use their "
                        + "defaults: " + e);
            }
        }
        Debug.log(2, () -> "tuning lookups: " + (out.isEmpty() ? "none (kernel defaults only)"
                : out.stream().map(x -> x.getClass().getName()).toList()));
        return List.copyOf(out);
    }
}
