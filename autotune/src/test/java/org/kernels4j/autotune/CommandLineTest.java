package org.kernels4j.autotune;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import java.net.URL;
import java.net.URLClassLoader;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;

import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.kernels4j.Backends;
import org.kernels4j.DType;
import org.kernels4j.tuning.Parameters;
import org.kernels4j.tuning.Tuning;
import org.kernels4j.tuning.TuningSpace;

import picocli.CommandLine;

/** The command line, end to end on the CPU backend with a tiny problem set. */
class CommandLineTest {

    @TempDir
    Path dir;

    record Run(int exit, String out) {
    }

    static Run run(String... args) {
        CommandLine cl = Main.commandLine();
        StringWriter sw = new StringWriter();
        cl.setOut(new PrintWriter(sw, true));
        cl.setErr(new PrintWriter(sw, true));
        int exit = cl.execute(args);
        return new Run(exit, sw.toString());
    }

    @AfterEach
    void cleanUp() throws IOException {
        TuningCache.atDefaultLocation().clear();
        Tuning.refresh();
    }

    @Test
    void devicesListsEveryBackend() {
        Run r = run("devices");
        assertEquals(0, r.exit());
        assertTrue(r.out().contains("cpu: available") && r.out().contains("cpu:0"), r.out());
        assertTrue(r.out().contains("architecture") && r.out().contains("driver"), r.out());
        for (var s : Backends.statuses()) {
            assertTrue(r.out().contains(s.name() + ":"), s.name() + " missing in\n" + r.out());
        }
    }

    @Test
    void checkPassesOnTheCpuBackend() {
        Run r = run("check", "--backend", "cpu");
        assertEquals(0, r.exit(), r.out());
        for (String op : List.of("layernorm", "rmsnorm", "conv2d", "attention")) {
            assertTrue(r.out().lines().anyMatch(l -> l.startsWith(op) && l.contains("forward") && l.endsWith("ok")), op + "\n" + r.out());
            assertTrue(r.out().lines().anyMatch(l -> l.startsWith(op) && l.contains("backward") && l.endsWith("ok")), op + "\n" + r.out());
        }
    }

    @Test
    void tuneWritesTheCacheThatShowAndExportRead() throws IOException {
        Path shapes = dir.resolve("tiny.txt");
        Files.writeString(shapes, """
                # a tiny set: fast candidates
                tiny-conv conv2d N=1 C=8 H=12 W=12 K=16 R=3 S=3 pad=1
                tiny-attn attention B=1 H=2 N=40 d=16 causal=top-left
                tiny-ln   layernorm rows=9 cols=100
                """);
        // 90 s: the survey (warming every code path of every pass, 30% of the budget) took 10-23 s on the 2-core CI
        // host, and a pass not surveyed in its share is not tuned
        Run r = run("tune", "--backend", "cpu", "--shapes", shapes.toString(), "--budget", "90s", "--repeats", "3");
        assertEquals(0, r.exit(), r.out());
        String[] header = {"problem", "default ms", "tuned ms", "speedup", "parameters"};
        for (String h : header) {
            assertTrue(r.out().contains(h), h + "\n" + r.out());
        }
        assertTrue(r.out().lines().anyMatch(l -> l.startsWith("tiny-conv") && l.contains("forward")
                && l.contains("cpu.conv2d.forward") && l.contains("KC=")), r.out());
        assertTrue(r.out().lines().anyMatch(l -> l.startsWith("tiny-attn") && l.contains("cpu.attention.backward")), r.out());
        TuningCache cache = TuningCache.atDefaultLocation();
        assertTrue(r.out().contains("cache: " + cache.directory()), r.out());
        List<TuningCache.Entry> entries = cache.entries(DeviceKey.of(Backends.require("cpu").defaultDevice()));
        assertTrue(entries.stream().anyMatch(e -> e.kernel().equals("cpu.conv2d.forward") && e.best().isPresent()),
                entries.toString());

        Run show = run("cache", "show");
        assertEquals(0, show.exit());
        assertTrue(show.out().contains("cpu.conv2d.backward-filter"), show.out());

        Path bundle = dir.resolve("bundle.json");
        assertEquals(0, run("cache", "export", bundle.toString()).exit());
        // exported as shipped defaults into a class-path root, the files are what ShippedDefaults loads for
        // this device: every tuned entry's best parameters come back for its kernel, dtype and bucket
        Path classes = dir.resolve("classes");
        Path defaults = classes.resolve(ShippedDefaults.ROOT);
        Run asDefaults = run("cache", "export", "--as-defaults", defaults.toString());
        assertEquals(0, asDefaults.exit(), asDefaults.out());
        DeviceKey cpu = DeviceKey.of(Backends.require("cpu").defaultDevice());
        assertTrue(Files.isRegularFile(classes.resolve(ShippedDefaults.chain(cpu).get(0))), asDefaults.out());
        List<String> warnings = new ArrayList<>();
        try (URLClassLoader loader = new URLClassLoader(new URL[] {classes.toUri().toURL()}, null)) {
            ShippedDefaults shipped = new ShippedDefaults(loader, warnings::add);
            int checked = 0;
            for (TuningCache.Entry e : entries) {
                if (e.best().isEmpty()) {
                    continue;
                }
                TuningSpace<?> space = Tuning.space(e.kernel()).orElseThrow();
                Optional<ShippedDefaults.Match> m = shipped.find(cpu, space, DType.parse(e.dtype()), e.bucket());
                assertTrue(m.isPresent(), e.kernel() + " " + e.bucket() + "\n" + asDefaults.out());
                assertEquals(Parameters.of(e.best().get().parameters()), m.get().parameters(), e.kernel());
                assertTrue(m.get().origin().contains("device-" + cpu.device()), m.get().origin());
                checked++;
            }
            assertTrue(checked > 0, entries.toString());
        }
        assertEquals(List.of(), warnings);
        assertEquals(0, run("cache", "clear").exit());
        assertTrue(cache.files().isEmpty());
        assertEquals(0, run("cache", "import", bundle.toString()).exit());
        assertFalse(cache.files().isEmpty());
    }

    @Test
    void badArgumentsAreReported() {
        Run r = run("tune", "--budget", "soon");
        assertEquals(2, r.exit(), r.out());
        assertTrue(r.out().contains("--budget"), r.out());
        assertEquals(Duration.ofSeconds(90), TuneCommand.parseDuration("1m30s"));
        assertEquals(Duration.ofMillis(500), TuneCommand.parseDuration("500ms"));
        assertThrows(IllegalArgumentException.class, () -> TuneCommand.parseDuration("10x"));
        Run s = run("tune", "--shapes", dir.resolve("missing.txt").toString(), "--backend", "cpu");
        assertTrue(s.exit() != 0 && s.out().contains("missing.txt"), s.exit() + ": " + s.out());
    }
}
