package org.kernels4j.bench;

import java.util.List;

import org.kernels4j.autotune.CliExtension;

/** Adds {@code bench} and {@code report} to the {@code kernels4j} command line. */
public final class BenchCli implements CliExtension {

    /** Creates the extension (found by ServiceLoader). */
    public BenchCli() {
    }

    @Override
    public List<Object> subcommands() {
        return List.of(new BenchCommand(), new ReportCommand());
    }
}
