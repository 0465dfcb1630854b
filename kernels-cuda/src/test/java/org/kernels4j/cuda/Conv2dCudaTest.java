package org.kernels4j.cuda;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.nio.charset.StandardCharsets;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.TreeSet;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

import org.junit.jupiter.api.Test;
import org.kernels4j.Conv2d;
import org.kernels4j.DType;
import org.kernels4j.spi.Conv2dProblem;

/**
 * The launch plan of {@link Conv2dCuda} against the compiled kernels, without a GPU: the tile table and
 * shared-memory formula must agree with what conv_igemm.cu reports in its {@code <entry>_cfg} constants
 * (read from the PTX in the jar), and every entry the planner can name must exist. Skipped, with the reason,
 * when the build had no nvcc.
 */
class Conv2dCudaTest {

    private static final Pattern CFG = Pattern.compile(
            "\\.const \\.align 4 \\.b8 (conv_\\w+)_cfg\\[16\\] = \\{([0-9, ]*)\\};");

    /** {threads, smem, BM, BN} of every tensor-core entry, decoded from the PTX initialisers (little-endian). */
    private static Map<String, int[]> kernelConfigs(String module) {
        byte[] ptx = KernelManifest.resource(module + ".ptx");
        assumeTrue(ptx != null, "built without CUDA kernels (nvcc absent): no " + module + ".ptx to compare with");
        Map<String, int[]> cfg = new LinkedHashMap<>();
        Matcher m = CFG.matcher(new String(ptx, StandardCharsets.UTF_8));
        while (m.find()) {
            byte[] b = new byte[16];   // PTX omits trailing zero bytes of an initialiser
            String[] v = m.group(2).split(",\\s*");
            for (int i = 0; i < v.length; i++) {
                b[i] = (byte) Integer.parseInt(v[i].strip());
            }
            int[] ints = new int[4];
            for (int i = 0; i < 4; i++) {
                ints[i] = (b[4 * i] & 0xff) | (b[4 * i + 1] & 0xff) << 8 | (b[4 * i + 2] & 0xff) << 16 | (b[4 * i + 3] & 0xff) << 24;
            }
            cfg.put(m.group(1), ints);
        }
        return cfg;
    }

    /** Every tensor-core entry the planner can launch: name -> {pass, loaders}. */
    private static Map<String, Object[]> launchable() {
        Map<String, Object[]> names = new LinkedHashMap<>();
        for (String dt : new String[] {"f16", "bf16"}) {
            for (Conv2dCuda.Pass pass : Conv2dCuda.Pass.values()) {
                for (Conv2dCuda.Tile t : pass.tiles) {
                    names.put("conv_" + pass.label + "_" + dt + "_" + t.id() + "_vv", new Object[] {pass, t, true, true});
                }
            }
            names.put("conv_fprop_" + dt + "_" + Conv2dCuda.FPROP_ANY.id() + "_ss",
                    new Object[] {Conv2dCuda.Pass.FPROP, Conv2dCuda.FPROP_ANY, false, false});
            for (boolean va : new boolean[] {true, false}) {
                String l = va ? "_vs" : "_ss";
                names.put("conv_dgrad_" + dt + "_" + Conv2dCuda.DGRAD_ANY.id() + l,
                        new Object[] {Conv2dCuda.Pass.DGRAD, Conv2dCuda.DGRAD_ANY, va, false});
                names.put("conv_dgrad_" + dt + "_" + Conv2dCuda.DGRAD_NARROW.id() + l,
                        new Object[] {Conv2dCuda.Pass.DGRAD, Conv2dCuda.DGRAD_NARROW, va, false});
                names.put("conv_wgrad_" + dt + "_" + Conv2dCuda.WGRAD_ANY.id() + l,
                        new Object[] {Conv2dCuda.Pass.WGRAD, Conv2dCuda.WGRAD_ANY, va, false});
            }
        }
        return names;
    }

