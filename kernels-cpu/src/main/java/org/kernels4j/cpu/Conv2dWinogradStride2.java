package org.kernels4j.cpu;

import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorSpecies;

import org.kernels4j.spi.Conv2dProblem;

/**
 * Winograd's F(4×4, 2×2) for the NCHW 3 × 3 forward convolutions with stride 2 (no dilation, not depthwise). Part
 * of {@link Conv2dCpu}'s story: its forward dispatches here when the tuning knob {@code WINOGRAD} is
 * {@link Conv2dCpu#WINOGRAD_WITH_STRIDE_2}, the default (conv-s2 on the 2-core development host: 0.83× the direct
 * path's time); {@code TILES} sets the tiles per task.
 *
 * <p><b>Why it works.</b> Split the padded input into its 2 × 2 stride phases {@code q = (pr, pc)}
 * ("space to depth"): {@code P_{c,q}[i][j] = x_pad[2i + pr][2j + pc]}. A stride-2 3 × 3 filter is then a stride-1
 * 2 × 2 filter over the {@code 4·C} phase planes, {@code w'_{c,q}[ρ][σ] = w[c][2ρ + pr][2σ + pc]} (zero where
 * {@code 2ρ + pr} or {@code 2σ + pc} is past 2: 9 of its 16 taps are the filter's). Stride-1 2 × 2 correlations take
 * Winograd's F(4×4, 2×2): each 4 × 4 block of outputs ("tile") needs a 5 × 5 patch {@code d} of each phase plane;
 * with {@code U = G·w'·Gᵀ} and {@code V = Bᵀ·d·B} (5 × 5 each), {@code Y = Aᵀ·(Σ_{c,q} U ⊙ V)·A}. The sum is, for
 * each of the 25 positions ξ of the transform, a product {@code M_ξ[out × tiles] = U_ξ[out × 4C] · V_ξ[4C × tiles]}.
 * G's last row, {@code (0, 1)}, picks the second row of w' (Gᵀ's last column its second column), which the phases
 * with {@code pr = 1} ({@code pc = 1}) do not have: U_ξ of the last row (column) of ξ is zero there for every filter,
 * and those products skip those phases ({@link #BLOCK}): 16·4 + 4·2 + 4·2 + 1 = 81 multiplies per tile and channel pair where the direct method takes
 * 16·9 = 144 (1.78× fewer), for transforms of a few adds each. The points are 0, 1, -1, 2 and ∞:
 * <pre>
 *   Bᵀ = [2 -1 -2  1 0;  0  2  1 -1 0;  0 -2  3 -1 0;  0 -1  0  1 0;  0  2 -1 -2 1]
 *   G  = [½ 0;  ½ ½;  ⅙ -⅙;  ⅙ ⅓;  0 1]
 *   Aᵀ = [1 1 1 1 0;  0 1 -1 2 0;  0 1 1 4 0;  0 1 -1 8 1]
 * </pre>
 * (Bᵀ's rows scaled to small integers, G's rows by the inverse). Against a float64 reference the error stays near
 * 1e-6 of the result's norm, a few times the direct method's.
 *
 * <p><b>Layout.</b> Tile {@code (ty, tx)} reads padded rows {@code 8ty} to {@code 8ty + 9} and columns {@code 8tx}
 * to {@code 8tx + 9}: split each padded row into its 8 column phases ({@link RowSplit}) and every patch element of
 * every stride phase is at a fixed offset from the tile's first element, so a vector of consecutive tiles of a tile
 * row is a vector load. The tiles of a group are numbered across images; a task takes a run of whole
 * {@code NR}-tile panels of them. Channel by channel it splits the bands of padded rows its tile rows read (in L1)
 * and computes all 25 {@code V_ξ} of its panels ({@code Bᵀ} over each patch column, then over each row), then runs
 * the 25 products with the {@link MicroKernel} ({@code U_ξ} shared by its panels), and last transforms each output
 * channel's 25 products per tile straight into the output planes.
 *
 * <p>Where the time goes (conv-s2 on the development host, JFR over 800 calls of 5.0 ms): the products 60% of the
 * samples, the input transforms 14%, the row split 11%, the output transforms 8%, the filter transforms 2%, the
 * workers waiting for each other 2.5%. The filter transforms were 10% when they went two channels' four phases to a
 * vector (nine multiplies each, a quarter of them by zero, stored to 25 places); a vector of channels of one phase
 * takes each tap once.
 *
 * <p>Where it applies: see {@link #applies}; the filter transforms ({@code 100·C·K} floats) are bounded, and small
 * outputs, whose tiles would mostly compute outputs past the edge, stay direct.
 */
final class Conv2dWinogradStride2 {

    /** Most floats of the filter transforms ({@code 100·Cg·K}; 64 MiB). */
    static final long FILTER_FLOATS = 16L << 20;

    private static final int NR = MicroKernel.NR;
    private static final int LANES = Vectorization.FLOAT_LANES;

