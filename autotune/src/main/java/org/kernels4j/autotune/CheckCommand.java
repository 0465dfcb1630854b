package org.kernels4j.autotune;

import java.io.PrintWriter;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Random;
import java.util.concurrent.Callable;

import org.kernels4j.Attention;
import org.kernels4j.Backend;
import org.kernels4j.BackendStatus;
import org.kernels4j.Backends;
import org.kernels4j.Conv2d;
import org.kernels4j.DType;
import org.kernels4j.Device;
import org.kernels4j.LayerNorm;
import org.kernels4j.Stream;
import org.kernels4j.Tensor;
import org.kernels4j.reference.ReferenceAttention;
import org.kernels4j.reference.ReferenceConv2d;
import org.kernels4j.reference.ReferenceLayerNorm;
import org.kernels4j.spi.AttentionProblem;
import org.kernels4j.spi.Conv2dProblem;
import org.kernels4j.spi.HalfFloats;
import org.kernels4j.spi.LayerNormProblem;

import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

/**
 * {@code kernels4j check}: every op forward and backward once per available backend (its first device, or
 * all with {@code --all-devices}) and dtype, on a small problem with odd sizes, against the float64
 * reference of {@code org.kernels4j.reference}. Inputs are rounded to the dtype before the reference sees
 * them; the error is the largest absolute difference over all outputs of the pass divided by the reference's
 * largest magnitude. Exits 1 when any pass fails.
 */
@Command(name = "check", mixinStandardHelpOptions = true,
        description = "Run each op forward and backward once per available backend and dtype against the "
                + "float64 reference; exit 1 on any failure.")
final class CheckCommand implements Callable<Integer> {

    @CommandLine.Spec
    CommandLine.Model.CommandSpec spec;

    @Option(names = "--backend", split = ",", paramLabel = "NAME", description = "Only these backends (default: all available).")
    List<String> backends;

    @Option(names = "--all-devices", description = "Every device of each backend, not only the first.")
    boolean allDevices;

    @Option(names = "--seed", description = "Seed of the random inputs (default: ${DEFAULT-VALUE}).")
    long seed = 42;

    /** The largest relative error accepted, per dtype. */
    static double tolerance(DType dtype) {
        return switch (dtype) {
            case FLOAT32 -> 1e-4;
            case FLOAT16 -> 1e-2;
            case BFLOAT16 -> 5e-2;
        };
    }

    private record Outcome(double error, String failure) {
    }

    @Override
    public Integer call() {
        PrintWriter out = spec.commandLine().getOut();
        TextTable table = new TextTable("op", "direction", "backend", "device", "dtype", "max error", "ok");
        boolean allOk = true;
        int ran = 0;
        for (BackendStatus s : Backends.statuses()) {
            if (backends != null && !backends.contains(s.name())) {
                continue;
            }
            if (!s.isAvailable()) {
                out.println(s.name() + ": unavailable (" + s.unavailableReason() + "), skipped");
                continue;
            }
            Backend b = s.backend();
            List<Device> devices = allDevices ? b.devices() : List.of(b.defaultDevice());
            for (Device d : devices) {
                for (DType dt : DType.values()) {
                    if (!d.capabilities().supports(dt)) {
                        continue;
                    }
                    for (String op : List.of("layernorm", "rmsnorm", "conv2d", "attention")) {
                        for (String dir : List.of("forward", "backward")) {
                            Outcome o;
                            try {
                                o = run(op, dir, d, dt);
                            } catch (RuntimeException e) {
                                o = new Outcome(Double.NaN, "error: " + e);
                            }
                            boolean ok = o.failure() == null && o.error() <= tolerance(dt);
                            allOk &= ok;
                            ran++;
                            table.add(op, dir, b.name(), d.id() + " " + d.name(), dt,
                                    Double.isNaN(o.error()) ? "-" : String.format(Locale.ROOT, "%.2e", o.error()),
                                    ok ? "ok" : o.failure() != null ? "FAIL (" + o.failure() + ")"
                                            : String.format(Locale.ROOT, "FAIL (> %.0e)", tolerance(dt)));
                        }
                    }
                }
            }
        }
        table.print(out);
        if (ran == 0) {
            out.println("no backend available to check");
            out.flush();
            return 1;
        }
        out.println(allOk ? "all " + ran + " checks passed" : "FAILED: some checks exceeded the tolerance or failed");
        out.flush();
        return allOk ? 0 : 1;
    }

