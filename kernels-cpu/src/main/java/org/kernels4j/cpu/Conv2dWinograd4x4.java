package org.kernels4j.cpu;

import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorSpecies;

import org.kernels4j.spi.Conv2dProblem;

/**
 * Winograd's F(4×4, 3×3) for the forward and backward-data of the NCHW 3 × 3 stride-1 convolutions (no dilation,
 * not depthwise). Part of
 * {@link Conv2dCpu}'s story: its forward dispatches here when the tuning knob {@code WINOGRAD} is
 * {@link Conv2dCpu#WINOGRAD_4X4}, the default, and so does its backward-data (dy correlated with the flipped
 * filters, their channels swapped); {@code TILES} sets the tiles per task. {@link Conv2dWinograd}'s F(2×2, 3×3)
 * runs backward-filter, and the other passes where the knob says so.
 *
 * <p><b>Why.</b> Each 4 × 4 block of outputs ("tile") needs a 6 × 6 patch {@code d} of each input channel; with
 * {@code U = G·w·Gᵀ} and {@code V = Bᵀ·d·B} (6 × 6 each), {@code Y = Aᵀ·(Σ_c U ⊙ V)·A}. The sum is, for each of the
 * 36 positions ξ of the transform, a product {@code M_ξ[out × tiles] = U_ξ[out × C] · V_ξ[C × tiles]}: 36
 * multiplies per tile and channel pair where the direct method takes 16·9 = 144 (4× fewer; F(2×2, 3×3): 16 per four
 * outputs, 2.25× fewer), for transforms of a few adds per element. The points are 0, ±1, ±2 and ∞ (Lavin and Gray):
 * <pre>
 *   Bᵀ = [4 0 -5 0 1 0;  0 -4 -4 1 1 0;  0 4 -4 -1 1 0;  0 -2 -1 2 1 0;  0 2 -1 -2 1 0;  0 4 0 -5 0 1]
 *   G  = [¼ 0 0;  -⅙ -⅙ -⅙;  -⅙ ⅙ -⅙;  1/24 1/12 ⅙;  1/24 -1/12 ⅙;  0 0 1]
 *   Aᵀ = [1 1 1 1 1 0;  0 1 -1 2 -2 0;  0 1 1 4 4 0;  0 1 -1 8 -8 1]
 * </pre>
 * The price is accuracy: against a float64 reference (one image of conv-r56's and conv-r28's channels, normal inputs,
 * forward) the error was 1.5-2.3e-6 of the result's norm and at most 9e-6 of its largest element, about 7 times
 * F(2×2, 3×3)'s and the direct method's; the suite's fp32 rule allows 2e-5 of the norm, and {@code Conv2dCpuTest}
 * holds conv-r28's depth to 2e-5 of the largest element. {@code WINOGRAD = 1} trades the speed back for F(2×2)'s.
 *
 * <p><b>Layout.</b> As {@link Conv2dWinogradStride2}'s, with four column phases instead of eight: tile
 * {@code (ty, tx)} reads padded rows {@code 4ty} to {@code 4ty + 5} and columns {@code 4tx} to {@code 4tx + 5}; each
 * padded row split into its 4 column phases ({@link #split}) puts every patch element at a fixed offset from the
 * tile's first element, so a vector of consecutive tiles of a tile row is a vector load. The tiles of a group are
 * numbered across images; a task takes a run of whole {@code NR}-tile panels of them (and, where those runs would
 * make fewer than two tasks a thread, a part of the output channels). Channel by channel it splits the
 * bands of six padded rows its tile rows read and computes all 36 {@code V_ξ} of its panels, then runs the 36
 * products with the {@link MicroKernel}, and last transforms each output channel's products per tile straight into
 * the output planes (the same 4 × 4 output tiles, map and scatter as the stride-2 class).
 */
final class Conv2dWinograd4x4 {

    /** Most floats of the filter transforms ({@code 36·Cg·K}; 64 MiB). */
    static final long FILTER_FLOATS = 16L << 20;

    private static final int NR = MicroKernel.NR;
    private static final int LANES = Vectorization.FLOAT_LANES;

    /** Positions ξ of the 6 × 6 transforms. */
    private static final int XI = 36;

    private static final int SLOT_HALVES = 4;
    private static final int SLOT_V = 5;
    private static final int SLOT_M = 6;
    private static final int SLOT_OUT = 7;
    private static final int SLOT_BANDS = 8;
    private static final int SLOT_ROW = 9;
    private static final int SLOT_FILTERS = Workspace.TASK_SLOTS + 3;

