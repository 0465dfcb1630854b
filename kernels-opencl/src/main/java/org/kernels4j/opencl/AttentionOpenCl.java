package org.kernels4j.opencl;

import java.util.Map;

import org.jocl.cl_mem;
import org.kernels4j.Attention;
import org.kernels4j.DType;
import org.kernels4j.Stream;
import org.kernels4j.Tensor;
import org.kernels4j.spi.AttentionKernels;
import org.kernels4j.spi.AttentionProblem;
import org.kernels4j.spi.Debug;
import org.kernels4j.tuning.Parameters;
import org.kernels4j.tuning.ShapeBuckets;
import org.kernels4j.tuning.TuningSpace;

/**
 * Attention on OpenCL, the FlashAttention-2 algorithm: {@code attention.cl}. Forward streams K/V tiles past a
 * Q tile held in local memory with an online softmax in base 2; backward computes {@code delta = rowsum(dO*O)},
 * then dK/dV in a pass parallel over key blocks (summing the query heads that share a key/value head) and dQ in a
 * separate pass parallel over query blocks, so no output element has two writers.
 *
 * <p>Limits: head dimension {@code d <= }{@value #MAX_HEAD_DIM} (the register tile of a work item grows with it),
 * and the tiles for {@code d} must fit the device's local memory (on a 48 KiB device every {@code d} up to the
 * maximum does, with smaller tiles for large {@code d}); anything else is rejected with an
 * {@link IllegalArgumentException} before anything is queued.
 */
final class AttentionOpenCl implements AttentionKernels {

    /** Largest head dimension these kernels accept. */
    static final int MAX_HEAD_DIM = 512;

    private static final String SOURCE_FILE = "attention.cl";
    private static final String SOURCE = ProgramCache.resource(SOURCE_FILE);

    /**
     * Forward: {@code ATT_BM} query rows per workgroup, {@code ATT_BN} keys per tile, {@code ATT_TN} work items per
     * query row (powers of two, {@code ATT_TN <= min(ATT_BN, 16)}). Tiles are shrunk at dispatch when the head
     * dimension's tiles do not fit the device's local memory.
     */
    static final TuningSpace<AttentionProblem> FORWARD = TuningSpace.builder("opencl.attention.forward", AttentionProblem.class)
            .source(ProgramCache.header())
            .source(SOURCE)
            .parameter("ATT_BM", 32, 8, 16, 64)
            .parameter("ATT_BN", 32, 8, 16, 64)
            .parameter("ATT_TN", 4, 1, 2, 8, 16)
            .constraint("ATT_TN <= min(ATT_BN, 16)", (t, c) -> t.get("ATT_TN") <= Math.min(t.get("ATT_BN"), 16))
            .constraint("ATT_BM * ATT_TN <= maxWorkgroupSize", (t, c) -> t.get("ATT_BM") * t.get("ATT_TN") <= c.maxWorkgroupSize())
            .bucket(AttentionOpenCl::bucket)
            .build();

    /**
     * Backward: {@code ATT_BWD_BM} query rows and {@code ATT_BWD_BN} keys per tile, {@code ATT_BWD_TN} work items
     * per key row (dK/dV) or query row (dQ); {@code ATT_BWD_TN <= min(ATT_BWD_BM, ATT_BWD_BN, 16)}.
     */
    static final TuningSpace<AttentionProblem> BACKWARD = TuningSpace.builder("opencl.attention.backward", AttentionProblem.class)
            .source(ProgramCache.header())
            .source(SOURCE)
            .parameter("ATT_BWD_BM", 32, 8, 16, 64)
            .parameter("ATT_BWD_BN", 32, 8, 16, 64)
            .parameter("ATT_BWD_TN", 4, 1, 2, 8, 16)
            .constraint("ATT_BWD_TN <= min(ATT_BWD_BM, ATT_BWD_BN, 16)", (t, c) -> t.get("ATT_BWD_TN")
                    <= Math.min(Math.min(t.get("ATT_BWD_BM"), t.get("ATT_BWD_BN")), 16))
            .constraint("max(ATT_BWD_BM, ATT_BWD_BN) * ATT_BWD_TN <= maxWorkgroupSize", (t, c) ->
                    Math.max(t.get("ATT_BWD_BM"), t.get("ATT_BWD_BN")) * t.get("ATT_BWD_TN") <= c.maxWorkgroupSize())
            .bucket(AttentionOpenCl::bucket)
            .build();

    private static String bucket(AttentionProblem p) {
        return "d" + paddedHeadDim(p.headDim()) + "-nk" + ShapeBuckets.pow2(p.keys(), 64, 1 << 16);
    }

    private final OpenClDevice device;

    AttentionOpenCl(OpenClDevice device) {
        this.device = device;
    }

    /** Tile sizes of one launch (powers of two). */
    private record Tiles(int bm, int bn, int tn) {
        Tiles halve(boolean rows) {
            int nbm = rows ? bm / 2 : bm;
            int nbn = rows ? bn : bn / 2;
            return new Tiles(nbm, nbn, Math.min(tn, Math.min(nbm, nbn)));
        }
    }

