package org.kernels4j;

/** A kernel failed to compile; the message holds the compiler's build log. */
public class KernelBuildException extends RuntimeException {

    private static final long serialVersionUID = 1L;

    private final String buildLog;

    /** Creates the exception with the source's name, the device and the compiler's log. */
    public KernelBuildException(String what, String buildLog) {
        super(what + (buildLog == null || buildLog.isBlank() ? "" : ":\n" + buildLog));
        this.buildLog = buildLog == null ? "" : buildLog;
    }

    /** The compiler's log. */
    public String buildLog() {
        return buildLog;
    }
}
