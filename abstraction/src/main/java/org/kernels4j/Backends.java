package org.kernels4j;

import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.Locale;
import java.util.Optional;
import java.util.ServiceConfigurationError;
import java.util.ServiceLoader;
import java.util.Set;
import java.util.stream.Collectors;

import org.kernels4j.spi.BackendProvider;
import org.kernels4j.spi.Debug;

/**
 * Finds the backends on the class path with {@link ServiceLoader} and starts each one once.
 *
 * <p>A backend whose native library or device is missing does not fail discovery: it is reported by
 * {@link #statuses()} with the reason and skipped by {@link #available()}. The system property
 * {@code kernels4j.backends} (comma-separated names) restricts discovery to the named backends.
 */
public final class Backends {

    private static volatile List<BackendStatus> statuses;

    private Backends() {
    }

    /** Every backend found on the class path, started or with the reason it could not start, best first. */
    public static List<BackendStatus> statuses() {
        List<BackendStatus> s = statuses;
        if (s == null) {
            synchronized (Backends.class) {
                s = statuses;
                if (s == null) {
                    s = discover();
                    statuses = s;
                }
            }
        }
        return s;
    }

    /** The backends that started, best first (GPU backends before the CPU backend). */
    public static List<Backend> available() {
        return statuses().stream().filter(BackendStatus::isAvailable).map(BackendStatus::backend).toList();
    }

    /** The started backend of that name ({@code "cpu"}, {@code "opencl"}, {@code "cuda"}), if any. */
    public static Optional<Backend> find(String name) {
        if (name == null) {
            throw new IllegalArgumentException("name: must not be null");
        }
        String n = name.toLowerCase(Locale.ROOT);
        return available().stream().filter(b -> b.name().equals(n)).findFirst();
    }

    /**
     * The started backend of that name.
     *
     * @throws IllegalStateException naming the reason when it is unavailable or not on the class path
     */
    public static Backend require(String name) {
        if (name == null) {
            throw new IllegalArgumentException("name: must not be null");
        }
        String n = name.toLowerCase(Locale.ROOT);
        for (BackendStatus s : statuses()) {
            if (s.name().equals(n)) {
                if (s.isAvailable()) {
                    return s.backend();
                }
                throw new IllegalStateException("backend '" + n + "' is unavailable: " + s.unavailableReason());
            }
        }
        throw new IllegalStateException("backend '" + n + "' is not on the class path (found: "
                + statuses().stream().map(BackendStatus::name).collect(Collectors.joining(", ")) + ")");
    }

    /** The preferred device of the best available backend. */
    public static Device defaultDevice() {
        List<Backend> a = available();
        if (a.isEmpty()) {
            throw new IllegalStateException("no kernels4j backend is available: " + statuses()
                    + " (add kernels4j-kernels-cpu to the class path for a backend that always works)");
        }
        return a.get(0).defaultDevice();
    }

    private static List<BackendStatus> discover() {
        Set<String> only = requestedBackends();
        List<BackendProvider> providers = new ArrayList<>();
        List<BackendStatus> result = new ArrayList<>();
        var it = ServiceLoader.load(BackendProvider.class, Backends.class.getClassLoader()).iterator();
        while (true) {
            try {
                if (!it.hasNext()) {
                    break;
                }
                providers.add(it.next());
            } catch (ServiceConfigurationError | LinkageError e) {
                result.add(new BackendStatus("unknown", null, "provider failed to load: " + describe(e)));
            }
        }
        providers.sort(Comparator.comparingInt(BackendProvider::priority).reversed());
        for (BackendProvider p : providers) {
            String name = p.name();
            if (only != null && !only.contains(name)) {
                continue;
            }
            try {
                Backend b = p.start();
                if (b.devices().isEmpty()) {
                    result.add(new BackendStatus(name, null, "no device found"));
                } else {
                    result.add(new BackendStatus(name, b, null));
                }
            } catch (Throwable e) {
                if (e instanceof VirtualMachineError && !(e instanceof OutOfMemoryError)) {
                    throw (VirtualMachineError) e;
                }
                result.add(new BackendStatus(name, null, describe(e)));
            }
        }
        for (BackendStatus s : result) {
            Debug.log(1, () -> "backend " + s);
        }
        return List.copyOf(result);
    }

    private static Set<String> requestedBackends() {
        String prop = System.getProperty("kernels4j.backends");
        if (prop == null || prop.isBlank()) {
            return null;
        }
        return java.util.Arrays.stream(prop.split(","))
                .map(String::trim).filter(x -> !x.isEmpty())
                .map(x -> x.toLowerCase(Locale.ROOT)).collect(Collectors.toUnmodifiableSet());
    }

    private static String describe(Throwable e) {
        String m = e.getMessage();
        String msg = (m == null || m.isBlank()) ? e.getClass().getSimpleName() : m;
        if (e.getCause() != null && e.getCause() != e && e.getCause().getMessage() != null
                && !msg.contains(e.getCause().getMessage())) {
            msg += " (" + e.getCause().getMessage() + ")";
        }
        return msg;
    }
}
