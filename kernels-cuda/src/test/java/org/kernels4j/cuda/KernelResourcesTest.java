package org.kernels4j.cuda;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeSet;

import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.kernels4j.DType;

/**
 * The kernels the build compiled (no GPU needed): every module has its PTX and a cubin per architecture,
 * the manifest agrees with the PTX, every kernel the Java side launches exists with the parameters it
 * passes, and no shipped kernel spills registers (ptxas report). Skips only where the jar was built
 * without nvcc, and then checks that nvcc really is absent.
 */
class KernelResourcesTest {

    /** A line of ptxas-report.txt. */
    record Usage(String module, String arch, String kernel, int registers, int stack, int spillStores, int spillLoads,
                 int smem) {
    }

    private static KernelManifest manifest;
    private static List<Usage> report;

    @BeforeAll
    static void load() {
        manifest = KernelManifest.load();
        if (manifest == null) {
            String nvcc = nvccOnPath();
            if (nvcc != null && !"1".equals(System.getenv("KERNELS4J_CUDA_SKIP"))) {
                fail("the jar has no CUDA kernels although nvcc is installed (" + nvcc + "): the build step "
                        + "build-kernels.sh did not run or wrote nothing");
            }
            System.out.println("KernelResourcesTest: skipped: built without CUDA kernels (no nvcc on this machine)");
            Assumptions.abort("built without CUDA kernels (no nvcc on this machine)");
        }
        byte[] text = KernelManifest.resource("ptxas-report.txt");
        assertNotNull(text, "ptxas-report.txt is missing next to the manifest");
        report = new ArrayList<>();
        for (String line : new String(text, StandardCharsets.UTF_8).split("\n")) {
            if (line.isBlank() || line.startsWith("#")) {
                continue;
            }
            String[] f = line.trim().split("\\s+");
            Map<String, Integer> kv = new HashMap<>();
            for (int i = 3; i < f.length; i++) {
                String[] p = f[i].split("=");
                kv.put(p[0], Integer.parseInt(p[1]));
            }
            report.add(new Usage(f[0], f[1], f[2], kv.get("registers"), kv.get("stack"), kv.get("spill_stores"),
                    kv.get("spill_loads"), kv.get("smem")));
        }
    }

    private static String nvccOnPath() {
        for (String dir : System.getenv().getOrDefault("PATH", "").split(java.io.File.pathSeparator)) {
            if (!dir.isEmpty() && Files.isExecutable(Path.of(dir, "nvcc"))) {
                return Path.of(dir, "nvcc").toString();
            }
        }
        return Files.isExecutable(Path.of("/usr/local/cuda/bin/nvcc")) ? "/usr/local/cuda/bin/nvcc" : null;
    }

    @Test
    void everyModuleHasItsPtxAndCubins() {
        assertFalse(manifest.modules().isEmpty(), "the manifest lists no module");
        for (KernelManifest.Module m : manifest.modules().values()) {
            byte[] ptx = KernelManifest.resource(m.name() + ".ptx");
            assertNotNull(ptx, m.name() + ".ptx is missing");
            String text = new String(ptx, StandardCharsets.UTF_8);
            assertTrue(text.contains(".target sm_" + m.ptx().substring("compute_".length())),
                    m.name() + ".ptx does not target " + m.ptx());
            assertFalse(m.cubins().isEmpty(), m.name() + " has no cubin");
            for (String arch : m.cubins()) {
                byte[] cubin = KernelManifest.resource(m.name() + "." + arch + ".cubin");
                assertNotNull(cubin, m.name() + "." + arch + ".cubin is missing");
                assertTrue(cubin.length > 4 && cubin[0] == 0x7f && cubin[1] == 'E' && cubin[2] == 'L' && cubin[3] == 'F',
                        m.name() + "." + arch + ".cubin is not an ELF image");
            }
        }
    }

    @Test
    void cudaModulesTargetTheArchitecturesTheIssueNames() {
        KernelManifest.Module ln = manifest.modules().get("layernorm");
        assertNotNull(ln, "no layernorm module");
        assertEquals(List.of("sm_80", "sm_86", "sm_89", "sm_90"), ln.cubins());
        assertEquals("compute_80", ln.ptx());
    }

    @Test
    void manifestEntriesAreThePtxEntries() {
        for (KernelManifest.Module m : manifest.modules().values()) {
            Set<String> inPtx = ptxEntries(m);
            assertFalse(inPtx.isEmpty(), m.name() + " has no entry point");
            for (String name : inPtx) {
                assertTrue(manifest.entry(m.name() + ":" + name).targets().contains("ptx"), m.name() + " " + name);
            }
        }
    }

