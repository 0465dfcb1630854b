package org.kernels4j.cuda;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

import org.kernels4j.Attention.CausalMask;
import org.kernels4j.DType;
import org.kernels4j.Stream;
import org.kernels4j.Tensor;
import org.kernels4j.spi.AttentionKernels;
import org.kernels4j.spi.AttentionProblem;
import org.kernels4j.spi.Debug;
import org.kernels4j.tuning.ShapeBuckets;
import org.kernels4j.tuning.TuningSpace;

/**
 * Scaled dot-product attention on CUDA: the launch side of {@code src/main/cuda/attention.cu} (read its header
 * comment for the kernels and their tiling).
 *
 * <p>fp16/bf16 run the FlashAttention-2 kernels on tensor cores: one kernel per head-dim tile (32, 64, 96, ...,
 * 256; d is rounded up to the next one and the extra columns are zero-filled on load). Their tiles move
 * 16-byte rows, so when d is not a multiple of 8, or a tensor does not start 16-byte aligned, the rows are
 * copied into a padded scratch layout first and the results copied back ({@code k4j_attn_copy_rows}); any
 * d from 1 to 256 runs. fp32 runs SIMT kernels (no tensor-core path at full fp32 precision), which take any d
 * and alignment as they are.
 *
 * <p>Backward: a preprocessing kernel computes D = rowsum(dO * O) (and zeroes the fp32 dQ accumulator), the
 * key-block kernel writes dK and dV (summed over the query heads sharing a K/V head inside the CTA) and adds dQ
 * with fp32 atomics, and a last kernel converts dQ to the storage type. With the system property
 * {@code kernels4j.attention.deterministic=true} dQ comes instead from a query-block kernel without atomics
 * (bit-for-bit repeatable, about 1.4x the backward work). fp32 is always deterministic. Extra device memory is
 * O(N d): D, the dQ accumulator and, when padding, the padded copies; no N x N buffer.
 *
 * <p>Launch shapes (threads, dynamic shared memory, rows or keys per CTA) are not repeated here: each kernel
 * {@code <name>} has a record {@code <name>_cfg[4]} in its module, read from the image this device loads (the
 * sm_90 cubin carries shapes tuned for Hopper, other images shapes that fit every sm_80+ GPU).
 *
 * <p>Tuning: the sm_90 cubin also carries alternative 16-bit kernels for head dims 64 and 128 (other tile
 * shapes, {@code K4J_ATTN_ALTERNATIVES} in attention.cu). Parameter {@code VARIANT} of the spaces
 * {@code cuda.attention.forward.d64} etc. picks one (0: the head dim's default kernel; i: the i-th
 * alternative of {@link #FORWARD_ALTERNATIVES} / {@link #BACKWARD_ALTERNATIVES}), per sequence-length
 * bucket and mask, so that the autotuner chooses per head dim.
 */
final class AttentionCuda implements AttentionKernels {

    /** Largest head dimension the kernels take. */
    static final int MAX_HEAD_DIM = 256;

    private static final String MODULE_PROBE = "k4j_attn_copy_rows";
    private static final int SCRATCH_ALIGN = 256;

    /**
     * A kernel's launch record.
     *
     * @param threads threads per CTA
     * @param smem    dynamic shared memory per CTA, bytes
     * @param rows    query rows per CTA (forward, deterministic dQ) or rows per CTA of the small kernels
     * @param keys    keys per CTA (backward key-block kernels)
     */
    record Shape(int threads, int smem, int rows, int keys) {
    }

    /** The sm_90 cubin's alternative forward kernels per head-dim tile: kernel name suffixes, VARIANT 1, 2, ... */
    static final Map<Integer, List<String>> FORWARD_ALTERNATIVES = Map.of(
            64, List.of("m128n64w4_qs", "m128n112w4", "m128n96w4", "m64n64w4"),
            128, List.of("m128n32w4"));
    /** The sm_90 cubin's alternative backward (key-block) kernels per head-dim tile. */
    static final Map<Integer, List<String>> BACKWARD_ALTERNATIVES = Map.of(
            64, List.of("m64w8s1q2", "bwdt_m64n128"),
            128, List.of("m64w8s1q2"));

