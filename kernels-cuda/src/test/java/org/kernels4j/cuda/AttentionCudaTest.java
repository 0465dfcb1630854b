package org.kernels4j.cuda;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.util.ArrayList;
import java.util.List;
import java.util.Map;

import org.junit.jupiter.api.Test;

/**
 * The launch side of {@link AttentionCuda} against the compiled kernels, without a GPU: the launch records
 * ({@code <kernel>_cfg}) are read from the PTX and from every cubin of the build, both readers agree where the
 * shapes are the same, every kernel the launcher can name has a record, and every shape fits the devices its
 * image can run on. Skipped, with the reason, when the build had no nvcc.
 */
class AttentionCudaTest {

    /** Largest dynamic shared memory of a block on sm_86/89: what the PTX and the sm_8x cubins may use. */
    private static final int SM86_SMEM = 99 * 1024;
    /** The same on sm_90. */
    private static final int SM90_SMEM = 227 * 1024;

    private static byte[] image(String file) {
        byte[] b = KernelManifest.resource(file);
        assumeTrue(b != null, "built without CUDA kernels (nvcc absent): no " + file);
        return b;
    }

    /** Every kernel AttentionCuda may launch. */
    private static List<String> launchable() {
        List<String> names = new ArrayList<>();
        names.add("k4j_attn_copy_rows");
        for (String dt : new String[] {"f16", "bf16"}) {
            names.add("k4j_attn_bwd_prep_" + dt);
            names.add("k4j_attn_dq_convert_" + dt);
            for (int dp = 8; dp <= AttentionCuda.MAX_HEAD_DIM; dp += 8) {
                int tile = AttentionCuda.tileFor(dp);
                names.add("k4j_attn_fwd_" + dt + "_d" + tile);
                names.add("k4j_attn_bwd_" + dt + "_d" + tile);
                names.add("k4j_attn_bwd_dq_" + dt + "_d" + tile);
            }
        }
        names.add("k4j_attn_bwd_prep_f32");
        for (int tile : new int[] {32, 64, 128, 256}) {
            names.add("k4j_attn_fwd_f32_d" + tile);
            names.add("k4j_attn_bwd_f32_d" + tile);
            names.add("k4j_attn_bwd_dq_f32_d" + tile);
        }
        return names;
    }

    private static void checkFits(String image, Map<String, AttentionCuda.Shape> records, int smemLimit) {
        for (String k : launchable()) {
            AttentionCuda.Shape s = records.get(k);
            assertNotNull(s, image + " has no launch record " + k + "_cfg");
            assertTrue(s.threads() >= 32 && s.threads() <= 1024 && s.threads() % 32 == 0, k + " threads " + s);
            assertTrue(s.smem() >= 0 && s.smem() <= smemLimit, k + " in " + image + " needs " + s.smem()
                    + " bytes of shared memory, more than the " + smemLimit + " its devices offer");
            if (k.contains("_fwd_") || k.contains("_bwd_dq_")) {
                assertTrue(s.rows() > 0, k + " rows per CTA " + s);
            } else if (k.contains("_bwd_") && !k.contains("prep")) {
                assertTrue(s.keys() > 0, k + " keys per CTA " + s);
            }
        }
    }

    @Test
    void everyLaunchableKernelHasARecordThatFitsItsDevices() {
        checkFits("attention.ptx", AttentionCuda.launchRecords(image("attention.ptx")), SM86_SMEM);
        for (String arch : new String[] {"sm_80", "sm_86", "sm_89"}) {
            String file = "attention." + arch + ".cubin";
            if (KernelManifest.resource(file) != null) {
                checkFits(file, AttentionCuda.launchRecords(image(file)), SM86_SMEM);
            }
        }
        if (KernelManifest.resource("attention.sm_90.cubin") != null) {
            checkFits("attention.sm_90.cubin", AttentionCuda.launchRecords(image("attention.sm_90.cubin")), SM90_SMEM);
        }
    }

    @Test
    void cubinAndPtxReadersAgree() {
        Map<String, AttentionCuda.Shape> ptx = AttentionCuda.launchRecords(image("attention.ptx"));
        byte[] cubin = KernelManifest.resource("attention.sm_80.cubin");
        assumeTrue(cubin != null, "no sm_80 cubin in this build");
        // the PTX is compute_80: the same source and shapes as the sm_80 cubin
        assertEquals(ptx, AttentionCuda.launchRecords(cubin));
    }

    @Test
    void headDimTilesCoverEveryRowLength() {
        for (int dp = 8; dp <= AttentionCuda.MAX_HEAD_DIM; dp += 8) {
            int tile = AttentionCuda.tileFor(dp);
            assertTrue(tile >= dp && tile % 32 == 0 && tile - dp < 32, "row of " + dp + " in tile " + tile);
        }
    }
}
