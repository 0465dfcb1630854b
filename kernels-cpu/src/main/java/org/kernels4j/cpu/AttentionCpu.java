package org.kernels4j.cpu;

import java.util.Arrays;
import java.util.concurrent.atomic.AtomicIntegerArray;

import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.IntVector;
import jdk.incubator.vector.VectorMask;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorSpecies;

import org.kernels4j.Stream;
import org.kernels4j.Tensor;
import org.kernels4j.spi.AttentionKernels;
import org.kernels4j.spi.AttentionProblem;
import org.kernels4j.tuning.Parameters;
import org.kernels4j.tuning.ShapeBuckets;
import org.kernels4j.tuning.TuningSpace;

/**
 * Flash-style scaled dot-product attention on the CPU, forward and backward, in {@code [B, H, N, d]}.
 * No {@code Nq × Nk} matrix is ever formed: work proceeds in query × key tiles that stay in L1/L2, and every
 * product of two tiles is a {@link MicroKernel} GEMM.
 *
 * <p><b>Forward</b> (one task per batch, query head and query tile, head by head so that the head's K and
 * {@code Vᵀ} stay in the caches for all its query tiles; a head's heaviest causal tiles first). The tile
 * works transposed, with queries along the vector lanes, in panels of {@link MicroKernel#NR} queries:
 * {@code Qᵀ} is packed once per tile (pre-multiplied by {@code scale·log₂e}, so the softmax runs in base 2),
 * then for each key tile {@code Sᵀ = K·Qᵀ} (K read in place, broadcast), an online softmax down the columns of
 * {@code Sᵀ} (running max {@code m} and sum {@code l} per query, all vertical vector operations, no horizontal
 * reductions; the rescale of {@code Oᵀ} is skipped when no maximum moved), and {@code Oᵀ = α∘Oᵀ + Vᵀ·Pᵀ}
 * ({@code Vᵀ} transposed once per call, so that a long key tile streams contiguous rows; the scalar twin
 * transposes K instead, see {@link #transposeHeads}). The vector path runs these three steps panel by panel, so
 * that a panel's scores stay in L1 from one to the next; the scalar path runs each step over all panels, so that
 * its tile copies A's columns once per key tile. At the end {@code O = Oᵀᵀ / l} and
 * {@code lse = ln 2·m + ln l}. A panel's keys end at the last key its last query sees (a key tile that no query
 * of a panel sees is skipped for it); masking is only applied on panels that cross the causal boundary.
 *
 * <p><b>Backward</b> (FlashAttention-2): a pre-pass computes {@code D = rowsum(dO∘O)} and clears dq. Then one task per
 * batch, key/value head and key tile packs {@code Kᵀ}, {@code Vᵀ} (panels of NR keys) and K (panels of NR columns)
 * once, and for every query head of its group and every query tile that sees the key tile recomputes
 * {@code P = exp(S - lse)} from the saved log-sum-exp, {@code dP = dO·Vᵀ}, {@code dS = P∘(dP - D)} (with a causal
 * mask, each key panel only from the first query row that sees it, and no panel past the last row's last key), and
 * accumulates {@code dVᵀ += dOᵀ·P}, {@code dKᵀ += Qᵀ·dS} in its own tile (so grouped-query heads are summed without
 * atomics) and {@code dQ += dS·K}, added to dq in key-tile order: key tiles of one head run on different threads, and
 * a query tile's turn counter makes key tile {@code kt} wait until tiles {@code 0..kt-1} have added theirs, so dq is
 * the same bits on every run (tasks are claimed in key-tile order within each head, so the tiles waited for are
 * already running; the heads go in groups of one per thread, so two threads rarely meet on one head:
 * {@link #backwardTask}).
 *
 * <p>Masks: query {@code i} sees keys {@code j < visibleKeys(i)}; a row that sees no key keeps
 * {@code m = -∞, l = 0} and gives {@code O = 0}, {@code lse = -∞}; in backward its {@code lse} makes
 * {@code P = 0}, so its gradients are zero. Zero-size problems write what exists (nothing, or zeros).
 */
final class AttentionCpu implements AttentionKernels {

    /**
     * Queries per forward tile, rounded up to a multiple of {@link MicroKernel#NR} (tuning knob). Measured on one
     * Zen 3 core (d = 64 and 128, causal or not): 96-192 queries × 256 keys ran 7-10% faster than 72 × 64.
     */
    static final int FORWARD_QUERY_TILE = 144;

    /** Keys per forward tile (tuning knob): long enough that {@code Oᵀ += Vᵀ·Pᵀ} has a deep inner loop. */
    static final int FORWARD_KEY_TILE = 256;

    /**
     * Queries per backward tile (tuning knob). The scalar path wants taller tiles: its products run down columns of
     * {@code rows} queries, and the JIT's vectorised loops pay a start-up per column (scalar attn-1k backward, one
     * JVM, paired with 64: 288 queries took 0.73×; the vector path took 1.00-1.08×).
     */
    static final int BACKWARD_QUERY_TILE = Vectorization.ENABLED ? 64 : 288;

    /**
     * Keys per backward tile, rounded up to a multiple of {@link MicroKernel#NR} (tuning knob): dq is read and
     * written once per key tile, so longer ones pay off (one Zen 3 core: 144 keys 5% faster than 72).
     */
    static final int BACKWARD_KEY_TILE = 144;

    /** Floating-point operations a thread must get before another thread is worth waking (tuning knob). */
    static final double MIN_FLOPS_PER_THREAD = 2e6;

    /*
     * The tuning spaces: query and key tile sizes per pass, with the constants above as defaults. Dispatch
     * reads them from org.kernels4j.tuning.Tuning (tuned, overridden or default); any sizes are correct.
     */
    static final TuningSpace<AttentionProblem> FORWARD_SPACE = space("cpu.attention.forward",
            FORWARD_QUERY_TILE, FORWARD_KEY_TILE);
    static final TuningSpace<AttentionProblem> BACKWARD_SPACE = space("cpu.attention.backward",
            BACKWARD_QUERY_TILE, BACKWARD_KEY_TILE);