    /** Most floats of a task's {@code V_ξ} panels (16 MiB): bounds the panels per task of deep problems. */
    private static final long V_FLOATS = 4L << 20;

    private Conv2dWinograd4x4() {
    }

    /**
     * Whether the forward of {@code p} runs here: NCHW, 3 × 3, stride 1, no dilation, not depthwise, filter
     * transforms within {@link #FILTER_FLOATS}, and outputs large enough that the 4 × 4 tiles' multiplies, counting
     * those of the outputs past the edge, stay under F(2×2, 3×3)'s.
     */
    static boolean applies(Conv2dProblem p) {
        return structurally(p) && savesMultiplies(p.p(), p.q());
    }

    /** {@link #applies} for backward-data, whose correlation's outputs are dx's {@code H × W}. */
    static boolean appliesToData(Conv2dProblem p) {
        return structurally(p) && savesMultiplies(p.h(), p.w());
    }

    private static boolean structurally(Conv2dProblem p) {
        return p.format() == org.kernels4j.Conv2d.Format.NCHW && p.r() == 3 && p.s() == 3 && p.strideH() == 1
                && p.strideW() == 1 && p.dilationH() == 1 && p.dilationW() == 1 && !p.depthwise()
                && (long) XI * p.cPerGroup() * p.k() <= FILTER_FLOATS;
    }

    private static boolean savesMultiplies(int outH, int outW) {
        long tiles4 = (long) ((outH + 3) / 4) * ((outW + 3) / 4);
        long tiles2 = (long) ((outH + 1) / 2) * ((outW + 1) / 2);
        return outH > 0 && outW > 0 && XI * tiles4 <= 16 * tiles2;
    }

    /** {@code y = conv(x, w) + bias}, tasks of about {@code tilesPerTask} tiles (whole panels). */
    static void forward(Conv2dCpu.Operands o, int tilesPerTask) {
        Conv2dProblem p = o.p;
        float[] u = transformFilters(o, false);
        correlate(p, o.x, o.xo, p.c(), p.h(), p.w(), p.padTop(), p.padLeft(), u, p.k(), o.y, o.yo, p.p(), p.q(),
                o.bias, o.bo, tilesPerTask);
    }

    /**
     * {@code dx}: dy correlated with the flipped filters, their channels swapped, dy padded by {@code 2 - pad} (less
     * than nothing where the padding is wider than the filter: dy's edge is then skipped).
     */
    static void backwardData(Conv2dCpu.Operands o, int tilesPerTask) {
        Conv2dProblem p = o.p;
        float[] u = transformFilters(o, true);
        correlate(p, o.y, o.yo, p.k(), p.p(), p.q(), 2 - p.padTop(), 2 - p.padLeft(), u, p.c(), o.x, o.xo, p.h(),
                p.w(), null, 0, tilesPerTask);
    }

