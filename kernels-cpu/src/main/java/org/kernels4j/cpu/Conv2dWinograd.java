package org.kernels4j.cpu;

import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorSpecies;

import org.kernels4j.spi.Conv2dProblem;

/**
 * Winograd's minimal filtering F(2×2, 3×3) for the NCHW 3×3 convolutions with stride 1 and no dilation: forward,
 * backward-data, which is the same correlation of dy with the flipped, channel-swapped filter, and backward-filter
 * (below). Part of {@link Conv2dCpu}'s story (it dispatches here): backward-filter by default; forward and
 * backward-data where the tuning knob {@code WINOGRAD} is 1, or where {@link Conv2dWinograd4x4}'s F(4×4, 3×3), their
 * default, would waste more on its larger tiles; {@code WINOGRAD = 0} turns it off.
 *
 * <p>Each 2 × 2 block of outputs ("tile") needs a 4 × 4 patch {@code d} of the padded input; with
 * {@code U = G·g·Gᵀ} per filter (4 × 4) and {@code V = Bᵀ·d·B} per patch, the outputs are
 * {@code Y = Aᵀ·(Σ_c U ⊙ V)·A}. The sum over input channels is, for each of the 16 positions {@code ξ} of the
 * 4 × 4 transform, a matrix product {@code M_ξ[out × tiles] = U_ξ[out × in] · V_ξ[in × tiles]}: 16 products of
 * depth {@code in} replace the direct convolution's 36 multiplies per tile and channel pair by 16 (2.25× fewer),
 * for transforms that cost a few adds per element. The transforms only scale by 1 and 1/2, so the result stays
 * within a few ulp of the direct one.
 *
 * <p>Layout: the padded input is split into its 2 × 2 stride phases ({@link Conv2dCpu.Planes}), so that tile
 * {@code (ty, tx)} is flat position {@code f = ty·wp + tx} of each phase plane and every element of its patch
 * is at a fixed offset from {@code f}: a vector of consecutive tiles is a vector load (the {@code wp - tilesX}
 * positions between tile rows are computed and dropped). A task is a block of tiles of one image and group: it
 * transforms the block's patches into packed {@code NR}-tile panels (one per {@code ξ}, in L2), runs the 16
 * products with the {@link MicroKernel}, and transforms each output channel's results straight into the
 * output plane.
 *
 * <p><b>Backward-filter</b> is the same identity read the other way: {@code Σ dy ⊙ y} is
 * {@code Σ_ξ (A·dy·Aᵀ)_ξ · (G·g·Gᵀ)_ξ · (Bᵀ·d·B)_ξ} summed over tiles, so its gradient with respect to the filter
 * is {@code dw = Gᵀ·(Σ_tiles (A·dy·Aᵀ) ⊙ (Bᵀ·d·B))·G} (F(3×3, 2×2): each tile's 2 × 2 block of dy against its
 * 4 × 4 patch of x). For each ξ the sum over tiles is a product {@code P_ξ[in × out] = V_ξ[in × tiles] ·
 * D_ξ[tiles × out]} whose depth is the tiles, again 16 products for the direct method's 36 multiplies per tile and
 * channel pair. A task is a block of whole tile rows of one image and group: it lays out the block's dy
 * ({@link #splitOutputGradient}), then for each row {@code i} of the transforms computes {@code V_ξ} (A, in place)
 * and {@code D_ξ} (packed B panels) of its four ξ and adds their products into its slice's partial; the partials
 * are summed in slice order and transformed by {@code Gᵀ·P·G} per filter ({@link #filterGradients}).
 */
final class Conv2dWinograd {

    /** Tiles (2 × 2 outputs) per task of forward and backward-data, rounded up to whole panels (tuning knob). */
    static final int TILES_PER_TASK = 48;

    /** Tiles per task of backward-filter, in whole tile rows: the depth of its products (tuning knob). */
    static final int FILTER_TILES_PER_TASK = 96;

    /** Most floats of one backward-filter partial, and of one task's scratch (64 MiB; see {@link #appliesToFilter}). */
    static final long FILTER_SCRATCH_FLOATS = 16L << 20;

    private static final int NR = MicroKernel.NR;
    private static final int LANES = Vectorization.FLOAT_LANES;

    private static final int SLOT_V = 5;
    private static final int SLOT_M = 6;
    private static final int SLOT_OUT = 7;
    private static final int SLOT_DY_SPLIT = 8;
    private static final int SLOT_PARTIALS = Workspace.TASK_SLOTS;
    private static final int SLOT_FILTERS = Workspace.TASK_SLOTS + 3;

    private Conv2dWinograd() {
    }

    /** Whether the problem is one this algorithm computes: NCHW, 3 × 3, stride 1, no dilation, not depthwise. */
    static boolean applies(Conv2dProblem p) {
        return p.format() == org.kernels4j.Conv2d.Format.NCHW && p.r() == 3 && p.s() == 3 && p.strideH() == 1
                && p.strideW() == 1 && p.dilationH() == 1 && p.dilationW() == 1 && !p.depthwise();
    }

    /**
     * Whether backward-filter runs here: {@link #applies}, something to compute, and a partial ({@code 16·Cg·Kg}
     * floats per slice) and per-task scratch (about {@code 8·(Cg + Kg)} floats per tile of a task) within
     * {@link #FILTER_SCRATCH_FLOATS} each; wider problems (Cg = Kg = 1024, or image rows of thousands of pixels)
     * take the direct path, whose partials are 9/16 of these and whose tasks are chunks of pixels.
     */
    static boolean appliesToFilter(Conv2dProblem p, int tilesPerTask) {
        if (!applies(p) || p.n() == 0 || p.p() == 0 || p.q() == 0) {
            return false;
        }
        long channels = (long) p.cPerGroup() + p.kPerGroup() + NR;
        long depth = Math.max(tilesPerTask, (p.q() + 1) / 2);
        return 16L * p.cPerGroup() * (p.kPerGroup() + NR) * p.groups() <= FILTER_SCRATCH_FLOATS
                && 8 * channels * depth <= FILTER_SCRATCH_FLOATS;
    }