    private static TuningSpace<AttentionProblem> space(String kernelId, int queryTile, int keyTile) {
        return TuningSpace.builder(kernelId, AttentionProblem.class)
                .sourceOf(AttentionCpu.class, MicroKernel.class)
                .parameter("QUERY_TILE", queryTile, 48, 72, 96, 144, 192, 288)
                .parameter("KEY_TILE", keyTile, 48, 64, 96, 128, 192, 256, 384, 512)
                .bucket(p -> "d" + ShapeBuckets.pow2(p.headDim()) + "-nq" + ShapeBuckets.pow2(p.queries(), 16, 16384)
                        + "-nk" + ShapeBuckets.pow2(p.keys(), 16, 16384)
                        + (p.mask() == org.kernels4j.Attention.CausalMask.NONE ? "" : "-causal"))
                .build();
    }

    private static final float LOG2E = (float) (1 / Math.log(2));
    private static final float LN2 = (float) Math.log(2);
    private static final int NR = MicroKernel.NR;

    /** 1.5·2²³: adding it rounds a float in [-2²², 2²²] to an integer held in the low mantissa bits. */
    private static final float ROUND = 12582912f;
    private static final int ROUND_BITS = Float.floatToRawIntBits(ROUND);
    // a near-minimax fit of 2^r on [-1/2, 1/2] (p(0) = 1): 1.8e-7 relative, about 1.5 ulp, in float arithmetic
    private static final float C1 = 0.6931470036506653f;
    private static final float C2 = 0.24022242426872253f;
    private static final float C3 = 0.055507272481918335f;
    private static final float C4 = 0.009671512059867382f;
    private static final float C5 = 0.001326660392805934f;

    // per-task workspace slots
    private static final int SLOT_A = 0;
    private static final int SLOT_B = 1;
    private static final int SLOT_C = 2;
    private static final int SLOT_D = 3;
    private static final int SLOT_E = 4;
    private static final int SLOT_F = 5;
    private static final int SLOT_G = 6;
    private static final int SLOT_H = 7;
    private static final int SLOT_I = 8;
    // per-call slots of the calling thread
    private static final int SLOT_ROW_D = Workspace.TASK_SLOTS;
    private static final int SLOT_ROW_LSE = Workspace.TASK_SLOTS + 1;
    private static final int SLOT_TRANSPOSED = Workspace.TASK_SLOTS + 2;

    private static int roundUp(int n, int m) {
        return (n + m - 1) / m * m;
    }

    // ------------------------------------------------------------------------------------------ forward

    @Override
    public void forward(Stream stream, AttentionProblem p, Tensor q, Tensor k, Tensor v, Tensor o, Tensor lse) {
        int nq = p.queries();
        int bh = p.batch() * p.heads();
        if (nq == 0 || bh == 0) {
            return;
        }
        Parameters tp = FORWARD_SPACE.resolve(stream.device(), p.dtype(), p);
        int tileQ = roundUp(tp.get("QUERY_TILE"), NR);
        int tiles = (nq + tileQ - 1) / tileQ;
        // the vector path broadcasts A from K in place and streams Vᵀ; the scalar path copies A's columns, which
        // are contiguous in Kᵀ and in V
        Tensor inPlace = Vectorization.ENABLED ? k : v;
        Tensor toTranspose = Vectorization.ENABLED ? v : k;
        float[] transposed = transposeHeads(p, CpuTensor.data(toTranspose), CpuTensor.offset(toTranspose));
        Forward f = new Forward(p, q, inPlace, transposed, o, lse, tileQ, tp.get("KEY_TILE"));
        int tasks = bh * tiles;
        int workers = Parallel.workers(tasks, Math.max(1, p.forwardFlops()), MIN_FLOPS_PER_THREAD);
        // head by head: the two threads take consecutive query tiles of one head, whose K and Vᵀ (256 KB each in
        // attn-1k) are still in the caches from the tiles before; with the heads taken in turn, 31 other heads'
        // K and Vᵀ passed between two tiles of a head (paired, one JVM: attn-1k 0.96x the time, causal 0.92x,
        // 4k-causal 0.91x, gqa 0.94x). Within a head, causal tiles late in the sequence see the most keys: hand them
        // out first
        Parallel.run(tasks, workers, (worker, task) -> f.tile(task / tiles, tiles - 1 - task % tiles));
    }

    /**
     * The transpose of K or V ({@code [B, Hkv, Nk, d]} at {@code x[xo...]}) per key/value head, {@code d × Nk}
     * row-major, in the calling thread's workspace. On the vector path Vᵀ: the A of {@code Oᵀ += Vᵀ·Pᵀ} then
     * streams contiguous rows (read from V itself, with a stride of {@code d} floats per key, a long key tile
     * touches more lines than L1 holds). On the scalar path Kᵀ: its tile copies A's columns, which are then
     * contiguous runs for both products (Kᵀ's rows for {@code Sᵀ = K·Qᵀ}, V's rows for {@code Oᵀ += Vᵀ·Pᵀ}) instead
     * of gathers with a stride. One task per head and block of 8 channels, which walks all keys in 8 × 8 transposes:
     * it writes 8 rows of the transpose ({@code Nk} floats apart, 4 KiB in attn-1k, so their lines share one L1 set)
     * side by side, each line filled by two consecutive transposes. Square 16 × 16 blocks, key block by key block,
     * had each block write 16 lines of one set, more than its 12 ways, and every line twice from far apart in time
     * (2-core Zen 5, paired in one JVM, vector path: attn-1k forward 0.97x the time, attn-1k-causal 0.93x, attn-gqa
     * 0.94x; scalar path: attn-1k 0.97x).
     */
    private static float[] transposeHeads(AttentionProblem p, float[] x, int xo) {
        int d = p.headDim();
        int nk = p.keys();
        int heads = p.batch() * p.kvHeads();
        float[] t = Workspace.floats(SLOT_TRANSPOSED, Math.max(1, heads * d * nk));
        int blocks = (d + 7) / 8;
        int tasks = heads * blocks;
        int workers = Parallel.workers(tasks, (double) heads * d * nk, 1 << 16);
        Parallel.run(tasks, workers, (worker, task) -> {
            int head = task / blocks;
            int c0 = (task % blocks) * 8;
            int src = xo + head * nk * d;
            int dst = head * d * nk;
            int j = 0;
            if (c0 + 8 <= d) {
                for (; j + 8 <= nk; j += 8) {
                    MicroKernel.transpose8(x, src + j * d + c0, d, t, dst + c0 * nk + j, nk);
                }
            }
            for (int c = c0; c < Math.min(d, c0 + 8); c++) {
                for (int jj = j; jj < nk; jj++) {
                    t[dst + c * nk + jj] = x[src + jj * d + c];
                }
            }
        });
        return t;
    }

