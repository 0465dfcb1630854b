package org.kernels4j.cuda;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.SplittableRandom;
import java.util.function.IntConsumer;

import org.kernels4j.Attention;
import org.kernels4j.BackendStatus;
import org.kernels4j.Backends;
import org.kernels4j.Conv2d;
import org.kernels4j.DType;
import org.kernels4j.Device;
import org.kernels4j.Event;
import org.kernels4j.LayerNorm;
import org.kernels4j.Stream;
import org.kernels4j.Tensor;
import org.kernels4j.reference.ReferenceLayerNorm;
import org.kernels4j.spi.LayerNormProblem;

/**
 * Checks the CUDA backend on the machine it runs on, through the public API as a framework calls it: the
 * backends found (with the reason when CUDA is unavailable), each CUDA device's capabilities, layer norm on
 * small problems against the float64 reference, then the GPU benchmark set of
 * {@code shared/benchmark-shapes.md} timed with CUDA events on a stream (warm-up, median of repeats, input
 * sets rotated past the L2): layer norm forward and backward in GB/s against a device-to-device copy of the
 * same bytes through the same driver, attention and convolution in TFLOP/s (as DESIGN.md counts them),
 * where those ops are implemented. Writes everything as JSON.
 *
 * <pre>
 * java --enable-native-access=ALL-UNNAMED -cp &lt;kernels4j jars, JCuda&gt; org.kernels4j.cuda.CudaDeviceCheck \
 *      [--out result.json] [--quick]
 * </pre>
 * Exit status: 0 when every check passed, 1 when one failed, 3 when the CUDA backend is unavailable.
 */
public final class CudaDeviceCheck {

    private final boolean quick;
    private final SplittableRandom random;
    private final long seed;
    private final List<Map<String, Object>> checks = new ArrayList<>();
    private final List<Map<String, Object>> timings = new ArrayList<>();
    private CudaDevice device;
    private Stream stream;

    private CudaDeviceCheck(boolean quick, long seed) {
        this.quick = quick;
        this.seed = seed;
        this.random = new SplittableRandom(seed);
    }

    /**
     * Runs the check; see the class comment for the arguments.
     *
     * @param args {@code --out FILE} (default {@code cuda-device-check.json}), {@code --quick}
     * @throws IOException when the result cannot be written
     */
    public static void main(String[] args) throws IOException {
        Path out = Path.of("cuda-device-check.json");
        boolean quick = false;
        for (int i = 0; i < args.length; i++) {
            switch (args[i]) {
                case "--out" -> out = Path.of(args[++i]);
                case "--quick" -> quick = true;
                default -> {
                    System.err.println("usage: CudaDeviceCheck [--out FILE] [--quick]");
                    System.exit(2);
                }
            }
        }
        Map<String, Object> result = new LinkedHashMap<>();
        List<Object> statuses = new ArrayList<>();
        for (BackendStatus s : Backends.statuses()) {
            statuses.add(s.toString());
            System.out.println("backend " + s);
        }
        result.put("backends", statuses);
        BackendStatus cuda = Backends.statuses().stream().filter(s -> s.name().equals("cuda")).findFirst().orElse(null);
        if (cuda == null || !cuda.isAvailable()) {
            result.put("ok", false);
            result.put("unavailable", cuda == null ? "the cuda backend is not on the class path" : cuda.unavailableReason());
            write(out, result);
            System.exit(3);
        }
        CudaDeviceCheck c = new CudaDeviceCheck(quick, System.nanoTime());
        result.put("seed", c.seed);
        List<Object> devices = new ArrayList<>();
        for (Device d : cuda.backend().devices()) {
            Map<String, Object> m = new LinkedHashMap<>();
            m.put("id", d.id());
            m.put("name", d.name());
            m.put("capabilities", d.capabilities().toString());
            devices.add(m);
            System.out.println(d.id() + ": " + d.name() + " " + d.capabilities());
        }
        result.put("devices", devices);
        c.device = (CudaDevice) cuda.backend().defaultDevice();
        result.put("kernels_nvcc", KernelManifest.load().nvccVersion());
        boolean ok;
        try (Stream s = c.device.createStream()) {
            c.stream = s;
            c.layerNormChecks();
            c.layerNormTimings();
            c.attentionTimings();
            c.convTimings();
            ok = c.checks.stream().allMatch(m -> Boolean.TRUE.equals(m.get("ok")));
        }
        result.put("ok", ok);
        result.put("checks", c.checks);
        result.put("timings", c.timings);
        write(out, result);
        System.out.println("CudaDeviceCheck: " + c.checks.stream().filter(m -> Boolean.TRUE.equals(m.get("ok"))).count()
                + "/" + c.checks.size() + " checks ok; " + c.timings.size() + " timings -> " + out);
        System.exit(ok ? 0 : 1);
    }

