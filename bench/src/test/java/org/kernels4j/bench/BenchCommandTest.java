package org.kernels4j.bench;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.stream.Stream;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import picocli.CommandLine;

/**
 * {@code kernels4j bench} end to end on one small benchmark, in-process (JMH without forks, one short
 * iteration): the JMH JSON and the metadata land in the results folder, read back, and the table is printed.
 * No timing is asserted.
 */
class BenchCommandTest {

    @TempDir
    Path tmp;

    @Test
    void writesTheResultTheMetadataAndTheTable() throws Exception {
        StringWriter sw = new StringWriter();
        CommandLine cl = new CommandLine(new BenchCommand());
        cl.setOut(new PrintWriter(sw));
        cl.setErr(new PrintWriter(sw));
        int exit = cl.execute("--quick", "--no-peers", "--filter", "ours/cpu/float32/ln-8k-1k/forward",
                "--forks", "0", "--warmup", "0", "--iterations", "2", "--time", "50", "--machine", "test-machine",
                "--commit", "0123456789abcdef", "--results", tmp.toString());
        String out = sw.toString();
        assertEquals(0, exit, out);
        List<Path> results;
        try (Stream<Path> s = Files.list(tmp)) {
            results = s.filter(RunRecord::isResultFile).toList();
        }
        assertEquals(1, results.size(), out);
        assertTrue(results.get(0).getFileName().toString().endsWith("-0123456789-quick.json"), results.toString());
        RunRecord run = RunRecord.read(results.get(0));
        assertEquals("test-machine", run.meta().machine());
        assertEquals("0123456789abcdef", run.meta().commit());
        assertTrue(run.meta().quick());
        Measurement ln = run.byKey().get("ours/cpu/float32/ln-8k-1k/forward");
        assertTrue(ln != null && ln.samplesMs().length == 2 && ln.mean() > 0, run.measurements().toString());
        assertTrue(run.ceiling("copy").isPresent(), "the ceilings always run");
        assertTrue(out.lines().anyMatch(l -> l.startsWith("ln-8k-1k") && l.contains("forward") && l.contains("GB/s")),
                out);
    }
}
