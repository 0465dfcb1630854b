package org.kernels4j.bench;

import static org.kernels4j.Attention.CausalMask.NONE;
import static org.kernels4j.Attention.CausalMask.TOP_LEFT;
import static org.kernels4j.bench.BenchProblem.Set.CPU;
import static org.kernels4j.bench.BenchProblem.Set.GPU;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

import org.kernels4j.Attention;
import org.kernels4j.Conv2d;
import org.kernels4j.DType;

/**
 * The fixed benchmark problems of {@code shared/benchmark-shapes.md}. The names are stable: result histories
 * and the dashboard key on them.
 */
final class ProblemSet {

    private static final List<DType> FP32 = List.of(DType.FLOAT32);
    private static final List<DType> HALVES = List.of(DType.BFLOAT16, DType.FLOAT16);
    private static final List<DType> HALVES_AND_FP32 = List.of(DType.BFLOAT16, DType.FLOAT16, DType.FLOAT32);

    private static final Map<String, BenchProblem> ALL = new LinkedHashMap<>();

    static {
        add(BenchProblem.layerNorm("ln-8k-1k", CPU, FP32, 8192, 1024));
        add(BenchProblem.layerNorm("ln-4k-4k", CPU, FP32, 4096, 4096));
        add(BenchProblem.conv("conv-r56", CPU, FP32, Conv2d.Format.NCHW, 8, 64, 56, 64, 3, 1, 1, 1));
        add(BenchProblem.conv("conv-r28", CPU, FP32, Conv2d.Format.NCHW, 8, 128, 28, 128, 3, 1, 1, 1));
        add(BenchProblem.conv("conv-1x1", CPU, FP32, Conv2d.Format.NCHW, 8, 256, 14, 1024, 1, 1, 0, 1));
        add(BenchProblem.conv("conv-s2", CPU, FP32, Conv2d.Format.NCHW, 8, 64, 56, 128, 3, 2, 1, 1));
        add(BenchProblem.conv("conv-dw", CPU, FP32, Conv2d.Format.NCHW, 8, 256, 28, 256, 3, 1, 1, 256));
        add(BenchProblem.attention("attn-1k", CPU, FP32, 4, 8, 8, 1024, 64, NONE));
        add(BenchProblem.attention("attn-1k-causal", CPU, FP32, 4, 8, 8, 1024, 64, TOP_LEFT));
        add(BenchProblem.attention("attn-4k-causal", CPU, FP32, 1, 8, 8, 4096, 64, TOP_LEFT));
        add(BenchProblem.attention("attn-gqa", CPU, FP32, 2, 16, 4, 2048, 128, TOP_LEFT));

        add(BenchProblem.layerNorm("ln-16k-4k", GPU, HALVES_AND_FP32, 16384, 4096));
        add(BenchProblem.layerNorm("ln-64k-1k", GPU, HALVES_AND_FP32, 65536, 1024));
        add(BenchProblem.layerNorm("ln-4k-16k", GPU, HALVES, 4096, 16384));
        // FlashAttention's benchmark: 16k tokens per batch, hidden 2048
        int[] seqs = {512, 1024, 2048, 4096, 8192, 16384};
        for (int d : new int[] {64, 128}) {
            for (int seq : seqs) {
                for (Attention.CausalMask m : new Attention.CausalMask[] {NONE, TOP_LEFT}) {
                    String name = "attn-fa-d" + d + "-" + (seq < 1024 ? String.valueOf(seq) : (seq / 1024) + "k")
                            + (m == NONE ? "" : "-causal");
                    add(BenchProblem.attention(name, GPU, HALVES, 16384 / seq, 2048 / d, 2048 / d, seq, d, m));
                }
            }
        }
        Conv2d.Format nhwc = Conv2d.Format.NHWC;
        add(BenchProblem.conv("conv-rn50-c2", GPU, HALVES, nhwc, 128, 64, 56, 64, 3, 1, 1, 1));
        add(BenchProblem.conv("conv-rn50-c3", GPU, HALVES, nhwc, 128, 128, 28, 128, 3, 1, 1, 1));
        add(BenchProblem.conv("conv-rn50-c4", GPU, HALVES, nhwc, 128, 256, 14, 256, 3, 1, 1, 1));
        add(BenchProblem.conv("conv-rn50-c5", GPU, HALVES, nhwc, 128, 512, 7, 512, 3, 1, 1, 1));
        add(BenchProblem.conv("conv-rn50-1x1", GPU, HALVES, nhwc, 128, 256, 56, 64, 1, 1, 0, 1));
        add(BenchProblem.conv("conv-rn50-stem", GPU, HALVES, nhwc, 128, 3, 224, 64, 7, 2, 3, 1));
    }

    private ProblemSet() {
    }

    private static void add(BenchProblem p) {
        if (ALL.put(p.name(), p) != null) {
            throw new IllegalStateException("duplicate problem name " + p.name());
        }
    }

    /** The problem of that name. */
    static BenchProblem byName(String name) {
        BenchProblem p = ALL.get(name);
        if (p == null) {
            throw new IllegalArgumentException("problem: expected a name from benchmark-shapes.md, got '" + name + "'");
        }
        return p;
    }

    /** The problems of one set, in the order of benchmark-shapes.md. */
    static List<BenchProblem> of(BenchProblem.Set set) {
        List<BenchProblem> l = new ArrayList<>();
        for (BenchProblem p : ALL.values()) {
            if (p.set() == set) {
                l.add(p);
            }
        }
        return l;
    }

    /** Every problem, CPU set first. */
    static List<BenchProblem> all() {
        return List.copyOf(ALL.values());
    }
}