    // ------------------------------------------------------------------------------------------- checks

    private void layerNormChecks() {
        for (DType dt : DType.values()) {
            for (LayerNorm ln : List.of(LayerNorm.layerNorm(), LayerNorm.rmsNorm(1e-5f))) {
                for (int[] shape : new int[][] {{37, 1000}, {5, 4096}, {3, 7}}) {
                    checkLayerNorm(ln, dt, shape[0], shape[1]);
                }
            }
        }
    }

    private void checkLayerNorm(LayerNorm ln, DType dt, int rows, int cols) {
        String name = ln + " " + dt + " [" + rows + "x" + cols + "]";
        float[] x = rounded(dt, randoms(rows * cols, 2.0, 1.0));
        float[] g = rounded(dt, randoms(cols, 0.5, 1.0));
        float[] b = rounded(dt, randoms(cols, 0.5, 0.0));
        float[] dy = rounded(dt, randoms(rows * cols, 1.0, 0.0));
        LayerNormProblem p = new LayerNormProblem(ln.kind(), ln.epsilon(), rows, cols, dt);
        ReferenceLayerNorm.Forward rf = ReferenceLayerNorm.forward(p, doubles(x), doubles(g), doubles(b));
        ReferenceLayerNorm.Backward rb = ReferenceLayerNorm.backward(p, doubles(dy), doubles(x), doubles(g));
        // fp32 math with one rounding of the output: a few units of the dtype's precision at most
        double tol = dt == DType.FLOAT32 ? 1e-5 : dt == DType.FLOAT16 ? 4e-3 : 2e-2;
        try (Tensor tx = device.upload(dt, x, rows, cols);
             Tensor tg = device.upload(dt, g, cols);
             Tensor tb = device.upload(dt, b, cols);
             Tensor tdy = device.upload(dt, dy, rows, cols);
             LayerNorm.Outputs o = ln.forward(stream, tx, tg, tb);
             LayerNorm.Gradients gr = ln.backward(stream, tdy, tx, tg, o.mean(), o.rstd(), true)) {
            check(name + " y", relError(o.y().toFloatArray(), rf.y()), tol);
            check(name + " rstd", relError(o.rstd().toFloatArray(), rf.rstd()), 1e-5);
            check(name + " dx", relError(gr.dx().toFloatArray(), rb.dx()), tol);
            check(name + " dgamma", relError(gr.dgamma().toFloatArray(), rb.dgamma()), tol);
            check(name + " dbeta", relError(gr.dbeta().toFloatArray(), rb.dbeta()), tol);
        } catch (RuntimeException e) {
            Map<String, Object> m = new LinkedHashMap<>();
            m.put("name", name);
            m.put("ok", false);
            m.put("error", e.toString());
            checks.add(m);
            System.out.println("FAIL " + name + ": " + e);
        }
    }

    private void check(String name, double err, double tol) {
        Map<String, Object> m = new LinkedHashMap<>();
        m.put("name", name);
        m.put("ok", err <= tol);
        m.put("rel_error", err);
        m.put("tolerance", tol);
        checks.add(m);
        if (!(err <= tol)) {
            System.out.println("FAIL " + name + ": rel error " + err + " > " + tol);
        }
    }

    // ------------------------------------------------------------------------------------------- timings