    /** One forward call: operands and the per-tile algorithm. */
    private static final class Forward {
        final AttentionProblem p;
        final float[] q;
        /** K on the vector path, V on the scalar path, {@code [B, Hkv, Nk, d]}. */
        final float[] kv;
        /**
         * Vᵀ per key/value head on the vector path, Kᵀ on the scalar path ({@link #transposeHeads}); the other of
         * the two is read in place from {@link #kv}.
         */
        final float[] transposed;
        final float[] o;
        final float[] lse;
        final int qo;
        final int kvo;
        final int oo;
        final int lo;
        final int tileQ;
        final int tileK;

        Forward(AttentionProblem p, Tensor q, Tensor kv, float[] transposed, Tensor o, Tensor lse, int tileQ,
                int tileK) {
            this.p = p;
            this.q = CpuTensor.data(q);
            this.kv = CpuTensor.data(kv);
            this.transposed = transposed;
            this.o = CpuTensor.data(o);
            this.lse = CpuTensor.data(lse);
            this.qo = CpuTensor.offset(q);
            this.kvo = CpuTensor.offset(kv);
            this.oo = CpuTensor.offset(o);
            this.lo = CpuTensor.offset(lse);
            this.tileQ = tileQ;
            this.tileK = tileK;
        }

        void tile(int bh, int qt) {
            int d = p.headDim();
            int nq = p.queries();
            int nk = p.keys();
            int b = bh / p.heads();
            int kvh = (bh % p.heads()) / p.groupSize();
            int i0 = qt * tileQ;
            int rows = Math.min(tileQ, nq - i0);
            int w = roundUp(rows, NR);
            int qBase = qo + (bh * nq + i0) * d;
            int kvBase = kvo + (b * p.kvHeads() + kvh) * nk * d;
            int tBase = (b * p.kvHeads() + kvh) * d * nk;
            int tileK = this.tileK;

            int panels = w / NR;
            // Qᵀ, Sᵀ and Oᵀ in NR-query panels: panel s holds queries [s·NR, s·NR + NR) of every row (Sᵀ one panel
            // at a time on the vector path)
            float[] qT = Workspace.floats(SLOT_A, d * w);
            float[] sT = Workspace.floats(SLOT_B, tileK * (Vectorization.ENABLED ? NR : w));
            float[] oT = Workspace.floats(SLOT_C, d * w);
            float[] m = Workspace.floats(SLOT_D, w);
            float[] l = Workspace.floats(SLOT_E, w);
            float[] alpha = Workspace.floats(SLOT_F, w);

            float qScale = p.scale() * LOG2E;
            for (int i = 0; i < w; i++) {
                int at = (i / NR) * d * NR + i % NR;
                if (i < rows) {
                    int src = qBase + i * d;
                    for (int c = 0; c < d; c++) {
                        qT[at + c * NR] = q[src + c] * qScale;
                    }
                } else {
                    for (int c = 0; c < d; c++) {
                        qT[at + c * NR] = 0f;
                    }
                }
            }
            Arrays.fill(oT, 0, d * w, 0f);
            Arrays.fill(m, 0, w, Float.NEGATIVE_INFINITY);
            Arrays.fill(l, 0, w, 0f);

            int seenByAll = p.visibleKeys(i0);
            int seenByAny = p.visibleKeys(i0 + rows - 1);
            for (int j0 = 0; j0 < seenByAny; j0 += tileK) {
                int kn = Math.min(tileK, seenByAny - j0);
                // each panel's keys end where its last query stops seeing: causal, a tile's first panels skip the
                // keys only its later panels see (paired, one JVM: attn-1k-causal forward 0.89-0.91x the time)
                if (Vectorization.ENABLED) {
                    // panel by panel: a panel's scores stay in L1 from their product through the softmax to the
                    // product with Vᵀ (the whole tile's, 144 KB at 144 × 256, went through L2 four times)
                    for (int s = 0; s < panels; s++) {
                        int first = i0 + s * NR;
                        int last = Math.min(i0 + rows, first + NR) - 1;
                        int keys = panelKeys(last, j0, kn);
                        if (keys <= 0) {
                            continue;
                        }
                        MicroKernel.tile(kv, kvBase + j0 * d, d, 1, qT, s * d * NR, d, sT, 0, NR, keys, false);
                        weighPanel(sT, 0, s, first, last, j0, keys, m, l, alpha, oT, d);
                        MicroKernel.tile(transposed, tBase + j0, nk, 1, sT, 0, keys, oT, s * d * NR, NR, d, true);
                    }
                    continue;
                }
                // the scalar path keeps each product whole over the panels, so that A's columns (Kᵀ's rows, then
                // V's) are copied once per key tile, not once per panel
                float[][] kCols = MicroKernel.columnsOfA(transposed, tBase + j0, 1, nk, d, kn);
                for (int s = 0; s < panels; s++) {
                    int first = i0 + s * NR;
                    int last = Math.min(i0 + rows, first + NR) - 1;
                    int keys = panelKeys(last, j0, kn);
                    if (keys <= 0) {
                        continue;
                    }
                    int at = s * tileK * NR;
                    MicroKernel.panelsOfColumns(kCols, 0, 0, keys, qT, s * d * NR, 0, d, sT, at, 0, NR, false, 1);
                    weighPanel(sT, at, s, first, last, j0, keys, m, l, alpha, oT, d);
                }
                float[][] vCols = MicroKernel.columnsOfA(kv, kvBase + j0 * d, 1, d, kn, d);
                for (int s = 0; s < panels; s++) {
                    int keys = panelKeys(Math.min(i0 + rows, i0 + s * NR + NR) - 1, j0, kn);
                    if (keys > 0) {
                        MicroKernel.panelsOfColumns(vCols, 0, 0, d, sT, s * tileK * NR, 0, keys, oT, s * d * NR, 0,
                                NR, true, 1);
                    }
                }
            }

            int oBase = oo + (bh * nq + i0) * d;
            int lBase = lo + bh * nq + i0;
            for (int i = 0; i < rows; i++) {
                int dst = oBase + i * d;
                if (l[i] == 0f) {
                    Arrays.fill(o, dst, dst + d, 0f);
                    lse[lBase + i] = Float.NEGATIVE_INFINITY;
                } else {
                    float inv = 1f / l[i];
                    int at = (i / NR) * d * NR + i % NR;
                    for (int c = 0; c < d; c++) {
                        o[dst + c] = oT[at + c * NR] * inv;
                    }
                    lse[lBase + i] = m[i] * LN2 + (float) Math.log(l[i]);
                }
            }
        }