    /**
     * {@code out = bias + correlation of in (padded by top, left) with the 3 × 3 filters whose transforms are u}, for
     * {@code p.n() × inC} input planes of {@code inH × inW} and {@code outC} output planes of {@code outH × outW}, in
     * {@code p.groups()} groups; tasks of about {@code tilesPerTask} tiles (whole panels).
     */
    private static void correlate(Conv2dProblem p, float[] in, int inBase, int inC, int inH, int inW, int top,
                                  int left, float[] u, int outC, float[] out, int outBase, int outH, int outW,
                                  float[] bias, int bo, int tilesPerTask) {
        int images = p.n();
        if (images == 0 || outH == 0 || outW == 0) {
            return;
        }
        int groups = p.groups();
        int dg = inC / groups;
        int mg = outC / groups;
        int tilesY = (outH + 3) / 4;
        int tilesX = (outW + 3) / 4;
        // a tile reads padded columns 4tx to 4tx + 5: phase b's element j is column 4j + b, j up to tilesX
        int wp = tilesX + 1;
        int rowStride = 4 * wp;
        int bandStride = 6 * rowStride;
        int perImage = tilesY * tilesX;
        int tiles = images * perImage;
        int panelCount = (tiles + NR - 1) / NR;
        int maxPanels = (int) Math.max(1, V_FLOATS / ((long) XI * dg * NR));
        int blocks = Math.max((panelCount + maxPanels - 1) / maxPanels,
                Math.min(panelCount, (tiles + tilesPerTask / 2) / Math.max(1, tilesPerTask)));
        blocks = Math.max(1, blocks);
        int uXi = Conv2dWinogradStride2.spread(mg * dg);
        int[] patch = patchOffsets(rowStride, wp);
        // few tiles (small images, a small batch) make few blocks: then the output channels are split too, each part
        // a task that transforms its block's input again (eight 7 x 7 images of 512 channels: 32 tiles, one block, one
        // busy core otherwise)
        int outParts = Math.max(1, Math.min(ceilDiv(2 * Parallel.THREADS, groups * blocks), mg / 32));
        int tasks = groups * blocks * outParts;
        int nBlocks = blocks;
        double flops = 2.0 * XI * mg * dg * tiles * groups;
        int workers = Parallel.workers(tasks, flops, Conv2dCpu.MIN_FLOPS_PER_THREAD);
        Parallel.run(tasks, workers, (worker, task) -> {
            int part = task % outParts;
            int blk = task / outParts % nBlocks;
            int g = task / outParts / nBlocks;
            // this task's output channels of the group, [m0, m0 + rows): whole register tiles but the last part's
            int m0 = outputChannel(mg, part, outParts);
            int m1 = part + 1 == outParts ? mg : outputChannel(mg, part + 1, outParts);
            int rows = m1 - m0;
            int panel0 = (int) ((long) panelCount * blk / nBlocks);
            int panels = (int) ((long) panelCount * (blk + 1) / nBlocks) - panel0;
            int t0 = panel0 * NR;
            int count = Math.min(panels * NR, tiles - t0);
            int cols = panels * NR;
            // the block's tile rows (across images), each one band of six padded input rows per channel; its runs
            // of tiles (tiles of one tile row, within one panel): column in the panel, source (in the bands), length;
            // then where each tile writes its outputs
            int row0 = t0 / tilesX;
            int bands = (t0 + count - 1) / tilesX - row0 + 1;
            int runStarts = 3 * (count + panels);
            int mapAt = runStarts + panels + 1;
            int[] runs = Workspace.ints(mapAt + 2 * cols);
            int runCount = Conv2dWinogradStride2.tileRuns(t0, count, tilesX, row0, bandStride, runs, runStarts);
            float[] band = Workspace.floats(SLOT_BANDS, bands * bandStride + LANES);
            float[] paddedRow = Workspace.floats(SLOT_ROW, rowStride);
            java.util.Arrays.fill(paddedRow, 0, rowStride, 0f);
            float[] halves = Workspace.floats(SLOT_HALVES, rowStride);
            // V_ξ for every ξ: panel after panel, each with a vector of slack after it (see Panama.inputPanel)
            int panelStride = dg * NR + LANES;
            int vXi = panels * panelStride;
            float[] v = Workspace.floats(SLOT_V, XI * vXi);
            float[] scratch = Workspace.floats(SLOT_OUT, 40 * LANES);
            for (int c = 0; c < dg; c++) {
                int channel = g * dg + c;
                for (int r = 0; r < bands; r++) {
                    int n = (row0 + r) / tilesY;
                    int ty = (row0 + r) % tilesY;
                    // a band's first two rows are the last two of the band above it in the same image
                    int first = r > 0 && ty > 0 ? 2 : 0;
                    if (first > 0) {
                        System.arraycopy(band, r * bandStride - 2 * rowStride, band, r * bandStride, 2 * rowStride);
                    }
                    band(in, inBase + (n * inC + channel) * inH * inW, inH, inW, top, left, ty, first, wp, band,
                            r * bandStride, paddedRow, halves);
                }
                for (int panel = 0; panel < panels; panel++) {
                    int r0 = runs[runStarts + panel];
                    int r1 = panel + 1 < panels ? runs[runStarts + panel + 1] : runCount;
                    if (Vectorization.ENABLED) {
                        Panama.inputPanel(band, runs, r0, r1, patch, v, panel * panelStride + c * NR, vXi, scratch);
                    } else {
                        inputPanel(band, runs, r0, r1, patch, v, panel * panelStride + c * NR, vXi, scratch);
                    }
                }
            }
            // M_ξ = U_ξ · V_ξ, U_ξ shared by the block's panels
            int mxi = Conv2dWinogradStride2.spread(panels * rows * NR);
            float[] mm = Workspace.floats(SLOT_M, XI * mxi);
            int uRows = g * XI * uXi + (Vectorization.ENABLED ? m0 * dg : m0);
            for (int x = 0; x < XI; x++) {
                MicroKernel.panels(u, uRows + x * uXi, Vectorization.ENABLED ? dg : 1, Vectorization.ENABLED ? 1 : mg,
                        v, x * vXi, panelStride, dg, mm, x * mxi, rows * NR, NR, rows, false, panels);
            }
            // Y = Aᵀ·M·A + bias per tile and output channel, into the output planes
            Conv2dWinogradStride2.tileMap(t0, count, cols, perImage, tilesX, outH, outW, outC * outH * outW, runs,
                    mapAt);
            for (int m = 0; m < rows; m++) {
                int plane = outBase + (g * mg + m0 + m) * outH * outW;
                float b = bias == null ? 0f : bias[bo + g * mg + m0 + m];
                for (int t = 0; t < count; t += LANES) {
                    int at = ((t / NR) * rows + m) * NR + t % NR;
                    if (Vectorization.ENABLED) {
                        Panama.output(mm, at, mxi, b, scratch);
                    } else {
                        outputScalar(mm, at, mxi, b, scratch);
                    }
                    Conv2dWinogradStride2.scatter(scratch, runs, mapAt, t, Math.min(LANES, count - t), out, plane,
                            outW);
                }
            }
        });
    }

