package org.kernels4j.cuda;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.File;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.concurrent.TimeUnit;

import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Test;

/**
 * Runs the attention kernels' CUDA source on the CPU warp emulator ({@code src/test/cuda/attention_emulator.cpp}:
 * every thread a coroutine, warp-collective ldmatrix/mma/shuffles with the PTX fragment layouts, cp.async
 * delivered late, a shared-memory race check) against a float64 reference: one case of each kind (fp16 and
 * bf16 tiles, both causal alignments, grouped-query heads, no keys, padded rows, fp32), forward and both
 * backward modes, with a fresh seed. No GPU needed; skips, saying why, where there is no C++ compiler.
 */
class AttentionKernelEmulationTest {

    @Test
    void attentionKernelsMatchFloat64OnTheCpuEmulator() throws Exception {
        String cxx = System.getenv("CXX") != null ? System.getenv("CXX") : onPath("g++") ? "g++"
                : onPath("clang++") ? "clang++" : null;
        Assumptions.assumeTrue(cxx != null, () -> {
            System.out.println("AttentionKernelEmulationTest: skipped: no C++ compiler (g++ or clang++)");
            return "no C++ compiler (g++ or clang++) to build the CPU emulator";
        });
        Path source = Path.of("src/test/cuda/attention_emulator.cpp").toAbsolutePath();
        assertTrue(Files.isRegularFile(source), source + " is missing");
        Path dir = Path.of("target/emu").toAbsolutePath();
        Files.createDirectories(dir);
        Path exe = dir.resolve("attention_emulator");
        String build = run(new ProcessBuilder(cxx, "-std=c++17", "-O1", "-w", "-o", exe.toString(), source.toString()));
        assertTrue(Files.isExecutable(exe), "building the emulator failed:\n" + build);
        long seed = System.nanoTime() & Long.MAX_VALUE;
        Process p = new ProcessBuilder(exe.toString(), Long.toString(seed), "quick").redirectErrorStream(true).start();
        String output = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        assertTrue(p.waitFor(20, TimeUnit.MINUTES), "the emulator run did not finish");
        System.out.println(output.strip());
        assertEquals(0, p.exitValue(), "emulated attention kernels disagree with the float64 reference (seed " + seed
                + "):\n" + output);
    }

    private static String run(ProcessBuilder pb) throws Exception {
        Process p = pb.redirectErrorStream(true).start();
        String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        assertTrue(p.waitFor(20, TimeUnit.MINUTES), "timed out: " + pb.command());
        return out;
    }

    private static boolean onPath(String exe) {
        for (String dir : System.getenv().getOrDefault("PATH", "").split(File.pathSeparator)) {
            if (!dir.isEmpty() && Files.isExecutable(Path.of(dir, exe))) {
                return true;
            }
        }
        return false;
    }
}
