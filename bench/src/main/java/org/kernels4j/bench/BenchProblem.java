package org.kernels4j.bench;

import java.util.List;
import java.util.SplittableRandom;
import java.util.stream.IntStream;

import org.kernels4j.Attention;
import org.kernels4j.Conv2d;
import org.kernels4j.DType;
import org.kernels4j.spi.AttentionProblem;
import org.kernels4j.spi.Conv2dProblem;

/**
 * One named problem of {@code shared/benchmark-shapes.md}: the op, its sizes, and the work one pass does
 * (FLOPs for conv and attention, bytes moved for layer norm, counted as DESIGN.md says).
 *
 * <p>Only the fields of the record's op are meaningful; the others are zero.
 */
record BenchProblem(String name, Op op, Set set, List<DType> dtypes,
                    int rows, int cols,
                    int n, int c, int h, int w, int k, int r, int s, int stride, int pad, int groups,
                    Conv2d.Format format,
                    int batch, int heads, int kvHeads, int seq, int headDim, Attention.CausalMask mask) {

    /** The op a problem exercises. */
    enum Op { LAYER_NORM, CONV2D, ATTENTION }

    /** Which problem set: the CPU set (cpu and opencl backends, peers) or the GPU set (cuda). */
    enum Set { CPU, GPU }

    static BenchProblem layerNorm(String name, Set set, List<DType> dtypes, int rows, int cols) {
        return new BenchProblem(name, Op.LAYER_NORM, set, dtypes, rows, cols, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, null,
                0, 0, 0, 0, 0, null);
    }

    static BenchProblem conv(String name, Set set, List<DType> dtypes, Conv2d.Format format, int n, int c, int hw,
                             int k, int rs, int stride, int pad, int groups) {
        return new BenchProblem(name, Op.CONV2D, set, dtypes, 0, 0, n, c, hw, hw, k, rs, rs, stride, pad, groups,
                format, 0, 0, 0, 0, 0, null);
    }

    static BenchProblem attention(String name, Set set, List<DType> dtypes, int batch, int heads, int kvHeads,
                                  int seq, int headDim, Attention.CausalMask mask) {
        return new BenchProblem(name, Op.ATTENTION, set, dtypes, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, null,
                batch, heads, kvHeads, seq, headDim, mask);
    }

    /** The convolution this problem runs (conv problems only). */
    Conv2d convolution() {
        return Conv2d.builder().format(format).stride(stride).padding(pad).groups(groups).build();
    }

    /** The validated convolution sizes (conv problems only). */
    Conv2dProblem convProblem(DType dtype) {
        int[] x = format == Conv2d.Format.NCHW ? new int[] {n, c, h, w} : new int[] {n, h, w, c};
        int[] wt = format == Conv2d.Format.NCHW ? new int[] {k, c / groups, r, s} : new int[] {k, r, s, c / groups};
        return convolution().problem(x, wt, dtype);
    }

    /** The attention sizes (attention problems only). */
    AttentionProblem attentionProblem(DType dtype) {
        return new AttentionProblem(batch, heads, kvHeads, seq, seq, headDim, (float) (1 / Math.sqrt(headDim)), mask,
                dtype);
    }

    /** Shape of q (and o, dO) for attention problems. */
    int[] qShape() {
        return new int[] {batch, heads, seq, headDim};
    }

    /** Shape of k and v for attention problems. */
    int[] kvShape() {
        return new int[] {batch, kvHeads, seq, headDim};
    }

    /** Whether the figure of merit is bandwidth (layer norm) rather than arithmetic. */
    boolean bandwidthBound() {
        return op == Op.LAYER_NORM;
    }

    /**
     * Floating-point operations of one pass in that direction: conv counts the forward pass once and the
     * backward pass (data and filter gradients) twice; attention's backward is 2.5× its forward. Zero for
     * layer norm, which is reported in bytes.
     */
    double flops(Direction d) {
        return switch (op) {
            case LAYER_NORM -> 0;
            case CONV2D -> convProblem(DType.FLOAT32).flops() * (d == Direction.FORWARD ? 1 : 2);
            case ATTENTION -> attentionProblem(DType.FLOAT32).forwardFlops() * (d == Direction.FORWARD ? 1 : 2.5);
        };
    }

    /**
     * Bytes one layer-norm pass moves: forward reads x, γ, β and writes y, μ, rstd; backward reads dy, x, γ,
     * μ, rstd and writes dx, dγ, dβ (statistics always fp32). Zero for the other ops.
     */
    double bytes(Direction d, DType dtype) {
        if (op != Op.LAYER_NORM) {
            return 0;
        }
        double e = dtype.byteSize();
        double matrix = (double) rows * cols * e;
        double vector = cols * e;
        double stats = rows * 4.0;
        return d == Direction.FORWARD
                ? 2 * matrix + 2 * vector + 2 * stats
                : 3 * matrix + 3 * vector + 2 * stats;
    }

    /** The seed of this problem's inputs: fixed per problem, so every run and every peer sees the same data. */
    long seed() {
        long hsh = 1125899906842597L;
        for (int i = 0; i < name.length(); i++) {
            hsh = 31 * hsh + name.charAt(i);
        }
        return hsh;
    }

    /**
     * {@code count} standard-normal values from this problem's generator, stream {@code stream} (0 for the
     * first input, 1 for the second...), the same in every run. Generated in independent chunks (each seeded
     * from the problem, the stream and the chunk index), in parallel: the GPU set's inputs run to 10^8 values.
     */
    float[] randomNormal(int stream, long count) {
        if (count > Integer.MAX_VALUE - 8) {
            throw new IllegalArgumentException("count: " + count + " values do not fit a float[]");
        }
        float[] a = new float[(int) count];
        int chunks = (int) ((count + CHUNK - 1) / CHUNK);
        IntStream.range(0, chunks).parallel().forEach(c -> {
            SplittableRandom rnd = new SplittableRandom(seed() * 1_000_003L + stream * 65_537L + c);
            int end = (int) Math.min(count, (long) (c + 1) * CHUNK);
            for (int i = c * CHUNK; i < end; i++) {
                a[i] = (float) rnd.nextGaussian();
            }
        });
        return a;
    }

    private static final int CHUNK = 1 << 20;

    /** A one-line description of the shape, for tables. */
    String describe() {
        return switch (op) {
            case LAYER_NORM -> "layer norm x[" + rows + ", " + cols + "]";
            case CONV2D -> "conv2d " + format + " N=" + n + " C=" + c + " H=W=" + h + " K=" + k + " " + r + "x" + s
                    + (stride != 1 ? " stride " + stride : "") + (pad != 0 ? " pad " + pad : "")
                    + (groups != 1 ? " groups " + groups : "");
            case ATTENTION -> "attention B=" + batch + " H=" + heads + (kvHeads != heads ? " Hkv=" + kvHeads : "")
                    + " N=" + seq + " d=" + headDim + (mask == Attention.CausalMask.NONE ? "" : " causal");
        };
    }
}