    private static int ceilDiv(int a, int b) {
        return (a + b - 1) / b;
    }

    /** The first of part {@code part}'s output channels of {@code mg} in {@code parts}: a multiple of the tile's rows. */
    private static int outputChannel(int mg, int part, int parts) {
        return (int) ((long) mg * part / parts) / MicroKernel.MR * MicroKernel.MR;
    }

    /**
     * Rows {@code first} to 5 of band {@code ty} (padded rows {@code 4ty} to {@code 4ty + 5}) of the
     * {@code inH × inW} plane at {@code x[plane...]}, padded by {@code top} and {@code left} (negative: cropped), into
     * {@code dst[at...]}, {@code 4·wp} floats a row, each through {@code row} (the padded row, zero outside x: only
     * its part inside x is written, so it is zeroed once per task) and split into its 4 column phases
     * ({@link #split}).
     */
    private static void band(float[] x, int plane, int inH, int inW, int top, int left, int ty, int first, int wp,
                             float[] dst, int at, float[] row, float[] halves) {
        int rowStride = 4 * wp;
        int from = Math.max(0, -left);
        int to0 = Math.min(Math.max(0, left), rowStride);
        int inside = Math.max(0, Math.min(inW - from, rowStride - to0));
        for (int u = first; u < 6; u++) {
            int to = at + u * rowStride;
            int r = 4 * ty + u - top;
            if (r < 0 || r >= inH) {
                java.util.Arrays.fill(dst, to, to + rowStride, 0f);
                continue;
            }
            System.arraycopy(x, plane + r * inW + from, row, to0, inside);
            split(row, halves, dst, to, wp);
        }
    }

    /**
     * {@code dst[to + b·wp + j] = row[4j + b]}, {@code b < 4}, {@code j < wp}: a padded row into its 4 column phases,
     * as two rounds of {@link MicroKernel#deinterleave} (the even and odd columns into {@code halves}, then the even
     * columns' even and odd ones, phases 0 and 2, and the odd columns', phases 1 and 3).
     */
    private static void split(float[] row, float[] halves, float[] dst, int to, int wp) {
        MicroKernel.deinterleave(row, 0, halves, 0, 2 * wp, 2 * wp);
        MicroKernel.deinterleave(halves, 0, dst, to, to + 2 * wp, wp);
        MicroKernel.deinterleave(halves, 2 * wp, dst, to + wp, to + 3 * wp, wp);
    }

    /**
     * Offsets of the patch elements from a tile's first element in a band: {@code [6b + a]} for patch row {@code a}
     * and column {@code b}, the padded input's row {@code 4ty + a} and column {@code 4tx + b}.
     */
    private static int[] patchOffsets(int rowStride, int wp) {
        int[] off = new int[XI];
        for (int b = 0; b < 6; b++) {
            for (int a = 0; a < 6; a++) {
                off[6 * b + a] = a * rowStride + (b % 4) * wp + b / 4;
            }
        }
        return off;
    }