    private static final String IMAGE_TEXT = imageHashText();
    static final TuningSpace<AttentionProblem> FORWARD_D64 = space("forward", 64, FORWARD_ALTERNATIVES);
    static final TuningSpace<AttentionProblem> FORWARD_D128 = space("forward", 128, FORWARD_ALTERNATIVES);
    static final TuningSpace<AttentionProblem> BACKWARD_D64 = space("backward", 64, BACKWARD_ALTERNATIVES);
    static final TuningSpace<AttentionProblem> BACKWARD_D128 = space("backward", 128, BACKWARD_ALTERNATIVES);

    private final CudaDevice device;
    private volatile Map<String, Shape> shapes;

    AttentionCuda(CudaDevice device) {
        this.device = device;
    }

    @Override
    public void forward(Stream stream, AttentionProblem p, Tensor q, Tensor k, Tensor v, Tensor o, Tensor lse) {
        checkHeadDim(p);
        CudaStream s = CudaStream.of(stream);
        if (q.elementCount() == 0) {
            return;
        }
        checkGrid(p);
        Plan plan = plan(p, false, q, k, v, o);
        String fwd = variant(p, plan.forwardKernel(), plan.tile() == 64 ? FORWARD_D64 : plan.tile() == 128 ? FORWARD_D128
                : null, FORWARD_ALTERNATIVES.get(plan.tile()));
        Shape fs = shape(fwd);
        checkSharedMemory(fwd, fs);
        int causal = p.mask() == CausalMask.NONE ? 0 : 1;
        int offset = p.mask() == CausalMask.BOTTOM_RIGHT ? p.keys() - p.queries() : 0;
        Dim3 grid = Dim3.of(ceilDiv(p.queries(), fs.rows()), p.heads(), p.batch());
        Debug.log(1, () -> describe(p, "forward", fwd + " grid " + grid + " block " + fs.threads() + " smem "
                + fs.smem() + (plan.staged() ? " (rows padded to " + plan.dp() + " columns)" : "")));
        if (!plan.staged()) {
            CudaKernels.launch(stream, fwd, grid, Dim3.of(fs.threads()), fs.smem(), q, k, v, o, lse, p.queries(), p.keys(),
                    p.heads(), p.kvHeads(), p.headDim(), p.scale(), causal, offset);
            return;
        }
        long qRows = rows(p.batch(), p.heads(), p.queries());
        long kRows = rows(p.batch(), p.kvHeads(), p.keys());
        int dp = plan.dp();
        Scratch layout = new Scratch();
        long qp = layout.add(qRows * dp * 2);
        long kp = layout.add(kRows * dp * 2);
        long vp = layout.add(kRows * dp * 2);
        long op = layout.add(qRows * dp * 2);
        s.withWorkspace(layout.bytes(), ws -> {
            copyRows(stream, q, 0, p.headDim(), null, ws + qp, dp, qRows);
            copyRows(stream, k, 0, p.headDim(), null, ws + kp, dp, kRows);
            copyRows(stream, v, 0, p.headDim(), null, ws + vp, dp, kRows);
            CudaKernels.launch(stream, fwd, grid, Dim3.of(fs.threads()), fs.smem(), ws + qp, ws + kp, ws + vp, ws + op, lse,
                    p.queries(), p.keys(), p.heads(), p.kvHeads(), dp, p.scale(), causal, offset);
            copyRows(stream, null, ws + op, dp, o, 0, p.headDim(), qRows);
        });
    }