    private static Set<String> ptxEntries(KernelManifest.Module m) {
        String ptx = new String(KernelManifest.resource(m.name() + ".ptx"), StandardCharsets.UTF_8);
        Set<String> names = new TreeSet<>();
        for (String line : ptx.split("\n")) {
            if (line.startsWith(".visible .entry ") || line.startsWith(".entry ")) {
                String rest = line.substring(line.indexOf(".entry ") + 7);
                names.add(rest.substring(0, rest.indexOf('(')).trim());
            }
        }
        return names;
    }

    /** Every entry's architectures are in the ptxas report, and the report names no kernel the manifest lacks. */
    @Test
    void reportAndManifestAgreeOnEveryArchitecture() {
        Set<String> reported = new TreeSet<>();
        for (Usage u : report) {
            reported.add(u.module() + ":" + u.kernel() + "@" + u.arch());
        }
        Set<String> listed = new TreeSet<>();
        for (KernelManifest.Module m : manifest.modules().values()) {
            for (String arch : m.cubins()) {
                for (Usage u : report) {
                    if (u.module().equals(m.name()) && u.arch().equals(arch)) {
                        KernelManifest.Entry e = manifest.entry(m.name() + ":" + u.kernel());
                        assertTrue(e.targets().contains(arch), u + " is not in the manifest for " + arch);
                    }
                }
            }
        }
        for (KernelManifest.Entry e : manifest.entries()) {
            for (String t : e.targets()) {
                if (!t.equals("ptx")) {
                    listed.add(e.module().name() + ":" + e.name() + "@" + t);
                }
            }
        }
        assertFalse(listed.isEmpty());
        for (String l : listed) {
            assertTrue(reported.contains(l), "ptxas report lacks " + l);
        }
    }

    @Test
    void noShippedKernelSpillsRegisters() {
        List<String> spills = new ArrayList<>();
        for (Usage u : report) {
            if (u.spillStores() > 0 || u.spillLoads() > 0) {
                spills.add(u.module() + " " + u.arch() + " " + u.kernel() + ": " + u.registers() + " registers, "
                        + u.spillStores() + " bytes spill stores, " + u.spillLoads() + " bytes spill loads, "
                        + u.stack() + " bytes stack");
            }
        }
        if (!spills.isEmpty()) {
            fail(spills.size() + " shipped kernel(s) spill registers to local memory (ptxas -v):\n  "
                    + String.join("\n  ", spills));
        }
    }

    @Test
    void layerNormKernelsUseNoLocalMemory() {
        for (Usage u : report) {
            if (u.module().equals("layernorm")) {
                assertEquals(0, u.stack(), u.arch() + " " + u.kernel() + " has a stack frame (an array in local memory)");
            }
        }
    }

    /** Every kernel LayerNormCuda can choose exists, with the parameter types it passes. */
    @Test
    void everyLayerNormLaunchFindsItsKernel() {
        Map<String, List<String>> expected = new HashMap<>();
        for (DType dt : DType.values()) {
            for (int cols = 1; cols <= 70_000; cols = cols < 64 ? cols + 1 : cols * 5 / 4) {
                for (boolean aligned : new boolean[] {true, false}) {
                    for (int vecs : new int[] {1, 2, 4, 8}) {
                        expected.put(LayerNormCuda.forwardShape(cols, dt, aligned, vecs, 256).kernel(),
                                List.of("u64", "u64", "u64", "u64", "u64", "u64", "u32", "u32", "f32", "u32"));
                    }
                    for (int rowMax : new int[] {128, 256, 512, 1024}) {
                        for (int sharedLimit : new int[] {99 * 1024, 227 * 1024}) {
                            LayerNormCuda.Shape s = LayerNormCuda.backwardShape(cols, dt, aligned, rowMax, 256,
                                    sharedLimit);
                            expected.put(s.kernel(), s.vecs() > 0
                                    ? List.of("u64", "u64", "u64", "u64", "u64", "u64", "u64", "u64", "u32", "u32", "u32")
                                    : List.of("u64", "u64", "u64", "u64", "u64", "u64", "u32", "u32", "u32"));
                        }
                    }
                }
            }
            String sfx = LayerNormCuda.suffix(dt);
            expected.put("ln_bwd_params_any_" + sfx, List.of("u64", "u64", "u64", "u64", "u64", "u64", "u32", "u32", "u32"));
            expected.put("ln_bwd_finalize_" + sfx, List.of("u64", "u64", "u64", "u64", "u32", "u32"));
        }
        for (var e : expected.entrySet()) {
            KernelManifest.Entry entry = manifest.entry(e.getKey());
            assertEquals("layernorm", entry.module().name(), e.getKey());
            assertEquals(e.getValue(), entry.params(), e.getKey() + " parameters");
        }
    }
}
