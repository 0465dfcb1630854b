package org.kernels4j;

import java.util.Optional;

/**
 * The outcome of trying to start one backend: either the started {@link Backend}, or the reason it is
 * unavailable on this machine (for example {@code "libcuda.so.1 not found"} or {@code "no OpenCL platform"}).
 *
 * @param name              the backend's name
 * @param backend           the started backend, or {@code null} when unavailable
 * @param unavailableReason why the backend could not start, or {@code null} when available
 */
public record BackendStatus(String name, Backend backend, String unavailableReason) {

    /** Whether the backend started. */
    public boolean isAvailable() {
        return backend != null;
    }

    /** The backend, when it started. */
    public Optional<Backend> asOptional() {
        return Optional.ofNullable(backend);
    }

    @Override
    public String toString() {
        return isAvailable() ? name + ": available" : name + ": unavailable: " + unavailableReason;
    }
}