    /** {@code y = conv(x, w) + bias}. */
    static void forward(Conv2dCpu.Operands o, int tilesPerTask) {
        Conv2dProblem p = o.p;
        float[] u = transformFilters(o, false);
        correlate(p, o.x, o.xo, p.c(), p.h(), p.w(), p.padTop(), p.padLeft(), u, p.k(), o.y, o.yo, p.p(), p.q(),
                o.bias, o.bo, tilesPerTask);
    }

    /** {@code dx}: dy correlated with the flipped filter, its channels swapped, dy padded by {@code 2 - pad}. */
    static void backwardData(Conv2dCpu.Operands o, int tilesPerTask) {
        Conv2dProblem p = o.p;
        float[] u = transformFilters(o, true);
        correlate(p, o.y, o.yo, p.k(), p.p(), p.q(), 2 - p.padTop(), 2 - p.padLeft(), u, p.c(), o.x, o.xo, p.h(),
                p.w(), null, 0, tilesPerTask);
    }

    /**
     * {@code dw} and {@code db}: dy correlated with x, by F(3×3, 2×2) (see the class comment); tasks are blocks of
     * about {@code tilesPerTask} tiles (whole tile rows) of one image and group, summed into up to
     * {@code slicesPerWorker} partials per worker ({@link Conv2dCpu#filterSlices}).
     */
    static void backwardFilter(Conv2dCpu.Operands o, int tilesPerTask, int slicesPerWorker) {
        Conv2dProblem p = o.p;
        int images = p.n();
        int groups = p.groups();
        int cg = p.cPerGroup();
        int kg = p.kPerGroup();
        int outH = p.p();
        int outW = p.q();
        int tilesY = (outH + 1) / 2;
        int tilesX = (outW + 1) / 2;
        int wp = tilesX + 1;
        int blocks = Math.max(1, (tilesY * tilesX + tilesPerTask / 2) / Math.max(1, tilesPerTask));
        blocks = Math.min(blocks, tilesY);
        int rowsPerBlock = (tilesY + blocks - 1) / blocks;
        int blockCount = (tilesY + rowsPerBlock - 1) / rowsPerBlock;
        int kPanels = (kg + NR - 1) / NR;
        int kgPad = kPanels * NR;
        // partial layout: P_ξᵀ[c][k] for each group and ξ, then the bias sums
        int xiStride = cg * kgPad;
        int biasAt = groups * 16 * xiStride;
        int stride = biasAt + p.k();
        Conv2dCpu.Planes planes = Conv2dCpu.Planes.copy(o.x, o.xo, images, p.c(), p.h(), p.w(), 2, 2,
                p.padTop(), p.padLeft(), tilesY + 1, wp, 0);
        int[] off = patchOffsets(planes.size, wp);
        int tasks = images * groups * blockCount;
        double flops = 32.0 * cg * kg * tilesY * tilesX * images * groups;
        int workers = Parallel.workers(tasks, flops, Conv2dCpu.MIN_FLOPS_PER_THREAD);
        int slices = Conv2dCpu.filterSlices(tasks, workers, stride, slicesPerWorker);
        float[] partials = Workspace.floats(SLOT_PARTIALS, slices * stride);
        // with one group, a slice's first task writes its partial and the later ones add to it, so only the bias
        // sums start at zero; with groups, a slice need not hold a task of every group: all start at zero
        boolean zeroed = groups > 1;
        for (int slice = 0; slice < slices; slice++) {
            java.util.Arrays.fill(partials, slice * stride + (zeroed ? 0 : biasAt), (slice + 1) * stride, 0f);
        }
        Parallel.runSliced(tasks, slices, workers, (slice, task) -> {
            int blk = task % blockCount;
            int g = (task / blockCount) % groups;
            int n = task / blockCount / groups;
            int ty0 = blk * rowsPerBlock;
            int ty1 = Math.min(tilesY, ty0 + rowsPerBlock);
            int depth = (ty1 - ty0) * tilesX;
            boolean add = zeroed || task != (int) ((long) tasks * slice / slices);
            int quarter = kPanels * depth * NR;
            float[] split = Workspace.floats(SLOT_DY_SPLIT, 4 * quarter);
            float[] dyXi = Workspace.floats(SLOT_M, 4 * quarter);
            int vXi = cg * depth;
            float[] v = Workspace.floats(SLOT_V, 4 * vXi);
            splitOutputGradient(o, n, g, ty0, ty1, tilesX, kPanels, depth, split);
            int chan0 = planes.image(n) + g * cg * planes.channelStride + ty0 * wp;
            int base = slice * stride + g * 16 * xiStride;
            // the four ξ = (i, 0..3) of a row i of the transforms share its row combination, so they are computed
            // together: V_ξ[c][t] = (Bᵀ·d·B)_ξ of tile t's patch in channel c (A, read in place by the tile), and
            // (A·dy·Aᵀ)_ξ of every tile and output channel, in packed NR-channel panels (B)
            for (int i = 0; i < 4; i++) {
                int a = 4 * ROW_A[i];
                int b = 4 * ROW_B[i];
                for (int c = 0; c < cg; c++) {
                    for (int ty = 0; ty < ty1 - ty0; ty++) {
                        int src = chan0 + c * planes.channelStride + ty * wp;
                        int dst = c * depth + ty * tilesX;
                        if (Vectorization.ENABLED && tilesX >= LANES) {
                            Panama.inputRows(planes.data, src, tilesX, off, a, b, SIGN[i], v, dst, vXi);
                        } else {
                            inputRows(planes.data, src, tilesX, off, a, b, SIGN[i], v, dst, vXi);
                        }
                    }
                }
                if (Vectorization.ENABLED) {
                    Panama.gradientPanels(split, quarter, DY_TOP[i], DY_BOTTOM[i], dyXi);
                } else {
                    gradientPanels(split, quarter, DY_TOP[i], DY_BOTTOM[i], dyXi);
                }
                for (int j = 0; j < 4; j++) {
                    int c0 = base + (4 * i + j) * xiStride;
                    if (Vectorization.ENABLED) {
                        // the last panel's columns past the group's channels are skipped (narrow tile)
                        for (int panel = 0; panel < kPanels; panel++) {
                            MicroKernel.tile(v, j * vXi, depth, 1, dyXi, j * quarter + panel * depth * NR, depth,
                                    partials, c0 + panel * NR, kgPad, cg, add, Math.min(NR, kg - panel * NR));
                        }
                    } else {
                        // the scalar tile copies A's columns first: once for all the panels
                        MicroKernel.panels(v, j * vXi, depth, 1, dyXi, j * quarter, depth * NR, depth, partials, c0,
                                NR, kgPad, cg, add, kPanels);
                    }
                }
            }
            int p0 = 2 * ty0 * outW;
            o.sumBias(n, g, 0, kg, p0, Math.min(outH * outW, 2 * ty1 * outW) - p0, partials, slice * stride + biasAt);
        });
        // dw[k][c] = Gᵀ·(Σ_slices P_ξ[c][k])·G, the slices added in order
        int pairs = groups * cg;
        int outWorkers = Parallel.workers(pairs, 16.0 * pairs * kg * slices, 1 << 16);
        Parallel.run(pairs, outWorkers, (worker, pair) -> {
            int g = pair / cg;
            int c = pair % cg;
            float[] m = Workspace.floats(SLOT_OUT, 16 * kgPad + 9 * LANES);
            int from = g * 16 * xiStride + c * kgPad;
            int to = o.wo + (g * kg * cg + c) * 9;
            if (Vectorization.ENABLED) {
                Panama.filterGradients(partials, from, stride, slices, xiStride, kg, kgPad, m, o.w, to, cg * 9);
            } else {
                filterGradients(partials, from, stride, slices, xiStride, kg, kgPad, m, o.w, to, cg * 9);
            }
        });
        o.biasFromPartials(partials, slices, stride, biasAt);
    }

