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
 * Runs the layer-norm kernels' CUDA source on the CPU emulator ({@code src/test/emu}: every thread a fiber,
 * real barriers and warp shuffles) against a float64 reference, over odd shapes and every launch shape the
 * Java side can choose. No GPU needed; skips, saying why, where there is no C++ compiler.
 */
class LayerNormKernelEmulationTest {

    @Test
    void layerNormKernelsMatchFloat64OnTheCpuEmulator() throws Exception {
        Assumptions.assumeTrue(onPath("g++") || onPath("clang++") || System.getenv("CXX") != null,
                () -> {
                    System.out.println("LayerNormKernelEmulationTest: skipped: no C++ compiler (g++ or clang++)");
                    return "no C++ compiler (g++ or clang++) to build the CPU emulator";
                });
        Path script = Path.of("src/test/emu/run.sh").toAbsolutePath();
        assertTrue(Files.isRegularFile(script), script + " is missing");
        Process p = new ProcessBuilder("bash", script.toString(), Path.of("target/emu").toAbsolutePath().toString())
                .redirectErrorStream(true).start();
        String output = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        assertTrue(p.waitFor(20, TimeUnit.MINUTES), "the emulator run did not finish");
        System.out.println(output.strip());
        assertEquals(0, p.exitValue(), "emulated layer-norm kernels disagree with the float64 reference:\n" + output);
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