    /**
     * The input transforms of one channel in one panel: {@code V_ξ = Bᵀ·d·B} of every ξ into
     * {@code v[ξ·vXi + to + col]} for the panel's columns (runs {@code [r0, r1)}, read from the channel's bands in
     * {@code x}): for each patch column {@code b}, Bᵀ over its six rows into {@code t[6i + b]}, then Bᵀ over each row
     * {@code i} of those.
     */
    private static void inputPanel(float[] x, int[] runs, int r0, int r1, int[] patch, float[] v, int to, int vXi,
                                   float[] t) {
        for (int r = r0; r < r1; r++) {
            int src = runs[3 * r + 1];
            int dst = to + runs[3 * r];
            for (int e = 0; e < runs[3 * r + 2]; e++) {
                int at = src + e;
                for (int b = 0; b < 6; b++) {
                    int pb = 6 * b;
                    transform(x[at + patch[pb]], x[at + patch[pb + 1]], x[at + patch[pb + 2]], x[at + patch[pb + 3]],
                            x[at + patch[pb + 4]], x[at + patch[pb + 5]], t, b, 6);
                }
                for (int i = 0; i < 6; i++) {
                    transform(t[6 * i], t[6 * i + 1], t[6 * i + 2], t[6 * i + 3], t[6 * i + 4], t[6 * i + 5], v,
                            6 * i * vXi + dst + e, vXi);
                }
            }
        }
    }

    /** Bᵀ times {@code (e0..e5)} into {@code out[at + j·stride]}, {@code j < 6}. */
    private static void transform(float e0, float e1, float e2, float e3, float e4, float e5, float[] out, int at,
                                  int stride) {
        float a = e4 - 4 * e2;
        float b = e3 - 4 * e1;
        float c = e4 - e2;
        float d = 2 * (e3 - e1);
        out[at] = 4 * e0 - 5 * e2 + e4;
        out[at + stride] = a + b;
        out[at + 2 * stride] = a - b;
        out[at + 3 * stride] = c + d;
        out[at + 4 * stride] = c - d;
        out[at + 5 * stride] = 4 * e1 - 5 * e3 + e5;
    }

    /**
     * The scalar twin of {@link Panama#output}: {@code y[4r·LANES + 4e + c] = bias + (Aᵀ·M·A)[r][c]} for the
     * {@code LANES} tiles at {@code m[at + e + ξ·xi]}.
     */
    private static void outputScalar(float[] m, int at, int xi, float bias, float[] y) {
        int t = 16 * LANES;
        for (int e = 0; e < LANES; e++) {
            // Aᵀ·M: column j's six values into the four rows
            for (int j = 0; j < 6; j++) {
                float m0 = m[at + e + j * xi];
                float m1 = m[at + e + (6 + j) * xi];
                float m2 = m[at + e + (12 + j) * xi];
                float m3 = m[at + e + (18 + j) * xi];
                float m4 = m[at + e + (24 + j) * xi];
                float m5 = m[at + e + (30 + j) * xi];
                float s12 = m1 + m2;
                float d12 = m1 - m2;
                float s34 = m3 + m4;
                float d34 = m3 - m4;
                y[t + j] = m0 + s12 + s34;
                y[t + 6 + j] = d12 + 2 * d34;
                y[t + 12 + j] = s12 + 4 * s34;
                y[t + 18 + j] = d12 + 8 * d34 + m5;
            }
            // (Aᵀ·M)·A: each row's six values into the four columns
            for (int r = 0; r < 4; r++) {
                float m0 = y[t + 6 * r];
                float m1 = y[t + 6 * r + 1];
                float m2 = y[t + 6 * r + 2];
                float m3 = y[t + 6 * r + 3];
                float m4 = y[t + 6 * r + 4];
                float m5 = y[t + 6 * r + 5];
                float s12 = m1 + m2;
                float d12 = m1 - m2;
                float s34 = m3 + m4;
                float d34 = m3 - m4;
                int row = 4 * r * LANES + 4 * e;
                y[row] = bias + (m0 + s12 + s34);
                y[row + 1] = bias + (d12 + 2 * d34);
                y[row + 2] = bias + (s12 + 4 * s34);
                y[row + 3] = bias + (d12 + 8 * d34 + m5);
            }
        }
    }