    @Override
    public void forward(Stream stream, AttentionProblem p, Tensor q, Tensor k, Tensor v, Tensor o, Tensor lse) {
        OpenClStream s = device.stream(stream);
        checkLimits(p);
        cl_mem qm = OpenClTensor.memOrNull(q, device, "q");
        cl_mem km = OpenClTensor.memOrNull(k, device, "k");
        cl_mem vm = OpenClTensor.memOrNull(v, device, "v");
        cl_mem om = OpenClTensor.memOrNull(o, device, "o");
        cl_mem lm = OpenClTensor.memOrNull(lse, device, "lse");
        int dp = paddedHeadDim(p.headDim());
        Parameters tp = FORWARD.resolve(device, p.dtype(), p);
        Tiles fitted = fit(new Tiles(tp.get("ATT_BM"), tp.get("ATT_BN"), tp.get("ATT_TN")), dp, false, p);
        if ((long) p.batch() * p.heads() * p.queries() == 0) {
            return;
        }
        CompiledKernel kernel = kernel(p.dtype(), dp, fitted, null, "attn_forward");
        // a kernel's own workgroup limit (registers) can be below the device's
        while (kernel.maxWorkGroupSize() < (long) fitted.bm * fitted.tn && fitted.bm > 1) {
            fitted = fitted.halve(true);
            kernel = kernel(p.dtype(), dp, fitted, null, "attn_forward");
        }
        Tiles tiles = fitted;
        long blocks = OpenClDevice.ceilDiv(p.queries(), tiles.bm);
        int wg = tiles.bm * tiles.tn;
        Debug.log(1, () -> describe("forward", p, "attn_forward", dp, tiles));
        kernel.enqueue(s, new long[] {blocks * wg, (long) p.batch() * p.heads(), 1}, new long[] {wg, 1, 1},
                qm, km, vm, om, lm, p.heads(), p.kvHeads(), p.queries(), p.keys(), p.headDim(), p.scale(),
                maskFlag(p), maskOffset(p));
        s.flush();
    }

    @Override
    public void backward(Stream stream, AttentionProblem p, Tensor q, Tensor k, Tensor v, Tensor o, Tensor lse,
                         Tensor dO, Tensor dq, Tensor dk, Tensor dv) {
        OpenClStream s = device.stream(stream);
        checkLimits(p);
        cl_mem qm = OpenClTensor.memOrNull(q, device, "q");
        cl_mem km = OpenClTensor.memOrNull(k, device, "k");
        cl_mem vm = OpenClTensor.memOrNull(v, device, "v");
        cl_mem om = OpenClTensor.memOrNull(o, device, "o");
        cl_mem lm = OpenClTensor.memOrNull(lse, device, "lse");
        cl_mem dom = OpenClTensor.memOrNull(dO, device, "dO");
        cl_mem dqm = OpenClTensor.memOrNull(dq, device, "dq");
        cl_mem dkm = OpenClTensor.memOrNull(dk, device, "dk");
        cl_mem dvm = OpenClTensor.memOrNull(dv, device, "dv");
        int dp = paddedHeadDim(p.headDim());
        Parameters tp = BACKWARD.resolve(device, p.dtype(), p);
        Tiles fitted = fit(new Tiles(tp.get("ATT_BWD_BM"), tp.get("ATT_BWD_BN"), tp.get("ATT_BWD_TN")), dp, true, p);
        long rows = (long) p.batch() * p.heads() * p.queries();
        long keyRows = (long) p.batch() * p.kvHeads() * p.keys();
        if (rows == 0 && keyRows == 0) {
            return;
        }
        // a kernel's own workgroup limit (registers) can be below the device's
        while (fitted.bm > 1 || fitted.bn > 1) {
            long kvMax = kernel(p.dtype(), dp, null, fitted, "attn_bwd_dkdv").maxWorkGroupSize();
            long qMax = kernel(p.dtype(), dp, null, fitted, "attn_bwd_dq").maxWorkGroupSize();
            boolean kvFits = kvMax >= (long) fitted.bn * fitted.tn;
            boolean qFits = qMax >= (long) fitted.bm * fitted.tn;
            if (kvFits && qFits) {
                break;
            }
            fitted = fitted.halve(!qFits);
        }
        Tiles tiles = fitted;
        Debug.log(1, () -> describe("backward", p, "attn_bwd_delta + attn_bwd_dkdv + attn_bwd_dq", dp, tiles));
        Object[] common = {p.heads(), p.kvHeads(), p.queries(), p.keys(), p.headDim(), p.scale(), maskFlag(p), maskOffset(p)};
        try (OpenClDevice.Scratch delta = device.scratch(s, rows, "attention delta = rowsum(dO * O)")) {
            if (rows > 0) {
                CompiledKernel dk0 = kernel(p.dtype(), dp, null, tiles, "attn_bwd_delta");
                long wg = Math.min(128, dk0.maxWorkGroupSize());
                dk0.enqueue(s, new long[] {OpenClDevice.ceilDiv(rows, wg) * wg, 1, 1}, new long[] {wg, 1, 1},
                        om, dom, delta.mem(), (int) rows, p.headDim());
            }
            if (keyRows > 0) {
                CompiledKernel kv = kernel(p.dtype(), dp, null, tiles, "attn_bwd_dkdv");
                int wg = tiles.bn * tiles.tn;
                kv.enqueue(s, new long[] {OpenClDevice.ceilDiv(p.keys(), tiles.bn) * wg, (long) p.batch() * p.kvHeads(), 1},
                        new long[] {wg, 1, 1}, args(new Object[] {qm, km, vm, dom, lm, delta.mem(), dkm, dvm}, common));
            }
            if (rows > 0) {
                CompiledKernel kq = kernel(p.dtype(), dp, null, tiles, "attn_bwd_dq");
                int wg = tiles.bm * tiles.tn;
                kq.enqueue(s, new long[] {OpenClDevice.ceilDiv(p.queries(), tiles.bm) * wg, (long) p.batch() * p.heads(), 1},
                        new long[] {wg, 1, 1}, args(new Object[] {qm, km, vm, dom, lm, delta.mem(), dqm}, common));
            }
        }
        s.flush();
    }

