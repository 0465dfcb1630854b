package org.kernels4j.autotune;

import java.util.ServiceConfigurationError;
import java.util.ServiceLoader;

import org.kernels4j.spi.Debug;

import picocli.CommandLine;
import picocli.CommandLine.Command;

/**
 * The {@code kernels4j} command line: {@code devices}, {@code check}, {@code tune}, {@code cache}, and the
 * subcommands other modules contribute through {@link CliExtension}. Started by the {@code ./kernels4j}
 * script at the repository root.
 */
@Command(name = "kernels4j", mixinStandardHelpOptions = true, versionProvider = Main.Version.class,
        description = "Hand-optimized attention, conv2d and layer-norm kernels for the JVM: devices, checks, tuning.",
        subcommands = {DevicesCommand.class, CheckCommand.class, TuneCommand.class, CacheCommand.class,
                CommandLine.HelpCommand.class})
public final class Main implements Runnable {

    @CommandLine.Spec
    CommandLine.Model.CommandSpec spec;

    /** Runs the command line and exits with its exit code. */
    public static void main(String[] args) {
        System.exit(commandLine().execute(args));
    }

    /** The command line with every contributed subcommand, for tests and embedding. */
    public static CommandLine commandLine() {
        CommandLine cl = new CommandLine(new Main());
        cl.setExecutionExceptionHandler((e, line, parsed) -> {
            if (e instanceof CommandLine.ParameterException pe) {
                throw pe;
            }
            line.getErr().println("kernels4j " + line.getCommandName() + ": " + (e.getMessage() == null
                    ? e.toString() : e.getMessage()) + (Debug.enabled(1) ? "" : " (KERNELS4J_DEBUG=1 shows the stack trace)"));
            if (Debug.enabled(1)) {
                e.printStackTrace(line.getErr());
            }
            line.getErr().flush();
            return 1;
        });
        try {
            for (CliExtension e : ServiceLoader.load(CliExtension.class, Main.class.getClassLoader())) {
                for (Object c : e.subcommands()) {
                    cl.addSubcommand(c);
                }
            }
        } catch (ServiceConfigurationError err) {
            System.err.println("[kernels4j] warning: a command-line extension failed to load: " + err.getMessage());
        }
        return cl;
    }

    @Override
    public void run() {
        spec.commandLine().usage(spec.commandLine().getOut());
    }

    /** The version of the kernels4j jars on the class path. */
    static final class Version implements CommandLine.IVersionProvider {
        @Override
        public String[] getVersion() {
            return new String[] {"kernels4j " + DeviceKey.LIBRARY_VERSION};
        }
    }
}