    private void layerNormTimings() {
        Object[][] set = {
            {"ln-16k-4k", 16384, 4096, new DType[] {DType.FLOAT32, DType.BFLOAT16, DType.FLOAT16}},
            {"ln-64k-1k", 65536, 1024, new DType[] {DType.FLOAT32, DType.BFLOAT16, DType.FLOAT16}},
            {"ln-4k-16k", 4096, 16384, new DType[] {DType.BFLOAT16, DType.FLOAT16}},
        };
        LayerNorm ln = LayerNorm.layerNorm();
        for (Object[] s : set) {
            int rows = (Integer) s[1];
            int cols = (Integer) s[2];
            for (DType dt : (DType[]) s[3]) {
                long bytes = (long) rows * cols * dt.byteSize();
                int sets = sets(2 * bytes);
                Tensor[] xs = new Tensor[sets];
                Tensor[] dys = new Tensor[sets];
                try (Tensor g = random(dt, cols); Tensor b = random(dt, cols);
                     Tensor y = device.allocate(dt, rows, cols); Tensor dx = device.allocate(dt, rows, cols);
                     Tensor mean = device.allocate(DType.FLOAT32, rows); Tensor rstd = device.allocate(DType.FLOAT32, rows);
                     Tensor dg = device.allocate(dt, cols); Tensor db = device.allocate(dt, cols);
                     Tensor copySrc = device.allocate(dt, rows, cols); Tensor copyDst = device.allocate(dt, rows, cols)) {
                    for (int i = 0; i < sets; i++) {
                        xs[i] = random(dt, rows, cols);
                        dys[i] = random(dt, rows, cols);
                    }
                    long stats = 2L * rows * 4;
                    Measured fwd = medianMs(i -> ln.forward(stream, xs[i % sets], g, b, y, mean, rstd));
                    Measured bwd = medianMs(i -> ln.backward(stream, dys[i % sets], xs[i % sets], g, mean, rstd, dx, dg, db));
                    long src = CudaInterop.devicePointer(copySrc);
                    long dst = CudaInterop.devicePointer(copyDst);
                    long h = CudaInterop.streamHandle(stream);
                    double copy = medianMs(i -> {
                        device.makeCurrent();
                        device.driver().memcpyDtoDAsync(dst, src, bytes, h);
                    }).ms();
                    double copyGbs = 2.0 * bytes / copy / 1e6;
                    long fwdBytes = 2 * bytes + 2L * cols * dt.byteSize() + stats;
                    long bwdBytes = 3 * bytes + 3L * cols * dt.byteSize() + stats;
                    timing((String) s[0], dt, "fwd", fwd, fwdBytes, copyGbs, 0);
                    timing((String) s[0], dt, "bwd", bwd, bwdBytes, copyGbs, 0);
                } finally {
                    closeAll(xs);
                    closeAll(dys);
                }
            }
        }
    }

    private void attentionTimings() {
        int[][] set = quick ? new int[][] {{64, 4096}} : new int[][] {{64, 2048}, {64, 8192}, {128, 2048}, {128, 8192}};
        for (int[] s : set) {
            int d = s[0];
            int n = s[1];
            int heads = 2048 / d;
            int batch = 16384 / n;
            for (Attention.CausalMask mask : List.of(Attention.CausalMask.NONE, Attention.CausalMask.TOP_LEFT)) {
                Attention att = Attention.of(mask);
                String name = "attn-fa-d" + d + "-" + (n / 1024) + "k" + (mask == Attention.CausalMask.NONE ? "" : " causal");
                try (Tensor q = random(DType.BFLOAT16, batch, heads, n, d); Tensor k = random(DType.BFLOAT16, batch, heads, n, d);
                     Tensor v = random(DType.BFLOAT16, batch, heads, n, d); Tensor dO = random(DType.BFLOAT16, batch, heads, n, d);
                     Tensor o = device.allocate(DType.BFLOAT16, batch, heads, n, d);
                     Tensor lse = device.allocate(DType.FLOAT32, batch, heads, n);
                     Tensor dq = device.allocate(DType.BFLOAT16, batch, heads, n, d);
                     Tensor dk = device.allocate(DType.BFLOAT16, batch, heads, n, d);
                     Tensor dv = device.allocate(DType.BFLOAT16, batch, heads, n, d)) {
                    double flops = att.problem(q.shape(), k.shape(), DType.BFLOAT16).forwardFlops();
                    Measured fwd = medianMs(i -> att.forward(stream, q, k, v, o, lse));
                    timing(name, DType.BFLOAT16, "fwd", fwd, 0, 0, flops);
                    Measured bwd = medianMs(i -> att.backward(stream, q, k, v, o, lse, dO, dq, dk, dv));
                    timing(name, DType.BFLOAT16, "bwd", bwd, 0, 0, 2.5 * flops);
                } catch (UnsupportedOperationException e) {
                    skipped(name, e);
                    return;
                }
            }
        }
    }

