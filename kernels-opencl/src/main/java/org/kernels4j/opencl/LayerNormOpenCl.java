package org.kernels4j.opencl;

import java.util.Map;

import org.kernels4j.DType;
import org.kernels4j.Stream;
import org.kernels4j.Tensor;
import org.kernels4j.spi.Debug;
import org.kernels4j.spi.LayerNormKernels;
import org.kernels4j.spi.LayerNormProblem;
import org.kernels4j.tuning.Parameters;
import org.kernels4j.tuning.ShapeBuckets;
import org.kernels4j.tuning.TuningSpace;

/**
 * Layer norm and RMS norm on OpenCL: {@code layernorm.cl}. A team of work items (a power of two) normalises one
 * row; the team size follows the row length so that short rows share a workgroup. Backward writes dx in one
 * pass and dgamma/dbeta through per-team partial sums and a second, column-parallel reduction.
 */
final class LayerNormOpenCl implements LayerNormKernels {

    private static final String SOURCE_FILE = "layernorm.cl";
    private static final String SOURCE = ProgramCache.resource(SOURCE_FILE);

    /**
     * Forward launch parameters: {@code LN_WG} work items per workgroup (a power of two; capped by the device),
     * {@code LN_VECS_PER_ITEM} vectors (of 4 elements, or 1 where the row length is not a multiple of 4) each
     * work item aims to own per row, which sets the team size. Bucketed by row length.
     */
    static final TuningSpace<LayerNormProblem> FORWARD = space("opencl.layernorm.forward").build();

    /** Backward: the forward's parameters plus {@code LN_GROUPS_PER_CU}, workgroups per compute unit. */
    static final TuningSpace<LayerNormProblem> BACKWARD = space("opencl.layernorm.backward")
            .parameter("LN_GROUPS_PER_CU", 4, 1, 2, 8, 16)
            .build();

    private static TuningSpace.Builder<LayerNormProblem> space(String id) {
        return TuningSpace.builder(id, LayerNormProblem.class)
                .source(ProgramCache.header())
                .source(SOURCE)
                .parameter("LN_WG", 256, 32, 64, 128, 512, 1024)
                .parameter("LN_VECS_PER_ITEM", 4, 1, 2, 8, 16)
                .constraint("LN_WG <= maxWorkgroupSize", (t, c) -> t.get("LN_WG") <= c.maxWorkgroupSize())
                .bucket(p -> "c" + ShapeBuckets.pow2(p.cols()));
    }

    private final OpenClDevice device;

    LayerNormOpenCl(OpenClDevice device) {
        this.device = device;
    }

    @Override
    public void forward(Stream stream, LayerNormProblem p, Tensor x, Tensor gamma, Tensor beta, Tensor y,
                        Tensor mean, Tensor rstd) {
        OpenClStream s = device.stream(stream);
        Object xm = OpenClTensor.memOrNull(x, device, "x");
        Object gm = OpenClTensor.memOrNull(gamma, device, "gamma");
        Object bm = OpenClTensor.memOrNull(beta, device, "beta");
        Object ym = OpenClTensor.memOrNull(y, device, "y");
        Object mm = OpenClTensor.memOrNull(mean, device, "mean");
        Object rm = OpenClTensor.memOrNull(rstd, device, "rstd");
        if (p.rows() == 0) {
            return;
        }
        Layout l = layout(p, FORWARD.resolve(device, p.dtype(), p), "ln_forward");
        CompiledKernel k = kernel(p.dtype(), l, "ln_forward");
        long groups = OpenClDevice.ceilDiv(p.rows(), l.teamsPerGroup());
        Debug.log(1, () -> describe("forward", p, l, groups));
        k.enqueue(s, new long[] {groups * l.workgroup, 1, 1}, new long[] {l.workgroup, 1, 1},
                xm, gm, bm, ym, mm, rm, p.rows(), p.cols(), l.team, p.epsilon(), p.rms() ? 1 : 0);
        s.flush();
    }

