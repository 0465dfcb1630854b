package org.kernels4j.autotune;

import java.io.IOException;
import java.io.PrintWriter;
import java.time.Duration;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.concurrent.Callable;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

import org.kernels4j.BackendStatus;
import org.kernels4j.Backends;
import org.kernels4j.Device;

import me.tongfei.progressbar.ConsoleProgressBarConsumer;
import me.tongfei.progressbar.ProgressBar;
import me.tongfei.progressbar.ProgressBarBuilder;
import me.tongfei.progressbar.ProgressBarStyle;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

/** {@code kernels4j tune}: tunes the kernels of every available backend and stores the results in the cache. */
@Command(name = "tune", mixinStandardHelpOptions = true,
        description = {"Tune the launch parameters of every tunable kernel for a problem set, verify each candidate "
                + "against the default, and store every timing in the per-device cache, which every later process "
                + "uses.", "Shapes default to the gpu set on CUDA devices and the cpu set elsewhere."})
final class TuneCommand implements Callable<Integer> {

    @CommandLine.Spec
    CommandLine.Model.CommandSpec spec;

    @Option(names = "--backend", split = ",", paramLabel = "NAME", description = "Only these backends (default: all available).")
    List<String> backends;

    @Option(names = "--ops", split = ",", paramLabel = "OP|PROBLEM",
            description = "Only these ops (layernorm, conv2d, attention) or problem names (default: all).")
    List<String> ops;

    @Option(names = "--shapes", paramLabel = "cpu|gpu|FILE",
            description = "The problem set: the built-in cpu or gpu set, or a file with one 'name op key=value ...' per line.")
    String shapes;

    @Option(names = "--budget", paramLabel = "DURATION", defaultValue = "10m", converter = DurationConverter.class,
            description = "Time for the whole run, e.g. 90s, 10m, 1h (default: ${DEFAULT-VALUE}).")
    Duration budget;

    @Option(names = "--strategy", paramLabel = "NAME",
            description = "exhaustive, random, local, or auto (exhaustive for small spaces, else local; default: ${DEFAULT-VALUE}).")
    String strategy = "auto";

    @Option(names = "--fraction", paramLabel = "F", description = "Share of the valid combinations the random strategy tries (default: ${DEFAULT-VALUE}).")
    double fraction = 0.25;

    @Option(names = "--repeats", paramLabel = "N", description = "Timed runs per candidate at most (default: ${DEFAULT-VALUE}).")
    int repeats = 15;

    @Option(names = "--resume", description = "Skip kernels whose cache entry is complete; continue incomplete ones without measuring their candidates again.")
    boolean resume;

    @Option(names = "--seed", description = "Seed of the random strategy (default: ${DEFAULT-VALUE}).")
    long seed = 1;

    @Override
    public Integer call() throws IOException {
        PrintWriter out = spec.commandLine().getOut();
        Tuner tuner = new Tuner(new Tuner.Settings(Strategy.parse(strategy), fraction, repeats, seed));
        Map<Device, List<Problem>> work = new LinkedHashMap<>();
        for (BackendStatus s : Backends.statuses()) {
            if (backends != null && !backends.contains(s.name())) {
                continue;
            }
            if (!s.isAvailable()) {
                out.println(s.name() + ": unavailable (" + s.unavailableReason() + "), skipped");
                continue;
            }
            String set = shapes != null ? shapes : s.name().equals("cuda") ? "gpu" : "cpu";
            List<Problem> problems = new ArrayList<>();
            for (Problem p : Problem.load(set)) {
                if (ops == null || ops.contains(p.op()) || ops.contains(p.name())) {
                    problems.add(p);
                }
            }
            for (Device d : s.backend().devices()) {
                work.put(d, problems);
            }
        }
        if (work.isEmpty()) {
            out.println("nothing to tune: no selected backend is available");
            out.flush();
            return 1;
        }
        TuningCache cache = TuningCache.atDefaultLocation();
        List<TuningRun.Row> rows;
        try (ProgressBar bar = new ProgressBarBuilder().setTaskName("tuning").setInitialMax(1)
                .setStyle(ProgressBarStyle.ASCII).setUpdateIntervalMillis(250).hideEta()
                .setConsumer(new ConsoleProgressBarConsumer(System.err)).build()) {
            rows = new TuningRun(cache, tuner, resume, new TuningRun.Progress() {
                @Override
                public void unit(String name, int index, int total) {
                    bar.maxHint(total);
                    bar.stepTo(index);
                    bar.setExtraMessage(name);
                }

                @Override
                public void candidate(String text) {
                    bar.setExtraMessage(text);
                }
            }).run(work, budget);
            bar.stepTo(bar.getMax());
            bar.setExtraMessage("done");
        }
        TextTable t = new TextTable("problem", "pass", "device", "dtype", "kernel", "default ms", "tuned ms", "speedup",
                "parameters", "notes");
        for (TuningRun.Row r : rows) {
            t.add(r.problem(), r.pass(), r.device(), r.dtype(), r.kernel(), ms(r.defaultMs()), ms(r.tunedMs()),
                    Double.isNaN(r.defaultMs()) || Double.isNaN(r.tunedMs()) ? "-"
                            : String.format(Locale.ROOT, "%.2fx", r.defaultMs() / r.tunedMs()),
                    r.chosen() == null ? "-" : r.chosen(), r.note());
        }
        t.print(out);
        out.println("cache: " + cache.directory());
        for (Device d : work.keySet()) {
            out.println("  " + d.id() + ": " + cache.fileFor(DeviceKey.of(d)));
        }
        out.flush();
        return 0;
    }

    private static String ms(double v) {
        return Double.isNaN(v) ? "-" : String.format(Locale.ROOT, "%.3f", v);
    }

    /** {@code 90s}, {@code 10m}, {@code 1h}, {@code 1h30m}, {@code 500ms}, or ISO-8601 {@code PT10M}. */
    static Duration parseDuration(String s) {
        String t = s.trim().toLowerCase(Locale.ROOT);
        if (t.startsWith("pt")) {
            return Duration.parse(t.toUpperCase(Locale.ROOT));
        }
        Matcher m = Pattern.compile("(\\d+(?:\\.\\d+)?)(ms|s|m|h)").matcher(t);
        Duration d = Duration.ZERO;
        int end = 0;
        while (m.find()) {
            if (m.start() != end) {
                break;
            }
            double v = Double.parseDouble(m.group(1));
            long millis = (long) (v * switch (m.group(2)) {
                case "ms" -> 1;
                case "s" -> 1000;
                case "m" -> 60_000;
                default -> 3_600_000;
            });
            d = d.plusMillis(millis);
            end = m.end();
        }
        if (end != t.length() || end == 0 || d.isZero()) {
            throw new IllegalArgumentException("expected a duration such as 90s, 10m or 1h, got '" + s + "'");
        }
        return d;
    }

    /** Reads {@code --budget}. */
    static final class DurationConverter implements CommandLine.ITypeConverter<Duration> {
        @Override
        public Duration convert(String value) {
            try {
                return parseDuration(value);
            } catch (IllegalArgumentException | java.time.format.DateTimeParseException e) {
                throw new CommandLine.TypeConversionException(e.getMessage());
            }
        }
    }
}
