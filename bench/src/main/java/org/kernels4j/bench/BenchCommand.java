package org.kernels4j.bench;

import java.io.IOException;
import java.io.PrintStream;
import java.io.PrintWriter;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.ZoneOffset;
import java.time.format.DateTimeFormatter;
import java.util.ArrayList;
import java.util.Collection;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.Callable;
import java.util.regex.Pattern;

import org.kernels4j.Backend;
import org.kernels4j.BackendStatus;
import org.kernels4j.Backends;
import org.kernels4j.DType;
import org.kernels4j.Device;
import org.openjdk.jmh.results.RunResult;
import org.openjdk.jmh.results.format.ResultFormatFactory;
import org.openjdk.jmh.results.format.ResultFormatType;
import org.openjdk.jmh.runner.Runner;
import org.openjdk.jmh.runner.RunnerException;
import org.openjdk.jmh.runner.options.ChainedOptionsBuilder;
import org.openjdk.jmh.runner.options.OptionsBuilder;
import org.openjdk.jmh.runner.options.TimeValue;
import org.openjdk.jmh.runner.options.VerboseMode;

import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

/**
 * {@code kernels4j bench}: runs the JMH benchmarks of the problem set on the chosen backends, the peers
 * (PyTorch CPU, ONNX Runtime) and the ceilings in one run, writes the JMH JSON result and the machine
 * metadata beside it into the results folder, and prints the ratio table.
 */
@Command(name = "bench", mixinStandardHelpOptions = true,
        description = {"Benchmark kernels4j against PyTorch CPU and ONNX Runtime with JMH; write the results.",
                "Runs the problem set of shared/benchmark-shapes.md: kernels4j on each backend, PyTorch CPU and ONNX",
                "Runtime on the CPU set, and the copy/FMA ceilings. Writes <date>-<commit>.json (JMH) and .meta.json",
                "(machine) into the results folder and prints the ratio table."})
final class BenchCommand implements Callable<Integer> {

    private static final DateTimeFormatter STAMP = DateTimeFormatter.ofPattern("yyyyMMdd-HHmmss").withZone(ZoneOffset.UTC);

    @CommandLine.Spec
    CommandLine.Model.CommandSpec spec;

    @Option(names = "--quick", description = "Short run: 1 fork, 1 warm-up and 3 measured iterations of ${sys:line.separator}"
            + "  0.3 s, CPU backend only unless --backends says otherwise (about 10 minutes on 2 cores).")
    boolean quick;

    @Option(names = "--filter", paramLabel = "REGEX", description = "Keep benchmarks whose key "
            + "(impl/backend/dtype/problem/direction, e.g. ours/cpu/float32/ln-8k-1k/forward, torch/cpu/float32/attn-gqa/backward) "
            + "this regular expression finds; repeatable.")
    List<String> filters = new ArrayList<>();

    @Option(names = "--backends", split = ",", paramLabel = "NAME",
            description = "Backends to measure (default: every available one; cpu with --quick).")
    List<String> backends;

    @Option(names = "--no-peers", description = "Skip PyTorch and ONNX Runtime.")
    boolean noPeers;

    @Option(names = "--results", paramLabel = "DIR", description = "Results folder (default: bench/results/<machine> of the checkout).")
    Path results;

    @Option(names = "--machine", paramLabel = "NAME", description = "Machine name for the history (default: from the GPU or CPU model and cores).")
    String machine;

    @Option(names = "--commit", paramLabel = "SHA", description = "The commit measured, where the folder is no git checkout (a copied tree).")
    String commit;

    @Option(names = "--include", paramLabel = "FILE", description = "Append the benchmarks of this JMH-format JSON "
            + "(e.g. bench/torch_gpu_baseline.py's PyTorch GPU figures) to the run's result; repeatable.")
    List<Path> includes = new ArrayList<>();

    @Option(names = "--print-problems", description = "Print the chosen backends' problems as JSON (for external "
            + "baselines such as bench/torch_gpu_baseline.py) and exit without measuring.")
    boolean printProblems;