        /** Keys of the key tile {@code [j0, j0 + kn)} seen by a panel whose last query is {@code last} (may be ≤ 0). */
        private int panelKeys(int last, int j0, int kn) {
            return Math.min(kn, p.visibleKeys(last) - j0);
        }

        /**
         * Panel {@code s}'s scores (queries {@code first..last}, {@code keys} keys from {@code j0}, at
         * {@code sT[at...]}) into softmax weights: masked where causality hides keys from some of its queries, the
         * online softmax, and the panel's rows of the accumulation {@code oT} rescaled when a maximum moved.
         */
        private void weighPanel(float[] sT, int at, int s, int first, int last, int j0, int keys, float[] m,
                                float[] l, float[] alpha, float[] oT, int d) {
            if (j0 + keys > p.visibleKeys(first)) {
                maskPanel(sT, at, first, last, j0, keys);
            }
            if (softmaxPanel(sT, at, keys, m, l, alpha, s * NR)) {
                scalePanel(oT, s * d * NR, d, alpha, s * NR);
            }
        }

        /**
         * Sets to -∞ the scores in one panel (its {@code keys} keys from {@code j0} × NR queries from {@code first},
         * at {@code sT[at...]}) that queries {@code first..last} cannot see.
         */
        private void maskPanel(float[] sT, int at, int first, int last, int j0, int keys) {
            for (int i = first; i <= last; i++) {
                int from = Math.max(0, p.visibleKeys(i) - j0);
                for (int j = from, x = at + (i - first) + from * NR; j < keys; j++, x += NR) {
                    sT[x] = Float.NEGATIVE_INFINITY;
                }
            }
        }
    }

    /**
     * Online softmax down the columns of one panel of {@code sT} ({@code rows} keys × NR queries at
     * {@code sT[at...]}, base-2 logits, the queries from {@code q0}): updates the running max {@code m} and sum
     * {@code l} per query, overwrites the scores with {@code 2^(s - m)} and leaves the factor that rescales the
     * earlier accumulation in {@code alpha}. Returns whether any factor differs from 1 (once the maxima settle, most
     * key tiles leave the accumulation as it is).
     */
    private static boolean softmaxPanel(float[] sT, int at, int rows, float[] m, float[] l, float[] alpha, int q0) {
        if (Vectorization.ENABLED) {
            return Panama.softmaxPanel(sT, at, rows, m, l, alpha, q0);
        }
        // the maxima row by row across the panel's NR queries, NR independent chains (a column at a time is one
        // chain of dependent maxima: scalar attn-1k forward 0.88x with this); alpha holds them until the factors
        Arrays.fill(alpha, q0, q0 + NR, Float.NEGATIVE_INFINITY);
        for (int j = 0, row = at; j < rows; j++, row += NR) {
            for (int e = 0; e < NR; e++) {
                float x = sT[row + e];
                // not Math.max: its NaN and signed-zero rules cost several instructions; a NaN score still
                // reaches the output through 2^(NaN - m) below
                alpha[q0 + e] = x > alpha[q0 + e] ? x : alpha[q0 + e];
            }
        }
        boolean rescale = false;
        for (int e = 0; e < NR; e++) {
            int i = q0 + e;
            float mNew = Math.max(m[i], alpha[i]);
            float mUse = mNew == Float.NEGATIVE_INFINITY ? 0f : mNew;
            float sum = 0f;
            for (int j = 0, x = at + e; j < rows; j++, x += NR) {
                float v = exp2(sT[x] - mUse);
                sT[x] = v;
                sum += v;
            }
            float a = exp2(m[i] - mUse);
            rescale |= a != 1f;
            alpha[i] = a;
            l[i] = l[i] * a + sum;
            m[i] = mNew;
        }
        return rescale;
    }

    /** Multiplies column {@code e} of the panel at {@code t[at...]} ({@code rows} × NR) by {@code alpha[q0 + e]}. */
    private static void scalePanel(float[] t, int at, int rows, float[] alpha, int q0) {
        if (Vectorization.ENABLED) {
            Panama.scalePanel(t, at, rows, alpha, q0);
            return;
        }
        for (int r = 0, x = at; r < rows; r++, x += NR) {
            for (int e = 0; e < NR; e++) {
                t[x + e] *= alpha[q0 + e];
            }
        }
    }

    /**
     * {@code 2^x} for {@code x <= 0}, as the vector path's {@code Panama.exp2} computes it per lane (the same
     * polynomial and exponent trick in a few float operations): cheaper than {@code Math.exp} in double, which the
     * scalar path calls once per score. The polynomial goes through {@code Math.fma} where the JVM emits FMA
     * instructions (one instruction per step instead of two: measured 1.97 against 2.85 ns a score in a softmax-shaped
     * loop), through multiplies and adds where {@code Math.fma} would be emulated.
     */
    private static float exp2(float x) {
        if (x < -126f) {
            return 0f;
        }
        float shifted = x + ROUND;
        float r = x - (shifted - ROUND);
        float poly = Vectorization.FAST_FMA
                ? Math.fma(Math.fma(Math.fma(Math.fma(Math.fma(C5, r, C4), r, C3), r, C2), r, C1), r, 1f)
                : ((((C5 * r + C4) * r + C3) * r + C2) * r + C1) * r + 1f;
        return poly * Float.intBitsToFloat((Float.floatToRawIntBits(shifted) - (ROUND_BITS - 127)) << 23);
    }