    /**
     * The four values of each tile's 2 × 2 block of dy (top-left, top-right, bottom-left, bottom-right; zero past
     * the last row or column), each in its quarter of {@code split} in the packed layout of the B panels:
     * {@code split[q·quarter + (panel·depth + t)·NR + k % NR]} for output channel {@code k} of the group and tile
     * {@code t} of the block (channels past the group's in the last panel: zero).
     */
    private static void splitOutputGradient(Conv2dCpu.Operands o, int n, int g, int ty0, int ty1, int tilesX,
                                            int kPanels, int depth, float[] split) {
        Conv2dProblem p = o.p;
        int kg = p.kPerGroup();
        int outH = p.p();
        int outW = p.q();
        int planeSize = outH * outW;
        int quarter = kPanels * depth * NR;
        int whole = outW / 2;
        float[] y = o.y;
        int first = o.yo + (n * p.k() + g * kg) * planeSize;
        // tile by tile, each tile's channels in turn: the writes run along a panel row, and the reads (one cache
        // line per channel and row) serve the next few tiles too
        for (int ty = ty0; ty < ty1; ty++) {
            int top = first + 2 * ty * outW;
            boolean bottom = 2 * ty + 1 < outH;
            for (int tx = 0; tx < tilesX; tx++) {
                int t = (ty - ty0) * tilesX + tx;
                boolean right = tx < whole;
                for (int panel = 0; panel < kPanels; panel++) {
                    int at = (panel * depth + t) * NR;
                    int k0 = panel * NR;
                    int lanes = Math.min(NR, kg - k0);
                    int e = top + 2 * tx + k0 * planeSize;
                    if (right && bottom) {
                        for (int lane = 0; lane < lanes; lane++, e += planeSize) {
                            split[at + lane] = y[e];
                            split[quarter + at + lane] = y[e + 1];
                            split[2 * quarter + at + lane] = y[e + outW];
                            split[3 * quarter + at + lane] = y[e + outW + 1];
                        }
                    } else {
                        for (int lane = 0; lane < lanes; lane++, e += planeSize) {
                            split[at + lane] = y[e];
                            split[quarter + at + lane] = right ? y[e + 1] : 0f;
                            split[2 * quarter + at + lane] = bottom ? y[e + outW] : 0f;
                            split[3 * quarter + at + lane] = 0f;
                        }
                    }
                    for (int lane = lanes; lane < NR; lane++) {
                        for (int q = 0; q < 4; q++) {
                            split[q * quarter + at + lane] = 0f;
                        }
                    }
                }
            }
        }
    }