    private static Object[] args(Object[] buffers, Object[] scalars) {
        Object[] all = new Object[buffers.length + scalars.length];
        System.arraycopy(buffers, 0, all, 0, buffers.length);
        System.arraycopy(scalars, 0, all, buffers.length, scalars.length);
        return all;
    }

    private static void checkLimits(AttentionProblem p) {
        if (p.headDim() > MAX_HEAD_DIM) {
            throw new IllegalArgumentException("q: head dimension d=" + p.headDim() + " is not supported by the OpenCL "
                    + "attention kernels (expected d <= " + MAX_HEAD_DIM + ")");
        }
        long rows = (long) p.batch() * p.heads() * Math.max(p.queries(), p.keys());
        if (rows > Integer.MAX_VALUE) {
            throw new IllegalArgumentException("q: " + rows + " rows of B*H*N exceed the OpenCL attention kernels' "
                    + "32-bit row index (at most " + Integer.MAX_VALUE + ")");
        }
    }

    /** d rounded up to a multiple of 16: the kernels' ATT_D. */
    static int paddedHeadDim(int d) {
        return (d + 15) / 16 * 16;
    }

    private static int maskFlag(AttentionProblem p) {
        return p.mask() == Attention.CausalMask.NONE ? 0 : 1;
    }

    private static int maskOffset(AttentionProblem p) {
        return p.mask() == Attention.CausalMask.BOTTOM_RIGHT ? p.keys() - p.queries() : 0;
    }

    /** Halves the larger tile until the local memory and workgroup of the launch fit the device. */
    private Tiles fit(Tiles wanted, int dp, boolean backward, AttentionProblem p) {
        Tiles t = wanted;
        long local = device.capabilities().localMemoryBytes();
        int maxWg = device.capabilities().maxWorkgroupSize();
        while (localBytes(t, dp, backward) > local || Math.max(t.bm, backward ? t.bn : 0) * t.tn > maxWg) {
            if (t.bm <= 1 && t.bn <= 1) {
                throw new IllegalArgumentException("q: head dimension d=" + p.headDim() + " needs more local memory "
                        + "than " + device.id() + " (" + device.name() + ") has (" + local + " bytes)");
            }
            t = t.halve(t.bm >= t.bn && t.bm > 1);
        }
        return t;
    }

    private static long localBytes(Tiles t, int dp, boolean backward) {
        long row = dp + 1;
        if (!backward) {
            return 4L * (t.bm * row + 2L * t.bn * row + (long) t.bm * (t.bn + 1));
        }
        return 4L * (2L * t.bn * row + 2L * t.bm * row + 2L * t.bn * (t.bm + 1) + 2L * t.bm);
    }

    private CompiledKernel kernel(DType dtype, int dp, Tiles fwd, Tiles bwd, String entry) {
        Map<String, String> defines = new java.util.TreeMap<>();
        defines.put("K4J_DTYPE", Dtypes.define(dtype));
        defines.put("ATT_D", String.valueOf(dp));
        if (fwd != null) {
            defines.put("ATT_BM", String.valueOf(fwd.bm));
            defines.put("ATT_BN", String.valueOf(fwd.bn));
            defines.put("ATT_TN", String.valueOf(fwd.tn));
        }
        if (bwd != null) {
            defines.put("ATT_BWD_BM", String.valueOf(bwd.bm));
            defines.put("ATT_BWD_BN", String.valueOf(bwd.bn));
            defines.put("ATT_BWD_TN", String.valueOf(bwd.tn));
        }
        return device.programs.kernel(SOURCE_FILE, SOURCE, defines, entry);
    }

    private String describe(String pass, AttentionProblem p, String kernels, int dp, Tiles t) {
        return String.format("%s attention %s B=%d Hq=%d Hkv=%d Nq=%d Nk=%d d=%d %s %s: %s ATT_D=%d BM=%d BN=%d TN=%d",
                device.id(), pass, p.batch(), p.heads(), p.kvHeads(), p.queries(), p.keys(), p.headDim(), p.mask(),
                p.dtype(), kernels, dp, t.bm, t.bn, t.tn);
    }
}
