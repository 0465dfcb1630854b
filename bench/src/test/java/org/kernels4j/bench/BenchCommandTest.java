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

    @Test
    void theDefaultMachineNameTellsAvx512HostsApart() {
        assertEquals("epyc-2c", RunMetadata.defaultMachineName("AMD EPYC", 2, List.of(), false));
        assertEquals("epyc-2c-avx512", RunMetadata.defaultMachineName("AMD EPYC", 2, List.of(), true));
        assertEquals("xeon-platinum-8480-16c-avx512",
                RunMetadata.defaultMachineName("Intel(R) Xeon(R) Platinum 8480", 16, List.of(), true));
        // a GPU machine is named after its GPU, whatever its host's vectors
        assertEquals("h200-16c", RunMetadata.defaultMachineName("AMD EPYC", 16, List.of("NVIDIA H200 (driver 570)"),
                true));
    }

    @Test
    void printsTheProblemsForExternalBaselines() throws Exception {
        StringWriter sw = new StringWriter();
        CommandLine cl = new CommandLine(new BenchCommand());
        cl.setOut(new PrintWriter(sw));
        int exit = cl.execute("--print-problems", "--backends", "cuda", "--filter", "conv-rn50-stem|ln-4k-16k");
        assertEquals(0, exit, sw.toString());
        var json = new com.fasterxml.jackson.databind.ObjectMapper().readTree(sw.toString());
        assertEquals(2, json.size(), sw.toString());
        var ln = json.get(0);
        assertEquals("ln-4k-16k", ln.get("name").asText());
        assertEquals("layer_norm", ln.get("op").asText());
        assertEquals(16384, ln.get("cols").asInt());
        assertEquals("[\"bfloat16\",\"float16\"]", ln.get("dtypes").toString());
        var stem = json.get(1);
        assertEquals("conv2d", stem.get("op").asText());
        assertEquals("cuda", stem.get("backend").asText());
        assertEquals("NHWC", stem.get("format").asText());
        assertEquals(List.of(128, 3, 224, 64, 7, 2, 3, 1), List.of(stem.get("n").asInt(), stem.get("c").asInt(),
                stem.get("h").asInt(), stem.get("k").asInt(), stem.get("r").asInt(), stem.get("stride").asInt(),
                stem.get("pad").asInt(), stem.get("groups").asInt()));
    }
}
