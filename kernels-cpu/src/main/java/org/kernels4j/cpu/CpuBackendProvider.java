package org.kernels4j.cpu;

import org.kernels4j.Backend;
import org.kernels4j.spi.BackendProvider;

/**
 * Registers the pure-Java CPU backend ({@code "cpu"}, priority 100) with {@link java.util.ServiceLoader}.
 * It always starts: it needs nothing but the JVM. Starting it logs, once, whether the Panama Vector API
 * kernels or the scalar ones are used (and how to enable the former). Kernels run on the calling thread
 * and a shared pool of daemon threads, together as many as the machine has processors, or as the system
 * property {@code kernels4j.cpu.threads} says.
 */
public final class CpuBackendProvider implements BackendProvider {

    /** Called by {@link java.util.ServiceLoader}. */
    public CpuBackendProvider() {
    }

    @Override
    public String name() {
        return "cpu";
    }

    @Override
    public int priority() {
        return 100;
    }

    @Override
    public Backend start() {
        return CpuBackend.instance();
    }
}