    /**
     * Elements {@code (i, 0..3)} of {@code A·dy·Aᵀ} over the four quarters of {@code split} (see
     * {@link #splitOutputGradient}), with {@code rt, rb} row {@code i} of A: the row's left and right combinations
     * {@code l = rt·tl + rb·bl}, {@code r = rt·tr + rb·br}, then {@code l, l + r, l - r, -r} (A's rows applied to
     * them) into {@code out[j·quarter + e]}.
     */
    private static void gradientPanels(float[] split, int quarter, float rt, float rb, float[] out) {
        for (int e = 0; e < quarter; e++) {
            float left = rt * split[e] + rb * split[2 * quarter + e];
            float right = rt * split[quarter + e] + rb * split[3 * quarter + e];
            out[e] = left;
            out[quarter + e] = left + right;
            out[2 * quarter + e] = left - right;
            out[3 * quarter + e] = -right;
        }
    }

    /**
     * One tile row of {@code V_ξ} for {@code ξ = (i, 0..3)}: row {@code i} of {@code Bᵀ} combines patch rows
     * {@code a/4} and {@code b/4} into {@code r_col = d[a/4][col] + s·d[b/4][col]} ({@code off[a + col]},
     * {@code off[b + col]}: offsets from {@code x[at + t]}), and {@code B}'s columns give
     * {@code v[to + j·vXi + t] = r0 - r2, r1 + r2, r2 - r1, r1 - r3} for {@code j = 0..3}, tiles {@code [0, tiles)}.
     */
    private static void inputRows(float[] x, int at, int tiles, int[] off, int a, int b, float s, float[] v, int to,
                                  int vXi) {
        for (int t = 0; t < tiles; t++) {
            int e = at + t;
            float r0 = x[e + off[a]] + s * x[e + off[b]];
            float r1 = x[e + off[a + 1]] + s * x[e + off[b + 1]];
            float r2 = x[e + off[a + 2]] + s * x[e + off[b + 2]];
            float r3 = x[e + off[a + 3]] + s * x[e + off[b + 3]];
            v[to + t] = r0 - r2;
            v[to + vXi + t] = r1 + r2;
            v[to + 2 * vXi + t] = r2 - r1;
            v[to + 3 * vXi + t] = r1 - r3;
        }
    }

    /**
     * One input channel's filter gradients: {@code M_ξ[k] = Σ_s partials[s·stride + from + ξ·xiStride + k]} (into
     * {@code m[ξ·kgPad + k]}, slices in order), then {@code dw[at + k·kStride + 3·r + s] = (Gᵀ·M·G)[r][s]} for each
     * output channel {@code k}, {@code Gᵀ = [1 ½ ½ 0; 0 ½ -½ 0; 0 ½ ½ 1]}.
     */
    private static void filterGradients(float[] partials, int from, int stride, int slices, int xiStride, int kg,
                                        int kgPad, float[] m, float[] dw, int at, int kStride) {
        for (int x = 0; x < 16; x++) {
            int src = from + x * xiStride;
            int dst = x * kgPad;
            System.arraycopy(partials, src, m, dst, kg);
            for (int s = 1; s < slices; s++) {
                int part = src + s * stride;
                for (int k = 0; k < kg; k++) {
                    m[dst + k] += partials[part + k];
                }
            }
        }
        for (int k = 0; k < kg; k++) {
            int out = at + k * kStride;
            for (int r = 0; r < 3; r++) {
                float t0 = gtRow(r, m[k], m[4 * kgPad + k], m[8 * kgPad + k], m[12 * kgPad + k]);
                float t1 = gtRow(r, m[kgPad + k], m[5 * kgPad + k], m[9 * kgPad + k], m[13 * kgPad + k]);
                float t2 = gtRow(r, m[2 * kgPad + k], m[6 * kgPad + k], m[10 * kgPad + k], m[14 * kgPad + k]);
                float t3 = gtRow(r, m[3 * kgPad + k], m[7 * kgPad + k], m[11 * kgPad + k], m[15 * kgPad + k]);
                dw[out + 3 * r] = gtRow(0, t0, t1, t2, t3);
                dw[out + 3 * r + 1] = gtRow(1, t0, t1, t2, t3);
                dw[out + 3 * r + 2] = gtRow(2, t0, t1, t2, t3);
            }
        }
    }

    /** Row {@code r} of {@code Gᵀ = [1 ½ ½ 0; 0 ½ -½ 0; 0 ½ ½ 1]} times {@code (m0, m1, m2, m3)}. */
    private static float gtRow(int r, float m0, float m1, float m2, float m3) {
        return r == 0 ? m0 + 0.5f * (m1 + m2) : r == 1 ? 0.5f * (m1 - m2) : 0.5f * (m1 + m2) + m3;
    }