    // ----------------------------------------------------------------------------------------- backward

    @Override
    public void backward(Stream stream, AttentionProblem p, Tensor q, Tensor k, Tensor v, Tensor o, Tensor lse,
                         Tensor dO, Tensor dq, Tensor dk, Tensor dv) {
        int bh = p.batch() * p.heads();
        int rowsTotal = bh * p.queries();
        int d = p.headDim();
        Parameters tp = BACKWARD_SPACE.resolve(stream.device(), p.dtype(), p);
        Backward bw = new Backward(p, q, k, v, dO, dq, dk, dv, tp.get("QUERY_TILE"));
        float[] rowD = Workspace.floats(SLOT_ROW_D, Math.max(1, rowsTotal));
        float[] rowLse = Workspace.floats(SLOT_ROW_LSE, Math.max(1, rowsTotal));
        float[] oa = CpuTensor.data(o);
        int oo = CpuTensor.offset(o);
        float[] la = CpuTensor.data(lse);
        int lo = CpuTensor.offset(lse);

        int blocks = Math.max(1, Math.min(rowsTotal, Parallel.THREADS * 4));
        int preWorkers = Parallel.workers(blocks, 3.0 * rowsTotal * d, MIN_FLOPS_PER_THREAD);
        Parallel.run(rowsTotal == 0 ? 0 : blocks, preWorkers, (worker, block) -> {
            int r0 = (int) ((long) rowsTotal * block / blocks);
            int r1 = (int) ((long) rowsTotal * (block + 1) / blocks);
            Arrays.fill(bw.dq, bw.dqo + r0 * d, bw.dqo + r1 * d, 0f);
            for (int r = r0; r < r1; r++) {
                rowD[r] = Vectorization.ENABLED
                        ? Panama.dot(bw.dO, bw.dOo + r * d, oa, oo + r * d, d)
                        : dot(bw.dO, bw.dOo + r * d, oa, oo + r * d, d);
                float l2 = la[lo + r] * LOG2E;
                // a row that saw no key: P = 2^(s - inf) = 0 everywhere
                rowLse[r] = l2 == Float.NEGATIVE_INFINITY ? Float.POSITIVE_INFINITY : l2;
            }
        });

        int kvHeads = p.batch() * p.kvHeads();
        int nk = p.keys();
        int tileK = roundUp(tp.get("KEY_TILE"), NR);
        int keyTiles = (nk + tileK - 1) / tileK;
        int tasks = kvHeads * keyTiles;
        if (tasks == 0) {
            return;
        }
        int workers = Parallel.workers(tasks, Math.max(1, 2.5 * p.forwardFlops()), MIN_FLOPS_PER_THREAD);
        Parallel.run(tasks, workers, (worker, order) -> {
            try {
                int task = backwardTask(order, kvHeads, keyTiles, workers);
                bw.keyTile(task / keyTiles, task % keyTiles, tileK, rowD, rowLse);
            } catch (Throwable e) {
                bw.turns.abandon();
                throw e;
            }
        });
    }

    /**
     * The backward task that runs {@code order}-th, as {@code head·keyTiles + keyTile}: the heads in groups of
     * {@code threads}, a group's key tiles in order, each key tile of every head of the group in turn. Key tile order
     * within a head is what dq's turns need (the tiles a key tile waits for are already running); with a causal mask
     * the first key tiles are also the longest. A group's threads then work on heads of their own, while those
     * heads' Q, dO and dq stay in the caches from one key tile to the next (all heads in turn, attn-1k's 32 passed
     * between two key tiles of a head: paired, one JVM, attn-1k 0.92-0.96x the time, causal 0.95-0.98x; gqa and
     * 4k-causal, whose heads outgrow the caches either way, 0.98-1.02x).
     */
    static int backwardTask(int order, int heads, int keyTiles, int threads) {
        int group = Math.max(1, Math.min(threads, heads));
        int inFullGroups = heads / group * group * keyTiles;
        int size = order < inFullGroups ? group : heads % group;
        int first = order < inFullGroups ? order / (group * keyTiles) * group : heads - size;
        int at = order < inFullGroups ? order % (group * keyTiles) : order - inFullGroups;
        return (first + at % size) * keyTiles + at / size;
    }

    /**
     * Whose turn it is to add to each dq tile (query tile {@code qt} of head {@code bh}: entry
     * {@code bh·queryTiles + qt}): the key tiles that see a query tile are a prefix {@code 0..K-1} of a head's key
     * tiles (the visible keys never shrink from one query to the next), so key tile {@code kt} adds when the entry
     * is {@code kt} and then sets it to {@code kt + 1}. A key tile that fails abandons the turns, so that none
     * waits forever for it.
     */
    private static final class DqTurns {
        private final AtomicIntegerArray next;
        private volatile boolean abandoned;

        DqTurns(int tiles) {
            next = new AtomicIntegerArray(tiles);
        }

        void await(int tile, int keyTile) {
            for (int spins = 0; next.get(tile) != keyTile; spins++) {
                if (abandoned) {
                    throw new IllegalStateException("attention backward: a key tile before " + keyTile + " failed");
                }
                if (spins < 1 << 12) {
                    Thread.onSpinWait();
                } else {
                    Thread.yield(); // the tile waited for may be on a thread that lost its core
                }
            }
        }

        void pass(int tile, int keyTile) {
            next.set(tile, keyTile + 1);
        }

        void abandon() {
            abandoned = true;
        }
    }

    /** One backward call: operands and the per-key-tile algorithm. */
    private static final class Backward {
        final AttentionProblem p;
        final float[] q;
        final float[] k;
        final float[] v;
        final float[] dO;
        final float[] dq;
        final float[] dk;
        final float[] dv;
        final int qo;
        final int ko;
        final int vo;
        final int dOo;
        final int dqo;
        final int dko;
        final int dvo;
        final int tileQ;
        final DqTurns turns;