    /**
     * The wgmma entries (conv_wgmma.cu) against the Java tile lists and shared-memory formula; the module's PTX
     * carries the _cfg constants even where its kernels trap (compute_80).
     */
    @Test
    void wgmmaTilesAndSharedMemoryMatchTheKernels() {
        Map<String, int[]> cfg = kernelConfigs("conv_wgmma");
        Map<String, int[]> expected = new LinkedHashMap<>();
        for (String dt : new String[] {"f16", "bf16"}) {
            for (Conv2dCuda.Pass pass : Conv2dCuda.Pass.values()) {
                for (Conv2dCuda.WgTile t : pass.wgTiles) {
                    expected.put("conv_wg_" + pass.label + "_" + dt + "_" + t.id() + "_vv",
                            new int[] {t.threads(), Conv2dCuda.wgSmemBytes(pass, t), t.bm(), t.bn()});
                }
            }
        }
        assertEquals(new TreeSet<>(expected.keySet()), new TreeSet<>(cfg.keySet()),
                "the wgmma entries the planner can launch and those conv_wgmma.cu defines");
        for (Map.Entry<String, int[]> e : expected.entrySet()) {
            assertArrayEquals(e.getValue(), cfg.get(e.getKey()), e.getKey() + ": {threads, shared bytes, BM, BN}");
        }
    }

    @Test
    void tilesAndSharedMemoryMatchTheKernels() {
        Map<String, int[]> cfg = kernelConfigs("conv_igemm");
        Map<String, Object[]> names = launchable();
        assertEquals(new TreeSet<>(names.keySet()), new TreeSet<>(cfg.keySet()),
                "the tensor-core entries the planner can launch and those conv_igemm.cu defines");
        for (Map.Entry<String, Object[]> e : names.entrySet()) {
            Conv2dCuda.Pass pass = (Conv2dCuda.Pass) e.getValue()[0];
            Conv2dCuda.Tile t = (Conv2dCuda.Tile) e.getValue()[1];
            int smem = Conv2dCuda.smemBytes(pass, t, (Boolean) e.getValue()[2], (Boolean) e.getValue()[3]);
            assertArrayEquals(new int[] {t.threads(), smem, t.bm(), t.bn()}, cfg.get(e.getKey()),
                    e.getKey() + ": {threads, shared bytes, BM, BN} of the Java plan vs the kernel's _cfg");
        }
    }

    @Test
    void everyPortableEntryExists() {
        KernelManifest manifest = KernelManifest.load();
        assumeTrue(manifest != null, "built without CUDA kernels (nvcc absent): no manifest");
        for (String dt : new String[] {"f32", "f16", "bf16"}) {
            for (String pass : new String[] {"fprop", "dgrad", "wgrad"}) {
                assertEquals(22, manifest.entry("conv_simt_" + pass + "_" + dt).params().size(), pass + " " + dt);
                assertEquals(22, manifest.entry("conv_dw_" + pass + "_" + dt).params().size(), pass + " " + dt);
            }
            assertEquals(4, manifest.entry("conv_reduce_" + dt).params().size());
            assertEquals(7, manifest.entry("conv_bias_grad_" + dt).params().size());
        }
        for (String name : launchable().keySet()) {
            assertEquals(23, manifest.entry(name).params().size(), name);
        }
        assertEquals(5, manifest.entry("conv_transpose_b16").params().size());
        for (String k : new String[] {"conv_s2d_x_b16", "conv_d2s_x_b16"}) {
            assertEquals(10, manifest.entry(k).params().size(), k);
        }
        for (String k : new String[] {"conv_s2d_w_b16", "conv_d2s_w_b16"}) {
            assertEquals(12, manifest.entry(k).params().size(), k);
        }
        assertEquals(5, manifest.entry("conv_transpose_b32").params().size());
    }