    /**
     * {@code U = G·g·Gᵀ} for every filter, as the A operands of the 16 products: {@code u[((g·16 + ξ)·M + m)·D + d]}
     * for output channel {@code m} and input channel {@code d} of group {@code g}, or on the scalar path column by
     * column, {@code u[(g·16 + ξ)·M·D + d·M + m]} (its tile copies A's columns, which are then contiguous runs).
     * Forward: {@code g = w[m][d]}; backward-data ({@code swap}): {@code g = w[d][m]} rotated by 180°. A task is
     * one row of U (the filters whose transforms are contiguous: one {@code m} on the vector path, one {@code d} on
     * the scalar path), computed into a scratch and copied out ξ by ξ: filter by filter, the 16 stores of a filter
     * went {@code M·D} floats apart (64 KiB in conv-r28), all to one L1 set (2-core Zen 5, paired in one JVM:
     * conv-r28 forward 0.93x the time, conv-r56 forward 0.92x, conv-r28 backward-data 0.93x).
     */
    private static float[] transformFilters(Conv2dCpu.Operands o, boolean swap) {
        Conv2dProblem p = o.p;
        int kg = p.kPerGroup();
        int cg = p.cPerGroup();
        int m = swap ? cg : kg;
        int d = swap ? kg : cg;
        int groups = p.groups();
        float[] u = Workspace.floats(SLOT_FILTERS, groups * 16 * m * d);
        int outer = Vectorization.ENABLED ? m : d;
        int inner = Vectorization.ENABLED ? d : m;
        int rows = groups * outer;
        int workers = Parallel.workers(rows, 64.0 * rows * inner, 1 << 16);
        Parallel.runSmall(rows, workers, (worker, row) -> {
            int g = row / outer;
            int along = row % outer;
            float[] t = Workspace.floats(SLOT_OUT, 16 * inner);
            for (int e = 0; e < inner; e++) {
                int mm = Vectorization.ENABLED ? along : e;
                int dd = Vectorization.ENABLED ? e : along;
                int k = swap ? dd : mm;
                int c = swap ? mm : dd;
                int src = o.wo + ((g * kg + k) * cg + c) * 9;
                // row i of G·g (G = [1 0 0; ½ ½ ½; ½ -½ ½; 0 0 1]), then that row times Gᵀ; in double, rounded once
                for (int i = 0; i < 4; i++) {
                    double r0 = gRow(i, o.w[src + tap(0, 0, swap)], o.w[src + tap(1, 0, swap)],
                            o.w[src + tap(2, 0, swap)]);
                    double r1 = gRow(i, o.w[src + tap(0, 1, swap)], o.w[src + tap(1, 1, swap)],
                            o.w[src + tap(2, 1, swap)]);
                    double r2 = gRow(i, o.w[src + tap(0, 2, swap)], o.w[src + tap(1, 2, swap)],
                            o.w[src + tap(2, 2, swap)]);
                    t[(4 * i) * inner + e] = (float) gRow(0, r0, r1, r2);
                    t[(4 * i + 1) * inner + e] = (float) gRow(1, r0, r1, r2);
                    t[(4 * i + 2) * inner + e] = (float) gRow(2, r0, r1, r2);
                    t[(4 * i + 3) * inner + e] = (float) gRow(3, r0, r1, r2);
                }
            }
            int at = g * 16 * m * d + along * inner;
            for (int x = 0; x < 16; x++) {
                System.arraycopy(t, x * inner, u, at + x * m * d, inner);
            }
        });
        return u;
    }

    /** {@code floats} rounded up to a multiple of 1024 (4 KiB), plus 16 (one cache line). */
    private static int spread(int floats) {
        return (floats + 1023) / 1024 * 1024 + 16;
    }

    /** Row {@code i} of {@code G = [1 0 0; ½ ½ ½; ½ -½ ½; 0 0 1]} times {@code (g0, g1, g2)}. */
    private static double gRow(int i, double g0, double g1, double g2) {
        return i == 0 ? g0 : i == 1 ? 0.5 * (g0 + g1 + g2) : i == 2 ? 0.5 * (g0 - g1 + g2) : g2;
    }

    /** Index of filter tap {@code (r, s)} in a 3 × 3 filter, rotated by 180° when {@code flip}. */
    private static int tap(int r, int s, boolean flip) {
        return flip ? (2 - r) * 3 + 2 - s : r * 3 + s;
    }

    /**
     * {@code out = bias + correlation of in (padded by top, left) with the 3 × 3 filters whose transforms are u},
     * for {@code images × inC} input planes of {@code inH × inW} and {@code outC} output planes of
     * {@code outH × outW}.
     */
    private static void correlate(Conv2dProblem p, float[] in, int inBase, int inC, int inH, int inW, int top,
                                  int left, float[] u, int outC, float[] out, int outBase, int outH, int outW,
                                  float[] bias, int bo, int tilesPerTask) {
        int images = p.n();
        if (images == 0 || outH == 0 || outW == 0) {
            return;
        }
        int groups = p.groups();
        int tilesY = (outH + 1) / 2;
        int tilesX = (outW + 1) / 2;
        int wp = tilesX + 1;
        int perImage = (tilesY - 1) * wp + tilesX;
        int block = Math.max(NR, (Math.min(tilesPerTask, perImage) + NR - 1) / NR * NR);
        int blocks = (perImage + block - 1) / block;
        // the last block's dropped tiles read up to a block and a tile row past the last plane
        Conv2dCpu.Planes planes = Conv2dCpu.Planes.copy(in, inBase, images, inC, inH, inW, 2, 2, top, left,
                tilesY + 1, wp, block + wp + 2);
        int[] off = patchOffsets(planes.size, wp);
        int dg = inC / groups;
        int mg = outC / groups;
        int tasks = images * groups * blocks;
        double flops = 32.0 * mg * dg * perImage * images * groups;
        int workers = Parallel.workers(tasks, flops, Conv2dCpu.MIN_FLOPS_PER_THREAD);
        Parallel.run(tasks, workers, (worker, task) -> {
            int blk = task % blocks;
            int g = (task / blocks) % groups;
            int n = task / blocks / groups;
            int f0 = blk * block;
            int count = Math.min(block, perImage - f0);
            int panels = (count + NR - 1) / NR;
            int cols = panels * NR;
            // one ξ's products after the other, a cache line apart from a multiple of 4 KiB: the output transform
            // reads 16 places per tile, which must not all fall into the same L1 set
            int mxi = spread(panels * mg * NR);
            float[] mm = Workspace.floats(SLOT_M, 16 * mxi);
            float[] bp = Workspace.floats(SLOT_V, (Vectorization.ENABLED ? 1 : panels) * dg * NR);
            // M_ξ = U_ξ · V_ξ, each panel of V_ξ = (Bᵀ·d·B)_ξ computed just before the product reads it (in L1)
            int chan0 = planes.image(n) + g * dg * planes.channelStride + f0;
            int uGroup = g * 16 * mg * dg;
            for (int x = 0; x < 16; x++) {
                int i = x / 4;
                int j = x % 4;
                int dAA = off[4 * ROW_A[i] + ROW_A[j]];
                int dAB = off[4 * ROW_A[i] + ROW_B[j]];
                int dBA = off[4 * ROW_B[i] + ROW_A[j]];
                int dBB = off[4 * ROW_B[i] + ROW_B[j]];
                if (Vectorization.ENABLED) {
                    for (int panel = 0; panel < panels; panel++) {
                        Panama.inputPanel(planes.data, chan0 + panel * NR, planes.channelStride, dg, dAA, dAB, dBA,
                                dBB, SIGN[j], SIGN[i], bp);
                        MicroKernel.tile(u, uGroup + x * mg * dg, dg, 1, bp, 0, dg, mm, x * mxi + panel * mg * NR, NR,
                                mg, false);
                    }
                } else {
                    // all the block's panels first, so that the scalar tile copies U_ξ's columns once for all of them
                    for (int panel = 0; panel < panels; panel++) {
                        inputPanel(planes.data, chan0 + panel * NR, planes.channelStride, dg, dAA, dAB, dBA, dBB,
                                SIGN[j], SIGN[i], bp, panel * dg * NR);
                    }
                    MicroKernel.panels(u, uGroup + x * mg * dg, 1, mg, bp, 0, dg * NR, dg, mm, x * mxi, mg * NR, NR,
                            mg, false, panels);
                }
            }
            // Y = Aᵀ·M·A per tile and output channel, into the output plane
            int[] map = tileMap(f0, count, cols, wp, tilesX, outH, outW);
            float[] y = Workspace.floats(SLOT_OUT, 4 * LANES);
            for (int m = 0; m < mg; m++) {
                int plane = outBase + (n * outC + g * mg + m) * outH * outW;
                float b = bias == null ? 0f : bias[bo + g * mg + m];
                for (int t = 0; t < cols; t += LANES) {
                    int at = ((t / NR) * mg + m) * NR + t % NR;
                    if (Vectorization.ENABLED) {
                        Panama.output(mm, at, mxi, b, y);
                    } else {
                        outputScalar(mm, at, mxi, b, y);
                    }
                    scatter(y, map, t, out, plane, outW);
                }
            }
        });
    }