    @Override
    public void backward(Stream stream, LayerNormProblem p, Tensor dy, Tensor x, Tensor gamma, Tensor mean,
                         Tensor rstd, Tensor dx, Tensor dgamma, Tensor dbeta) {
        OpenClStream s = device.stream(stream);
        Object dym = OpenClTensor.memOrNull(dy, device, "dy");
        Object xm = OpenClTensor.memOrNull(x, device, "x");
        Object gm = OpenClTensor.memOrNull(gamma, device, "gamma");
        Object mm = OpenClTensor.memOrNull(mean, device, "mean");
        Object rm = OpenClTensor.memOrNull(rstd, device, "rstd");
        Object dxm = OpenClTensor.memOrNull(dx, device, "dx");
        Object dgm = OpenClTensor.memOrNull(dgamma, device, "dgamma");
        Object dbm = OpenClTensor.memOrNull(dbeta, device, "dbeta");
        if (p.rows() == 0) {
            // no rows: the parameter gradients are sums over nothing
            zero(s, dgamma);
            zero(s, dbeta);
            s.flush();
            return;
        }
        Parameters tp = BACKWARD.resolve(device, p.dtype(), p);
        Layout l = layout(p, tp, "ln_backward");
        long maxGroups = Math.max(1L, (long) device.capabilities().computeUnits() * tp.get("LN_GROUPS_PER_CU"));
        long groups = Math.min(OpenClDevice.ceilDiv(p.rows(), l.teamsPerGroup()), maxGroups);
        long teams = groups * l.teamsPerGroup();
        // Only teams numbered below `rows` own a row, so only they write partials.
        int parts = (int) Math.min(teams, p.rows());
        Debug.log(1, () -> describe("backward", p, l, groups));
        try (OpenClDevice.Scratch partG = dgamma != null ? device.scratch(s, teams * p.cols(), "layer norm dgamma partials") : null;
             OpenClDevice.Scratch partB = dbeta != null ? device.scratch(s, teams * p.cols(), "layer norm dbeta partials") : null) {
            kernel(p.dtype(), l, "ln_backward").enqueue(s, new long[] {groups * l.workgroup, 1, 1},
                    new long[] {l.workgroup, 1, 1}, dym, xm, gm, mm, rm, dxm,
                    partG == null ? null : partG.mem(), partB == null ? null : partB.mem(),
                    p.rows(), p.cols(), l.team, p.rms() ? 1 : 0);
            CompiledKernel reduce = kernel(p.dtype(), l, "ln_reduce_partials");
            long wg = Math.min(l.workgroup, reduce.maxWorkGroupSize());
            long global = OpenClDevice.ceilDiv(p.cols(), wg) * wg;
            if (partG != null) {
                reduce.enqueue(s, new long[] {global, 1, 1}, new long[] {wg, 1, 1}, partG.mem(), parts, p.cols(), dgm);
            }
            if (partB != null) {
                reduce.enqueue(s, new long[] {global, 1, 1}, new long[] {wg, 1, 1}, partB.mem(), parts, p.cols(), dbm);
            }
        }
        s.flush();
    }

    private void zero(OpenClStream s, Tensor t) {
        if (t != null) {
            Fill.zero(s, OpenClTensor.of(t, device, "gradient"));
        }
    }

    /** How one problem is laid out: vector width, team size (a power of two) and workgroup size. */
    private record Layout(int vec, int team, int workgroup) {
        int teamsPerGroup() {
            return workgroup / team;
        }
    }

    /**
     * The layout for {@code p}: the workgroup is LN_WG capped by the device, then halved while the compiled
     * {@code entry} allows less (a kernel's own limit can be below the device's).
     */
    private Layout layout(LayerNormProblem p, Parameters tp, String entry) {
        int vec = p.cols() % 4 == 0 ? 4 : 1;
        int wg = Pow2.floor(Math.min(tp.get("LN_WG"), device.capabilities().maxWorkgroupSize()));
        while (wg > 1 && kernel(p.dtype(), new Layout(vec, 1, wg), entry).maxWorkGroupSize() < wg) {
            wg /= 2;
        }
        long vectors = p.cols() / vec;
        int team = Pow2.ceil((int) Math.min(wg, OpenClDevice.ceilDiv(vectors, tp.get("LN_VECS_PER_ITEM"))));
        return new Layout(vec, team, wg);
    }

    private CompiledKernel kernel(DType dtype, Layout l, String entry) {
        return device.programs.kernel(SOURCE_FILE, SOURCE, Map.of("K4J_DTYPE", Dtypes.define(dtype),
                "LN_WG", String.valueOf(l.workgroup), "LN_VEC", String.valueOf(l.vec)), entry);
    }

    private String describe(String pass, LayerNormProblem p, Layout l, long groups) {
        return String.format("%s %s %s [%d x %d] %s: %s LN_WG=%d LN_VEC=%d team=%d groups=%d", device.id(),
                p.rms() ? "rms norm" : "layer norm", pass, p.rows(), p.cols(), p.dtype(),
                pass.equals("forward") ? "ln_forward" : "ln_backward + ln_reduce_partials", l.workgroup, l.vec,
                l.team, groups);
    }
}