    @Option(names = "--forks", description = "JMH forks per benchmark (default: 1).")
    Integer forks;

    @Option(names = "--warmup", description = "Warm-up iterations (default: 3, or 1 with --quick).")
    Integer warmup;

    @Option(names = "--iterations", description = "Measured iterations (default: 5, or 3 with --quick).")
    Integer iterations;

    @Option(names = "--time", paramLabel = "MS", description = "Minimum time per iteration in ms (default: 1000, or 300 with --quick).")
    Integer timeMs;

    @Override
    public Integer call() throws IOException {
        PrintWriter out = spec.commandLine().getOut();
        List<Pattern> patterns = filters.stream().map(Pattern::compile).toList();
        if (printProblems) {
            // what an external baseline measures does not depend on this machine's devices
            Map<String, Set<DType>> named = new LinkedHashMap<>();
            for (String b : backends != null ? backends : List.of("cpu")) {
                named.put(b, Set.of(DType.values()));
            }
            out.println(ProblemJson.of(named, patterns));
            out.flush();
            return 0;
        }
        Map<String, Set<DType>> backendDtypes = new LinkedHashMap<>();
        for (Device d : devices(out)) {
            backendDtypes.put(d.backend().name(), d.capabilities().dtypes());
        }
        List<BenchPlan.Item> plan = BenchPlan.of(backendDtypes, !noPeers, true, patterns);
        int threads = Threads.intraOp();
        Map<String, String> peers = new LinkedHashMap<>();
        if (!noPeers) {
            peers.put("torch", "PyTorch " + Versions.of("pytorch") + " CPU through DJL " + Versions.of("djl")
                    + " (attention: scaled_dot_product_attention in a TorchScript module)");
            peers.put("ort", "ONNX Runtime " + Versions.of("onnxruntime") + " CPU");
        }
        Map<String, Double> work = Map.of("ceiling/copy", Ceilings.COPY_BYTES, "ceiling/fma", Ceilings.fmaFlops(threads));
        Path repo = RepoRoot.find();
        RunMetadata meta = RunMetadata.collect(machine, commit, repo, threads, quick, peers, work);
        Path dir = results != null ? results : repo.resolve("bench").resolve("results").resolve(meta.machine());
        Files.createDirectories(dir);
        String stem = STAMP.format(meta.instant()) + "-" + meta.shortCommit() + (quick ? "-quick" : "");
        Path json = dir.resolve(stem + ".json");
        Path log = Files.createTempFile("kernels4j-bench-" + stem + "-", ".log");
        out.printf(Locale.ROOT, "kernels4j bench: %d benchmarks on %s (%s, %d cores, %d threads), commit %s%s%n",
                plan.size(), meta.machine(), meta.cpuModel(), meta.cores(), threads, meta.shortCommit(),
                meta.dirty() ? " + uncommitted changes" : "");
        out.println("  JMH log: " + log);
        out.flush();

        List<RunResult> all = new ArrayList<>();
        List<String> failed = new ArrayList<>();
        long started = System.nanoTime();
        for (int i = 0; i < plan.size(); i++) {
            BenchPlan.Item item = plan.get(i);
            long t0 = System.nanoTime();
            // JMH truncates its output file on every run: each benchmark writes its own, appended to the run's log
            Path itemLog = Files.createTempFile("kernels4j-bench-item-", ".log");
            Collection<RunResult> r;
            String error;
            try {
                r = run(item, threads, itemLog);
                error = JmhLog.lastError(itemLog);
                JmhLog.appendFile(log, itemLog);
            } finally {
                Files.deleteIfExists(itemLog);
            }
            double secs = (System.nanoTime() - t0) / 1e9;
            if (r.isEmpty()) {
                failed.add(item.key());
                out.printf(Locale.ROOT, "  [%d/%d] %-45s FAILED (%.0f s): %s%n", i + 1, plan.size(), item.key(), secs,
                        error);
            } else {
                all.addAll(r);
                RunResult rr = r.iterator().next();
                out.printf(Locale.ROOT, "  [%d/%d] %-45s %10.3f ms  (%.0f s)%n", i + 1, plan.size(), item.key(),
                        rr.getPrimaryResult().getScore() * toMs(rr.getPrimaryResult().getScoreUnit()), secs);
            }
            out.flush();
        }
        try (PrintStream ps = new PrintStream(Files.newOutputStream(json), true, StandardCharsets.UTF_8)) {
            ResultFormatFactory.getInstance(ResultFormatType.JSON, ps).writeOut(all);
        }
        for (Path inc : includes) {
            out.println("  included " + ResultMerge.append(json, inc) + " benchmark(s) from " + inc);
        }
        meta.write(RunRecord.metaPath(json));
        out.printf(Locale.ROOT, "%nwrote %s and %s (%.1f min)%n%n", json, RunRecord.metaPath(json).getFileName(),
                (System.nanoTime() - started) / 60e9);
        Summary.print(RunRecord.read(json), out);
        if (!failed.isEmpty()) {
            out.println();
            out.println(failed.size() + " benchmark(s) failed (see " + log + "): " + String.join(", ", failed));
            out.flush();
            return 2;
        }
        return 0;
    }