    /** Offsets of the 16 elements of a tile's 4 × 4 patch from the tile's flat position, in 2 × 2 phase planes. */
    private static int[] patchOffsets(int planeSize, int wp) {
        int[] off = new int[16];
        for (int r = 0; r < 4; r++) {
            for (int c = 0; c < 4; c++) {
                off[4 * r + c] = ((r % 2) * 2 + c % 2) * planeSize + (r / 2) * wp + c / 2;
            }
        }
        return off;
    }

    /**
     * Where each tile of a block writes: {@code (row·outW + column) << 2} of its top-left output, plus 1 when the
     * column to its right exists and 2 when the row below does; -1 for the dropped tiles (between tile rows or past
     * the block).
     */
    private static int[] tileMap(int f0, int count, int cols, int wp, int tilesX, int outH, int outW) {
        int[] map = Workspace.ints(cols);
        for (int t = 0; t < cols; t++) {
            int f = f0 + t;
            int ty = f / wp;
            int tx = f - ty * wp;
            if (t >= count || tx >= tilesX) {
                map[t] = -1;
                continue;
            }
            int oy = 2 * ty;
            int ox = 2 * tx;
            map[t] = (oy * outW + ox) << 2 | (ox + 1 < outW ? 1 : 0) | (oy + 1 < outH ? 2 : 0);
        }
        return map;
    }

    /**
     * Writes the 2 × 2 outputs of tiles {@code [t, t + LANES)} ({@code y}: each tile's top pair side by side, then
     * each tile's bottom pair, see {@link Panama#output}). The tiles of one tile row are consecutive in {@code y} as in
     * the output rows, so a run of whole tiles (both columns and both rows in the output) goes in two copies, the
     * rest tile by tile. With 16 lanes and 14 tiles a row (conv-r28) a vector's tiles are two or three runs; written
     * element by element, the scatter took 12% of conv-r28's forward (paired: 0.957× the time, conv-r56 0.936×).
     */
    private static void scatter(float[] y, int[] map, int t, float[] out, int plane, int outW) {
        int e = 0;
        while (e < LANES) {
            int code = map[t + e];
            if (code < 0) {
                e++;
                continue;
            }
            int at = plane + (code >> 2);
            if ((code & 3) != 3) {
                out[at] = y[2 * e];
                if ((code & 1) != 0) {
                    out[at + 1] = y[2 * e + 1];
                }
                if ((code & 2) != 0) {
                    out[at + outW] = y[2 * LANES + 2 * e];
                    if ((code & 1) != 0) {
                        out[at + outW + 1] = y[2 * LANES + 2 * e + 1];
                    }
                }
                e++;
                continue;
            }
            // whole tiles side by side: each one's top-left output two places right of the one before
            int end = e + 1;
            while (end < LANES && map[t + end] == code + 8 * (end - e)) {
                end++;
            }
            System.arraycopy(y, 2 * e, out, at, 2 * (end - e));
            System.arraycopy(y, 2 * LANES + 2 * e, out, at + outW, 2 * (end - e));
            e = end;
        }
    }

    /*
     * Bᵀ = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1]: row i of Bᵀ·x is x[ROW_A[i]] + SIGN[i]·x[ROW_B[i]], so element
     * (i, j) of V = Bᵀ·d·B is (d[a][a'] + s'·d[a][b']) + s·(d[b][a'] + s'·d[b][b']) with a = ROW_A[i],
     * b = ROW_B[i], s = SIGN[i] and a', b', s' those of j.
     */
    private static final int[] ROW_A = {0, 1, 2, 1};
    private static final int[] ROW_B = {2, 2, 1, 3};
    private static final float[] SIGN = {-1f, 1f, -1f, -1f};

