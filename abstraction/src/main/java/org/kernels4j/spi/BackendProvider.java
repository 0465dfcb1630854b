package org.kernels4j.spi;

import org.kernels4j.Backend;

/**
 * Registered with {@link java.util.ServiceLoader} under
 * {@code META-INF/services/org.kernels4j.spi.BackendProvider}. Providers are instantiated cheaply and must not
 * touch native libraries before {@link #start()}.
 */
public interface BackendProvider {

    /** The backend's stable name ({@code "cpu"}, {@code "opencl"}, {@code "cuda"}). */
    String name();

    /** Higher is preferred by {@link org.kernels4j.Backends#defaultDevice()}: CUDA 300, OpenCL 200, CPU 100. */
    int priority();

    /**
     * Loads native libraries, finds devices and returns the started backend.
     *
     * @throws Exception with a message that says why the backend is unavailable (e.g. "libcuda.so.1 not
     *                   found"); discovery records it and skips the backend
     */
    Backend start() throws Exception;
}
