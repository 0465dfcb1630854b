package org.kernels4j.opencl;

import org.junit.platform.launcher.LauncherSession;
import org.junit.platform.launcher.LauncherSessionListener;

/**
 * Turns on {@link OpenClProvider#POISON_SCRATCH_PROPERTY} for every test of this module, the conformance suite
 * included: a kernel that reads a workspace or partial-sum element it never wrote then fails on NaN here, where
 * PoCL's fresh buffers would otherwise often hold zeros and hide it. An explicit {@code -D} setting wins.
 */
public final class PoisonScratchSession implements LauncherSessionListener {

    /** Used by the JUnit launcher (ServiceLoader). */
    public PoisonScratchSession() {
    }

    @Override
    public void launcherSessionOpened(LauncherSession session) {
        if (System.getProperty(OpenClProvider.POISON_SCRATCH_PROPERTY) == null) {
            System.setProperty(OpenClProvider.POISON_SCRATCH_PROPERTY, "true");
        }
    }
}