    /**
     * {@code U = G·w·Gᵀ} for every filter and input channel, as the A operands of the 36 products, or with
     * {@code swap} (backward-data) of the flipped filters with their channels swapped: per group {@code g}, output
     * channel {@code m} and input channel {@code d} of the correlation (forward: {@code k} and {@code c}; swapped:
     * {@code c} and {@code k}), {@code u[(g·36 + ξ)·xiStride + m·D + d]}, or on the scalar path column by column,
     * {@code u[(g·36 + ξ)·xiStride + d·M + m]} ({@code xiStride}: {@code M·D} {@link Conv2dWinogradStride2#spread
     * spread}, so that the 36 places each filter writes do not share a cache set).
     */
    private static float[] transformFilters(Conv2dCpu.Operands o, boolean swap) {
        Conv2dProblem p = o.p;
        int kg = p.kPerGroup();
        int cg = p.cPerGroup();
        int m = swap ? cg : kg;
        int d = swap ? kg : cg;
        int groups = p.groups();
        int xiStride = Conv2dWinogradStride2.spread(m * d);
        float[] u = Workspace.floats(SLOT_FILTERS, groups * XI * xiStride);
        int rows = groups * m;
        // consecutive input channels d of the correlation: 9 floats apart in w, or (swapped) a filter, 9·Cg, apart
        int laneStride = swap ? 9 * cg : 9;
        int workers = Parallel.workers(rows, 700.0 * rows * d, 1 << 16);
        Parallel.runSmall(rows, workers, (worker, row) -> {
            int g = row / m;
            int mm = row % m;
            int src = o.wo + 9 * (swap ? g * kg * cg + mm : (g * kg + mm) * cg);
            int at = g * XI * xiStride + (Vectorization.ENABLED ? mm * d : mm);
            int dStride = Vectorization.ENABLED ? 1 : m;
            int dd = 0;
            if (Vectorization.ENABLED) {
                float[] taps = Workspace.floats(SLOT_OUT, 9 * LANES);
                for (; dd + LANES <= d; dd += LANES) {
                    Panama.filterChannels(o.w, src + dd * laneStride, laneStride, swap, taps, u, at + dd, xiStride);
                }
            }
            for (; dd < d; dd++) {
                filterChannel(o.w, src + dd * laneStride, swap, u, at + dd * dStride, xiStride);
            }
        });
        return u;
    }

    /** Tap {@code (r, s)}'s place in a 3 × 3 filter, or in the flipped one's. */
    private static int tap(int r, int s, boolean flip) {
        return flip ? (2 - r) * 3 + 2 - s : r * 3 + s;
    }

    /**
     * One filter's transform {@code U = G·w·Gᵀ} ({@code flip}: of the filter turned by 180°): element ξ at
     * {@code u[at + ξ·xiStride]}; in double, rounded once.
     */
    private static void filterChannel(float[] w, int src, boolean flip, float[] u, int at, int xiStride) {
        for (int i = 0; i < 6; i++) {
            // row i of G·w, then that row times Gᵀ (no scratch array: this runs once per filter and channel)
            double g0 = rowOfGw(w, src, i, 0, flip);
            double g1 = rowOfGw(w, src, i, 1, flip);
            double g2 = rowOfGw(w, src, i, 2, flip);
            for (int j = 0; j < 6; j++) {
                u[at + (6 * i + j) * xiStride] = (float) (g0 * G[j][0] + g1 * G[j][1] + g2 * G[j][2]);
            }
        }
    }

    /** Element {@code (i, s)} of {@code G·w} ({@code flip}: of the filter turned by 180°). */
    private static double rowOfGw(float[] w, int src, int i, int s, boolean flip) {
        return G[i][0] * w[src + tap(0, s, flip)] + G[i][1] * w[src + tap(1, s, flip)]
                + G[i][2] * w[src + tap(2, s, flip)];
    }

    /** G, row by row. */
    private static final double[][] G = {
        {0.25, 0, 0},
        {-1.0 / 6, -1.0 / 6, -1.0 / 6},
        {-1.0 / 6, 1.0 / 6, -1.0 / 6},
        {1.0 / 24, 1.0 / 12, 1.0 / 6},
        {1.0 / 24, -1.0 / 12, 1.0 / 6},
        {0, 0, 1},
    };

    /** The vector transforms; loaded only on the vector path. */
    private static final class Panama {
        private static final VectorSpecies<Float> S = FloatVector.SPECIES_PREFERRED;