    @Override
    public void backward(Stream stream, AttentionProblem p, Tensor q, Tensor k, Tensor v, Tensor o, Tensor lse,
                         Tensor dO, Tensor dq, Tensor dk, Tensor dv) {
        checkHeadDim(p);
        CudaStream s = CudaStream.of(stream);
        long qRows = rows(p.batch(), p.heads(), p.queries());
        long kRows = rows(p.batch(), p.kvHeads(), p.keys());
        if (qRows == 0 && kRows == 0) {
            return;
        }
        checkGrid(p);
        boolean deterministic = p.dtype() == DType.FLOAT32 || Boolean.getBoolean("kernels4j.attention.deterministic");
        Plan plan = plan(p, true, q, k, v, o, dO, dq, dk, dv);
        String suffix = suffix(p.dtype());
        String prep = "k4j_attn_bwd_prep_" + suffix;
        String bwd = variant(p, plan.backwardKernel(), plan.tile() == 64 ? BACKWARD_D64 : plan.tile() == 128
                ? BACKWARD_D128 : null, BACKWARD_ALTERNATIVES.get(plan.tile()));
        String last = deterministic ? plan.dqKernel() : "k4j_attn_dq_convert_" + suffix;
        Shape ps = shape(prep);
        Shape bs = shape(bwd);
        Shape ls = shape(last);
        checkSharedMemory(bwd, bs);
        checkSharedMemory(last, ls);
        int causal = p.mask() == CausalMask.NONE ? 0 : 1;
        int offset = p.mask() == CausalMask.BOTTOM_RIGHT ? p.keys() - p.queries() : 0;
        int dp = plan.dp();
        Scratch layout = new Scratch();
        long delta = layout.add(qRows * Float.BYTES);
        long acc = deterministic ? -1 : layout.add(qRows * dp * Float.BYTES);
        long[] staged = new long[8];
        if (plan.staged()) {
            for (int i = 0; i < staged.length; i++) {
                boolean keyRows = i == 1 || i == 2 || i == 6 || i == 7;   // k, v, dk, dv
                staged[i] = layout.add((keyRows ? kRows : qRows) * dp * 2);
            }
        }
        Dim3 keyGrid = Dim3.of(Math.max(1, ceilDiv(p.keys(), bs.keys())), p.kvHeads(), p.batch());
        Debug.log(1, () -> describe(p, "backward", prep + ", " + bwd + " grid " + keyGrid + " block " + bs.threads()
                + " smem " + bs.smem() + ", " + last + (deterministic ? " (deterministic dQ)" : " (atomic dQ)")
                + (plan.staged() ? " (rows padded to " + dp + " columns)" : "")));
        s.withWorkspace(layout.bytes(), ws -> {
            // the operands as the kernels see them: the tensors themselves, or their padded copies
            Object[] t = {q, k, v, o, dO, dq, dk, dv};
            if (plan.staged()) {
                for (int i = 0; i < 5; i++) {
                    long n = (i == 1 || i == 2) ? kRows : qRows;
                    copyRows(stream, (Tensor) t[i], 0, p.headDim(), null, ws + staged[i], dp, n);
                    t[i] = ws + staged[i];
                }
                for (int i = 5; i < 8; i++) {
                    t[i] = ws + staged[i];
                }
            }
            Object accArg = deterministic ? null : (Object) (ws + acc);
            if (qRows > 0) {
                if (p.dtype() == DType.FLOAT32) {
                    CudaKernels.launch(stream, prep, Dim3.of(ceilDiv(qRows, ps.rows())), Dim3.of(ps.threads()), 0,
                            t[3], t[4], ws + delta, qRows, dp);
                } else {
                    CudaKernels.launch(stream, prep, Dim3.of(ceilDiv(qRows, ps.rows())), Dim3.of(ps.threads()), 0,
                            t[3], t[4], ws + delta, accArg, qRows, dp);
                }
            }
            if (kRows > 0) {
                if (p.dtype() == DType.FLOAT32) {
                    CudaKernels.launch(stream, bwd, keyGrid, Dim3.of(bs.threads()), bs.smem(), t[0], t[1], t[2], t[4], lse,
                            ws + delta, t[6], t[7], p.queries(), p.keys(), p.heads(), p.kvHeads(), dp, p.scale(),
                            causal, offset);
                } else {
                    CudaKernels.launch(stream, bwd, keyGrid, Dim3.of(bs.threads()), bs.smem(), t[0], t[1], t[2], t[4], lse,
                            ws + delta, accArg, t[6], t[7], p.queries(), p.keys(), p.heads(), p.kvHeads(), dp,
                            p.scale(), causal, offset, deterministic ? 0 : 1);
                }
            }
            if (qRows > 0) {
                if (deterministic) {
                    Dim3 grid = Dim3.of(ceilDiv(p.queries(), ls.rows()), p.heads(), p.batch());
                    CudaKernels.launch(stream, last, grid, Dim3.of(ls.threads()), ls.smem(), t[0], t[1], t[2], t[4], lse,
                            ws + delta, t[5], p.queries(), p.keys(), p.heads(), p.kvHeads(), dp, p.scale(), causal,
                            offset);
                } else {
                    long n = qRows * dp;
                    int blocks = (int) Math.min(ceilDiv(n, 8L * ls.threads()),
                            8L * device.capabilities().computeUnits());
                    CudaKernels.launch(stream, last, Dim3.of(blocks), Dim3.of(ls.threads()), 0, ws + acc, t[5], n,
                            p.scale());
                }
            }
            if (plan.staged()) {
                copyRows(stream, null, ws + staged[5], dp, dq, 0, p.headDim(), qRows);
                copyRows(stream, null, ws + staged[6], dp, dk, 0, p.headDim(), kRows);
                copyRows(stream, null, ws + staged[7], dp, dv, 0, p.headDim(), kRows);
            }
        });
    }