        Backward(AttentionProblem p, Tensor q, Tensor k, Tensor v, Tensor dO, Tensor dq, Tensor dk, Tensor dv,
                 int tileQ) {
            this.p = p;
            this.q = CpuTensor.data(q);
            this.k = CpuTensor.data(k);
            this.v = CpuTensor.data(v);
            this.dO = CpuTensor.data(dO);
            this.dq = CpuTensor.data(dq);
            this.dk = CpuTensor.data(dk);
            this.dv = CpuTensor.data(dv);
            this.qo = CpuTensor.offset(q);
            this.ko = CpuTensor.offset(k);
            this.vo = CpuTensor.offset(v);
            this.dOo = CpuTensor.offset(dO);
            this.dqo = CpuTensor.offset(dq);
            this.dko = CpuTensor.offset(dk);
            this.dvo = CpuTensor.offset(dv);
            this.tileQ = tileQ;
            this.turns = new DqTurns(p.batch() * p.heads() * ((p.queries() + tileQ - 1) / tileQ));
        }

        void keyTile(int bkv, int kt, int tileK, float[] rowD, float[] rowLse) {
            int d = p.headDim();
            int nq = p.queries();
            int nk = p.keys();
            int dw = roundUp(d, NR);
            int j0 = kt * tileK;
            int kn = Math.min(tileK, nk - j0);
            int kw = roundUp(kn, NR);
            int kBase = ko + (bkv * nk + j0) * d;
            int vBase = vo + (bkv * nk + j0) * d;
            int tileQ = this.tileQ;

            int dPanels = dw / NR;
            // Kᵀ, Vᵀ, P, dS, dKᵀ and dVᵀ in NR-key panels; K (the B of dQ = dS·K) in NR-column panels
            float[] kT = Workspace.floats(SLOT_A, d * kw);
            float[] vT = Workspace.floats(SLOT_B, d * kw);
            float[] kP = Workspace.floats(SLOT_C, kn * dw);
            float[] dKT = Workspace.floats(SLOT_D, d * kw);
            float[] dVT = Workspace.floats(SLOT_E, d * kw);
            float[] s = Workspace.floats(SLOT_F, tileQ * kw);
            float[] ds = Workspace.floats(SLOT_G, tileQ * kw);
            float[] dQt = Workspace.floats(SLOT_H, tileQ * dw);
            // dS again, row-major: the A of dQ = dS·K needs a fixed stride along the keys
            float[] dsRows = Workspace.floats(SLOT_I, tileQ * kw);

            for (int j = 0; j < kw; j++) {
                int at = (j / NR) * d * NR + j % NR;
                if (j < kn) {
                    int src = j * d;
                    for (int c = 0; c < d; c++) {
                        kT[at + c * NR] = k[kBase + src + c];
                        vT[at + c * NR] = v[vBase + src + c];
                    }
                } else {
                    for (int c = 0; c < d; c++) {
                        kT[at + c * NR] = 0f;
                        vT[at + c * NR] = 0f;
                    }
                }
            }
            for (int c = 0; c < dw; c++) {
                int at = (c / NR) * kn * NR + c % NR;
                for (int j = 0; j < kn; j++) {
                    kP[at + j * NR] = c < d ? k[kBase + j * d + c] : 0f;
                }
            }
            Arrays.fill(dKT, 0, d * kw, 0f);
            Arrays.fill(dVT, 0, d * kw, 0f);

            float c1 = p.scale() * LOG2E;
            float scale = p.scale();
            int group = p.groupSize();
            int b = bkv / p.kvHeads();
            int firstHead = (bkv % p.kvHeads()) * group;
            int queryTiles = (nq + tileQ - 1) / tileQ;
            for (int hg = 0; hg < group; hg++) {
                int bh = b * p.heads() + firstHead + hg;
                for (int qt = firstQueryTile(j0, tileQ, queryTiles); qt < queryTiles; qt++) {
                    int i0 = qt * tileQ;
                    int rows = Math.min(tileQ, nq - i0);
                    int qBase = qo + (bh * nq + i0) * d;
                    int dOBase = dOo + (bh * nq + i0) * d;
                    int r0 = bh * nq + i0;
                    int pitch = tileQ * NR;
                    // causal: the key panels the tile's last row sees, and for each the first row that sees it; rows
                    // and panels that see nothing of each other are skipped in every product but dQ's, where their dS
                    // is zero (paired, one JVM: attn-1k-causal backward 0.89x the time, attn-4k-causal 0.95x)
                    int seen = Math.min(kn, p.visibleKeys(i0 + rows - 1) - j0);
                    int panels = (seen + NR - 1) / NR;
                    int[] from = Workspace.ints(panels);
                    for (int x = 0, i = 0; x < panels; x++) {
                        while (i < rows && p.visibleKeys(i0 + i) - j0 <= x * NR) {
                            i++;
                        }
                        from[x] = i;
                    }

                    panelsFrom(q, qBase, d, 1, kT, 0, d * NR, d, s, 0, pitch, NR, rows, from, panels, false, false);
                    panelsFrom(dO, dOBase, d, 1, vT, 0, d * NR, d, ds, 0, pitch, NR, rows, from, panels, false, false);
                    for (int i = 0; i < rows; i++) {
                        int visible = Math.min(kn, Math.max(0, p.visibleKeys(i0 + i) - j0));
                        int rowPanels = (visible + NR - 1) / NR;
                        if (Vectorization.ENABLED) {
                            Panama.gradientRow(s, ds, dsRows, i, pitch, rowPanels, kw, visible, c1, rowLse[r0 + i],
                                    rowD[r0 + i]);
                        } else {
                            gradientRow(s, ds, dsRows, i, pitch, rowPanels, kw, visible, c1, rowLse[r0 + i],
                                    rowD[r0 + i]);
                        }
                        Arrays.fill(dsRows, i * kw + rowPanels * NR, i * kw + panels * NR, 0f);
                    }
                    panelsFrom(dO, dOBase, 1, d, s, 0, pitch, rows, dVT, 0, d * NR, NR, d, from, panels, true, true);
                    panelsFrom(q, qBase, 1, d, ds, 0, pitch, rows, dKT, 0, d * NR, NR, d, from, panels, true, true);
                    MicroKernel.panels(dsRows, 0, kw, 1, kP, 0, kn * NR, seen, dQt, 0, NR, dw, rows, false, dPanels);
                    int dqBase = dqo + (bh * nq + i0) * d;
                    int turn = bh * queryTiles + qt;
                    turns.await(turn, kt);
                    for (int i = 0; i < rows; i++) {
                        if (Vectorization.ENABLED) {
                            Panama.addScaled(dq, dqBase + i * d, dQt, i * dw, d, scale);
                        } else {
                            for (int c = 0; c < d; c++) {
                                dq[dqBase + i * d + c] += scale * dQt[i * dw + c];
                            }
                        }
                    }
                    turns.pass(turn, kt);
                }
            }
            int dkBase = dko + (bkv * nk + j0) * d;
            int dvBase = dvo + (bkv * nk + j0) * d;
            for (int j = 0; j < kn; j++) {
                int at = (j / NR) * d * NR + j % NR;
                for (int c = 0; c < d; c++) {
                    dk[dkBase + j * d + c] = scale * dKT[at + c * NR];
                    dv[dvBase + j * d + c] = dVT[at + c * NR];
                }
            }
        }

