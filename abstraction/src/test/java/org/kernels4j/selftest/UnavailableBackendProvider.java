package org.kernels4j.selftest;

import org.kernels4j.Backend;
import org.kernels4j.spi.BackendProvider;

/** A test-only backend that cannot start, as a GPU backend on a machine without its driver. */
public final class UnavailableBackendProvider implements BackendProvider {

    /** The backend's name. */
    public static final String NAME = "selftest-unavailable";

    /** The reason {@link #start()} gives. */
    public static final String REASON = "libselftest.so.1 not found";

    @Override
    public String name() {
        return NAME;
    }

    @Override
    public int priority() {
        return 0;
    }

    @Override
    public Backend start() {
        throw new UnsatisfiedLinkError(REASON);
    }
}
