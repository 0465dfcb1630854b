import java.util.Random;

import org.kernels4j.Attention;
import org.kernels4j.Backends;
import org.kernels4j.Conv2d;
import org.kernels4j.DType;
import org.kernels4j.Device;
import org.kernels4j.LayerNorm;
import org.kernels4j.Stream;
import org.kernels4j.Tensor;

/**
 * The CPU-set problems of shared/benchmark-shapes.md as one call each (queue and wait) on the CPU backend, built
 * in whichever class loader loads this class: {@link Paired} loads it once per kernels-cpu jar. Problem names are
 * {@code <problem> <pass>}, pass one of {@code fwd}, {@code bwd} (layer norm, attention), {@code bwd-data},
 * {@code bwd-filter} (convolution).
 */
public final class Problems {
    private static Device device;
    private static Stream stream;
    private static Random random;

    private Problems() {
    }

    private static Tensor normal(int... shape) {
        int n = 1;
        for (int x : shape) {
            n *= x;
        }
        float[] v = new float[n];
        for (int i = 0; i < n; i++) {
            v[i] = (float) random.nextGaussian();
        }
        Tensor t = device.allocate(DType.FLOAT32, shape);
        t.copyFrom(v);
        return t;
    }

    /** One call of {@code problem}, its inputs random normal (fixed seed), its outputs allocated once. */
    public static Runnable make(String problem) {
        if (device == null) {
            device = Backends.require("cpu").defaultDevice();
            stream = device.createStream();
        }
        random = new Random(7);
        String[] f = problem.split(" ");
        if (f.length != 2) {
            throw new IllegalArgumentException("problem: expected '<name> <pass>', got '" + problem + "'");
        }
        String name = f[0];
        String pass = f[1];
        if (name.startsWith("ln-")) {
            int rows = name.equals("ln-8k-1k") ? 8192 : 4096;
            int cols = name.equals("ln-8k-1k") ? 1024 : 4096;
            Tensor x = normal(rows, cols), g = normal(cols), b = normal(cols), dy = normal(rows, cols);
            Tensor y = device.allocate(DType.FLOAT32, rows, cols), mean = device.allocate(DType.FLOAT32, rows);
            Tensor rstd = device.allocate(DType.FLOAT32, rows), dx = device.allocate(DType.FLOAT32, rows, cols);
            Tensor dg = device.allocate(DType.FLOAT32, cols), db = device.allocate(DType.FLOAT32, cols);
            LayerNorm ln = LayerNorm.layerNorm();
            ln.forward(stream, x, g, b, y, mean, rstd);
            stream.synchronize();
            return pass.equals("fwd")
                    ? () -> { ln.forward(stream, x, g, b, y, mean, rstd); stream.synchronize(); }
                    : () -> { ln.backward(stream, dy, x, g, mean, rstd, dx, dg, db); stream.synchronize(); };
        }
        if (name.startsWith("conv-")) {
            // N, C, H=W, K, R=S, stride, pad, groups
            int[] c = switch (name) {
                case "conv-r56" -> new int[] {8, 64, 56, 64, 3, 1, 1, 1};
                case "conv-r28" -> new int[] {8, 128, 28, 128, 3, 1, 1, 1};
                case "conv-1x1" -> new int[] {8, 256, 14, 1024, 1, 1, 0, 1};
                case "conv-s2" -> new int[] {8, 64, 56, 128, 3, 2, 1, 1};
                case "conv-dw" -> new int[] {8, 256, 28, 256, 3, 1, 1, 256};
                default -> throw new IllegalArgumentException("problem: unknown convolution " + name);
            };
            Conv2d conv = Conv2d.builder().padding(c[6]).stride(c[5]).groups(c[7]).build();
            Tensor x = normal(c[0], c[1], c[2], c[2]), w = normal(c[3], c[1] / c[7], c[4], c[4]);
            Tensor y = conv.forward(stream, x, w, null);
            stream.synchronize();
            Tensor dy = normal(y.shape());
            Tensor dw = device.allocate(DType.FLOAT32, c[3], c[1] / c[7], c[4], c[4]);
            Tensor dx = device.allocate(DType.FLOAT32, c[0], c[1], c[2], c[2]);
            return switch (pass) {
                case "fwd" -> () -> { conv.forward(stream, x, w, null, y); stream.synchronize(); };
                case "bwd-data" -> () -> { conv.backwardData(stream, dy, w, dx); stream.synchronize(); };
                case "bwd-filter" -> () -> { conv.backwardFilter(stream, dy, x, dw, null); stream.synchronize(); };
                default -> throw new IllegalArgumentException("problem: unknown convolution pass " + pass);
            };
        }
        // B, Hq, Hkv, N, d, causal
        int[] a = switch (name) {
            case "attn-1k" -> new int[] {4, 8, 8, 1024, 64, 0};
            case "attn-1k-causal" -> new int[] {4, 8, 8, 1024, 64, 1};
            case "attn-4k-causal" -> new int[] {1, 8, 8, 4096, 64, 1};
            case "attn-gqa" -> new int[] {2, 16, 4, 2048, 128, 1};
            default -> throw new IllegalArgumentException("problem: unknown " + name);
        };
        Attention att = Attention.of(a[5] == 1 ? Attention.CausalMask.TOP_LEFT : Attention.CausalMask.NONE);
        Tensor q = normal(a[0], a[1], a[3], a[4]), k = normal(a[0], a[2], a[3], a[4]);
        Tensor v = normal(a[0], a[2], a[3], a[4]), dO = normal(a[0], a[1], a[3], a[4]);
        var out = att.forward(stream, q, k, v);
        stream.synchronize();
        Tensor dq = device.allocate(DType.FLOAT32, a[0], a[1], a[3], a[4]);
        Tensor dk = device.allocate(DType.FLOAT32, a[0], a[2], a[3], a[4]);
        Tensor dv = device.allocate(DType.FLOAT32, a[0], a[2], a[3], a[4]);
        return pass.equals("fwd")
                ? () -> { att.forward(stream, q, k, v, out.o(), out.lse()); stream.synchronize(); }
                : () -> { att.backward(stream, q, k, v, out.o(), out.lse(), dO, dq, dk, dv); stream.synchronize(); };
    }
}