        /** The first query tile any of whose rows sees key {@code j0}: rows before it see only earlier keys. */
        private int firstQueryTile(int j0, int tileQ, int queryTiles) {
            int nq = p.queries();
            int lo = 0;
            int hi = queryTiles;
            // visibleKeys is non-decreasing in the row, so the last row of each tile decides
            while (lo < hi) {
                int mid = (lo + hi) >>> 1;
                int last = Math.min(nq, (mid + 1) * tileQ) - 1;
                if (p.visibleKeys(last) > j0) {
                    hi = mid;
                } else {
                    lo = mid + 1;
                }
            }
            return lo;
        }
    }

    /**
     * For each panel {@code x < panels} of B, {@code C_x (+)= A·B_x} from {@code from[x]} on: from that row of A and
     * C ({@code fromDepth} false: the scores, C's rows before it left as they are), or from that depth step
     * ({@code fromDepth} true: the gradients accumulated over the query rows that see the panel). A's rows are at
     * {@code aOff + i·ars}, depth stride {@code aks}; {@code B_x} at {@code bOff + x·bStep}, its depth steps
     * {@link MicroKernel#NR} floats apart; {@code C_x} at {@code cOff + x·cStep} with row pitch {@code ldc}. The
     * scalar path copies A's columns once for all panels.
     */
    private static void panelsFrom(float[] a, int aOff, int ars, int aks, float[] b, int bOff, int bStep, int kLen,
                                   float[] c, int cOff, int cStep, int ldc, int rows, int[] from, int panels,
                                   boolean fromDepth, boolean accumulate) {
        float[][] at = Vectorization.ENABLED ? null : MicroKernel.columnsOfA(a, aOff, ars, aks, kLen, rows);
        for (int x = 0; x < panels; x++) {
            int r = fromDepth ? 0 : from[x];
            int k = fromDepth ? from[x] : 0;
            if (r >= rows || k >= kLen) {
                continue;
            }
            int bAt = bOff + x * bStep + k * NR;
            int cAt = cOff + x * cStep + r * ldc;
            if (at == null) {
                MicroKernel.tile(a, aOff + r * ars + k * aks, ars, aks, b, bAt, kLen - k, c, cAt, ldc, rows - r,
                        accumulate);
            } else {
                MicroKernel.panelsOfColumns(at, k, r, rows - r, b, bAt, 0, kLen - k, c, cAt, 0, ldc, accumulate, 1);
            }
        }
    }

    /**
     * One query row {@code i} of a backward tile, its keys in panels of NR ({@code pitch} floats apart): {@code s}
     * holds the raw scores {@code q·k} and {@code ds} holds {@code dP = dO·v}; afterwards {@code s} holds
     * {@code P = 2^(c1·s - lse2)} (zero past {@code visible}), {@code ds} holds {@code dS = P∘(dP - D)}, and
     * {@code dsRows} row {@code i} (pitch {@code kw}) holds dS again, row-major.
     */
    private static void gradientRow(float[] s, float[] ds, float[] dsRows, int i, int pitch, int panels, int kw,
                                    int visible, float c1, float lse2, float rowD) {
        for (int x = 0; x < panels; x++) {
            int at = x * pitch + i * NR;
            for (int e = 0; e < NR; e++) {
                int j = x * NR + e;
                float pj = j < visible ? exp2(s[at + e] * c1 - lse2) : 0f;
                float g = pj * (ds[at + e] - rowD);
                s[at + e] = pj;
                ds[at + e] = g;
                dsRows[i * kw + j] = g;
            }
        }
    }

    private static float dot(float[] a, int ao, float[] b, int bo, int n) {
        float sum = 0f;
        for (int i = 0; i < n; i++) {
            sum += a[ao + i] * b[bo + i];
        }
        return sum;
    }

    /** The Panama twins of the element-wise steps, with a vectorised {@code 2^x}; loaded only on the vector path. */
    private static final class Panama {
        private static final VectorSpecies<Float> S = FloatVector.SPECIES_PREFERRED;
        private static final int L = S.length();

        /**
         * {@code 2^x} per lane, for {@code x <= 0} (scores minus their maximum): {@code x = k + r} with {@code k}
         * the nearest integer, a polynomial for {@code 2^r} and {@code k} added to the exponent bits; inputs below
         * -126 (including -∞) give 0. The clamp is a compare and blend: the Vector API's {@code max} keeps Java's
         * NaN and signed-zero rules, which costs several instructions on x86.
         */
        static FloatVector exp2(FloatVector x) {
            FloatVector shifted = x.add(ROUND);
            FloatVector r = x.sub(shifted.sub(ROUND));
            FloatVector poly = r.fma(FloatVector.broadcast(S, C5), FloatVector.broadcast(S, C4));
            poly = poly.fma(r, FloatVector.broadcast(S, C3));
            poly = poly.fma(r, FloatVector.broadcast(S, C2));
            poly = poly.fma(r, FloatVector.broadcast(S, C1));
            poly = poly.fma(r, FloatVector.broadcast(S, 1f));
            IntVector kBits = shifted.reinterpretAsInts();
            FloatVector scale = kBits.sub(ROUND_BITS - 127).lanewise(VectorOperators.LSHL, 23).reinterpretAsFloats();
            return poly.mul(scale).blend(0f, x.compare(VectorOperators.LT, -126f));
        }

