package org.kernels4j.bench;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.regex.Pattern;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import picocli.CommandLine;

/** {@code kernels4j report} on synthetic histories: exit codes, the printed tables, the dashboard file. */
class ReportCommandTest {

    @TempDir
    Path tmp;

    private record Outcome(int exit, String out, String html) {
    }

    private Outcome report(String... args) throws Exception {
        StringWriter sw = new StringWriter();
        CommandLine cl = new CommandLine(new ReportCommand());
        cl.setOut(new PrintWriter(sw));
        cl.setErr(new PrintWriter(sw));
        Path html = tmp.resolve("out/dashboard.html");
        String[] all = new String[args.length + 2];
        System.arraycopy(args, 0, all, 0, args.length);
        all[args.length] = "-o";
        all[args.length + 1] = html.toString();
        int exit = cl.execute(all);
        return new Outcome(exit, sw.toString(), Files.exists(html) ? Files.readString(html, StandardCharsets.UTF_8) : "");
    }

    @Test
    void aSlowdownFailsTheReportWhenAsked() throws Exception {
        Path dir = tmp.resolve("results/synthetic-2c");
        SyntheticResults.history(dir, "synthetic-2c", 6, 1, 0.01, 0.01, "ours/cpu/float32/conv-r56/forward", 1.2);
        Outcome o = report("--fail-on-regression", tmp.resolve("results").toString());
        assertEquals(ReportCommand.REGRESSION_EXIT, o.exit(), o.out());
        assertTrue(o.out().contains("1 regression(s)"), o.out());
        assertTrue(Pattern.compile("regression\\s+synthetic-2c\\s+ours/cpu/float32/conv-r56/forward").matcher(o.out()).find(),
                o.out());
        assertTrue(o.html().contains("<table id=\"regressions\">"), "the dashboard lists the regression");
        assertTrue(o.html().contains("ours/cpu/float32/conv-r56/forward"));
    }

    @Test
    void withoutTheFlagARegressionIsReportedButTheExitIsZero() throws Exception {
        Path dir = tmp.resolve("r");
        SyntheticResults.history(dir, "synthetic-2c", 4, 2, 0.01, 0.01, "ours/cpu/float32/ln-8k-1k/forward", 1.2);
        Outcome o = report(dir.toString());
        assertEquals(0, o.exit(), o.out());
        assertTrue(o.out().contains("1 regression(s)"), o.out());
    }

    @Test
    void aRunWhoseCeilingsSlowedTooIsNotARegression() throws Exception {
        // a loaded host: every benchmark of the last run 1.5x slower, the copy and FMA ceilings as well
        Path dir = tmp.resolve("r");
        SyntheticResults.history(dir, "loaded-2c", 6, 5, 0.01, 0.01, SyntheticResults.EVERY_KEY, 1.5);
        Outcome o = report("--fail-on-regression", dir.toString());
        assertEquals(0, o.exit(), o.out());
        assertTrue(o.out().contains("0 regression(s)"), o.out());
        assertTrue(o.out().contains("loaded-2c: 3 change(s) not judged: the newest run's ceilings moved 1.5"), o.out());
        assertTrue(Pattern.compile("host changed\\s+loaded-2c\\s+ours/cpu/float32/conv-r56/forward").matcher(o.out())
                .find(), o.out());
        assertTrue(o.html().contains("id=\"host-changed\""), "the dashboard says why nothing was judged");
    }

    @Test
    void aSlowdownWithSteadyCeilingsIsStillARegression() throws Exception {
        // the ceilings are in every history of aSlowdownFailsTheReportWhenAsked too; here a larger slowdown of one
        // kernel, the ceilings unmoved, stays a regression
        Path dir = tmp.resolve("r");
        SyntheticResults.history(dir, "steady-2c", 6, 6, 0.01, 0.01, "ours/cpu/float32/ln-8k-1k/forward", 2.0);
        Outcome o = report("--fail-on-regression", dir.toString());
        assertEquals(ReportCommand.REGRESSION_EXIT, o.exit(), o.out());
        assertTrue(o.out().contains("1 regression(s)"), o.out());
        assertTrue(!o.out().contains("not judged"), o.out());
    }

    @Test
    void aNoisyHistoryWithoutAChangePasses() throws Exception {
        Path dir = tmp.resolve("r");
        SyntheticResults.history(dir, "noisy-2c", 6, 3, 0.15, 0.10, null, 1);
        Outcome o = report("--fail-on-regression", dir.toString());
        assertEquals(0, o.exit(), o.out());
        assertTrue(o.out().contains("0 regression(s)"), o.out());
        assertTrue(o.html().contains("id=\"no-regressions\""));
    }

