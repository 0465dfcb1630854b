package org.kernels4j.bench;

import java.io.IOException;
import java.io.PrintWriter;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.concurrent.Callable;

import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;

/**
 * {@code kernels4j report}: reads a history of bench results, writes the dashboard, prints each machine's
 * newest run and the regressions, and with {@code --fail-on-regression} exits 1 when the newest run of a
 * machine is slower than its history beyond the measured noise.
 */
@Command(name = "report", mixinStandardHelpOptions = true,
        description = {"Build the benchmark dashboard and check the newest results for regressions.",
                "Writes one self-contained HTML file from bench results and checks the newest run of each machine",
                "against the earlier runs, using their measured noise."})
final class ReportCommand implements Callable<Integer> {

    /** Exit code when a regression is found and {@code --fail-on-regression} is given. */
    static final int REGRESSION_EXIT = 1;

    @CommandLine.Spec
    CommandLine.Model.CommandSpec spec;

    @Parameters(arity = "1..*", paramLabel = "RESULTS", description = "JMH result files or folders of them (searched recursively).")
    List<Path> results = new ArrayList<>();

    @Option(names = {"-o", "--output"}, paramLabel = "FILE", description = "Dashboard file (default: ${DEFAULT-VALUE}).")
    Path output = Path.of("dashboard.html");

    @Option(names = "--fail-on-regression", description = "Exit with status 1 when a regression is found.")
    boolean failOnRegression;

    @Override
    public Integer call() throws IOException {
        PrintWriter out = spec.commandLine().getOut();
        History h = History.load(results);
        if (h.isEmpty()) {
            throw new IllegalArgumentException("RESULTS: no JMH result file (*.json) under " + results);
        }
        List<History.Finding> findings = h.check();
        Path parent = output.toAbsolutePath().getParent();
        if (parent != null) {
            Files.createDirectories(parent);
        }
        Files.writeString(output, Dashboard.render(h, findings), StandardCharsets.UTF_8);
        for (String m : h.machines()) {
            List<RunRecord> runs = h.runs(m);
            RunRecord newest = runs.get(runs.size() - 1);
            out.printf(Locale.ROOT, "%s: %d run(s), newest %s (commit %s)%n", m, runs.size(), newest.meta().date(),
                    newest.meta().shortCommit());
            Summary.print(newest, out);
            out.println();
        }
        List<History.Finding> regressions = findings.stream()
                .filter(f -> f.verdict().status() == RegressionCheck.Status.REGRESSION).toList();
        List<History.Finding> improvements = findings.stream()
                .filter(f -> f.verdict().status() == RegressionCheck.Status.IMPROVEMENT).toList();
        long checked = findings.stream().filter(f -> f.verdict().status() != RegressionCheck.Status.NO_HISTORY).count();
        out.printf(Locale.ROOT, "%d benchmark(s) with history checked: %d regression(s), %d improvement(s)%n", checked,
                regressions.size(), improvements.size());
        for (String m : h.machines()) {
            long unjudged = findings.stream().filter(f -> f.machine().equals(m)
                    && f.verdict().status() == RegressionCheck.Status.HOST_CHANGED).count();
            if (unjudged > 0) {
                out.printf(Locale.ROOT, "%s: %d change(s) not judged: the newest run's ceilings moved %.2fx against the"
                        + " runs before (over %.2fx the host, not the code, may have changed); rerun on a quiet host%n",
                        m, unjudged, h.hostChange(m), History.HOST_TOLERANCE);
            }
        }
        List<List<String>> rows = new ArrayList<>();
        for (History.Finding f : findings) {
            RegressionCheck.Verdict v = f.verdict();
            if (v.status() == RegressionCheck.Status.REGRESSION || v.status() == RegressionCheck.Status.IMPROVEMENT
                    || v.status() == RegressionCheck.Status.HOST_CHANGED) {
                rows.add(List.of(v.status().name().toLowerCase(Locale.ROOT).replace('_', ' '), f.machine(), f.key(),
                        Summary.fmt(v.baselineMs(), 3), Summary.fmt(v.newestMs(), 3), Summary.fmt(v.ratio(), 3) + "x",
                        "[" + Summary.fmt(v.ratioLow(), 3) + ", " + Summary.fmt(v.ratioHigh(), 3) + "]",
                        String.format(Locale.ROOT, "%.2g", v.pValue())));
            }
        }
        if (!rows.isEmpty()) {
            Summary.table(out, List.of("status", "machine", "benchmark", "baseline ms", "newest ms", "ratio",
                    "interval", "p"), rows);
        }
        out.println("dashboard: " + output.toAbsolutePath());
        out.flush();
        return failOnRegression && !regressions.isEmpty() ? REGRESSION_EXIT : 0;
    }
}
