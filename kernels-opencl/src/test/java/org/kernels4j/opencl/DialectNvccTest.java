package org.kernels4j.opencl;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.File;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;

import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * The other half of the dialect's promise: this module's kernels and the examples compile as CUDA C++ through
 * the same header, with nvcc to PTX ({@code nvcc -x cu -I <dialect dir> --ptx}). Skipped where nvcc is absent.
 */
class DialectNvccTest {

    private static final String[] KERNELS = {"layernorm.cl", "attention.cl", "conv2d.cl"};

    @ParameterizedTest(name = "K4J_DTYPE={0}")
    @ValueSource(strings = {"K4J_FLOAT32", "K4J_FLOAT16"})
    void kernelsCompileWithNvcc(String dtype, @org.junit.jupiter.api.io.TempDir Path dir) throws Exception {
        String nvcc = findNvcc();
        Assumptions.assumeTrue(nvcc != null, "nvcc not found on PATH or in /usr/local/cuda/bin: CUDA compile not checked");
        Files.writeString(dir.resolve("kernels4j.h"), ProgramCache.header());
        List<String> cmd = new ArrayList<>(List.of(nvcc, "-x", "cu", "-I", dir.toString(), "-arch=sm_80", "--ptx",
                "-DK4J_DTYPE=" + dtype, "-odir", dir.toString()));
        for (String k : KERNELS) {
            Files.writeString(dir.resolve(k), ProgramCache.resource(k));
            cmd.add(dir.resolve(k).toString());
        }
        Files.writeString(dir.resolve("matmul.cl"), TiledMatmulExampleTest.MATMUL);
        Files.writeString(dir.resolve("matmul_dynamic.cl"), TiledMatmulExampleTest.MATMUL_DYNAMIC);
        cmd.add(dir.resolve("matmul.cl").toString());
        cmd.add(dir.resolve("matmul_dynamic.cl").toString());
        Process p = new ProcessBuilder(cmd).redirectErrorStream(true).start();
        String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        assertTrue(p.waitFor(300, TimeUnit.SECONDS), "nvcc timed out");
        assertEquals(0, p.exitValue(), String.join(" ", cmd) + "\n" + out);
        assertEntries(dir.resolve("layernorm.ptx"), "ln_forward", "ln_backward", "ln_reduce_partials");
        assertEntries(dir.resolve("attention.ptx"), "attn_forward", "attn_bwd_delta", "attn_bwd_dkdv", "attn_bwd_dq");
        assertEntries(dir.resolve("conv2d.ptx"), "conv_fwd", "conv_dgrad", "conv_wgrad", "conv_split_reduce",
                "conv_bias_grad", "dw_fwd", "dw_dgrad", "dw_wgrad");
        assertEntries(dir.resolve("matmul.ptx"), "matmul");
        // dynamic local memory: one 64-bit offset parameter per buffer, extern shared memory behind them
        String dyn = Files.readString(dir.resolve("matmul_dynamic.ptx"));
        assertTrue(dyn.contains(".entry matmul_dyn") && dyn.contains(".extern .shared"), dyn);
    }

    private static void assertEntries(Path ptx, String... entries) throws Exception {
        String text = Files.readString(ptx);
        for (String e : entries) {
            assertTrue(text.contains(".entry " + e + "("), ptx.getFileName() + " lacks .entry " + e);
        }
    }

    private static String findNvcc() {
        for (String dir : System.getenv().getOrDefault("PATH", "").split(File.pathSeparator)) {
            if (Files.isExecutable(Path.of(dir, "nvcc"))) {
                return Path.of(dir, "nvcc").toString();
            }
        }
        Path cuda = Path.of("/usr/local/cuda/bin/nvcc");
        return Files.isExecutable(cuda) ? cuda.toString() : null;
    }
}
