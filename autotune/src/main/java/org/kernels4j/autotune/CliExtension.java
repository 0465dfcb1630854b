package org.kernels4j.autotune;

import java.util.List;

/**
 * Contributes subcommands to the {@code kernels4j} command line. Implementations are found with
 * {@link java.util.ServiceLoader} under {@code META-INF/services/org.kernels4j.autotune.CliExtension}, so a
 * module that depends on {@code kernels4j-autotune} (the benchmarks add {@code bench} and {@code report}) plugs
 * in by listing its class there.
 *
 * <p>Each object returned is a picocli command: an instance of a class annotated with
 * {@code @picocli.CommandLine.Command(name = "...")} implementing {@link java.util.concurrent.Callable
 * Callable&lt;Integer&gt;} (the exit code) or {@link Runnable}. Commands should print through
 * {@code spec.commandLine().getOut()} (inject {@code @Spec CommandSpec spec}) so that tests can capture the
 * output. A name already taken is an error at start-up.
 */
public interface CliExtension {

    /** The subcommands to add, as picocli command objects. */
    List<Object> subcommands();
}