    /* A = [1 0; 1 1; 1 -1; 0 -1] (the transpose of Aᵀ): row i weighs the top (left) and bottom (right) outputs. */
    private static final float[] DY_TOP = {1f, 1f, 1f, 0f};
    private static final float[] DY_BOTTOM = {0f, 1f, -1f, -1f};

    /**
     * One panel of {@code V_ξ}: {@code bp[to + d·NR + e] = (dAA + sc·dAB) + sr·(dBA + sc·dBB)} for input channel
     * {@code d} and tile {@code e} of the panel, each {@code dXY} an offset of the patch element from the tile's
     * flat position in the channel's planes ({@code x[at + d·channelStride + e + dXY]}).
     */
    private static void inputPanel(float[] x, int at, int channelStride, int dg, int dAA, int dAB, int dBA, int dBB,
                                   float sc, float sr, float[] bp, int to) {
        for (int d = 0; d < dg; d++) {
            int src = at + d * channelStride;
            for (int e = 0; e < NR; e++) {
                int a = src + e;
                bp[to + d * NR + e] = (x[a + dAA] + sc * x[a + dAB]) + sr * (x[a + dBA] + sc * x[a + dBB]);
            }
        }
    }

    /** The scalar twin of {@link Panama#output}, with the same order of operations. */
    private static void outputScalar(float[] m, int at, int xi, float bias, float[] y) {
        for (int e = 0; e < LANES; e++) {
            float top0 = bias;
            float top1 = bias;
            float bottom0 = bias;
            float bottom1 = bias;
            for (int j = 0; j < 4; j++) {
                float m0 = m[at + e + j * xi];
                float m1 = m[at + e + (4 + j) * xi];
                float m2 = m[at + e + (8 + j) * xi];
                float m3 = m[at + e + (12 + j) * xi];
                float a0 = m0 + m1 + m2;
                float a1 = m1 - m2 - m3;
                if (j < 3) {
                    top0 += a0;
                    bottom0 += a1;
                }
                if (j == 1) {
                    top1 += a0;
                    bottom1 += a1;
                } else if (j >= 2) {
                    top1 -= a0;
                    bottom1 -= a1;
                }
            }
            y[2 * e] = top0;
            y[2 * e + 1] = top1;
            y[2 * LANES + 2 * e] = bottom0;
            y[2 * LANES + 2 * e + 1] = bottom1;
        }
    }

    /** The vector transforms; loaded only on the vector path. */
    private static final class Panama {
        private static final VectorSpecies<Float> S = FloatVector.SPECIES_PREFERRED;

        /** The vector twin of {@link Conv2dWinograd#inputPanel} (an FMA per sign, no branches). */
        static void inputPanel(float[] x, int at, int channelStride, int dg, int dAA, int dAB, int dBA, int dBB,
                               float sc, float sr, float[] bp) {
            int l = S.length();
            FloatVector vsc = FloatVector.broadcast(S, sc);
            FloatVector vsr = FloatVector.broadcast(S, sr);
            for (int d = 0; d < dg; d++) {
                int src = at + d * channelStride;
                for (int e = 0; e < NR; e += l) {
                    int a = src + e;
                    FloatVector ra = FloatVector.fromArray(S, x, a + dAB).fma(vsc, FloatVector.fromArray(S, x, a + dAA));
                    FloatVector rb = FloatVector.fromArray(S, x, a + dBB).fma(vsc, FloatVector.fromArray(S, x, a + dBA));
                    rb.fma(vsr, ra).intoArray(bp, d * NR + e);
                }
            }
        }

        /** The vector twin of {@link Conv2dWinograd#inputRows}; the last vector overlaps the one before it. */
        static void inputRows(float[] x, int at, int tiles, int[] off, int a, int b, float s, float[] v, int to,
                              int vXi) {
            int l = S.length();
            FloatVector vs = FloatVector.broadcast(S, s);
            int a0 = at + off[a];
            int a1 = at + off[a + 1];
            int a2 = at + off[a + 2];
            int a3 = at + off[a + 3];
            int b0 = at + off[b];
            int b1 = at + off[b + 1];
            int b2 = at + off[b + 2];
            int b3 = at + off[b + 3];
            for (int t = 0; ; t += l) {
                if (t > tiles - l) {
                    t = tiles - l;
                }
                FloatVector r0 = FloatVector.fromArray(S, x, b0 + t).fma(vs, FloatVector.fromArray(S, x, a0 + t));
                FloatVector r1 = FloatVector.fromArray(S, x, b1 + t).fma(vs, FloatVector.fromArray(S, x, a1 + t));
                FloatVector r2 = FloatVector.fromArray(S, x, b2 + t).fma(vs, FloatVector.fromArray(S, x, a2 + t));
                FloatVector r3 = FloatVector.fromArray(S, x, b3 + t).fma(vs, FloatVector.fromArray(S, x, a3 + t));
                r0.sub(r2).intoArray(v, to + t);
                r1.add(r2).intoArray(v, to + vXi + t);
                r2.sub(r1).intoArray(v, to + 2 * vXi + t);
                r1.sub(r3).intoArray(v, to + 3 * vXi + t);
                if (t == tiles - l) {
                    return;
                }
            }
        }