    /** Positions ξ of the 5 × 5 transforms. */
    private static final int XI = 25;

    /** Multiplies per 4 × 4 tile and channel pair: the products' depths over the ξ ({@link #BLOCK}). */
    private static final int MULTIPLIES = 81;

    private static final int SLOT_LAST_CHANNEL = 4;
    private static final int SLOT_V = 5;
    private static final int SLOT_M = 6;
    private static final int SLOT_OUT = 7;
    private static final int SLOT_FILTERS = Workspace.TASK_SLOTS + 3;
    private static final int SLOT_BANDS = 8;
    private static final int SLOT_ROW = 9;

    /** Most floats of a task's {@code V_ξ} panels (16 MiB): bounds the panels per task of deep problems. */
    private static final long V_FLOATS = 4L << 20;

    private Conv2dWinogradStride2() {
    }

    /**
     * Whether the forward of {@code p} runs here: NCHW, 3 × 3, stride 2, no dilation, not depthwise, filter
     * transforms within {@link #FILTER_FLOATS}, and outputs large enough that the tiles' multiplies, counting those of
     * the outputs past the edge, stay under the direct method's.
     */
    static boolean applies(Conv2dProblem p) {
        if (p.format() != org.kernels4j.Conv2d.Format.NCHW || p.r() != 3 || p.s() != 3 || p.strideH() != 2
                || p.strideW() != 2 || p.dilationH() != 1 || p.dilationW() != 1 || p.depthwise()) {
            return false;
        }
        if (100L * p.cPerGroup() * p.k() > FILTER_FLOATS || p.p() == 0 || p.q() == 0) {
            return false;
        }
        long computed = 16L * ((p.p() + 3) / 4) * ((p.q() + 3) / 4);
        return computed * MULTIPLIES <= 144L * p.p() * p.q();
    }