    private List<Device> devices(PrintWriter out) {
        List<String> names = backends != null ? backends : quick ? List.of("cpu") : null;
        List<Device> ds = new ArrayList<>();
        if (names == null) {
            for (BackendStatus s : Backends.statuses()) {
                if (s.isAvailable()) {
                    ds.add(s.backend().defaultDevice());
                } else {
                    out.println("  skipping backend " + s.name() + ": " + s.unavailableReason());
                }
            }
        } else {
            for (String n : names) {
                Backend b = Backends.require(n);
                ds.add(b.defaultDevice());
            }
        }
        return ds;
    }

    private Collection<RunResult> run(BenchPlan.Item item, int threads, Path log) {
        int w = warmup != null ? warmup : quick ? 1 : 3;
        int n = iterations != null ? iterations : quick ? 3 : 5;
        int t = timeMs != null ? timeMs : quick ? 300 : 1000;
        List<String> jvm = new ArrayList<>();
        if (BenchPlan.vectorApi()) {
            jvm.add("--add-modules=jdk.incubator.vector");
        }
        jvm.addAll(List.of("--enable-native-access=ALL-UNNAMED", "-Xss8m", "-Dai.djl.offline=true",
                "-Dslf4j.internal.verbosity=ERROR",
                "-Dkernels4j.cpu.threads=" + threads));
        // the caller's kernels4j settings (backends, debug level, tuning cache) reach the forked JVMs
        for (String name : System.getProperties().stringPropertyNames()) {
            if (name.startsWith("kernels4j.") && !name.equals("kernels4j.cpu.threads")) {
                jvm.add("-D" + name + "=" + System.getProperty(name));
            }
        }
        ChainedOptionsBuilder o = new OptionsBuilder()
                .include(item.include())
                .forks(forks != null ? forks : 1)
                .warmupIterations(w)
                .warmupTime(TimeValue.milliseconds(t))
                .measurementIterations(n)
                .measurementTime(TimeValue.milliseconds(t))
                .jvmArgsAppend(jvm.toArray(String[]::new))
                .shouldFailOnError(false)
                .verbosity(VerboseMode.NORMAL)
                .output(log.toString());
        for (Map.Entry<String, String> e : item.params().entrySet()) {
            o.param(e.getKey(), e.getValue());
        }
        try {
            return new Runner(o.build()).run();
        } catch (RunnerException e) {
            JmhLog.append(log, "kernels4j bench: " + item.key() + ": " + e);
            return List.of();
        }
    }

    private static double toMs(String unit) {
        return switch (unit) {
            case "s/op" -> 1e3;
            case "us/op" -> 1e-3;
            case "ns/op" -> 1e-6;
            default -> 1;
        };
    }
}