    private Outcome run(String op, String dir, Device d, DType dt) {
        Random rng = new Random(seed ^ (op + dir + dt).hashCode());
        Stream st = d.defaultStream();
        List<Tensor> ts = new ArrayList<>();
        try {
            return switch (op) {
                case "layernorm", "rmsnorm" -> layerNorm(op.equals("rmsnorm"), dir, d, dt, st, rng, ts);
                case "conv2d" -> conv(dir, d, dt, st, rng, ts);
                default -> attention(dir, d, dt, st, rng, ts);
            };
        } finally {
            for (Tensor t : ts) {
                t.close();
            }
        }
    }

    private static Outcome layerNorm(boolean rms, String dir, Device d, DType dt, Stream st, Random rng, List<Tensor> ts) {
        int rows = 37;
        int cols = 129;
        LayerNorm ln = rms ? LayerNorm.rmsNorm(LayerNorm.DEFAULT_EPSILON) : LayerNorm.layerNorm();
        LayerNormProblem p = new LayerNormProblem(ln.kind(), ln.epsilon(), rows, cols, dt);
        double[] x = random(rng, rows * cols, dt);
        double[] g = random(rng, cols, dt);
        double[] b = rms ? null : random(rng, cols, dt);
        Tensor tx = up(d, dt, x, ts, rows, cols);
        Tensor tg = up(d, dt, g, ts, cols);
        Tensor tb = b == null ? null : up(d, dt, b, ts, cols);
        Tensor y = poisoned(d, dt, ts, rows, cols);
        Tensor mean = rms ? null : poisoned(d, DType.FLOAT32, ts, rows);
        Tensor rstd = poisoned(d, DType.FLOAT32, ts, rows);
        ln.forward(st, tx, tg, tb, y, mean, rstd);
        if (dir.equals("forward")) {
            ReferenceLayerNorm.Forward r = ReferenceLayerNorm.forward(p, x, g, b);
            return rms ? error(List.of(r.y(), r.rstd()), List.of(y, rstd))
                    : error(List.of(r.y(), r.mean(), r.rstd()), List.of(y, mean, rstd));
        }
        double[] dy = random(rng, rows * cols, dt);
        Tensor tdy = up(d, dt, dy, ts, rows, cols);
        Tensor dx = poisoned(d, dt, ts, rows, cols);
        Tensor dg = poisoned(d, dt, ts, cols);
        Tensor db = poisoned(d, dt, ts, cols);
        ln.backward(st, tdy, tx, tg, mean, rstd, dx, dg, db);
        ReferenceLayerNorm.Backward r = ReferenceLayerNorm.backward(p, dy, x, g);
        return error(List.of(r.dx(), r.dgamma(), r.dbeta()), List.of(dx, dg, db));
    }

    private static Outcome conv(String dir, Device d, DType dt, Stream st, Random rng, List<Tensor> ts) {
        Conv2d conv = Conv2d.builder().stride(2, 1).padding(1, 2, 0, 1).dilation(1, 2).groups(2).build();
        int[] xs = {2, 6, 11, 13};
        int[] ws = {8, 3, 3, 3};
        Conv2dProblem p = conv.problem(xs, ws, dt);
        double[] x = random(rng, count(xs), dt);
        double[] w = random(rng, count(ws), dt);
        Tensor tx = up(d, dt, x, ts, xs);
        Tensor tw = up(d, dt, w, ts, ws);
        if (dir.equals("forward")) {
            double[] bias = random(rng, p.k(), dt);
            Tensor tb = up(d, dt, bias, ts, p.k());
            Tensor y = poisoned(d, dt, ts, p.yShape());
            conv.forward(st, tx, tw, tb, y);
            return error(List.of(ReferenceConv2d.forward(p, x, w, bias)), List.of(y));
        }
        double[] dy = random(rng, count(p.yShape()), dt);
        Tensor tdy = up(d, dt, dy, ts, p.yShape());
        Tensor dx = poisoned(d, dt, ts, xs);
        Tensor dw = poisoned(d, dt, ts, ws);
        Tensor db = poisoned(d, dt, ts, p.k());
        conv.backwardData(st, tdy, tw, dx);
        conv.backwardFilter(st, tdy, tx, dw, db);
        ReferenceConv2d.FilterGradients f = ReferenceConv2d.backwardFilter(p, dy, x);
        return error(List.of(ReferenceConv2d.backwardData(p, dy, w), f.dw(), f.db()), List.of(dx, dw, db));
    }