    private void convTimings() {
        int[][] layers = { // C, H=W, K, R=S, stride, pad
            {64, 56, 64, 3, 1, 1}, {128, 28, 128, 3, 1, 1}, {256, 14, 256, 3, 1, 1}, {512, 7, 512, 3, 1, 1},
            {256, 56, 64, 1, 1, 0}, {3, 224, 64, 7, 2, 3}};
        String[] names = {"conv-rn50-c2", "conv-rn50-c3", "conv-rn50-c4", "conv-rn50-c5", "conv-rn50-1x1", "conv-rn50-stem"};
        int batch = 128;
        for (int l = 0; l < layers.length; l++) {
            int[] c = layers[l];
            Conv2d conv = Conv2d.builder().format(Conv2d.Format.NHWC).stride(c[4]).padding(c[5]).build();
            int[] xShape = {batch, c[1], c[1], c[0]};
            int[] wShape = {c[2], c[3], c[3], c[0]};
            double flops = conv.problem(xShape, wShape, DType.BFLOAT16).flops();
            try (Tensor x = random(DType.BFLOAT16, xShape); Tensor w = random(DType.BFLOAT16, wShape);
                 Tensor y = conv.forward(stream, x, w, null); Tensor dy = random(DType.BFLOAT16, y.shape());
                 Tensor dx = device.allocate(DType.BFLOAT16, xShape); Tensor dw = device.allocate(DType.BFLOAT16, wShape)) {
                timing(names[l], DType.BFLOAT16, "fprop", medianMs(i -> conv.forward(stream, x, w, null, y)), 0, 0, flops);
                timing(names[l], DType.BFLOAT16, "dgrad", medianMs(i -> conv.backwardData(stream, dy, w, dx)), 0, 0, flops);
                timing(names[l], DType.BFLOAT16, "wgrad", medianMs(i -> conv.backwardFilter(stream, dy, x, dw, null)), 0, 0,
                        flops);
            } catch (UnsupportedOperationException e) {
                skipped(names[l], e);
                return;
            }
        }
    }

    private void timing(String shape, DType dt, String pass, Measured t, long bytes, double copyGbs, double flops) {
        double ms = t.ms();
        Map<String, Object> m = new LinkedHashMap<>();
        m.put("shape", shape);
        m.put("dtype", dt.label());
        m.put("pass", pass);
        m.put("ms", ms);
        m.put("host_us_per_call", t.hostUs());
        StringBuilder line = new StringBuilder(String.format(Locale.ROOT, "%-22s %-8s %-5s %9.4f ms", shape, dt, pass, ms));
        if (bytes > 0) {
            double gbs = bytes / ms / 1e6;
            m.put("bytes", bytes);
            m.put("GBs", gbs);
            m.put("copy_GBs", copyGbs);
            m.put("of_copy", gbs / copyGbs);
            line.append(String.format(Locale.ROOT, " %7.0f GB/s (%3.0f%% of copy %5.0f GB/s)", gbs, 100 * gbs / copyGbs, copyGbs));
        }
        if (flops > 0) {
            m.put("flops", flops);
            m.put("TFLOPs", flops / ms / 1e9);
            line.append(String.format(Locale.ROOT, " %7.1f TFLOP/s", flops / ms / 1e9));
        }
        line.append(String.format(Locale.ROOT, "  (host %.1f us per call)", t.hostUs()));
        timings.add(m);
        System.out.println(line);
    }

    private void skipped(String what, RuntimeException e) {
        Map<String, Object> m = new LinkedHashMap<>();
        m.put("shape", what);
        m.put("skipped", e.getMessage());
        timings.add(m);
        System.out.println(what + ": skipped: " + e.getMessage());
    }

    /**
     * Median milliseconds of {@code op(i)} between two events, after warm-up, and the host microseconds per
     * timed call; i counts the calls.
     *
     * <p>The warm-up lasts until the JIT has compiled the op's host path (at least {@value #WARMUP_MS} ms and
     * {@value #WARMUP_CALLS} calls, or {@value #WARMUP_CALLS_MAX} calls): interpreted, a layer-norm call costs
     * tens of microseconds of host time (on the fake driver, on the 2-core development machine: 45 us per call
     * over the first 20,000 calls, 1 to 3 us once compiled), about as long as its kernel on an H200, and the
     * events then time the GPU waiting for the host. The first GPU run warmed up with 5 calls, and its Java
     * figures for 16-bit ln-64k-1k forward (72-79 us kernels) were 30-60% above the Python check's for the
     * same kernel and launch; the host time per call recorded with each timing now shows which side was slower.
     */
    private Measured medianMs(IntConsumer op) {
        int repeats = quick ? 15 : 40;
        int call = 0;
        long warmupEnd = System.nanoTime() + WARMUP_MS * 1_000_000L;
        while (call < WARMUP_CALLS || (call < WARMUP_CALLS_MAX && System.nanoTime() < warmupEnd)) {
            op.accept(call++);
            if (call % 64 == 0) {
                stream.synchronize();   // keeps the queue short when the GPU is the slower side
            }
        }
        stream.synchronize();
        Event[] starts = new Event[repeats];
        Event[] ends = new Event[repeats];
        long host = System.nanoTime();
        for (int r = 0; r < repeats; r++) {
            starts[r] = stream.record();
            op.accept(call++);
            ends[r] = stream.record();
        }
        double hostUs = (System.nanoTime() - host) / 1e3 / repeats;
        double[] ms = new double[repeats];
        for (int r = 0; r < repeats; r++) {
            ms[r] = ends[r].elapsedMillisSince(starts[r]);
        }
        Arrays.sort(ms);
        return new Measured(repeats % 2 == 1 ? ms[repeats / 2] : (ms[repeats / 2 - 1] + ms[repeats / 2]) / 2, hostUs);
    }

