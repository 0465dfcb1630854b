package org.kernels4j.autotune;

import static org.junit.jupiter.api.Assertions.assertEquals;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Two JVMs tuning into one cache at the same time lose nothing. */
class ConcurrentTuningTest {

    static final int COUNT = 15;

    @TempDir
    Path dir;

    @Test
    void twoProcessesTuningAtOnceLoseNoEntry() throws Exception {
        String java = Path.of(System.getProperty("java.home"), "bin", "java").toString();
        List<Process> ps = new ArrayList<>();
        for (String tag : List.of("alpha", "beta")) {
            ps.add(new ProcessBuilder(java, "-cp", System.getProperty("java.class.path"),
                    TuneIntoCacheMain.class.getName(), dir.toString(), tag, String.valueOf(COUNT))
                    .redirectErrorStream(true).redirectOutput(dir.resolve(tag + ".log").toFile()).start());
        }
        for (Process p : ps) {
            if (!p.waitFor(4, TimeUnit.MINUTES)) {
                p.destroyForcibly();
                throw new AssertionError("child JVM did not finish");
            }
            assertEquals(0, p.exitValue(), () -> "child failed: " + read(dir.resolve("alpha.log")) + read(dir.resolve("beta.log")));
        }
        List<String> warnings = new ArrayList<>();
        TuningCache cache = new TuningCache(dir, warnings::add);
        List<TuningCache.Entry> entries = cache.entries(DeviceKey.of(new FakeDevice("Concurrent Device")));
        assertEquals(2 * COUNT + 1, entries.size(), "every bucket of both processes, and the shared entry");
        for (TuningCache.Entry e : entries) {
            if (e.bucket().equals("shared")) {
                assertEquals(2 * COUNT, e.results().size(), "each process's result in the shared entry");
            } else {
                assertEquals(5, e.results().size(), e.bucket());
            }
        }
        assertEquals(List.of(), warnings);
    }

    private static String read(Path p) {
        try {
            return java.nio.file.Files.readString(p);
        } catch (java.io.IOException e) {
            return "";
        }
    }
}