    @Test
    void theDashboardIsOneSelfContainedFile() throws Exception {
        Path dir = tmp.resolve("r");
        SyntheticResults.history(dir, "synthetic-2c", 3, 4, 0.01, 0.01, null, 1);
        SyntheticResults.history(tmp.resolve("r2"), "other-16c", 2, 5, 0.01, 0.01, null, 1);
        Outcome o = report(dir.toString(), tmp.resolve("r2").toString());
        assertEquals(0, o.exit(), o.out());
        String html = o.html();
        assertFalse(Pattern.compile("<script[^>]+src=|<link[^>]+href=|url\\(\\s*['\"]?https?:", Pattern.CASE_INSENSITIVE)
                .matcher(html).find(), "nothing is loaded from elsewhere");
        assertTrue(html.contains("uPlot"), "the charting library is inlined");
        // a chart per kernels4j benchmark (3) plus the ceilings chart, for each of the two machines
        assertEquals(8, html.split("<figure class=\"chart\"", -1).length - 1);
        assertTrue(html.contains("<h2>synthetic-2c</h2>") && html.contains("<h2>other-16c</h2>"));
        // the newest run's table: ratio torch/ours for ln-8k-1k forward is 30/12 in truth
        assertTrue(Pattern.compile("<td[^>]*>ln-8k-1k</td><td>forward</td>.*?<td class=\"good\">2\\.[3-7]\\dx</td>")
                .matcher(html).find(), "peer ratio in the table");
    }

    @Test
    void printsTheRatioTableOfTheNewestRun() throws Exception {
        Path dir = tmp.resolve("r");
        SyntheticResults.history(dir, "synthetic-2c", 1, 6, 0.001, 0.001, null, 1);
        Outcome o = report(dir.toString());
        assertEquals(0, o.exit(), o.out());
        // conv-r56 forward: 2·8·64·64·9·56·56 FLOP in 40 ms; FMA ceiling 2e9 FLOP in 20 ms = 100 GFLOP/s
        double tflops = 2.0 * 8 * 64 * 64 * 9 * 56 * 56 / 0.040 / 1e12;
        String line = o.out().lines().filter(l -> l.startsWith("conv-r56") && l.contains("forward")).findFirst()
                .orElseThrow(() -> new AssertionError(o.out()));
        assertTrue(line.contains(Summary.fmt(tflops, 3) + " TFLOP/s"), line);
        assertTrue(line.contains(Summary.fmt(100 * tflops * 1e3 / 100, 0) + "%"), line);
        // peers: torch 60 ms, ort 45 ms against 40 ms
        assertTrue(line.matches(".*\\s1\\.(49|50|51)x\\s.*\\s1\\.1[234]x$"), line);
        assertTrue(o.out().contains("0 benchmark(s) with history checked"), o.out());
    }

    @Test
    void otherJsonFilesInTheResultsFoldersArePassedOver() throws Exception {
        Path dir = tmp.resolve("results");
        SyntheticResults.history(dir.resolve("synthetic-2c"), "synthetic-2c", 2, 7, 0.01, 0.01, null, 1);
        Files.createDirectories(dir.resolve("h100/first-contact"));
        Files.writeString(dir.resolve("h100/first-contact/probe.json"), "{\"gpu\": \"H100\"}");
        Files.writeString(dir.resolve("h100/first-contact/timings.json"), "[{\"shape\": \"ln\", \"ms\": 1}]");
        Outcome o = report(dir.toString());
        assertEquals(0, o.exit(), o.out());
        assertTrue(o.out().contains("synthetic-2c: 2 run(s)"), o.out());
        Outcome named = report(dir.resolve("h100/first-contact/probe.json").toString());
        assertTrue(named.exit() != 0, "a file named directly must be a JMH result");
    }

    @Test
    void aMergedGpuBaselinePairsWithTheCudaFigures() throws Exception {
        Path dir = tmp.resolve("h100-16c");
        Path run = SyntheticResults.write(dir, "h100-16c", "feedbeef00feedbeef00", java.time.Instant.parse(
                "2026-11-20T10:00:00Z"), java.util.Map.of(
                "ours/cuda/bfloat16/attn-fa-d128-16k-causal/forward", new double[] {2.0, 2.02, 1.98}));
        Path baseline = tmp.resolve("torch-gpu.json");
        Files.writeString(baseline, """
                [{"benchmark": "org.kernels4j.bench.Torch.forward",
                  "params": {"problem": "attn-fa-d128-16k-causal", "backend": "cuda", "dtype": "bfloat16"},
                  "primaryMetric": {"score": 3.0, "scoreUnit": "ms/op", "rawData": [[3.0, 3.0, 3.0]]}}]
                """);
        assertEquals(1, ResultMerge.append(run, baseline));
        Outcome o = report(dir.toString());
        assertEquals(0, o.exit(), o.out());
        String line = o.out().lines().filter(l -> l.startsWith("attn-fa-d128-16k-causal")).findFirst()
                .orElseThrow(() -> new AssertionError(o.out()));
        assertTrue(line.contains("cuda") && line.contains("bfloat16") && line.contains("1.50x"), line);
        Files.writeString(baseline, "{\"not\": \"jmh\"}");
        assertThrowsIllegalArgument(() -> ResultMerge.append(run, baseline));
    }

    private static void assertThrowsIllegalArgument(Runnable r) {
        org.junit.jupiter.api.Assertions.assertThrows(IllegalArgumentException.class, r::run);
    }

    @Test
    void noResultsIsAnError() {
        StringWriter sw = new StringWriter();
        CommandLine cl = new CommandLine(new ReportCommand());
        cl.setErr(new PrintWriter(sw));
        cl.setOut(new PrintWriter(sw));
        int exit = cl.execute(tmp.toString(), "-o", tmp.resolve("d.html").toString());
        assertTrue(exit != 0);
    }
}
