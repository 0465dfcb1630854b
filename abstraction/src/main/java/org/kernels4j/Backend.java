package org.kernels4j;

import java.util.List;

/**
 * A compute backend (CPU, OpenCL, CUDA) that started successfully, with the devices it found.
 * Backends are discovered with {@link Backends}; each is created once per JVM and is thread-safe.
 */
public interface Backend {

    /** Short stable name: {@code "cpu"}, {@code "opencl"} or {@code "cuda"}. */
    String name();

    /** The devices of this backend, never empty. */
    List<Device> devices();

    /** The first (preferred) device. */
    default Device defaultDevice() {
        return devices().get(0);
    }
}