    /**
     * Which kernels run a problem, and whether its 16-bit rows go through padded copies.
     *
     * @param dtype  storage type
     * @param tile   the kernels' head-dim tile
     * @param dp     the row length the kernels see (d, or d rounded up to a multiple of 8 when staged)
     * @param staged whether the operands are copied into padded, aligned scratch rows first
     */
    record Plan(DType dtype, int tile, int dp, boolean staged) {
        String forwardKernel() {
            return "k4j_attn_fwd_" + suffix(dtype) + "_d" + tile;
        }

        String backwardKernel() {
            return "k4j_attn_bwd_" + suffix(dtype) + "_d" + tile;
        }

        String dqKernel() {
            return "k4j_attn_bwd_dq_" + suffix(dtype) + "_d" + tile;
        }
    }

    /** The plan for {@code p}; 16-bit tensors that do not start 16-byte aligned are staged too. */
    Plan plan(AttentionProblem p, boolean backward, Tensor... tensors) {
        int d = p.headDim();
        if (p.dtype() == DType.FLOAT32) {
            int tile = d <= 32 ? 32 : d <= 64 ? 64 : d <= 128 ? 128 : 256;
            return new Plan(p.dtype(), tile, d, false);
        }
        int dp = (d + 7) / 8 * 8;
        boolean aligned = true;
        for (Tensor t : tensors) {
            aligned &= CudaTensor.addressOrZero(t, device, "tensor") % 16 == 0;
        }
        return new Plan(p.dtype(), tileFor(dp), dp, dp != d || !aligned);
    }

    /**
     * {@code kernel}, or the alternative that the tuning parameter VARIANT of {@code space} names (16-bit
     * kernels of the head-dim tiles that have alternatives; fp32 and the other tiles have none).
     */
    private String variant(AttentionProblem p, String kernel, TuningSpace<AttentionProblem> space,
                           List<String> alternatives) {
        if (space == null || p.dtype() == DType.FLOAT32) {
            return kernel;
        }
        int v = space.resolve(device, p.dtype(), p).get("VARIANT");
        return v == 0 ? kernel : kernel + "_" + alternatives.get(v - 1);
    }

    /**
     * The space of one pass and head-dim tile: VARIANT 0 (the default kernel, in every image) or one of the
     * alternatives, which only the sm_90 cubin carries; bucketed by key count (power of two) and mask, since
     * the best tile shape changes with the sequence length and with causal skipping.
     */
    private static TuningSpace<AttentionProblem> space(String pass, int tile, Map<Integer, List<String>> alternatives) {
        int n = alternatives.get(tile).size();
        int[] candidates = new int[n + 1];
        for (int i = 0; i <= n; i++) {
            candidates[i] = i;
        }
        return TuningSpace.builder("cuda.attention." + pass + ".d" + tile, AttentionProblem.class)
                .source(IMAGE_TEXT)
                .source(String.join(",", alternatives.get(tile)))
                .sourceOf(AttentionCuda.class)
                .parameter("VARIANT", 0, candidates)
                .constraint("VARIANT == 0 unless architecture is sm_90 (only its cubin has the alternatives)",
                        (t, c) -> t.get("VARIANT") == 0 || "sm_90".equals(c.architecture()))
                .bucket(b -> "n" + ShapeBuckets.pow2(b.keys()) + (b.mask() == CausalMask.NONE ? "" : "-causal"))
                .build();
    }