    /** {@code y = conv(x, w) + bias}, tasks of about {@code tilesPerTask} tiles (whole panels). */
    static void forward(Conv2dCpu.Operands o, int tilesPerTask) {
        Conv2dProblem p = o.p;
        int images = p.n();
        if (images == 0) {
            return;
        }
        int groups = p.groups();
        int dg = p.cPerGroup();
        int mg = p.kPerGroup();
        int depth = 4 * dg;
        int outH = p.p();
        int outW = p.q();
        int tilesY = (outH + 3) / 4;
        int tilesX = (outW + 3) / 4;
        int wp = tilesX + 1;
        int rowStride = 8 * wp;
        int bandStride = 10 * rowStride;
        int perImage = tilesY * tilesX;
        int tiles = images * perImage;
        int panelCount = (tiles + NR - 1) / NR;
        int maxPanels = (int) Math.max(1, V_FLOATS / ((long) XI * depth * NR));
        int blocks = Math.max((panelCount + maxPanels - 1) / maxPanels,
                Math.min(panelCount, (tiles + tilesPerTask / 2) / Math.max(1, tilesPerTask)));
        blocks = Math.max(1, blocks);
        int uXi = spread(mg * depth);
        float[] u = transformFilters(o, uXi);
        RowSplit split = new RowSplit(p, wp);
        int[] patch = patchOffsets(rowStride, wp);
        int tasks = groups * blocks;
        int nBlocks = blocks;
        double flops = 200.0 * mg * dg * tiles * groups;
        int workers = Parallel.workers(tasks, flops, Conv2dCpu.MIN_FLOPS_PER_THREAD);
        Parallel.run(tasks, workers, (worker, task) -> {
            int blk = task % nBlocks;
            int g = task / nBlocks;
            int panel0 = (int) ((long) panelCount * blk / nBlocks);
            int panels = (int) ((long) panelCount * (blk + 1) / nBlocks) - panel0;
            int t0 = panel0 * NR;
            int count = Math.min(panels * NR, tiles - t0);
            int cols = panels * NR;
            // the block's tile rows (across images), each one band of ten padded input rows per channel; its runs
            // of tiles (tiles of one tile row, within one panel): column in the panel, source (in the bands), length;
            // then where each tile writes its outputs
            int row0 = t0 / tilesX;
            int bands = (t0 + count - 1) / tilesX - row0 + 1;
            int runStarts = 3 * (count + panels);
            int mapAt = runStarts + panels + 1;
            int[] runs = Workspace.ints(mapAt + 2 * cols);
            int runCount = tileRuns(t0, count, tilesX, row0, bandStride, runs, runStarts);
            float[] band = Workspace.floats(SLOT_BANDS, bands * bandStride + LANES);
            float[] paddedRow = Workspace.floats(SLOT_ROW, split.rowFloats());
            java.util.Arrays.fill(paddedRow, 0, split.rowFloats(), 0f);
            // V_ξ for every ξ: panel after panel, each with a vector of slack after it (see inputPanel)
            int panelStride = depth * NR + LANES;
            int vXi = panels * panelStride;
            float[] v = Workspace.floats(SLOT_V, XI * vXi);
            float[] scratch = Workspace.floats(SLOT_OUT, 36 * LANES);
            float[] last = Vectorization.ENABLED ? Workspace.floats(SLOT_LAST_CHANNEL, XI * 4 * LAST_ROW) : null;
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
                    split.band(o.x, o.xo + (n * p.c() + channel) * p.h() * p.w(), ty, first, band, r * bandStride,
                            paddedRow);
                }
                for (int panel = 0; panel < panels; panel++) {
                    int r0 = runs[runStarts + panel];
                    int r1 = panel + 1 < panels ? runs[runStarts + panel + 1] : runCount;
                    if (!Vectorization.ENABLED) {
                        inputPanel(band, runs, r0, r1, patch, v, panel * panelStride + c * NR, dg * NR, vXi, scratch);
                    } else if (c < dg - 1) {
                        Panama.inputPanel(band, runs, r0, r1, patch, v, panel * panelStride + c * NR, dg * NR, vXi,
                                scratch);
                    } else {
                        Panama.inputPanel(band, runs, r0, r1, patch, last, 0, LAST_ROW, 4 * LAST_ROW, scratch);
                        lastChannel(last, v, panel * panelStride + c * NR, dg * NR, vXi);
                    }
                }
            }
            // M_ξ = U_ξ · V_ξ over the phase blocks where U_ξ is not zero, U_ξ shared by the block's panels
            int mxi = spread(panels * mg * NR);
            float[] mm = Workspace.floats(SLOT_M, XI * mxi);
            int uGroup = g * XI * uXi;
            for (int x = 0; x < XI; x++) {
                int from = FIRST_BLOCK[x] * dg;
                int len = (LAST_BLOCK[x] - FIRST_BLOCK[x]) * dg;
                MicroKernel.panels(u, uGroup + x * uXi + (Vectorization.ENABLED ? from : from * mg),
                        Vectorization.ENABLED ? depth : 1, Vectorization.ENABLED ? 1 : mg, v, x * vXi + from * NR,
                        panelStride, len, mm, x * mxi, mg * NR, NR, mg, false, panels);
            }
            // Y = Aᵀ·M·A + bias per tile and output channel, into the output planes
            tileMap(t0, count, cols, perImage, tilesX, outH, outW, p.k() * outH * outW, runs, mapAt);
            for (int m = 0; m < mg; m++) {
                int plane = o.yo + (g * mg + m) * outH * outW;
                float b = o.bias == null ? 0f : o.bias[o.bo + g * mg + m];
                for (int t = 0; t < count; t += LANES) {
                    int at = ((t / NR) * mg + m) * NR + t % NR;
                    if (Vectorization.ENABLED) {
                        Panama.output(mm, at, mxi, b, scratch);
                    } else {
                        outputScalar(mm, at, mxi, b, scratch);
                    }
                    scatter(scratch, runs, mapAt, t, Math.min(LANES, count - t), o.y, plane, outW);
                }
            }
        });
    }

    /**
     * Splits padded input rows into their 8 column phases: phase {@code b} of a row at {@code b·wp}, its element
     * {@code j} holding {@code x_pad[row][8j + b]} (zero outside x). A band is the ten padded rows {@code 8ty} to
     * {@code 8ty + 9} of one channel, {@code 8wp} floats apart: the patches of tile row {@code ty}, at fixed offsets
     * from each tile's first element ({@link #patchOffsets}), so that a vector of consecutive tiles is a vector load.
     * Split per channel just before the transforms read them (in L1), not all at once into a copy of the input (which
     * streamed 9 MB through L3 for conv-s2).
     */
    private static final class RowSplit {
        private final int inH;
        private final int inW;
        private final int top;
        private final int left;
        private final int wp;

        RowSplit(Conv2dProblem p, int wp) {
            this.inH = p.h();
            this.inW = p.w();
            this.top = p.padTop();
            this.left = p.padLeft();
            this.wp = wp;
        }

        /**
         * Rows {@code first} to 9 of band {@code ty} of the plane at {@code x[plane...]} into {@code dst[at...]},
         * each through {@code row} ({@link #rowFloats} floats, zero outside the row's part of x): the padded row laid
         * out in full, then split; up to 8 floats past the band's end are written too (the next band, or the vector
         * of slack after the last, takes them).
         */
        void band(float[] x, int plane, int ty, int first, float[] dst, int at, float[] row) {
            int rowStride = 8 * wp;
            int inside = Math.max(0, Math.min(inW, rowStride - left));
            for (int u = first; u < 10; u++) {
                int to = at + u * rowStride;
                int r = 8 * ty + u - top;
                if (r < 0 || r >= inH) {
                    java.util.Arrays.fill(dst, to, to + rowStride, 0f);
                    continue;
                }
                System.arraycopy(x, plane + r * inW, row, Math.min(left, rowStride), inside);
                split(row, dst, to, wp);
            }
        }

        /**
         * Floats of the padded-row scratch: 8·wp, rounded up to whole blocks of 64; zeroed once per task, as
         * {@link #band} only ever writes the part of a row inside x.
         */
        int rowFloats() {
            return (wp + 7) / 8 * 64;
        }

        /**
         * {@code dst[to + b·wp + j] = row[8j + b]}: a padded row into its 8 column phases, as 8 × 8 transposes of 8
         * columns {@code j} (64 floats) each ({@link MicroKernel#transpose8}); the blocks from the last to the first,
         * so that a block's lanes past {@code wp} (into the next phase) are overwritten by the block before it.
         */
        static void split(float[] row, float[] dst, int to, int wp) {
            for (int j = (wp - 1) / 8 * 8; j >= 0; j -= 8) {
                MicroKernel.transpose8(row, 8 * j, 8, dst, to + j, wp);
            }
        }
    }

    /**
     * Lists the runs of tiles {@code [t0, t0 + count)} (numbered across images, tile rows {@code row0} on in bands
     * {@code bandStride} apart): {@code runs[3r..3r+2]} = column in its panel, source (its first tile's first element
     * in the bands), length; {@code runs[starts + panel]} = the panel's first run. Returns the number of runs.
     */
    static int tileRuns(int t0, int count, int tilesX, int row0, int bandStride, int[] runs, int starts) {
        int r = 0;
        int t = 0;
        while (t < count) {
            int col = t % NR;
            if (col == 0) {
                runs[starts + t / NR] = r;
            }
            int tile = t0 + t;
            int row = tile / tilesX;
            int tx = tile - row * tilesX;
            int len = Math.min(Math.min(tilesX - tx, NR - col), count - t);
            runs[3 * r] = col;
            runs[3 * r + 1] = (row - row0) * bandStride + tx;
            runs[3 * r + 2] = len;
            r++;
            t += len;
        }
        return r;
    }

    /**
     * Floats a row of the last channel's transforms takes in its scratch on the vector path: a panel's row and a
     * vector of slack after it.
     */
    private static final int LAST_ROW = NR + LANES;

    /**
     * Copies the vector path's transforms of a block's last channel from their scratch ({@code last}: row
     * {@code (ξ, BLOCK[q])} at {@code (4ξ + BLOCK[q])·LAST_ROW}) to their rows of V. The vector transforms write up to a
     * vector past a panel's row, which is the next row's start: the same phase's next channel, written later, for
     * every channel but a block's last, whose next row (the next block's first channel) was written first.
     */
    private static void lastChannel(float[] last, float[] v, int to, int phaseRows, int vXi) {
        for (int x = 0; x < XI; x++) {
            for (int b = 0; b < 4; b++) {
                System.arraycopy(last, (4 * x + b) * LAST_ROW, v, x * vXi + to + b * phaseRows, NR);
            }
        }
    }

    /**
     * Offsets of the patch elements from a tile's first element in a band ({@link RowSplit}):
     * {@code [25q + 5b + a]} for stride phase {@code q = 2pr + pc}, patch row {@code a} and column {@code b}, the
     * padded input's row {@code 8ty + 2a + pr} and column {@code 8tx + 2b + pc}.
     */
    private static int[] patchOffsets(int rowStride, int wp) {
        int[] off = new int[100];
        for (int q = 0; q < 4; q++) {
            for (int b = 0; b < 5; b++) {
                for (int a = 0; a < 5; a++) {
                    int row = 2 * a + (q >> 1);
                    int col = 2 * b + (q & 1);
                    off[25 * q + 5 * b + a] = row * rowStride + (col % 8) * wp + col / 8;
                }
            }
        }
        return off;
    }

    /**
     * The input transforms of one channel's four stride phases in one panel: {@code V_ξ = Bᵀ·d·B} of every ξ into
     * {@code v[ξ·vXi + to + BLOCK[q]·phaseRows + col]} for phase {@code q = 2pr + pc} ({@link #BLOCK}) and the panel's
     * columns (runs {@code [r0, r1)}, read from the channel's bands in {@code x}): for each patch column {@code b}, Bᵀ
     * over its five rows into {@code t[5i + b]}, then Bᵀ over each row {@code i} of those.
     */
    private static void inputPanel(float[] x, int[] runs, int r0, int r1, int[] patch, float[] v, int to,
                                   int phaseRows, int vXi, float[] t) {
        for (int q = 0; q < 4; q++) {
            int pq = 25 * q;
            for (int r = r0; r < r1; r++) {
                int src = runs[3 * r + 1];
                int dst = to + BLOCK[q] * phaseRows + runs[3 * r];
                for (int e = 0; e < runs[3 * r + 2]; e++) {
                    int at = src + e;
                    for (int b = 0; b < 5; b++) {
                        int pb = pq + 5 * b;
                        transform(x[at + patch[pb]], x[at + patch[pb + 1]], x[at + patch[pb + 2]],
                                x[at + patch[pb + 3]], x[at + patch[pb + 4]], t, b, 5);
                    }
                    for (int i = 0; i < 5; i++) {
                        transform(t[5 * i], t[5 * i + 1], t[5 * i + 2], t[5 * i + 3], t[5 * i + 4], v,
                                5 * i * vXi + dst + e, vXi);
                    }
                }
            }
        }
    }

    /** Bᵀ times {@code (e0..e4)} into {@code out[at + j·stride]}, {@code j < 5}. */
    private static void transform(float e0, float e1, float e2, float e3, float e4, float[] out, int at, int stride) {
        out[at] = 2 * e0 - e1 - 2 * e2 + e3;
        out[at + stride] = 2 * e1 + e2 - e3;
        out[at + 2 * stride] = 3 * e2 - 2 * e1 - e3;
        out[at + 3 * stride] = e3 - e1;
        out[at + 4 * stride] = 2 * e1 - e2 - 2 * e3 + e4;
    }

    /**
     * Where each tile of a block writes, from {@code map[at]} on: {@code map[at + 2t]} the offset of its top-left
     * output from the image's first output plane's start ({@code n·K·P·Q + 4ty·Q + 4tx}), {@code map[at + 2t + 1]}
     * its rows and columns inside the output ({@code rows << 3 | columns}, each 1..4); -1 past the block's tiles.
     */
    static void tileMap(int t0, int count, int cols, int perImage, int tilesX, int outH, int outW, int imageStride,
                        int[] map, int at) {
        for (int t = 0; t < cols; t++) {
            if (t >= count) {
                map[at + 2 * t] = -1;
                continue;
            }
            int tile = t0 + t;
            int n = tile / perImage;
            int within = tile - n * perImage;
            int oy = 4 * (within / tilesX);
            int ox = 4 * (within % tilesX);
            map[at + 2 * t] = n * imageStride + oy * outW + ox;
            map[at + 2 * t + 1] = Math.min(4, outH - oy) << 3 | Math.min(4, outW - ox);
        }
    }

    /**
     * Writes the 4 × 4 outputs of tiles {@code [t, t + lanes)} ({@code y}: output {@code (r, c)} of tile {@code e} at
     * {@code 4r·LANES + 4e + c}, each output row of the tiles in the order of the output row, see
     * {@link Panama#output}). A run of whole tiles side by side in one tile row goes in four copies, one an output row;
     * the rest tile by tile. Written element by element, the scatter took 7% of conv-s2's forward.
     */
    static void scatter(float[] y, int[] map, int at, int t, int lanes, float[] out, int plane, int outW) {
        int e = 0;
        while (e < lanes) {
            int base = map[at + 2 * (t + e)];
            int shape = map[at + 2 * (t + e) + 1];
            int o = plane + base;
            if (shape == FULL_TILE) {
                // whole tiles in one tile row: each one's top-left output four places right of the one before
                int end = e + 1;
                while (end < lanes && map[at + 2 * (t + end)] == base + 4 * (end - e)
                        && map[at + 2 * (t + end) + 1] == FULL_TILE) {
                    end++;
                }
                for (int r = 0; r < 4; r++, o += outW) {
                    System.arraycopy(y, 4 * r * LANES + 4 * e, out, o, 4 * (end - e));
                }
                e = end;
                continue;
            }
            int rows = shape >> 3;
            int cols = shape & 7;
            for (int r = 0; r < rows; r++, o += outW) {
                for (int c = 0; c < cols; c++) {
                    out[o + c] = y[4 * r * LANES + 4 * e + c];
                }
            }
            e++;
        }
    }

    /** The shape code ({@code rows << 3 | columns}) of a tile whose 4 × 4 outputs are all inside y. */
    private static final int FULL_TILE = 4 << 3 | 4;

    /**
     * The scalar twin of {@link Panama#output}: {@code y[4r·LANES + 4e + c] = bias + (Aᵀ·M·A)[r][c]} for the
     * {@code LANES} tiles at {@code m[at + e + ξ·xi]}.
     */
    private static void outputScalar(float[] m, int at, int xi, float bias, float[] y) {
        int t = 16 * LANES;
        for (int e = 0; e < LANES; e++) {
            // Aᵀ·M: column j's five values into the four rows
            for (int j = 0; j < 5; j++) {
                float m0 = m[at + e + j * xi];
                float m1 = m[at + e + (5 + j) * xi];
                float m2 = m[at + e + (10 + j) * xi];
                float m3 = m[at + e + (15 + j) * xi];
                float m4 = m[at + e + (20 + j) * xi];
                float s = m1 + m2;
                float d = m1 - m2;
                y[t + j] = m0 + s + m3;
                y[t + 5 + j] = d + 2 * m3;
                y[t + 10 + j] = s + 4 * m3;
                y[t + 15 + j] = d + 8 * m3 + m4;
            }
            // (Aᵀ·M)·A: each row's five values into the four columns
            for (int r = 0; r < 4; r++) {
                float m0 = y[t + 5 * r];
                float m1 = y[t + 5 * r + 1];
                float m2 = y[t + 5 * r + 2];
                float m3 = y[t + 5 * r + 3];
                float m4 = y[t + 5 * r + 4];
                float s = m1 + m2;
                float d = m1 - m2;
                int row = 4 * r * LANES + 4 * e;
                y[row] = bias + (m0 + s + m3);
                y[row + 1] = bias + (d + 2 * m3);
                y[row + 2] = bias + (s + 4 * m3);
                y[row + 3] = bias + (d + 8 * m3 + m4);
            }
        }
    }

    /**
     * {@code U = G·w'·Gᵀ} for every filter and stride phase, as the A operands of the 25 products:
     * {@code u[(g·25 + ξ)·xiStride + k·D + d]} for output channel {@code k}, depth {@code d = BLOCK[q]·Cg + c} of
     * group {@code g} ({@code D = 4·Cg}; {@link #BLOCK}), or on the scalar path column by column,
     * {@code u[(g·25 + ξ)·xiStride + d·Kg + k]} ({@code xiStride}: {@code Kg·D} {@link #spread}, so that the 25 places
     * each filter writes do not share a cache set). The elements that are zero for every filter (row 4 of
     * {@code G·w'} where {@code pr = 1}, column 4 where {@code pc = 1}) need not be written, as the products never
     * read them ({@link #FIRST_BLOCK}): the vector transforms skip them.
     */
    private static float[] transformFilters(Conv2dCpu.Operands o, int xiStride) {
        Conv2dProblem p = o.p;
        int kg = p.kPerGroup();
        int cg = p.cPerGroup();
        int depth = 4 * cg;
        int groups = p.groups();
        float[] u = Workspace.floats(SLOT_FILTERS, groups * XI * xiStride);
        int rows = groups * kg;
        int workers = Parallel.workers(rows, 400.0 * rows * cg, 1 << 16);
        Parallel.runSmall(rows, workers, (worker, row) -> {
            int g = row / kg;
            int k = row % kg;
            int src = o.wo + row * cg * 9;
            int at = g * XI * xiStride + (Vectorization.ENABLED ? k * depth : k);
            int cStride = Vectorization.ENABLED ? 1 : kg;
            int c = 0;
            if (Vectorization.ENABLED) {
                float[] taps = Workspace.floats(SLOT_OUT, 9 * LANES);
                for (; c + LANES <= cg; c += LANES) {
                    Panama.filterChannels(o.w, src + 9 * c, taps, u, at + c, cg, xiStride);
                }
            }
            for (; c < cg; c++) {
                filterChannel(o.w, src + 9 * c, u, at + c * cStride, cg * cStride, xiStride);
            }
        });
        return u;
    }

    /**
     * One filter's transforms, {@code U_q = G·w'_q·Gᵀ} for its four stride phases {@code q}: element ξ of phase
     * {@code q} at {@code u[at + ξ·xiStride + BLOCK[q]·blockStride]}; in double, rounded once.
     */
    private static void filterChannel(float[] w, int src, float[] u, int at, int blockStride, int xiStride) {
        for (int q = 0; q < 4; q++) {
            int pr = q >> 1;
            int pc = q & 1;
            // w' of this phase: taps (2ρ + pr, 2σ + pc), zero past the 3 × 3 filter (only pr = pc = 0 has all four)
            double w00 = w[src + 3 * pr + pc];
            double w01 = pc == 0 ? w[src + 3 * pr + 2] : 0.0;
            double w10 = pr == 0 ? w[src + 6 + pc] : 0.0;
            double w11 = pr == 0 && pc == 0 ? w[src + 8] : 0.0;
            for (int i = 0; i < 5; i++) {
                // row i of G·w', then times Gᵀ
                double a0 = G_LEFT[i] * w00 + G_RIGHT[i] * w10;
                double a1 = G_LEFT[i] * w01 + G_RIGHT[i] * w11;
                for (int j = 0, to = at + 5 * i * xiStride + BLOCK[q] * blockStride; j < 5; j++, to += xiStride) {
                    u[to] = (float) (G_LEFT[j] * a0 + G_RIGHT[j] * a1);
                }
            }
        }
    }

    /**
     * The depth order of the products: the block of phase {@code q = 2pr + pc}, its channels {@code c} at depth
     * {@code BLOCK[q]·Cg + c}. G's last row is {@code (0, 1)}, so U_ξ is zero for every filter in the phases with
     * {@code pr = 1} when ξ is in its last row, and in those with {@code pc = 1} when ξ is in its last column (those
     * phases' w' have no second row, or column): in this order, (0, 1), (0, 0), (1, 0), (1, 1), the phases where U_ξ
     * is not zero are one run of blocks for every ξ, {@code [FIRST_BLOCK[ξ], LAST_BLOCK[ξ])}, and the products skip
     * the rest: 81 multiplies per tile and channel pair instead of 100 (1.78× fewer than the direct method's 144).
     */
    private static final int[] BLOCK = {1, 0, 2, 3};
    private static final int[] FIRST_BLOCK = new int[XI];
    private static final int[] LAST_BLOCK = new int[XI];

    static {
        for (int x = 0; x < XI; x++) {
            boolean lastRow = x / 5 == 4;
            boolean lastColumn = x % 5 == 4;
            // phases (0, 1) and (0, 0) in a last row; (0, 0) and (1, 0) in a last column; (0, 0) alone in both
            FIRST_BLOCK[x] = lastColumn ? BLOCK[0] : 0;
            LAST_BLOCK[x] = lastRow ? BLOCK[0] + 1 : lastColumn ? BLOCK[2] + 1 : 4;
        }
    }

    /** G = [½ 0; ½ ½; ⅙ -⅙; ⅙ ⅓; 0 1] by columns. */
    private static final double[] G_LEFT = {0.5, 0.5, 1.0 / 6, 1.0 / 6, 0};
    private static final double[] G_RIGHT = {0, 0.5, -1.0 / 6, 1.0 / 3, 1};

    /** {@code floats} rounded up to a multiple of 1024 (4 KiB), plus 16 (one cache line). */
    static int spread(int floats) {
        return (floats + 1023) / 1024 * 1024 + 16;
    }

    /** The vector transforms; loaded only on the vector path. */
    private static final class Panama {
        private static final VectorSpecies<Float> S = FloatVector.SPECIES_PREFERRED;

        /**
         * The vector twin of {@link Conv2dWinogradStride2#inputPanel} ({@code t}: 25 vectors): a vector of
         * consecutive tiles of a run at a time, the last one overlapping the one before it in a run of a vector or
         * more. A run shorter than a vector stores a whole vector: its columns past the run are overwritten by the
         * next run, or past the panel's row by the next row (the same phase's next channel, written after it; see
         * {@link Conv2dWinogradStride2#lastChannel}); its loads past the run read further along the band (or its
         * slack), never past it.
         */
        static void inputPanel(float[] x, int[] runs, int r0, int r1, int[] patch, float[] v, int to, int phaseRows,
                               int vXi, float[] t) {
            int l = S.length();
            for (int q = 0; q < 4; q++) {
                int pq = 25 * q;
                for (int r = r0; r < r1; r++) {
                    int src = runs[3 * r + 1];
                    int dst = to + BLOCK[q] * phaseRows + runs[3 * r];
                    int len = runs[3 * r + 2];
                    for (int e = 0; ; e += l) {
                        if (e > len - l) {
                            e = Math.max(0, len - l);
                        }
                        int at = src + e;
                        for (int b = 0; b < 5; b++) {
                            int pb = pq + 5 * b;
                            transform(FloatVector.fromArray(S, x, at + patch[pb]),
                                    FloatVector.fromArray(S, x, at + patch[pb + 1]),
                                    FloatVector.fromArray(S, x, at + patch[pb + 2]),
                                    FloatVector.fromArray(S, x, at + patch[pb + 3]),
                                    FloatVector.fromArray(S, x, at + patch[pb + 4]), t, b * l, 5 * l);
                        }
                        for (int i = 0, out = dst + e; i < 5; i++, out += 5 * vXi) {
                            int ti = 5 * i * l;
                            transform(FloatVector.fromArray(S, t, ti), FloatVector.fromArray(S, t, ti + l),
                                    FloatVector.fromArray(S, t, ti + 2 * l), FloatVector.fromArray(S, t, ti + 3 * l),
                                    FloatVector.fromArray(S, t, ti + 4 * l), v, out, vXi);
                        }
                        if (e + l >= len) {
                            break;
                        }
                    }
                }
            }
        }

        /**
         * {@code COEF[ξ·9 + t]}: the weight of filter tap {@code t = 3r + s} in element {@code ξ = 5i + j} of its
         * stride phase's transform, {@code G[i][r/2]·G[j][s/2]}.
         */
        private static final float[] COEF = new float[XI * 9];

        static {
            for (int x = 0; x < XI; x++) {
                for (int t = 0; t < 9; t++) {
                    double gi = t / 3 / 2 == 0 ? G_LEFT[x / 5] : G_RIGHT[x / 5];
                    double gj = t % 3 / 2 == 0 ? G_LEFT[x % 5] : G_RIGHT[x % 5];
                    COEF[x * 9 + t] = (float) (gi * gj);
                }
            }
        }

        /**
         * The vector twin of {@link Conv2dWinogradStride2#filterChannel} for {@code L} consecutive channels (lane
         * {@code e} holding channel {@code e}'s taps): each ξ of each phase is its taps times {@link #COEF}, in float,
         * stored only where it is not zero ({@link #FIRST_BLOCK}, {@link #LAST_BLOCK}).
         */
        static void filterChannels(float[] w, int src, float[] taps, float[] u, int at, int blockStride,
                                   int xiStride) {
            int l = S.length();
            for (int t = 0; t < 9; t++) {
                for (int e = 0; e < l; e++) {
                    taps[t * l + e] = w[src + e * 9 + t];
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
            int q00 = BLOCK[0] * blockStride;
            int q01 = BLOCK[1] * blockStride;
            int q10 = BLOCK[2] * blockStride;
            int q11 = BLOCK[3] * blockStride;
            for (int x = 0, c = 0; x < XI; x++, c += 9) {
                int to = at + x * xiStride;
                // phase (0, 0): taps (0, 0), (0, 2), (2, 0), (2, 2)
                w0.mul(COEF[c]).add(w2.mul(COEF[c + 2])).add(w6.mul(COEF[c + 6])).add(w8.mul(COEF[c + 8]))
                        .intoArray(u, to + q00);
                boolean lastRow = x >= 20;
                boolean lastColumn = x % 5 == 4;
                if (!lastColumn) {
                    // phase (0, 1): taps (0, 1), (2, 1)
                    w1.mul(COEF[c + 1]).add(w7.mul(COEF[c + 7])).intoArray(u, to + q01);
                }
                if (!lastRow) {
                    // phase (1, 0): taps (1, 0), (1, 2)
                    w3.mul(COEF[c + 3]).add(w5.mul(COEF[c + 5])).intoArray(u, to + q10);
                }
                if (!lastRow && !lastColumn) {
                    // phase (1, 1): tap (1, 1)
                    w4.mul(COEF[c + 4]).intoArray(u, to + q11);
                }
            }
        }

        /** The vector twin of {@link Conv2dWinogradStride2#transform}. */
        private static void transform(FloatVector e0, FloatVector e1, FloatVector e2, FloatVector e3, FloatVector e4,
                                      float[] out, int at, int stride) {
            FloatVector e1x2 = e1.add(e1);
            FloatVector e2x2 = e2.add(e2);
            FloatVector e3x2 = e3.add(e3);
            e0.add(e0).sub(e1).sub(e2x2).add(e3).intoArray(out, at);
            e1x2.add(e2).sub(e3).intoArray(out, at + stride);
            e2x2.add(e2).sub(e1x2).sub(e3).intoArray(out, at + 2 * stride);
            e3.sub(e1).intoArray(out, at + 3 * stride);
            e1x2.sub(e2).sub(e3x2).add(e4).intoArray(out, at + 4 * stride);
        }

        /**
         * {@code Y = Aᵀ·M·A + bias} for {@code LANES} tiles ({@code M} element {@code ξ} at {@code m[at + ξ·xi]}):
         * {@code Aᵀ·M} into {@code y[16·LANES...]} (four rows of five), then each row times A: the four column
         * vectors of output row {@code r} interleaved (two rounds of zips) into {@code y[4r·LANES...]}, tile
         * {@code e}'s four outputs at {@code 4e} to {@code 4e + 3}, as the output row holds them.
         */
        static void output(float[] m, int at, int xi, float bias, float[] y) {
            int l = S.length();
            int tmp = 16 * l;
            for (int j = 0; j < 5; j++) {
                FloatVector m0 = FloatVector.fromArray(S, m, at + j * xi);
                FloatVector m1 = FloatVector.fromArray(S, m, at + (5 + j) * xi);
                FloatVector m2 = FloatVector.fromArray(S, m, at + (10 + j) * xi);
                FloatVector m3 = FloatVector.fromArray(S, m, at + (15 + j) * xi);
                FloatVector m4 = FloatVector.fromArray(S, m, at + (20 + j) * xi);
                FloatVector s = m1.add(m2);
                FloatVector d = m1.sub(m2);
                m0.add(s).add(m3).intoArray(y, tmp + j * l);
                d.add(m3.mul(2f)).intoArray(y, tmp + (5 + j) * l);
                s.add(m3.mul(4f)).intoArray(y, tmp + (10 + j) * l);
                d.add(m3.mul(8f)).add(m4).intoArray(y, tmp + (15 + j) * l);
            }
            FloatVector b = FloatVector.broadcast(S, bias);
            for (int r = 0; r < 4; r++) {
                int row = tmp + 5 * r * l;
                FloatVector m0 = FloatVector.fromArray(S, y, row);
                FloatVector m1 = FloatVector.fromArray(S, y, row + l);
                FloatVector m2 = FloatVector.fromArray(S, y, row + 2 * l);
                FloatVector m3 = FloatVector.fromArray(S, y, row + 3 * l);
                FloatVector m4 = FloatVector.fromArray(S, y, row + 4 * l);
                FloatVector s = m1.add(m2);
                FloatVector d = m1.sub(m2);
                FloatVector c0 = b.add(m0.add(s).add(m3));
                FloatVector c1 = b.add(d.add(m3.mul(2f)));
                FloatVector c2 = b.add(s.add(m3.mul(4f)));
                FloatVector c3 = b.add(d.add(m3.mul(8f)).add(m4));
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