        /**
         * The vector twin of {@link Conv2dWinograd4x4#inputPanel} ({@code t}: 36 vectors): a vector of consecutive
         * tiles of a run at a time, the last one overlapping the one before it in a run of a vector or more. A run
         * shorter than a vector stores a whole vector: its columns past the run are overwritten by the next run, or
         * past the panel's row by the next row (the next channel's, written after it; the last channel's spill into
         * the vector of slack after the panel); its loads past the run read further along the band (or its slack),
         * never past it.
         */
        static void inputPanel(float[] x, int[] runs, int r0, int r1, int[] patch, float[] v, int to, int vXi,
                               float[] t) {
            int l = S.length();
            for (int r = r0; r < r1; r++) {
                int src = runs[3 * r + 1];
                int dst = to + runs[3 * r];
                int len = runs[3 * r + 2];
                for (int e = 0; ; e += l) {
                    if (e > len - l) {
                        e = Math.max(0, len - l);
                    }
                    int at = src + e;
                    for (int b = 0; b < 6; b++) {
                        int pb = 6 * b;
                        transform(FloatVector.fromArray(S, x, at + patch[pb]),
                                FloatVector.fromArray(S, x, at + patch[pb + 1]),
                                FloatVector.fromArray(S, x, at + patch[pb + 2]),
                                FloatVector.fromArray(S, x, at + patch[pb + 3]),
                                FloatVector.fromArray(S, x, at + patch[pb + 4]),
                                FloatVector.fromArray(S, x, at + patch[pb + 5]), t, b * l, 6 * l);
                    }
                    for (int i = 0, out = dst + e; i < 6; i++, out += 6 * vXi) {
                        int ti = 6 * i * l;
                        transform(FloatVector.fromArray(S, t, ti), FloatVector.fromArray(S, t, ti + l),
                                FloatVector.fromArray(S, t, ti + 2 * l), FloatVector.fromArray(S, t, ti + 3 * l),
                                FloatVector.fromArray(S, t, ti + 4 * l), FloatVector.fromArray(S, t, ti + 5 * l), v,
                                out, vXi);
                    }
                    if (e + l >= len) {
                        break;
                    }
                }
            }
        }

        /** The vector twin of {@link Conv2dWinograd4x4#transform}. */
        private static void transform(FloatVector e0, FloatVector e1, FloatVector e2, FloatVector e3, FloatVector e4,
                                      FloatVector e5, float[] out, int at, int stride) {
            FloatVector a = e4.sub(e2.mul(4f));
            FloatVector b = e3.sub(e1.mul(4f));
            FloatVector c = e4.sub(e2);
            FloatVector d = e3.sub(e1);
            d = d.add(d);
            e0.mul(4f).sub(e2.mul(5f)).add(e4).intoArray(out, at);
            a.add(b).intoArray(out, at + stride);
            a.sub(b).intoArray(out, at + 2 * stride);
            c.add(d).intoArray(out, at + 3 * stride);
            c.sub(d).intoArray(out, at + 4 * stride);
            e1.mul(4f).sub(e3.mul(5f)).add(e5).intoArray(out, at + 5 * stride);
        }

        /** {@code COEF[ξ·9 + t]}: the weight of filter tap {@code t = 3r + s} in element {@code ξ = 6i + j}. */
        private static final float[] COEF = new float[XI * 9];

        static {
            for (int x = 0; x < XI; x++) {
                for (int t = 0; t < 9; t++) {
                    COEF[x * 9 + t] = (float) (G[x / 6][t / 3] * G[x % 6][t % 3]);
                }
            }
        }

        /**
         * The vector twin of {@link Conv2dWinograd4x4#filterChannel} for {@code L} filters {@code laneStride} apart
         * (lane {@code e} holding filter {@code e}'s taps): each ξ is the taps times {@link #COEF}, in float.
         */
        static void filterChannels(float[] w, int src, int laneStride, boolean flip, float[] taps, float[] u, int at,
                                   int xiStride) {
            int l = S.length();
            for (int t = 0; t < 9; t++) {
                int from = src + tap(t / 3, t % 3, flip);
                for (int e = 0; e < l; e++) {
                    taps[t * l + e] = w[from + e * laneStride];
                }
            }
            FloatVector w0 = FloatVector.fromArray(S, taps, 0);
            FloatVector w1 = FloatVector.fromArray(S, taps, l);
            FloatVector w2 = FloatVector.fromArray(S, taps, 2 * l);
            FloatVector w3 = FloatVector.fromArray(S, taps, 3 * l);
            FloatVector w4 = FloatVector.fromArray(S, taps, 4 * l);
            FloatVector w5 = FloatVector.fromArray(S, taps, 5 * l);
            FloatVector w6 = FloatVector.fromArray(S, taps, 6 * l);
            FloatVector w7 = FloatVector.fromArray(S, taps, 7 * l);
            FloatVector w8 = FloatVector.fromArray(S, taps, 8 * l);
            for (int x = 0, c = 0; x < XI; x++, c += 9) {
                w0.mul(COEF[c]).add(w1.mul(COEF[c + 1])).add(w2.mul(COEF[c + 2]))
                        .add(w3.mul(COEF[c + 3])).add(w4.mul(COEF[c + 4])).add(w5.mul(COEF[c + 5]))
                        .add(w6.mul(COEF[c + 6])).add(w7.mul(COEF[c + 7])).add(w8.mul(COEF[c + 8]))
                        .intoArray(u, at + x * xiStride);
            }
        }