    /**
     * The kernels Conv2dCuda plans for the GPU benchmark layers (bf16 NHWC N=128, an H100/H200 with 132 SMs and
     * the register-bound occupancy of two 128x128 CTAs per SM): the same that bench/gpu/check_conv.py's planner
     * prints and times, so that its figures are those of the Java path. Both engines.
     */
    @Test
    void plannedKernelsOfTheBenchmarkLayers() {
        KernelManifest manifest = KernelManifest.load();
        assumeTrue(manifest != null, "built without CUDA kernels (nvcc absent)");
        FakeCudaDriver fake = new FakeCudaDriver();
        fake.occupancy = 2;
        Conv2dCuda conv = new Conv2dCuda((CudaDevice) CudaBackendProvider.start(fake, manifest).defaultDevice());
        Map<String, String> expected = new LinkedHashMap<>();
        expected.put("c2", "fprop_bf16_128x64w4_vv dgrad_bf16_128x64w4_vv wgrad_bf16_64x128w4_vv s106 | "
                + "wg_fprop_bf16_128x64_vv wg_dgrad_bf16_128x64_vv wg_wgrad_bf16_64x256_vv s175");
        expected.put("c3", "fprop_bf16_128x128w4_vv dgrad_bf16_128x128w4_vv wgrad_bf16_128x128w4_vv s59 | "
                + "wg_fprop_bf16_128x128_vv wg_dgrad_bf16_128x128_vv wg_wgrad_bf16_128x256_vv s105");
        expected.put("c4", "fprop_bf16_128x128w4_vv dgrad_bf16_128x128w4_vv wgrad_bf16_128x128w4_vv s15 | "
                + "wg_fprop_bf16_128x256_vv wg_dgrad_bf16_128x256_vv wg_wgrad_bf16_128x256_vv s30");
        expected.put("c5", "fprop_bf16_64x64w4_vv dgrad_bf16_64x64w4_vv wgrad_bf16_128x128w4_vv s4 | "
                + "wg_fprop_bf16_128x64_vv wg_dgrad_bf16_128x64_vv wg_wgrad_bf16_128x256_vv s8");
        expected.put("1x1", "fprop_bf16_128x64w4_vv dgrad_bf16_128x128w4_vv wgrad_bf16_64x128w4_vv s262 | "
                + "wg_fprop_bf16_128x64_vv wg_dgrad_bf16_128x256_vv wg_wgrad_bf16_64x256_vv s523");
        expected.put("stem", "fprop_bf16_128x64w4_vv dgrad_bf16_128x16w4_vs wgrad_bf16_64x128w4_vv s263 | "
                + "wg_fprop_bf16_128x64_vv dgrad_bf16_128x16w4_vs wg_wgrad_bf16_64x256_vv s523");
        int[][] layers = {{64, 56, 64, 3, 1, 1}, {128, 28, 128, 3, 1, 1}, {256, 14, 256, 3, 1, 1}, {512, 7, 512, 3, 1, 1},
                {256, 56, 64, 1, 1, 0}, {3, 224, 64, 7, 2, 3}};
        int i = 0;
        for (Map.Entry<String, String> e : expected.entrySet()) {
            int[] l = layers[i++];
            Conv2dProblem p = Conv2d.builder().format(Conv2d.Format.NHWC).stride(l[4]).padding(l[5]).build()
                    .problem(new int[] {128, l[1], l[1], l[0]}, new int[] {l[2], l[3], l[3], l[0]}, DType.BFLOAT16);
            Conv2dProblem g = Conv2dCuda.spaceToDepth(p) != null ? Conv2dCuda.spaceToDepth(p) : p;
            StringBuilder got = new StringBuilder();
            for (String engine : new String[] {"mma", "wgmma"}) {
                System.setProperty(Conv2dCuda.ENGINE_PROPERTY, engine);
                try {
                    for (Conv2dCuda.Pass pass : Conv2dCuda.Pass.values()) {
                        long m = pass == Conv2dCuda.Pass.DGRAD ? (long) g.n() * g.h() * g.w() : Conv2dCuda.gemm(pass, g)[0];
                        boolean va = (pass == Conv2dCuda.Pass.FPROP ? g.cPerGroup() : g.kPerGroup()) % 8 == 0;
                        String name = conv.tcKernel(pass, g, va, g.cPerGroup() % 8 == 0, m).name().substring(5);
                        got.append(name);
                        if (pass == Conv2dCuda.Pass.WGRAD) {
                            got.append(" s").append(conv.wgradSplits(g, 1).splits());
                        }
                        got.append(pass == Conv2dCuda.Pass.WGRAD ? engine.equals("mma") ? " | " : "" : " ");
                    }
                } finally {
                    System.clearProperty(Conv2dCuda.ENGINE_PROPERTY);
                }
            }
            assertEquals(e.getValue(), got.toString(), "conv-rn50-" + e.getKey() + " (mma | wgmma)");
        }
    }