        /*
         * The loops below are separate small methods on purpose: C2 stops inlining Vector API calls once a method
         * grows past its node budget, and a vector that crosses a call that was not inlined is boxed (measured: the
         * softmax ran 2x slower as one method with a max helper).
         */

        /**
         * {@code out[o + e] = max_j sT[at + j·NR + e]} for the {@code NR} columns of one panel: three independent
         * chains, each a compare and blend (the Vector API's {@code max} keeps Java's NaN and signed-zero rules,
         * which costs several instructions on x86).
         */
        private static void columnMax(float[] sT, int at, int rows, float[] out, int o) {
            FloatVector m0 = FloatVector.broadcast(S, Float.NEGATIVE_INFINITY);
            FloatVector m1 = m0;
            FloatVector m2 = m0;
            for (int j = 0; j < rows; j++, at += NR) {
                FloatVector v0 = FloatVector.fromArray(S, sT, at);
                FloatVector v1 = FloatVector.fromArray(S, sT, at + L);
                FloatVector v2 = FloatVector.fromArray(S, sT, at + 2 * L);
                m0 = m0.blend(v0, v0.compare(VectorOperators.GT, m0));
                m1 = m1.blend(v1, v1.compare(VectorOperators.GT, m1));
                m2 = m2.blend(v2, v2.compare(VectorOperators.GT, m2));
            }
            m0.intoArray(out, o);
            m1.intoArray(out, o + L);
            m2.intoArray(out, o + 2 * L);
        }

        /**
         * One lane group of a panel: with the tile's column max in {@code alpha[i...]}, updates {@code m} and
         * {@code l}, overwrites the scores with {@code 2^(s - m)} and leaves the rescaling factor in {@code alpha};
         * returns whether any factor differs from 1.
         */
        private static boolean exponentials(float[] sT, int at, int rows, float[] m, float[] l, float[] alpha,
                                            int i) {
            FloatVector mt = FloatVector.fromArray(S, alpha, i);
            FloatVector mOld = FloatVector.fromArray(S, m, i);
            FloatVector mNew = mOld.blend(mt, mt.compare(VectorOperators.GT, mOld));
            FloatVector mUse = mNew.blend(0f, mNew.compare(VectorOperators.EQ, Float.NEGATIVE_INFINITY));
            FloatVector sum = FloatVector.zero(S);
            for (int j = 0; j < rows; j++, at += NR) {
                FloatVector ex = exp2(FloatVector.fromArray(S, sT, at).sub(mUse));
                ex.intoArray(sT, at);
                sum = sum.add(ex);
            }
            FloatVector a = exp2(mOld.sub(mUse));
            a.intoArray(alpha, i);
            FloatVector.fromArray(S, l, i).fma(a, sum).intoArray(l, i);
            mNew.intoArray(m, i);
            return a.compare(VectorOperators.NE, 1f).anyTrue();
        }

        static boolean softmaxPanel(float[] sT, int at, int rows, float[] m, float[] l, float[] alpha, int q0) {
            columnMax(sT, at, rows, alpha, q0);
            boolean rescale = false;
            for (int e = 0; e < NR; e += L) {
                rescale |= exponentials(sT, at + e, rows, m, l, alpha, q0 + e);
            }
            return rescale;
        }

        static void scalePanel(float[] t, int at, int rows, float[] alpha, int q0) {
            FloatVector a0 = FloatVector.fromArray(S, alpha, q0);
            FloatVector a1 = FloatVector.fromArray(S, alpha, q0 + L);
            FloatVector a2 = FloatVector.fromArray(S, alpha, q0 + 2 * L);
            for (int r = 0; r < rows; r++, at += NR) {
                FloatVector.fromArray(S, t, at).mul(a0).intoArray(t, at);
                FloatVector.fromArray(S, t, at + L).mul(a1).intoArray(t, at + L);
                FloatVector.fromArray(S, t, at + 2 * L).mul(a2).intoArray(t, at + 2 * L);
            }
        }

        static void gradientRow(float[] s, float[] ds, float[] dsRows, int i, int pitch, int panels, int kw,
                                int visible, float c1, float lse2, float rowD) {
            FloatVector vc1 = FloatVector.broadcast(S, c1);
            FloatVector vl = FloatVector.broadcast(S, -lse2);
            FloatVector vd = FloatVector.broadcast(S, rowD);
            for (int x = 0; x < panels; x++) {
                int at = x * pitch + i * NR;
                for (int e = 0; e < NR; e += L) {
                    int j = x * NR + e;
                    FloatVector pj = exp2(FloatVector.fromArray(S, s, at + e).fma(vc1, vl));
                    if (j + L > visible) {
                        VectorMask<Float> seen = S.indexInRange(j, visible);
                        pj = FloatVector.zero(S).blend(pj, seen);
                    }
                    pj.intoArray(s, at + e);
                    FloatVector g = pj.mul(FloatVector.fromArray(S, ds, at + e).sub(vd));
                    g.intoArray(ds, at + e);
                    g.intoArray(dsRows, i * kw + j);
                }
            }
        }

        /**
         * {@code y[yo + c] += s·x[xo + c]} for {@code c < n} (the JIT does not vectorise this loop itself: it cannot
         * rule out that the two arrays are one).
         */
        static void addScaled(float[] y, int yo, float[] x, int xo, int n, float s) {
            FloatVector vs = FloatVector.broadcast(S, s);
            int c = 0;
            for (; c <= n - L; c += L) {
                FloatVector.fromArray(S, x, xo + c).fma(vs, FloatVector.fromArray(S, y, yo + c)).intoArray(y, yo + c);
            }
            for (; c < n; c++) {
                y[yo + c] += s * x[xo + c];
            }
        }

        static float dot(float[] a, int ao, float[] b, int bo, int n) {
            FloatVector acc = FloatVector.zero(S);
            int i = 0;
            for (; i <= n - L; i += L) {
                acc = FloatVector.fromArray(S, a, ao + i).fma(FloatVector.fromArray(S, b, bo + i), acc);
            }
            float sum = Lanes.sum(acc);
            for (; i < n; i++) {
                sum += a[ao + i] * b[bo + i];
            }
            return sum;
        }
    }
}