        /**
         * {@code Y = Aᵀ·M·A + bias} for {@code LANES} tiles ({@code M} element {@code ξ} at {@code m[at + ξ·xi]}):
         * {@code Aᵀ·M} into {@code y[16·LANES...]} (four rows of six), then each row times A: the four column
         * vectors of output row {@code r} interleaved (two rounds of zips) into {@code y[4r·LANES...]}, tile
         * {@code e}'s four outputs at {@code 4e} to {@code 4e + 3}, as the output row holds them.
         */
        static void output(float[] m, int at, int xi, float bias, float[] y) {
            int l = S.length();
            int tmp = 16 * l;
            for (int j = 0; j < 6; j++) {
                FloatVector m0 = FloatVector.fromArray(S, m, at + j * xi);
                FloatVector m1 = FloatVector.fromArray(S, m, at + (6 + j) * xi);
                FloatVector m2 = FloatVector.fromArray(S, m, at + (12 + j) * xi);
                FloatVector m3 = FloatVector.fromArray(S, m, at + (18 + j) * xi);
                FloatVector m4 = FloatVector.fromArray(S, m, at + (24 + j) * xi);
                FloatVector m5 = FloatVector.fromArray(S, m, at + (30 + j) * xi);
                FloatVector s12 = m1.add(m2);
                FloatVector d12 = m1.sub(m2);
                FloatVector s34 = m3.add(m4);
                FloatVector d34 = m3.sub(m4);
                m0.add(s12).add(s34).intoArray(y, tmp + j * l);
                d12.add(d34.mul(2f)).intoArray(y, tmp + (6 + j) * l);
                s12.add(s34.mul(4f)).intoArray(y, tmp + (12 + j) * l);
                d12.add(d34.mul(8f)).add(m5).intoArray(y, tmp + (18 + j) * l);
            }
            FloatVector b = FloatVector.broadcast(S, bias);
            for (int r = 0; r < 4; r++) {
                int row = tmp + 6 * r * l;
                FloatVector m0 = FloatVector.fromArray(S, y, row);
                FloatVector m1 = FloatVector.fromArray(S, y, row + l);
                FloatVector m2 = FloatVector.fromArray(S, y, row + 2 * l);
                FloatVector m3 = FloatVector.fromArray(S, y, row + 3 * l);
                FloatVector m4 = FloatVector.fromArray(S, y, row + 4 * l);
                FloatVector m5 = FloatVector.fromArray(S, y, row + 5 * l);
                FloatVector s12 = m1.add(m2);
                FloatVector d12 = m1.sub(m2);
                FloatVector s34 = m3.add(m4);
                FloatVector d34 = m3.sub(m4);
                FloatVector c0 = b.add(m0.add(s12).add(s34));
                FloatVector c1 = b.add(d12.add(d34.mul(2f)));
                FloatVector c2 = b.add(s12.add(s34.mul(4f)));
                FloatVector c3 = b.add(d12.add(d34.mul(8f)).add(m5));
                // lanes e of c0..c3 to 4e..4e+3: zip c0 with c2 and c1 with c3, then the two results
                FloatVector lo02 = c0.rearrange(Lanes.ZIP_LOW, c2);
                FloatVector hi02 = c0.rearrange(Lanes.ZIP_HIGH, c2);
                FloatVector lo13 = c1.rearrange(Lanes.ZIP_LOW, c3);
                FloatVector hi13 = c1.rearrange(Lanes.ZIP_HIGH, c3);
                lo02.rearrange(Lanes.ZIP_LOW, lo13).intoArray(y, 4 * r * l);
                lo02.rearrange(Lanes.ZIP_HIGH, lo13).intoArray(y, (4 * r + 1) * l);
                hi02.rearrange(Lanes.ZIP_LOW, hi13).intoArray(y, (4 * r + 2) * l);
                hi02.rearrange(Lanes.ZIP_HIGH, hi13).intoArray(y, (4 * r + 3) * l);
            }
        }
    }
}
