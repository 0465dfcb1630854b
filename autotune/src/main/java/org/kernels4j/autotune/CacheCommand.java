package org.kernels4j.autotune;

import java.io.IOException;
import java.io.PrintWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Optional;
import java.util.concurrent.Callable;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.SerializationFeature;

import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;

/** {@code kernels4j cache show|clear|export|import}: the per-device tuning cache. */
@Command(name = "cache", mixinStandardHelpOptions = true,
        description = "Show, clear, export or import the tuning cache (${KERNELS4J_CACHE:-${XDG_CACHE_HOME:-~/.cache}/kernels4j}).",
        subcommands = {CacheCommand.Show.class, CacheCommand.Clear.class, CacheCommand.Export.class,
                CacheCommand.Import.class})
final class CacheCommand implements Runnable {

    @CommandLine.Spec
    CommandLine.Model.CommandSpec spec;

    @Override
    public void run() {
        spec.commandLine().usage(spec.commandLine().getOut());
    }

    /** {@code cache show}. */
    @Command(name = "show", mixinStandardHelpOptions = true, description = "List every cached entry with its best parameters.")
    static final class Show implements Callable<Integer> {
        @CommandLine.Spec
        CommandLine.Model.CommandSpec spec;

        @Override
        public Integer call() {
            PrintWriter out = spec.commandLine().getOut();
            TuningCache cache = TuningCache.atDefaultLocation();
            out.println("cache: " + cache.directory());
            List<Path> files = cache.files();
            if (files.isEmpty()) {
                out.println("(empty)");
            }
            for (Path f : files) {
                Optional<TuningCache.Content> c = cache.read(f);
                if (c.isEmpty()) {
                    continue;
                }
                out.println();
                out.println(f.getFileName() + ": " + c.get().backend() + " " + c.get().deviceName());
                TextTable t = new TextTable("kernel", "dtype", "bucket", "problem", "default ms", "best ms", "speedup",
                        "parameters", "results", "driver", "library", "source");
                for (TuningCache.Entry e : c.get().entries()) {
                    Optional<TuningCache.Result> best = e.best();
                    double def = e.defaultResult().map(TuningCache.Result::millis).orElse(Double.NaN);
                    double b = best.map(TuningCache.Result::millis).orElse(Double.NaN);
                    t.add(e.kernel(), e.dtype(), e.bucket(), e.problem(), fmt(def), fmt(b),
                            Double.isNaN(def) || Double.isNaN(b) ? "-" : String.format(Locale.ROOT, "%.2fx", def / b),
                            best.map(r -> (Object) org.kernels4j.tuning.Parameters.of(r.parameters())).orElse("-"),
                            e.results().size() + (e.complete() ? "" : " (incomplete)"), e.driver(), e.library(),
                            e.sourceHash());
                }
                t.print(out);
            }
            out.flush();
            return 0;
        }
    }

    /** {@code cache clear}. */
    @Command(name = "clear", mixinStandardHelpOptions = true, description = "Delete every cache file.")
    static final class Clear implements Callable<Integer> {
        @CommandLine.Spec
        CommandLine.Model.CommandSpec spec;

        @Override
        public Integer call() throws IOException {
            TuningCache cache = TuningCache.atDefaultLocation();
            int n = cache.clear();
            spec.commandLine().getOut().println("deleted " + n + " cache file(s) in " + cache.directory());
            spec.commandLine().getOut().flush();
            return 0;
        }
    }

    /** {@code cache export FILE}. */
    @Command(name = "export", mixinStandardHelpOptions = true,
            description = {"Write every cache file into FILE, for 'cache import' on identical machines.",
                    "With --as-defaults, FILE is a directory that receives shipped-defaults files "
                            + "(<backend>/device-<device>.json, the best parameters of each current entry), ready to "
                            + "copy under autotune/src/main/resources/org/kernels4j/autotune/defaults/."})
    static final class Export implements Callable<Integer> {
        @CommandLine.Spec
        CommandLine.Model.CommandSpec spec;

        @Parameters(paramLabel = "FILE")
        Path file;

        @Option(names = "--as-defaults", description = "Write shipped-defaults files into the directory FILE.")
        boolean asDefaults;

        @Override
        public Integer call() throws IOException {
            TuningCache cache = TuningCache.atDefaultLocation();
            PrintWriter out = spec.commandLine().getOut();
            if (!asDefaults) {
                int n = cache.exportTo(file);
                out.println("exported " + n + " entries from " + cache.directory() + " to " + file);
                out.flush();
                return 0;
            }
            ObjectMapper json = new ObjectMapper().enable(SerializationFeature.INDENT_OUTPUT);
            int n = 0;
            for (Path f : cache.files()) {
                Optional<TuningCache.Content> c = cache.read(f);
                if (c.isEmpty()) {
                    continue;
                }
                List<ShippedDefaults.Shipped> entries = new ArrayList<>();
                for (TuningCache.Entry e : c.get().entries()) {
                    if (!e.library().equals(DeviceKey.LIBRARY_VERSION) || e.best().isEmpty()) {
                        continue;
                    }
                    TuningCache.Result b = e.best().get();
                    entries.add(new ShippedDefaults.Shipped(e.kernel(), e.dtype(), e.bucket(), e.sourceHash(),
                            b.parameters(), String.format(Locale.ROOT, "tuned on %s, driver %s: %.3f ms on %s",
                            c.get().deviceName(), e.driver(), b.millis(), e.problem())));
                }
                Path target = file.resolve(c.get().backend()).resolve("device-" + c.get().device() + ".json");
                Files.createDirectories(target.getParent());
                json.writeValue(target.toFile(), new ShippedDefaults.ShippedFile(TuningCache.FORMAT, entries));
                out.println("wrote " + entries.size() + " entries to " + target);
                n += entries.size();
            }
            out.println(n == 0 ? "nothing to export" : "copy them under autotune/src/main/resources/"
                    + ShippedDefaults.ROOT);
            out.flush();
            return 0;
        }
    }

    /** {@code cache import FILE}. */
    @Command(name = "import", mixinStandardHelpOptions = true,
            description = "Merge an exported FILE (or a single cache file) into this machine's cache.")
    static final class Import implements Callable<Integer> {
        @CommandLine.Spec
        CommandLine.Model.CommandSpec spec;

        @Parameters(paramLabel = "FILE")
        Path file;

        @Override
        public Integer call() throws IOException {
            TuningCache cache = TuningCache.atDefaultLocation();
            int n = cache.importFrom(file);
            spec.commandLine().getOut().println("imported " + n + " entries into " + cache.directory());
            spec.commandLine().getOut().flush();
            return 0;
        }
    }

    private static String fmt(double v) {
        return Double.isNaN(v) ? "-" : String.format(Locale.ROOT, "%.3f", v);
    }
}