    private static Outcome attention(String dir, Device d, DType dt, Stream st, Random rng, List<Tensor> ts) {
        Attention att = Attention.of(Attention.CausalMask.BOTTOM_RIGHT);
        int[] qs = {2, 4, 33, 64};
        int[] ks = {2, 2, 47, 64};
        AttentionProblem p = new AttentionProblem(2, 4, 2, 33, 47, 64, att.scaleFor(64), att.mask(), dt);
        double[] q = random(rng, count(qs), dt);
        double[] k = random(rng, count(ks), dt);
        double[] v = random(rng, count(ks), dt);
        Tensor tq = up(d, dt, q, ts, qs);
        Tensor tk = up(d, dt, k, ts, ks);
        Tensor tv = up(d, dt, v, ts, ks);
        Tensor o = poisoned(d, dt, ts, qs);
        Tensor lse = poisoned(d, DType.FLOAT32, ts, 2, 4, 33);
        att.forward(st, tq, tk, tv, o, lse);
        if (dir.equals("forward")) {
            ReferenceAttention.Forward r = ReferenceAttention.forward(p, q, k, v);
            return error(List.of(r.o(), r.lse()), List.of(o, lse));
        }
        double[] dO = random(rng, count(qs), dt);
        Tensor tdo = up(d, dt, dO, ts, qs);
        Tensor dq = poisoned(d, dt, ts, qs);
        Tensor dk = poisoned(d, dt, ts, ks);
        Tensor dv = poisoned(d, dt, ts, ks);
        att.backward(st, tq, tk, tv, o, lse, tdo, dq, dk, dv);
        ReferenceAttention.Backward r = ReferenceAttention.backward(p, q, k, v, dO);
        return error(List.of(r.dq(), r.dk(), r.dv()), List.of(dq, dk, dv));
    }

    /** Largest |ours - reference| over every output, divided by the references' largest magnitude. */
    private static Outcome error(List<double[]> refs, List<Tensor> outs) {
        double scale = 0;
        double worst = 0;
        for (int i = 0; i < refs.size(); i++) {
            float[] got = outs.get(i).toFloatArray();
            double[] ref = refs.get(i);
            for (int j = 0; j < ref.length; j++) {
                if (Double.isInfinite(ref[j])) {
                    if (got[j] != ref[j]) {
                        return new Outcome(Double.POSITIVE_INFINITY, "output " + i + "[" + j + "] is " + got[j]
                                + ", expected " + ref[j]);
                    }
                    continue;
                }
                if (Float.isNaN(got[j])) {
                    return new Outcome(Double.NaN, "output " + i + "[" + j + "] is NaN (unwritten or invalid)");
                }
                scale = Math.max(scale, Math.abs(ref[j]));
                worst = Math.max(worst, Math.abs(got[j] - ref[j]));
            }
        }
        return new Outcome(worst / Math.max(scale, Double.MIN_NORMAL), null);
    }

    /** Random normal values, rounded to {@code dt} so that the reference sees what the device sees. */
    private static double[] random(Random rng, int n, DType dt) {
        double[] a = new double[n];
        for (int i = 0; i < n; i++) {
            a[i] = HalfFloats.round(dt, (float) rng.nextGaussian());
        }
        return a;
    }

    private static Tensor up(Device d, DType dt, double[] a, List<Tensor> ts, int... shape) {
        float[] f = new float[a.length];
        for (int i = 0; i < a.length; i++) {
            f[i] = (float) a[i];
        }
        Tensor t = d.upload(dt, f, shape);
        ts.add(t);
        return t;
    }

    private static Tensor poisoned(Device d, DType dt, List<Tensor> ts, int... shape) {
        Tensor t = d.allocate(dt, shape);
        ts.add(t);
        t.fill(Float.NaN);
        return t;
    }

    private static int count(int[] shape) {
        int n = 1;
        for (int s : shape) {
            n *= s;
        }
        return n;
    }
}