    /** The sm_90 cubin's bytes as text for the source hash (tuned variants are only valid for the cubin they were timed with). */
    private static String imageHashText() {
        byte[] cubin = KernelManifest.resource("attention.sm_90.cubin");
        return cubin == null ? "built without CUDA kernels" : new String(cubin, StandardCharsets.ISO_8859_1);
    }

    /** The 16-bit kernels' head-dim tile for rows of {@code dp} (a multiple of 8) columns. */
    static int tileFor(int dp) {
        return Math.max(32, (dp + 31) / 32 * 32);
    }

    private void checkHeadDim(AttentionProblem p) {
        if (p.headDim() > MAX_HEAD_DIM) {
            throw new IllegalArgumentException("q: head dim " + p.headDim() + " is not supported by the CUDA attention "
                    + "kernels (expected 1.." + MAX_HEAD_DIM + ")");
        }
    }

    /** Grid extents are checked before anything is queued, so that a rejected call writes nothing. */
    private void checkGrid(AttentionProblem p) {
        int[] max = device.maxGrid();
        if (p.heads() > max[1] || p.kvHeads() > max[1] || p.batch() > max[2]) {
            throw new IllegalArgumentException("q: " + p.heads() + " heads and batch " + p.batch() + " exceed the grid "
                    + "limits of " + device.id() + " (heads <= " + max[1] + ", batch <= " + max[2] + ")");
        }
    }

    private void checkSharedMemory(String kernel, Shape sh) {
        long limit = device.capabilities().localMemoryBytes();
        if (sh.smem() > limit) {
            throw new IllegalStateException(kernel + " needs " + sh.smem() + " bytes of shared memory per block, "
                    + device.id() + " offers " + limit);
        }
    }

    /**
     * {@code rows} rows from {@code srcCols} to {@code dstCols} columns (zero-filled); source and destination
     * are a tensor or, when it is null, a scratch address.
     */
    private void copyRows(Stream stream, Tensor src, long srcAddress, int srcCols, Tensor dst, long dstAddress,
                          int dstCols, long rows) {
        long n = rows * dstCols;
        if (n == 0) {
            return;
        }
        Shape cs = shape(MODULE_PROBE);
        int blocks = (int) Math.min(ceilDiv(n, cs.threads()), 8L * device.capabilities().computeUnits());
        CudaKernels.launch(stream, MODULE_PROBE, Dim3.of(blocks), Dim3.of(cs.threads()), 0,
                src != null ? src : (Object) srcAddress, srcCols, dst != null ? dst : (Object) dstAddress, dstCols,
                rows);
    }

    /** The launch record of {@code kernel} in the image this device loads. */
    Shape shape(String kernel) {
        Map<String, Shape> m = shapes;
        if (m == null) {
            synchronized (this) {
                m = shapes;
                if (m == null) {
                    String image = device.kernels().function(MODULE_PROBE).image();
                    byte[] bytes = KernelManifest.resource(image);
                    if (bytes == null) {
                        throw new IllegalStateException("CUDA kernel image " + image + " is missing from the jar");
                    }
                    m = new ConcurrentHashMap<>(launchRecords(bytes));
                    shapes = m;
                }
            }
        }
        Shape sh = m.get(kernel);
        if (sh == null) {
            throw new IllegalStateException("no launch record " + kernel + "_cfg in the attention kernels of "
                    + device.id() + " (the image was built from another attention.cu?)");
        }
        return sh;
    }

    /** Every {@code <kernel>_cfg[4]} record of a module image: PTX text or a cubin (ELF). */
    static Map<String, Shape> launchRecords(byte[] image) {
        boolean elf = image.length > 4 && image[0] == 0x7f && image[1] == 'E' && image[2] == 'L' && image[3] == 'F';
        return elf ? recordsFromElf(image) : recordsFromPtx(new String(image, StandardCharsets.US_ASCII));
    }

    private static final Pattern PTX_RECORD = Pattern.compile(
            "\\.global\\s+\\.align\\s+4\\s+\\.b8\\s+([A-Za-z0-9_]+)_cfg\\[16\\]\\s*=\\s*\\{([0-9,\\s]*)}");