    /** A median time and the host time per call (the op plus two event records) while it was measured. */
    private record Measured(double ms, double hostUs) {
    }

    private static final int WARMUP_MS = 100;
    private static final int WARMUP_CALLS = 5;
    private static final int WARMUP_CALLS_MAX = 2000;

    /** Input sets to rotate over so that together they exceed three times the L2. */
    private int sets(long bytesPerSet) {
        long l2 = device.l2Bytes();
        return (int) Math.max(1, Math.min(8, (3 * l2 + bytesPerSet - 1) / bytesPerSet));
    }

    // ------------------------------------------------------------------------------------------- data

    private Tensor random(DType dt, int... shape) {
        long n = 1;
        for (int s : shape) {
            n *= s;
        }
        return device.upload(dt, randoms(Math.toIntExact(n), 1.0, 0.0), shape);
    }

    /** Uniform on [offset - scale, offset + scale): never zeros, fresh for every call. */
    private float[] randoms(int n, double scale, double offset) {
        float[] a = new float[n];
        for (int i = 0; i < n; i++) {
            a[i] = (float) (offset + scale * (2 * random.nextDouble() - 1));
        }
        return a;
    }

    private static float[] rounded(DType dt, float[] a) {
        for (int i = 0; i < a.length; i++) {
            a[i] = org.kernels4j.spi.HalfFloats.round(dt, a[i]);
        }
        return a;
    }

    private static double[] doubles(float[] a) {
        double[] d = new double[a.length];
        for (int i = 0; i < a.length; i++) {
            d[i] = a[i];
        }
        return d;
    }

    private static double relError(float[] out, double[] ref) {
        double num = 0;
        double den = 0;
        for (int i = 0; i < ref.length; i++) {
            if (!Float.isFinite(out[i])) {
                return Double.POSITIVE_INFINITY;
            }
            num += (out[i] - ref[i]) * (out[i] - ref[i]);
            den += ref[i] * ref[i];
        }
        return den > 0 ? Math.sqrt(num / den) : Math.sqrt(num);
    }

    private static void closeAll(Tensor[] ts) {
        for (Tensor t : ts) {
            if (t != null) {
                t.close();
            }
        }
    }

    // ------------------------------------------------------------------------------------------- JSON

    private static void write(Path out, Map<String, Object> result) throws IOException {
        StringBuilder sb = new StringBuilder();
        json(sb, result, "");
        if (out.getParent() != null) {
            Files.createDirectories(out.getParent());
        }
        Files.writeString(out, sb.append('\n').toString(), StandardCharsets.UTF_8);
    }

    private static void json(StringBuilder sb, Object v, String indent) {
        switch (v) {
            case null -> sb.append("null");
            case Map<?, ?> m -> {
                sb.append("{");
                String sep = "\n";
                for (Map.Entry<?, ?> e : m.entrySet()) {
                    sb.append(sep).append(indent).append("  ");
                    json(sb, String.valueOf(e.getKey()), "");
                    sb.append(": ");
                    json(sb, e.getValue(), indent + "  ");
                    sep = ",\n";
                }
                sb.append(m.isEmpty() ? "}" : "\n" + indent + "}");
            }
            case List<?> l -> {
                sb.append("[");
                String sep = "\n";
                for (Object o : l) {
                    sb.append(sep).append(indent).append("  ");
                    json(sb, o, indent + "  ");
                    sep = ",\n";
                }
                sb.append(l.isEmpty() ? "]" : "\n" + indent + "]");
            }
            case Boolean b -> sb.append(b);
            case Double d -> sb.append(Double.isFinite(d) ? d.toString() : "\"" + d + "\"");
            case Number n -> sb.append(n);
            default -> {
                sb.append('"');
                for (char ch : v.toString().toCharArray()) {
                    switch (ch) {
                        case '"' -> sb.append("\\\"");
                        case '\\' -> sb.append("\\\\");
                        case '\n' -> sb.append("\\n");
                        default -> {
                            if (ch < 0x20) {
                                sb.append(String.format("\\u%04x", (int) ch));
                            } else {
                                sb.append(ch);
                            }
                        }
                    }
                }
                sb.append('"');
            }
        }
    }
}
