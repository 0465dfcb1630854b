package org.kernels4j.conformance;

import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.stream.Collectors;

import org.junit.jupiter.api.Assumptions;
import org.kernels4j.BackendStatus;
import org.kernels4j.Backends;
import org.kernels4j.DType;
import org.kernels4j.Device;

/**
 * Which backend the conformance suite runs against, chosen by the system property {@value #PROPERTY}
 * (set by each backend module's surefire configuration), and the devices and dtypes to cover: every device
 * of that backend, every dtype its capabilities list.
 *
 * <p>A backend that is on the class path but cannot start (no GPU, no driver) makes every conformance
 * class skip with the reason printed, unless {@value #REQUIRED_PROPERTY} is {@code true} (the CPU backend,
 * which must always work). A backend that is not on the class path at all, or a missing property, is a
 * configuration error and fails, so a suite that silently tests nothing cannot pass.
 */
public final class ConformanceBackend {

    /** System property naming the backend under test ({@code cpu}, {@code opencl}, {@code cuda}). */
    public static final String PROPERTY = "kernels4j.conformance.backend";

    /** System property that turns "backend unavailable" from a skip into a failure. */
    public static final String REQUIRED_PROPERTY = "kernels4j.conformance.required";

    private static final Set<String> PRINTED = ConcurrentHashMap.newKeySet();

    private ConformanceBackend() {
    }

    /** A device and one of its dtypes: the unit most conformance cases are parameterized over. */
    public record Target(Device device, DType dtype) {
        @Override
        public String toString() {
            return device.id() + " " + dtype;
        }
    }

    /** The backend's name from {@value #PROPERTY}. */
    public static String backendName() {
        String name = System.getProperty(PROPERTY);
        if (name == null || name.isBlank()) {
            throw new IllegalStateException("system property " + PROPERTY + " is not set: the conformance suite "
                    + "does not know which backend to test (each backend module's surefire configuration sets it)");
        }
        return name.trim().toLowerCase(Locale.ROOT);
    }

    /**
     * Call from {@code @BeforeAll}: skips the test class (JUnit assumption, reason printed once) when the
     * backend is unavailable and not required; throws when it is required, not on the class path, or the
     * property is missing.
     */
    public static void assumeAvailable() {
        String name = backendName();
        BackendStatus status = status(name);
        if (status.isAvailable()) {
            return;
        }
        String reason = "backend '" + name + "' is unavailable: " + status.unavailableReason();
        if (Boolean.getBoolean(REQUIRED_PROPERTY)) {
            throw new IllegalStateException(reason + " (and " + REQUIRED_PROPERTY + "=true)");
        }
        if (PRINTED.add(name)) {
            System.err.println("[kernels4j conformance] SKIPPED: " + reason);
        }
        Assumptions.abort(reason);
    }

    /** Every device of the backend under test (empty when it is unavailable). */
    public static List<Device> devices() {
        BackendStatus s = status(backendName());
        return s.isAvailable() ? s.backend().devices() : List.of();
    }

    /** Every (device, dtype) pair of the backend under test, fp32 first. */
    public static List<Target> targets() {
        List<Target> out = new ArrayList<>();
        for (Device d : devices()) {
            for (DType t : DType.values()) {
                if (d.capabilities().supports(t)) {
                    out.add(new Target(d, t));
                }
            }
        }
        return out;
    }

    /** Every device of the backend under test with fp32, which every backend supports. */
    public static List<Target> fp32Targets() {
        return devices().stream().map(d -> new Target(d, DType.FLOAT32)).toList();
    }

    private static BackendStatus status(String name) {
        List<BackendStatus> all = Backends.statuses();
        for (BackendStatus s : all) {
            if (s.name().equals(name)) {
                return s;
            }
        }
        throw new IllegalStateException("backend '" + name + "' (from " + PROPERTY + ") is not on the class path; found: "
                + all.stream().map(BackendStatus::toString).collect(Collectors.joining("; ")));
    }
}