    private static Map<String, Shape> recordsFromPtx(String ptx) {
        Map<String, Shape> out = new HashMap<>();
        Matcher m = PTX_RECORD.matcher(ptx);
        while (m.find()) {
            byte[] b = new byte[16];
            String[] parts = m.group(2).split(",");
            for (int i = 0; i < parts.length && i < 16; i++) {
                String x = parts[i].strip();
                if (!x.isEmpty()) {
                    b[i] = (byte) Integer.parseInt(x);
                }
            }
            out.put(m.group(1), shapeOf(ByteBuffer.wrap(b).order(ByteOrder.LITTLE_ENDIAN), 0));
        }
        return out;
    }

    /** The symbols {@code *_cfg} of a 64-bit little-endian ELF, read from their sections' file bytes. */
    private static Map<String, Shape> recordsFromElf(byte[] image) {
        ByteBuffer e = ByteBuffer.wrap(image).order(ByteOrder.LITTLE_ENDIAN);
        if (image[4] != 2 || image[5] != 1) {
            throw new IllegalStateException("cubin is not a 64-bit little-endian ELF");
        }
        long shoff = e.getLong(0x28);
        int shentsize = e.getShort(0x3A) & 0xffff;
        int shnum = e.getShort(0x3C) & 0xffff;
        Map<String, Shape> out = new HashMap<>();
        for (int i = 0; i < shnum; i++) {
            int sh = Math.toIntExact(shoff + (long) i * shentsize);
            if (e.getInt(sh + 4) != 2) {   // SHT_SYMTAB
                continue;
            }
            long symOff = e.getLong(sh + 0x18);
            long symSize = e.getLong(sh + 0x20);
            long symEnt = e.getLong(sh + 0x38);
            int strtab = Math.toIntExact(shoff + (long) e.getInt(sh + 0x28) * shentsize);
            long strOff = e.getLong(strtab + 0x18);
            for (long at = symOff; at + symEnt <= symOff + symSize; at += symEnt) {
                int sym = Math.toIntExact(at);
                String name = cString(image, Math.toIntExact(strOff + (e.getInt(sym) & 0xffffffffL)));
                if (!name.endsWith("_cfg") || e.getLong(sym + 16) != 16) {
                    continue;
                }
                int section = e.getShort(sym + 6) & 0xffff;
                int target = Math.toIntExact(shoff + (long) section * shentsize);
                long data = e.getLong(target + 0x18) + e.getLong(sym + 8);
                out.put(name.substring(0, name.length() - 4), shapeOf(e, Math.toIntExact(data)));
            }
        }
        return out;
    }

    private static Shape shapeOf(ByteBuffer b, int at) {
        return new Shape(b.getInt(at), b.getInt(at + 4), b.getInt(at + 8), b.getInt(at + 12));
    }

    private static String cString(byte[] b, int at) {
        int end = at;
        while (end < b.length && b[end] != 0) {
            end++;
        }
        return new String(b, at, end - at, StandardCharsets.US_ASCII);
    }

    /** Scratch regions carved from one workspace, each 256-byte aligned. */
    private static final class Scratch {
        private long bytes;

        long add(long size) {
            long at = bytes;
            bytes = (bytes + size + SCRATCH_ALIGN - 1) / SCRATCH_ALIGN * SCRATCH_ALIGN;
            return at;
        }

        long bytes() {
            return Math.max(bytes, SCRATCH_ALIGN);
        }
    }

    static String suffix(DType dtype) {
        return switch (dtype) {
            case FLOAT32 -> "f32";
            case FLOAT16 -> "f16";
            case BFLOAT16 -> "bf16";
        };
    }

    private static long rows(int batch, int heads, int n) {
        return (long) batch * heads * n;
    }

    private static int ceilDiv(long a, long b) {
        return Math.toIntExact((a + b - 1) / b);
    }

    private String describe(AttentionProblem p, String pass, String launch) {
        return device.id() + " attention " + pass + " " + p.dtype() + " B=" + p.batch() + " H=" + p.heads() + "/"
                + p.kvHeads() + " Nq=" + p.queries() + " Nk=" + p.keys() + " d=" + p.headDim() + " " + p.mask() + ": "
                + launch;
    }
}