        /** The vector twin of {@link Conv2dWinograd#gradientPanels} (quarter: a multiple of the lanes). */
        static void gradientPanels(float[] split, int quarter, float rt, float rb, float[] out) {
            int l = S.length();
            FloatVector vrt = FloatVector.broadcast(S, rt);
            FloatVector vrb = FloatVector.broadcast(S, rb);
            for (int e = 0; e < quarter; e += l) {
                FloatVector left = FloatVector.fromArray(S, split, e).mul(vrt)
                        .add(FloatVector.fromArray(S, split, 2 * quarter + e).mul(vrb));
                FloatVector right = FloatVector.fromArray(S, split, quarter + e).mul(vrt)
                        .add(FloatVector.fromArray(S, split, 3 * quarter + e).mul(vrb));
                left.intoArray(out, e);
                left.add(right).intoArray(out, quarter + e);
                left.sub(right).intoArray(out, 2 * quarter + e);
                right.neg().intoArray(out, 3 * quarter + e);
            }
        }

        /**
         * The vector twin of {@link Conv2dWinograd#filterGradients}, {@code LANES} output channels at a time (the
         * partials' padding columns up to {@code kgPad} are read, whatever they hold, and only the {@code kg} channels
         * written).
         */
        static void filterGradients(float[] partials, int from, int stride, int slices, int xiStride, int kg,
                                    int kgPad, float[] m, float[] dw, int at, int kStride) {
            int l = S.length();
            for (int x = 0; x < 16; x++) {
                int src = from + x * xiStride;
                for (int k = 0; k < kgPad; k += l) {
                    FloatVector sum = FloatVector.fromArray(S, partials, src + k);
                    for (int s = 1; s < slices; s++) {
                        sum = sum.add(FloatVector.fromArray(S, partials, src + s * stride + k));
                    }
                    sum.intoArray(m, x * kgPad + k);
                }
            }
            int tmp = 16 * kgPad;
            for (int k0 = 0; k0 < kg; k0 += l) {
                for (int r = 0; r < 3; r++) {
                    FloatVector t0 = gtRow(r, m, k0, 0, kgPad);
                    FloatVector t1 = gtRow(r, m, k0, 1, kgPad);
                    FloatVector t2 = gtRow(r, m, k0, 2, kgPad);
                    FloatVector t3 = gtRow(r, m, k0, 3, kgPad);
                    FloatVector mid = t1.add(t2).mul(0.5f);
                    t0.add(mid).intoArray(m, tmp + 3 * r * l);
                    t1.sub(t2).mul(0.5f).intoArray(m, tmp + (3 * r + 1) * l);
                    mid.add(t3).intoArray(m, tmp + (3 * r + 2) * l);
                }
                for (int e = 0; e < l && k0 + e < kg; e++) {
                    int out = at + (k0 + e) * kStride;
                    for (int j = 0; j < 9; j++) {
                        dw[out + j] = m[tmp + j * l + e];
                    }
                }
            }
        }

        /** Row {@code r} of {@code Gᵀ} times column {@code col} of {@code M} (rows {@code kgPad} apart). */
        private static FloatVector gtRow(int r, float[] m, int k0, int col, int kgPad) {
            FloatVector m1 = FloatVector.fromArray(S, m, (4 + col) * kgPad + k0);
            FloatVector m2 = FloatVector.fromArray(S, m, (8 + col) * kgPad + k0);
            if (r == 1) {
                return m1.sub(m2).mul(0.5f);
            }
            FloatVector mid = m1.add(m2).mul(0.5f);
            return r == 0 ? FloatVector.fromArray(S, m, col * kgPad + k0).add(mid)
                    : mid.add(FloatVector.fromArray(S, m, (12 + col) * kgPad + k0));
        }

        /**
         * {@code Y = Aᵀ·M·A + bias} for {@code LANES} tiles ({@code M} element {@code ξ} at {@code m[at + ξ·xi...]}),
         * {@code Aᵀ = [1 1 1 0; 0 1 -1 -1]}; into {@code y} in the order of the output rows: each tile's top-left and
         * top-right side by side (the two vectors' lanes interleaved), then each tile's bottom-left and bottom-right.
         */
        static void output(float[] m, int at, int xi, float bias, float[] y) {
            int l = S.length();
            FloatVector b = FloatVector.broadcast(S, bias);
            FloatVector top0 = b;
            FloatVector top1 = b;
            FloatVector bottom0 = b;
            FloatVector bottom1 = b;
            for (int j = 0; j < 4; j++) {
                FloatVector m0 = FloatVector.fromArray(S, m, at + j * xi);
                FloatVector m1 = FloatVector.fromArray(S, m, at + (4 + j) * xi);
                FloatVector m2 = FloatVector.fromArray(S, m, at + (8 + j) * xi);
                FloatVector m3 = FloatVector.fromArray(S, m, at + (12 + j) * xi);
                FloatVector a0 = m0.add(m1).add(m2);
                FloatVector a1 = m1.sub(m2).sub(m3);
                // (Aᵀ·M)·A: column j adds to the left output for j < 3 and to the right one with signs 0 + - -
                if (j < 3) {
                    top0 = top0.add(a0);
                    bottom0 = bottom0.add(a1);
                }
                if (j == 1) {
                    top1 = top1.add(a0);
                    bottom1 = bottom1.add(a1);
                } else if (j >= 2) {
                    top1 = top1.sub(a0);
                    bottom1 = bottom1.sub(a1);
                }
            }
            top0.rearrange(Lanes.ZIP_LOW, top1).intoArray(y, 0);
            top0.rearrange(Lanes.ZIP_HIGH, top1).intoArray(y, l);
            bottom0.rearrange(Lanes.ZIP_LOW, bottom1).intoArray(y, 2 * l);
            bottom0.rearrange(Lanes.ZIP_HIGH, bottom1).intoArray(y, 3 * l);
        }
    }
}