    @Test
    void gemmExtentsOfThePasses() {
        Conv2dProblem p = Conv2d.builder().format(Conv2d.Format.NHWC).stride(2, 1).padding(1, 0, 2, 1).dilation(1, 2)
                .groups(2).build().problem(new int[] {3, 10, 6, 16}, new int[] {48, 3, 2, 8}, DType.BFLOAT16);
        long npq = 3L * p.p() * p.q();
        assertArrayEquals(new long[] {npq, 24, 3 * 2 * 8}, Conv2dCuda.gemm(Conv2dCuda.Pass.FPROP, p));
        assertArrayEquals(new long[] {3 * 10 * 6, 8, 3 * 2 * 24}, Conv2dCuda.gemm(Conv2dCuda.Pass.DGRAD, p));
        assertArrayEquals(new long[] {24, 3 * 2 * 8, npq}, Conv2dCuda.gemm(Conv2dCuda.Pass.WGRAD, p));
    }

    @Test
    void dgradCoversEveryInputPixelOnceAcrossItsStridePhases() {
        Conv2dProblem p = Conv2d.builder().format(Conv2d.Format.NHWC).stride(3, 2).padding(2, 1, 0, 0).build()
                .problem(new int[] {1, 10, 7, 4}, new int[] {4, 2, 3, 4}, DType.FLOAT16);
        int pixels = 0;
        for (int[] ph : Conv2dCuda.dgradPhases(p)) {
            pixels += ph[2] * ph[3];
        }
        assertEquals(6, Conv2dCuda.dgradPhases(p).size());
        assertEquals(10 * 7, pixels);
        Conv2dProblem dilated = Conv2d.builder().stride(2).dilation(2).build()
                .problem(new int[] {1, 4, 9, 9}, new int[] {4, 4, 3, 3}, DType.FLOAT16);
        assertArrayEquals(new int[] {-1, -1, 9, 9}, Conv2dCuda.dgradPhases(dilated).get(0));
    }

    @Test
    void batchChunksKeepPixelRowsWithin32Bits() {
        Conv2dProblem big = Conv2d.builder().format(Conv2d.Format.NHWC).padding(1).build()
                .problem(new int[] {4096, 1024, 1024, 1}, new int[] {1, 3, 3, 1}, DType.FLOAT16);
        int chunk = Conv2dCuda.batchChunk(big);
        assertTrue(chunk >= 1 && chunk < 4096, "chunk " + chunk);
        assertTrue((long) chunk * 1024 * 1024 <= Integer.MAX_VALUE, "rows of a chunk fit 32 bits");
        assertTrue((long) (chunk + 1) * 1024 * 1024 > Integer.MAX_VALUE - 1024, "chunks are as large as allowed");
        Conv2dProblem small = Conv2dCuda.withBatch(big, 5);
        assertEquals(5, small.n());
        assertEquals(5, Conv2dCuda.batchChunk(small));
        assertEquals(big.p(), small.p());
    }

    @Test
    void depthwiseMeansOneInputChannelPerGroup() {
        Conv2d dw = Conv2d.builder().groups(8).padding(1).build();
        assertTrue(Conv2dCuda.depthwise(dw.problem(new int[] {1, 8, 5, 5}, new int[] {16, 1, 3, 3}, DType.FLOAT32)));
        Conv2d grouped = Conv2d.builder().groups(4).padding(1).build();
        assertTrue(!Conv2dCuda.depthwise(grouped.problem(new int[] {1, 8, 5, 5}, new int[] {8, 2, 3, 3}, DType.FLOAT32)));
    }
}
