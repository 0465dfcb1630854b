package org.kernels4j.cpu;

import java.util.Arrays;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorMask;
import jdk.incubator.vector.VectorShuffle;
import jdk.incubator.vector.VectorSpecies;

/**
 * The register-blocked FMA tile shared by the attention and convolution kernels:
 * {@code C[rows × NR] (+)= A[rows × kLen] · B[kLen × NR]} with
 * <ul>
 * <li>{@code A[i][k] = a[aOff + i·ars + k·aks]}: any strides, read one element at a time and broadcast, so
 *     A can be a tensor read in place (attention's K, V, Q, dO; a convolution's filter) or a packed block;</li>
 * <li>{@code B[k][j] = b[bOff + k·NR + j]}: one packed panel, {@link #NR} contiguous floats per depth step;</li>
 * <li>{@code C[i][j] = c[cOff + i·ldc + j]}, overwritten or, with {@code accumulate}, added to.</li>
 * </ul>
 * On the vector path the tile is held in registers: {@link #MR} rows × three vectors. With 256-bit vectors that is
 * four rows (12 accumulators, three B loads and one broadcast: all 16 AVX2 registers); with 512-bit vectors,
 * whose AVX-512 has 32 registers, eight (24 accumulators); 4-, 3-, 2- and 1-row variants take the remainder rows.
 * The panel's fixed stride matters: with it every B address is a constant offset from one induction variable,
 * and the loop measured 98 GFLOP/s on one core of the development machine (Zen 3, 256-bit; the same loop with
 * a variable B stride ran at 76, a 6 × 2-vector tile with a fixed stride at 85). The scalar twin computes tall
 * tiles column by column in loops the JIT auto-vectorises, short ones in 2 × 4 register blocks.
 */
final class MicroKernel {

    /** Rows of the register tile: eight where vectors are 512 bits wide (AVX-512's 32 registers), else four. */
    static final int MR = Vectorization.ENABLED && Vectorization.FLOAT_LANES >= 16 ? 8 : 4;

    /** Columns of the tile, and the width of a packed B panel: three vector registers of floats. */
    static final int NR = 3 * Vectorization.FLOAT_LANES;

    private MicroKernel() {
    }

    /**
     * {@code C[rows × NR] (+)= A·B}, see the class comment; {@code rows} may be any count (it is cut into
     * {@link #MR}-row tiles).
     */
    static void tile(float[] a, int aOff, int ars, int aks, float[] b, int bOff, int kLen, float[] c, int cOff,
                     int ldc, int rows, boolean accumulate) {
        if (Vectorization.ENABLED) {
            Panama.tile(a, aOff, ars, aks, b, bOff, kLen, c, cOff, ldc, rows, accumulate);
            return;
        }
        scalarTile(a, aOff, ars, aks, b, bOff, kLen, c, cOff, ldc, rows, accumulate);
    }

    /**
     * As {@link #tile}, for a panel of which only the first {@code cols} columns are wanted: on the vector path, up
     * to one vector of columns is computed alone (the last, partial panel of a product whose width is not a multiple
     * of {@link #NR}, e.g. 128 = 5⅓ panels), and columns from there to {@code NR} of C are left as they are.
     */
    static void tile(float[] a, int aOff, int ars, int aks, float[] b, int bOff, int kLen, float[] c, int cOff,
                     int ldc, int rows, boolean accumulate, int cols) {
        if (Vectorization.ENABLED && cols <= Vectorization.FLOAT_LANES) {
            Panama.narrow(a, aOff, ars, aks, b, bOff, kLen, c, cOff, ldc, rows, accumulate);
            return;
        }
        tile(a, aOff, ars, aks, b, bOff, kLen, c, cOff, ldc, rows, accumulate);
    }

    /**
     * {@link #tile} for {@code panels} panels that share A: panel {@code p} reads B at {@code bOff + p·bStep} and
     * writes C at {@code cOff + p·cStep}. The scalar path copies A's columns once for all of them.
     */
    static void panels(float[] a, int aOff, int ars, int aks, float[] b, int bOff, int bStep, int kLen, float[] c,
                       int cOff, int cStep, int ldc, int rows, boolean accumulate, int panels) {
        if (Vectorization.ENABLED || rows < SCALAR_COLUMN_ROWS) {
            for (int p = 0; p < panels; p++) {
                tile(a, aOff, ars, aks, b, bOff + p * bStep, kLen, c, cOff + p * cStep, ldc, rows, accumulate);
            }
            return;
        }
        panelsOfColumns(packColumns(a, aOff, ars, aks, kLen, rows), 0, 0, rows, b, bOff, bStep, kLen, c, cOff, cStep,
                ldc, accumulate, panels);
    }

    /**
     * The scalar path's copy of a whole {@code A[rows × kLen]} (addressed as in {@link #tile}) column by column,
     * {@code at[k][i] = A[i][k]}, in a per-thread scratch of its own, for {@link #panelsOfColumns}: a GEMM that
     * runs many products against the blocks of one A copies it once, not once per product.
     */
    static float[][] columnsOfA(float[] a, int aOff, int ars, int aks, int kLen, int rows) {
        ColumnScratch scratch = COLUMN_SCRATCH.get();
        scratch.wholeA = columns(scratch.wholeA, kLen, rows);
        fillColumns(scratch.wholeA, a, aOff, ars, aks, kLen, rows);
        return scratch.wholeA;
    }

    /**
     * The scalar {@link #panels} for the block {@code [r0, r0 + rows) × [k0, k0 + kLen)} of an A copied by
     * {@link #columnsOfA}; scalar path only.
     */
    static void panelsOfColumns(float[][] at, int k0, int r0, int rows, float[] b, int bOff, int bStep, int kLen,
                                float[] c, int cOff, int cStep, int ldc, boolean accumulate, int panels) {
        for (int p = 0; p < panels; p++) {
            columnProduct(at, k0, r0, rows, b, bOff + p * bStep, kLen, c, cOff + p * cStep, ldc, accumulate);
        }
    }

    /**
     * Copies {@code panels × NR} consecutive floats from {@code src[from...]} into one row of consecutive panels:
     * chunk {@code p} of {@link #NR} floats to {@code dst[to + p·panelStride...]}.
     */
    static void copyToPanels(float[] src, int from, float[] dst, int to, int panels, int panelStride) {
        if (Vectorization.ENABLED) {
            Panama.copyToPanels(src, from, dst, to, panels, panelStride);
            return;
        }
        for (int p = 0; p < panels; p++) {
            int s = from + p * NR;
            int d = to + p * panelStride;
            for (int e = 0; e < NR; e++) {
                dst[d + e] = src[s + e];
            }
        }
    }

    /**
     * Packs one whole panel from rows found through a table: row {@code kk} of the panel, {@link #NR} floats at
     * {@code dst[dstOff + kk·NR...]}, is copied from {@code src[base + offsets[offOff + kk]...]}, for
     * {@code kk < kc} (the convolutions' B panels: one run of the input planes per filter tap).
     */
    static void gatherPanel(float[] src, int base, int[] offsets, int offOff, int kc, float[] dst, int dstOff) {
        if (Vectorization.ENABLED) {
            Panama.gatherPanel(src, base, offsets, offOff, kc, dst, dstOff);
            return;
        }
        for (int kk = 0; kk < kc; kk++) {
            System.arraycopy(src, base + offsets[offOff + kk], dst, dstOff + kk * NR, NR);
        }
    }

    /**
     * {@code dst[to + e] = src[from + e]} for {@code e < len}, for the short rows (tens of floats) of the
     * convolutions' padded planes, where a {@code System.arraycopy} call costs more than the copy; the two
     * ranges must not overlap.
     */
    static void copyRow(float[] src, int from, float[] dst, int to, int len) {
        if (Vectorization.ENABLED && len >= Vectorization.FLOAT_LANES) {
            Panama.copyRow(src, from, dst, to, len);
            return;
        }
        System.arraycopy(src, from, dst, to, len);
    }

    /**
     * Splits {@code 2·len} consecutive floats into their even and odd ones:
     * {@code even[e] = src[from + 2e]} at {@code dst[toEven + e]}, {@code odd[e] = src[from + 2e + 1]} at
     * {@code dst[toOdd + e]}, for {@code e < len} (the stride-2 phases of a convolution input row).
     */
    static void deinterleave(float[] src, int from, float[] dst, int toEven, int toOdd, int len) {
        int e = 0;
        if (Vectorization.ENABLED) {
            e = Panama.deinterleave(src, from, dst, toEven, toOdd, len);
        }
        for (int c = from + 2 * e; e < len; e++, c += 2) {
            dst[toEven + e] = src[c];
            dst[toOdd + e] = src[c + 1];
        }
    }

    /**
     * {@code dst[to + 2e] = even[from + e]}, {@code dst[to + 2e + 1] = odd[from + e]} for {@code e < len}: the
     * inverse of {@link #deinterleave}, for two column phases of an output row.
     */
    static void interleave(float[] even, float[] odd, int from, float[] dst, int to, int len) {
        int e = 0;
        if (Vectorization.ENABLED) {
            e = Panama.interleave(even, odd, from, dst, to, len);
        }
        for (int d = to + 2 * e; e < len; e++, d += 2) {
            dst[d] = even[from + e];
            dst[d + 1] = odd[from + e];
        }
    }

    /**
     * {@code dst[to + c·dstStride + r] = src[from + r·srcStride + c]} for {@code r < rows}, {@code c < cols}: a block
     * transposed, in 8 × 8 blocks ({@link #transpose8}) with the edges element by element; the two ranges must not
     * overlap. For the packs that turn rows into columns (backward-filter's dyᵀ and xᵀ panels, its dwᵀ into dw,
     * backward-data's 1 × 1 weights).
     */
    static void transpose(float[] src, int from, int srcStride, float[] dst, int to, int dstStride, int rows,
                          int cols) {
        int r0 = 0;
        for (; r0 + 8 <= rows; r0 += 8) {
            int c0 = 0;
            for (; c0 + 8 <= cols; c0 += 8) {
                transpose8(src, from + r0 * srcStride + c0, srcStride, dst, to + c0 * dstStride + r0, dstStride);
            }
            for (int c = c0; c < cols; c++) {
                for (int r = r0; r < r0 + 8; r++) {
                    dst[to + c * dstStride + r] = src[from + r * srcStride + c];
                }
            }
        }
        for (int r = r0; r < rows; r++) {
            for (int c = 0; c < cols; c++) {
                dst[to + c * dstStride + r] = src[from + r * srcStride + c];
            }
        }
    }

    /**
     * One 8 × 8 block of {@link #transpose}: {@code dst[to + c·dstStride + r] = src[from + r·srcStride + c]} for
     * {@code r, c < 8}; src and dst must not overlap. dst's rows are written in order, so with {@code dstStride < 8}
     * each row's overhang is overwritten by the next row (the stride-2 Winograd's row split relies on it). On the
     * vector path (vectors of 256 bits or more) eight 8-float loads, three rounds of lane swaps and eight stores;
     * element by element on the scalar path.
     */
    static void transpose8(float[] src, int from, int srcStride, float[] dst, int to, int dstStride) {
        if (Vectorization.ENABLED && Vectorization.VECTOR_BITS >= 256) {
            Panama.transpose8(src, from, srcStride, dst, to, dstStride);
            return;
        }
        for (int c = 0; c < 8; c++) {
            for (int r = 0; r < 8; r++) {
                dst[to + c * dstStride + r] = src[from + r * srcStride + c];
            }
        }
    }

    /** Rows from which the scalar twin computes the tile column by column (below, its register blocks are faster). */
    private static final int SCALAR_COLUMN_ROWS = 32;

    /**
     * The scalar twin: tall tiles column by column ({@link #scalarColumns}), short ones in 2 × 4 register blocks
     * ({@link #scalarBlocks}).
     */
    private static void scalarTile(float[] a, int aOff, int ars, int aks, float[] b, int bOff, int kLen, float[] c,
                                   int cOff, int ldc, int rows, boolean accumulate) {
        if (rows >= SCALAR_COLUMN_ROWS) {
            scalarColumns(a, aOff, ars, aks, b, bOff, kLen, c, cOff, ldc, rows, accumulate);
        } else {
            scalarBlocks(a, aOff, ars, aks, b, bOff, kLen, c, cOff, ldc, rows, accumulate);
        }
    }

    /**
     * Per-thread scratch of {@link #scalarColumns}: A's columns and C's columns, one array each, and the copy of a
     * whole A of {@link #columnsOfA}.
     */
    private static final class ColumnScratch {
        float[][] aCols = new float[0][];
        float[][] wholeA = new float[0][];
        final float[][] cCols = new float[NR][0];
    }

    private static final ThreadLocal<ColumnScratch> COLUMN_SCRATCH = ThreadLocal.withInitial(ColumnScratch::new);

    /**
     * The tile as {@link #NR} column updates {@code C[·][j] += B[k][j] · A[·][k]}, four depth steps per pass,
     * over A's columns copied to arrays of their own. Written so that HotSpot's auto-vectoriser (SuperWord, which
     * the scalar path relies on without the Vector API) turns the innermost loop into AVX/NEON multiplies and adds
     * (plain ones, not {@code Math.fma}, which is emulated and slow where the JVM runs without FMA): it is long
     * ({@code rows} iterations) and every array in it is indexed by the bare loop counter, so even if two of the
     * arrays were the same one no iteration could read what another wrote, and the JIT needs no aliasing proof
     * (JDK 25 has no run-time aliasing check; with different offsets into one array it keeps the loop scalar).
     * Measured on the development machine (2-core EPYC, JDK 25, 64-row tile, depth 64 and 256, noisy host):
     * 10-13 GFLOP/s against 4-6 for the register blocks; at 16 rows the two were even.
     */
    private static void scalarColumns(float[] a, int aOff, int ars, int aks, float[] b, int bOff, int kLen,
                                      float[] c, int cOff, int ldc, int rows, boolean accumulate) {
        columnProduct(packColumns(a, aOff, ars, aks, kLen, rows), 0, 0, rows, b, bOff, kLen, c, cOff, ldc,
                accumulate);
    }

    /** A's columns, {@code at[k][i] = A[i][k]}, in this thread's scratch. */
    private static float[][] packColumns(float[] a, int aOff, int ars, int aks, int kLen, int rows) {
        ColumnScratch scratch = COLUMN_SCRATCH.get();
        scratch.aCols = columns(scratch.aCols, kLen, rows);
        fillColumns(scratch.aCols, a, aOff, ars, aks, kLen, rows);
        return scratch.aCols;
    }

    /** {@code at} when it has {@code kLen} columns of {@code rows}, else a larger one. */
    private static float[][] columns(float[][] at, int kLen, int rows) {
        if (at.length < kLen || kLen > 0 && at[0].length < rows) {
            return new float[Math.max(kLen, at.length)][Math.max(rows, at.length == 0 ? 0 : at[0].length)];
        }
        return at;
    }

    private static void fillColumns(float[][] at, float[] a, int aOff, int ars, int aks, int kLen, int rows) {
        for (int k = 0; k < kLen; k++) {
            float[] t = at[k];
            if (ars == 1) {
                System.arraycopy(a, aOff + k * aks, t, 0, rows);
                continue;
            }
            for (int i = 0, from = aOff + k * aks; i < rows; i++, from += ars) {
                t[i] = a[from];
            }
        }
    }

    /**
     * The column updates of {@link #scalarColumns} over A's columns {@code at}: rows {@code [r0, r0 + rows)} of
     * depth {@code [k0, k0 + kLen)}. C's columns are scratch indexed like A's columns (from {@code r0}), so every
     * array of the inner loop is indexed by its bare counter.
     */
    private static void columnProduct(float[][] at, int k0, int r0, int rows, float[] b, int bOff, int kLen,
                                      float[] c, int cOff, int ldc, boolean accumulate) {
        ColumnScratch scratch = COLUMN_SCRATCH.get();
        float[][] cols = scratch.cCols;
        int r1 = r0 + rows;
        if (cols[0].length < r1) {
            for (int j = 0; j < NR; j++) {
                cols[j] = new float[r1];
            }
        }
        for (int j = 0; j < NR; j++) {
            Arrays.fill(cols[j], r0, r1, 0f);
        }
        int k = 0;
        for (; k + 4 <= kLen; k += 4) {
            float[] t0 = at[k0 + k];
            float[] t1 = at[k0 + k + 1];
            float[] t2 = at[k0 + k + 2];
            float[] t3 = at[k0 + k + 3];
            if (Vectorization.FAST_FMA) {
                // fused multiply-adds (the JIT vectorises Math.fma), about half the arithmetic instructions of
                // separate products and sums, in two chains of two: one chain of four through o[i] made the loop
                // wait on its latency (paired, one JVM, scalar path: the chain of four 0.81x the time of products
                // and sums in attn-1k forward, 0.84x in attn-4k-causal, 0.86x in conv-r56; two chains of two 0.87x
                // the time of the chain of four in attn-4k-causal forward, 0.86x in conv-r56 backward-filter).
                // Two C columns a pass (NR is even), sharing the loads of A's four columns: C2 makes the loop one
                // vector a trip, and its loads bound it; the 2-core Zen 5, scalar path, paired against one column a
                // pass: 0.75-0.80x the time with 512-bit code (conv-1x1 and conv-r56 forward, attn-1k forward and
                // backward, conv-1x1 backward-filter), 0.79-0.88x with -XX:UseAVX=2 (AVX2's 16 registers). The same
                // operations in the same order on every element as one column a pass: the same bits.
                for (int j = 0, bk = bOff + k * NR; j < NR; j += 2, bk += 2) {
                    float b0 = b[bk];
                    float b1 = b[bk + NR];
                    float b2 = b[bk + 2 * NR];
                    float b3 = b[bk + 3 * NR];
                    float e0 = b[bk + 1];
                    float e1 = b[bk + 1 + NR];
                    float e2 = b[bk + 1 + 2 * NR];
                    float e3 = b[bk + 1 + 3 * NR];
                    float[] o = cols[j];
                    float[] p = cols[j + 1];
                    for (int i = r0; i < r1; i++) {
                        float x0 = t0[i];
                        float x1 = t1[i];
                        float x2 = t2[i];
                        float x3 = t3[i];
                        o[i] = Math.fma(b1, x1, Math.fma(b0, x0, o[i])) + Math.fma(b3, x3, b2 * x2);
                        p[i] = Math.fma(e1, x1, Math.fma(e0, x0, p[i])) + Math.fma(e3, x3, e2 * x2);
                    }
                }
                continue;
            }
            for (int j = 0, bk = bOff + k * NR; j < NR; j++, bk++) {
                float b0 = b[bk];
                float b1 = b[bk + NR];
                float b2 = b[bk + 2 * NR];
                float b3 = b[bk + 3 * NR];
                float[] o = cols[j];
                for (int i = r0; i < r1; i++) {
                    o[i] += b0 * t0[i] + b1 * t1[i] + b2 * t2[i] + b3 * t3[i];
                }
            }
        }
        for (; k < kLen; k++) {
            float[] t0 = at[k0 + k];
            for (int j = 0, bk = bOff + k * NR; j < NR; j++, bk++) {
                float b0 = b[bk];
                float[] o = cols[j];
                if (Vectorization.FAST_FMA) {
                    for (int i = r0; i < r1; i++) {
                        o[i] = Math.fma(b0, t0[i], o[i]);
                    }
                } else {
                    for (int i = r0; i < r1; i++) {
                        o[i] += b0 * t0[i];
                    }
                }
            }
        }
        for (int j = 0; j < NR; j++) {
            float[] o = cols[j];
            if (accumulate) {
                for (int i = r0, ci = cOff + j; i < r1; i++, ci += ldc) {
                    c[ci] += o[i];
                }
            } else {
                for (int i = r0, ci = cOff + j; i < r1; i++, ci += ldc) {
                    c[ci] = o[i];
                }
            }
        }
    }

    /**
     * 2 × 4 blocks of the tile in 8 local accumulators, which the JIT keeps in registers (with the four B values
     * and the A value, within the 16 floating-point registers of x86-64), so each loaded value feeds several
     * multiply-adds.
     */
    private static void scalarBlocks(float[] a, int aOff, int ars, int aks, float[] b, int bOff, int kLen, float[] c,
                                     int cOff, int ldc, int rows, boolean accumulate) {
        int i = 0;
        for (; i + 2 <= rows; i += 2) {
            int a0 = aOff + i * ars;
            int a1 = a0 + ars;
            for (int j = 0; j < NR; j += 4) {
                float c00 = 0f, c01 = 0f, c02 = 0f, c03 = 0f;
                float c10 = 0f, c11 = 0f, c12 = 0f, c13 = 0f;
                for (int k = 0, ak = 0, bk = bOff + j; k < kLen; k++, ak += aks, bk += NR) {
                    float b0 = b[bk];
                    float b1 = b[bk + 1];
                    float b2 = b[bk + 2];
                    float b3 = b[bk + 3];
                    float x = a[a0 + ak];
                    c00 += x * b0;
                    c01 += x * b1;
                    c02 += x * b2;
                    c03 += x * b3;
                    x = a[a1 + ak];
                    c10 += x * b0;
                    c11 += x * b1;
                    c12 += x * b2;
                    c13 += x * b3;
                }
                int ci = cOff + i * ldc + j;
                store4(c, ci, c00, c01, c02, c03, accumulate);
                store4(c, ci + ldc, c10, c11, c12, c13, accumulate);
            }
        }
        for (; i < rows; i++) {
            int a0 = aOff + i * ars;
            for (int j = 0; j < NR; j += 4) {
                float c00 = 0f, c01 = 0f, c02 = 0f, c03 = 0f;
                for (int k = 0, ak = 0, bk = bOff + j; k < kLen; k++, ak += aks, bk += NR) {
                    float x = a[a0 + ak];
                    c00 += x * b[bk];
                    c01 += x * b[bk + 1];
                    c02 += x * b[bk + 2];
                    c03 += x * b[bk + 3];
                }
                store4(c, cOff + i * ldc + j, c00, c01, c02, c03, accumulate);
            }
        }
    }

    private static void store4(float[] c, int at, float v0, float v1, float v2, float v3, boolean accumulate) {
        if (accumulate) {
            c[at] += v0;
            c[at + 1] += v1;
            c[at + 2] += v2;
            c[at + 3] += v3;
        } else {
            c[at] = v0;
            c[at + 1] = v1;
            c[at + 2] = v2;
            c[at + 3] = v3;
        }
    }

    /** The register-blocked kernels; loaded only on the vector path. */
    private static final class Panama {
        private static final VectorSpecies<Float> S = FloatVector.SPECIES_PREFERRED;
        private static final int L = S.length();
        private static final int W = 3 * L;

        /**
         * Whether the tile takes eight rows at a time ({@link #rows8}: 24 accumulators, three B vectors and a
         * broadcast, 28 registers): with 512-bit vectors, i.e. AVX-512 and its 32 vector registers. Per depth step it
         * loads 11 vectors for 24 FMAs where four rows load 7 for 12; in a harness on the 2-core Zen 5 (AVX-512)
         * eight rows ran 5-18% faster than four at depths 64-576, in every one of five JVMs.
         */
        private static final boolean EIGHT_ROWS = MR == 8;

        static void tile(float[] a, int aOff, int ars, int aks, float[] b, int bOff, int kLen, float[] c, int cOff,
                         int ldc, int rows, boolean accumulate) {
            int i = 0;
            if (EIGHT_ROWS) {
                for (; i + 8 <= rows; i += 8) {
                    rows8(a, aOff + i * ars, ars, aks, b, bOff, kLen, c, cOff + i * ldc, ldc, accumulate);
                }
            }
            for (; i + 4 <= rows; i += 4) {
                rows4(a, aOff + i * ars, ars, aks, b, bOff, kLen, c, cOff + i * ldc, ldc, accumulate);
            }
            switch (rows - i) {
                case 3 -> rows3(a, aOff + i * ars, ars, aks, b, bOff, kLen, c, cOff + i * ldc, ldc, accumulate);
                case 2 -> rows2(a, aOff + i * ars, ars, aks, b, bOff, kLen, c, cOff + i * ldc, ldc, accumulate);
                case 1 -> rows1(a, aOff + i * ars, aks, b, bOff, kLen, c, cOff + i * ldc, accumulate);
                default -> {
                }
            }
        }

        /** One vector of columns: eight rows at a time, eight independent accumulators. */
        static void narrow(float[] a, int aOff, int ars, int aks, float[] b, int bOff, int kLen, float[] c,
                           int cOff, int ldc, int rows, boolean accumulate) {
            int i = 0;
            for (; i + 8 <= rows; i += 8) {
                FloatVector c0 = FloatVector.zero(S);
                FloatVector c1 = c0;
                FloatVector c2 = c0;
                FloatVector c3 = c0;
                FloatVector c4 = c0;
                FloatVector c5 = c0;
                FloatVector c6 = c0;
                FloatVector c7 = c0;
                int a0 = aOff + i * ars;
                for (int k = 0, bk = bOff, ak = a0; k < kLen; k++, bk += W, ak += aks) {
                    FloatVector bv = FloatVector.fromArray(S, b, bk);
                    c0 = FloatVector.broadcast(S, a[ak]).fma(bv, c0);
                    c1 = FloatVector.broadcast(S, a[ak + ars]).fma(bv, c1);
                    c2 = FloatVector.broadcast(S, a[ak + 2 * ars]).fma(bv, c2);
                    c3 = FloatVector.broadcast(S, a[ak + 3 * ars]).fma(bv, c3);
                    c4 = FloatVector.broadcast(S, a[ak + 4 * ars]).fma(bv, c4);
                    c5 = FloatVector.broadcast(S, a[ak + 5 * ars]).fma(bv, c5);
                    c6 = FloatVector.broadcast(S, a[ak + 6 * ars]).fma(bv, c6);
                    c7 = FloatVector.broadcast(S, a[ak + 7 * ars]).fma(bv, c7);
                }
                int at = cOff + i * ldc;
                store1(c0, c, at, accumulate);
                store1(c1, c, at + ldc, accumulate);
                store1(c2, c, at + 2 * ldc, accumulate);
                store1(c3, c, at + 3 * ldc, accumulate);
                store1(c4, c, at + 4 * ldc, accumulate);
                store1(c5, c, at + 5 * ldc, accumulate);
                store1(c6, c, at + 6 * ldc, accumulate);
                store1(c7, c, at + 7 * ldc, accumulate);
            }
            for (; i < rows; i++) {
                FloatVector c0 = FloatVector.zero(S);
                for (int k = 0, bk = bOff, ak = aOff + i * ars; k < kLen; k++, bk += W, ak += aks) {
                    c0 = FloatVector.broadcast(S, a[ak]).fma(FloatVector.fromArray(S, b, bk), c0);
                }
                store1(c0, c, cOff + i * ldc, accumulate);
            }
        }

        private static void store1(FloatVector v, float[] c, int off, boolean accumulate) {
            (accumulate ? v.add(FloatVector.fromArray(S, c, off)) : v).intoArray(c, off);
        }

        static void gatherPanel(float[] src, int base, int[] offsets, int offOff, int kc, float[] dst,
                                int dstOff) {
            for (int kk = 0, d = dstOff; kk < kc; kk++, d += W) {
                int from = base + offsets[offOff + kk];
                FloatVector.fromArray(S, src, from).intoArray(dst, d);
                FloatVector.fromArray(S, src, from + L).intoArray(dst, d + L);
                FloatVector.fromArray(S, src, from + 2 * L).intoArray(dst, d + 2 * L);
            }
        }

        /** Whole vectors, then one vector ending at the row's end (overlapping the previous one). */
        static void copyRow(float[] src, int from, float[] dst, int to, int len) {
            int e = 0;
            for (; e + L <= len; e += L) {
                FloatVector.fromArray(S, src, from + e).intoArray(dst, to + e);
            }
            if (e < len) {
                FloatVector.fromArray(S, src, from + len - L).intoArray(dst, to + len - L);
            }
        }

        private static final VectorShuffle<Float> EVEN = VectorShuffle.fromOp(S, i -> 2 * i);
        private static final VectorShuffle<Float> ODD = VectorShuffle.fromOp(S, i -> 2 * i + 1);

        /**
         * Whole vectors of the split (two loads, lanes picked across both), then one vector ending at the last pair
         * (overlapping the previous one: the short rows of a convolution would otherwise end in several scalar
         * pairs); returns how many it did. Rows shorter than a vector but at least 8 pairs go in 8-lane vectors: with
         * 16 lanes, conv-r28's 28-float rows (14 pairs) otherwise went pair by pair, 13.7% of its forward's samples
         * (2-core Zen 5, paired in one JVM: conv-r28 forward 0.93x the time, backward-data 0.93x, backward-filter
         * 0.96x).
         */
        static int deinterleave(float[] src, int from, float[] dst, int toEven, int toOdd, int len) {
            if (len < L) {
                return L > 8 && len >= 8 ? deinterleave8(src, from, dst, toEven, toOdd, len) : 0;
            }
            int e = 0;
            for (int c = from; e + L <= len; e += L, c += 2 * L) {
                split(src, c, dst, toEven + e, toOdd + e);
            }
            if (e < len && len >= L) {
                split(src, from + 2 * (len - L), dst, toEven + len - L, toOdd + len - L);
                e = len;
            }
            return e;
        }

        private static void split(float[] src, int c, float[] dst, int toEven, int toOdd) {
            FloatVector lo = FloatVector.fromArray(S, src, c);
            FloatVector hi = FloatVector.fromArray(S, src, c + L);
            lo.rearrange(EVEN, hi).intoArray(dst, toEven);
            lo.rearrange(ODD, hi).intoArray(dst, toOdd);
        }

        /** 8-lane vectors, for rows shorter than a vector ({@link #deinterleave8}) and the 8 × 8 transposes. */
        private static final VectorSpecies<Float> S8 = FloatVector.SPECIES_256;

        private static final VectorShuffle<Float> EVEN8 = VectorShuffle.fromOp(S8, i -> 2 * i);
        private static final VectorShuffle<Float> ODD8 = VectorShuffle.fromOp(S8, i -> 2 * i + 1);

        /** {@link #deinterleave} of {@code 8 <= len < L} pairs in 8-lane vectors, the last one overlapping. */
        private static int deinterleave8(float[] src, int from, float[] dst, int toEven, int toOdd, int len) {
            int e = 0;
            for (int c = from; e + 8 <= len; e += 8, c += 16) {
                split8(src, c, dst, toEven + e, toOdd + e);
            }
            if (e < len) {
                split8(src, from + 2 * (len - 8), dst, toEven + len - 8, toOdd + len - 8);
            }
            return len;
        }

        private static void split8(float[] src, int c, float[] dst, int toEven, int toOdd) {
            FloatVector lo = FloatVector.fromArray(S8, src, c);
            FloatVector hi = FloatVector.fromArray(S8, src, c + 8);
            lo.rearrange(EVEN8, hi).intoArray(dst, toEven);
            lo.rearrange(ODD8, hi).intoArray(dst, toOdd);
        }

        /** Whole vectors of the interleave (lanes picked across both inputs); returns how many it did. */
        static int interleave(float[] even, float[] odd, int from, float[] dst, int to, int len) {
            int e = 0;
            for (int d = to; e + L <= len; e += L, d += 2 * L) {
                FloatVector a = FloatVector.fromArray(S, even, from + e);
                FloatVector b = FloatVector.fromArray(S, odd, from + e);
                a.rearrange(Lanes.ZIP_LOW, b).intoArray(dst, d);
                a.rearrange(Lanes.ZIP_HIGH, b).intoArray(dst, d + L);
            }
            return e;
        }

        private static final VectorShuffle<Float> SWAP1 = VectorShuffle.fromOp(S8, i -> i ^ 1);
        private static final VectorShuffle<Float> SWAP2 = VectorShuffle.fromOp(S8, i -> i ^ 2);
        private static final VectorShuffle<Float> SWAP4 = VectorShuffle.fromOp(S8, i -> i ^ 4);
        private static final VectorMask<Float> BIT1 = VectorMask.fromLong(S8, 0xAAL);
        private static final VectorMask<Float> BIT2 = VectorMask.fromLong(S8, 0xCCL);
        private static final VectorMask<Float> BIT4 = VectorMask.fromLong(S8, 0xF0L);

        /**
         * Vector {@code r} (row {@code r}, 8 floats of 256 bits whatever the preferred width) lane {@code c} to vector
         * {@code c} lane {@code r}: three rounds of swapping the off-diagonal halves of 2 × 2 blocks, a lane
         * permutation and a blend per vector per round.
         */
        static void transpose8(float[] src, int from, int srcStride, float[] dst, int to, int dstStride) {
            FloatVector v0 = FloatVector.fromArray(S8, src, from);
            FloatVector v1 = FloatVector.fromArray(S8, src, from + srcStride);
            FloatVector v2 = FloatVector.fromArray(S8, src, from + 2 * srcStride);
            FloatVector v3 = FloatVector.fromArray(S8, src, from + 3 * srcStride);
            FloatVector v4 = FloatVector.fromArray(S8, src, from + 4 * srcStride);
            FloatVector v5 = FloatVector.fromArray(S8, src, from + 5 * srcStride);
            FloatVector v6 = FloatVector.fromArray(S8, src, from + 6 * srcStride);
            FloatVector v7 = FloatVector.fromArray(S8, src, from + 7 * srcStride);
            // v_i[l] <-> v_{i+s}[l ^ s] where bit s of i is clear and bit s of l set, for s = 1, 2, 4
            FloatVector t0 = v0.blend(v1.rearrange(SWAP1), BIT1);
            FloatVector t1 = v0.rearrange(SWAP1).blend(v1, BIT1);
            FloatVector t2 = v2.blend(v3.rearrange(SWAP1), BIT1);
            FloatVector t3 = v2.rearrange(SWAP1).blend(v3, BIT1);
            FloatVector t4 = v4.blend(v5.rearrange(SWAP1), BIT1);
            FloatVector t5 = v4.rearrange(SWAP1).blend(v5, BIT1);
            FloatVector t6 = v6.blend(v7.rearrange(SWAP1), BIT1);
            FloatVector t7 = v6.rearrange(SWAP1).blend(v7, BIT1);
            v0 = t0.blend(t2.rearrange(SWAP2), BIT2);
            v2 = t0.rearrange(SWAP2).blend(t2, BIT2);
            v1 = t1.blend(t3.rearrange(SWAP2), BIT2);
            v3 = t1.rearrange(SWAP2).blend(t3, BIT2);
            v4 = t4.blend(t6.rearrange(SWAP2), BIT2);
            v6 = t4.rearrange(SWAP2).blend(t6, BIT2);
            v5 = t5.blend(t7.rearrange(SWAP2), BIT2);
            v7 = t5.rearrange(SWAP2).blend(t7, BIT2);
            v0.blend(v4.rearrange(SWAP4), BIT4).intoArray(dst, to);
            v1.blend(v5.rearrange(SWAP4), BIT4).intoArray(dst, to + dstStride);
            v2.blend(v6.rearrange(SWAP4), BIT4).intoArray(dst, to + 2 * dstStride);
            v3.blend(v7.rearrange(SWAP4), BIT4).intoArray(dst, to + 3 * dstStride);
            v0.rearrange(SWAP4).blend(v4, BIT4).intoArray(dst, to + 4 * dstStride);
            v1.rearrange(SWAP4).blend(v5, BIT4).intoArray(dst, to + 5 * dstStride);
            v2.rearrange(SWAP4).blend(v6, BIT4).intoArray(dst, to + 6 * dstStride);
            v3.rearrange(SWAP4).blend(v7, BIT4).intoArray(dst, to + 7 * dstStride);
        }

        static void copyToPanels(float[] src, int from, float[] dst, int to, int panels, int panelStride) {
            for (int p = 0, s = from, d = to; p < panels; p++, s += W, d += panelStride) {
                FloatVector.fromArray(S, src, s).intoArray(dst, d);
                FloatVector.fromArray(S, src, s + L).intoArray(dst, d + L);
                FloatVector.fromArray(S, src, s + 2 * L).intoArray(dst, d + 2 * L);
            }
        }

        private static void store(FloatVector v0, FloatVector v1, FloatVector v2, float[] c, int off,
                                  boolean accumulate) {
            if (accumulate) {
                v0 = v0.add(FloatVector.fromArray(S, c, off));
                v1 = v1.add(FloatVector.fromArray(S, c, off + L));
                v2 = v2.add(FloatVector.fromArray(S, c, off + 2 * L));
            }
            v0.intoArray(c, off);
            v1.intoArray(c, off + L);
            v2.intoArray(c, off + 2 * L);
        }

        /*
         * Kept generic on purpose. With any A strides, C2 range-checks each of the four A reads every depth step, and
         * those checks keep each broadcast next to its three FMAs: 41 instructions a step for 12 FMAs (read in its
         * assembly, JDK 25), about the 6-wide issue limit. Written for unit or constant A strides, the checks go,
         * C2 hoists the four broadcasts to the top of the step, 19 vectors are live and three accumulators live on
         * the stack: 35-40 against 70-95 GFLOP/s a core in a harness. A call costs some 50-100 cycles besides its
         * steps, so a depth of 64 (attention's scores) runs about 14% slower than 256.
         */
        private static void rows4(float[] a, int aOff, int ars, int aks, float[] b, int bOff, int kLen, float[] c,
                                  int cOff, int ldc, boolean accumulate) {
            FloatVector c00 = FloatVector.zero(S);
            FloatVector c01 = c00;
            FloatVector c02 = c00;
            FloatVector c10 = c00;
            FloatVector c11 = c00;
            FloatVector c12 = c00;
            FloatVector c20 = c00;
            FloatVector c21 = c00;
            FloatVector c22 = c00;
            FloatVector c30 = c00;
            FloatVector c31 = c00;
            FloatVector c32 = c00;
            int a0 = aOff;
            int a1 = aOff + ars;
            int a2 = aOff + 2 * ars;
            int a3 = aOff + 3 * ars;
            int bk = bOff;
            int ak = 0;
            for (int k = 0; k < kLen; k++, bk += W, ak += aks) {
                FloatVector b0 = FloatVector.fromArray(S, b, bk);
                FloatVector b1 = FloatVector.fromArray(S, b, bk + L);
                FloatVector b2 = FloatVector.fromArray(S, b, bk + 2 * L);
                FloatVector x0 = FloatVector.broadcast(S, a[a0 + ak]);
                c00 = x0.fma(b0, c00);
                c01 = x0.fma(b1, c01);
                c02 = x0.fma(b2, c02);
                FloatVector x1 = FloatVector.broadcast(S, a[a1 + ak]);
                c10 = x1.fma(b0, c10);
                c11 = x1.fma(b1, c11);
                c12 = x1.fma(b2, c12);
                FloatVector x2 = FloatVector.broadcast(S, a[a2 + ak]);
                c20 = x2.fma(b0, c20);
                c21 = x2.fma(b1, c21);
                c22 = x2.fma(b2, c22);
                FloatVector x3 = FloatVector.broadcast(S, a[a3 + ak]);
                c30 = x3.fma(b0, c30);
                c31 = x3.fma(b1, c31);
                c32 = x3.fma(b2, c32);
            }
            store(c00, c01, c02, c, cOff, accumulate);
            store(c10, c11, c12, c, cOff + ldc, accumulate);
            store(c20, c21, c22, c, cOff + 2 * ldc, accumulate);
            store(c30, c31, c32, c, cOff + 3 * ldc, accumulate);
        }

        /** {@link #rows4} for eight rows, where there are 32 vector registers ({@link #EIGHT_ROWS}). */
        private static void rows8(float[] a, int aOff, int ars, int aks, float[] b, int bOff, int kLen, float[] c,
                                  int cOff, int ldc, boolean accumulate) {
            FloatVector c00 = FloatVector.zero(S);
            FloatVector c01 = c00;
            FloatVector c02 = c00;
            FloatVector c10 = c00;
            FloatVector c11 = c00;
            FloatVector c12 = c00;
            FloatVector c20 = c00;
            FloatVector c21 = c00;
            FloatVector c22 = c00;
            FloatVector c30 = c00;
            FloatVector c31 = c00;
            FloatVector c32 = c00;
            FloatVector c40 = c00;
            FloatVector c41 = c00;
            FloatVector c42 = c00;
            FloatVector c50 = c00;
            FloatVector c51 = c00;
            FloatVector c52 = c00;
            FloatVector c60 = c00;
            FloatVector c61 = c00;
            FloatVector c62 = c00;
            FloatVector c70 = c00;
            FloatVector c71 = c00;
            FloatVector c72 = c00;
            int bk = bOff;
            int ak = 0;
            for (int k = 0; k < kLen; k++, bk += W, ak += aks) {
                FloatVector b0 = FloatVector.fromArray(S, b, bk);
                FloatVector b1 = FloatVector.fromArray(S, b, bk + L);
                FloatVector b2 = FloatVector.fromArray(S, b, bk + 2 * L);
                FloatVector x0 = FloatVector.broadcast(S, a[aOff + ak]);
                c00 = x0.fma(b0, c00);
                c01 = x0.fma(b1, c01);
                c02 = x0.fma(b2, c02);
                FloatVector x1 = FloatVector.broadcast(S, a[aOff + 1 * ars + ak]);
                c10 = x1.fma(b0, c10);
                c11 = x1.fma(b1, c11);
                c12 = x1.fma(b2, c12);
                FloatVector x2 = FloatVector.broadcast(S, a[aOff + 2 * ars + ak]);
                c20 = x2.fma(b0, c20);
                c21 = x2.fma(b1, c21);
                c22 = x2.fma(b2, c22);
                FloatVector x3 = FloatVector.broadcast(S, a[aOff + 3 * ars + ak]);
                c30 = x3.fma(b0, c30);
                c31 = x3.fma(b1, c31);
                c32 = x3.fma(b2, c32);
                FloatVector x4 = FloatVector.broadcast(S, a[aOff + 4 * ars + ak]);
                c40 = x4.fma(b0, c40);
                c41 = x4.fma(b1, c41);
                c42 = x4.fma(b2, c42);
                FloatVector x5 = FloatVector.broadcast(S, a[aOff + 5 * ars + ak]);
                c50 = x5.fma(b0, c50);
                c51 = x5.fma(b1, c51);
                c52 = x5.fma(b2, c52);
                FloatVector x6 = FloatVector.broadcast(S, a[aOff + 6 * ars + ak]);
                c60 = x6.fma(b0, c60);
                c61 = x6.fma(b1, c61);
                c62 = x6.fma(b2, c62);
                FloatVector x7 = FloatVector.broadcast(S, a[aOff + 7 * ars + ak]);
                c70 = x7.fma(b0, c70);
                c71 = x7.fma(b1, c71);
                c72 = x7.fma(b2, c72);
            }
            // stored here, not through store(): eight calls are too many for C2 to inline, and a call boxes its
            // vectors (measured: ten times slower)
            if (accumulate) {
                c00 = c00.add(FloatVector.fromArray(S, c, cOff));
                c01 = c01.add(FloatVector.fromArray(S, c, cOff + L));
                c02 = c02.add(FloatVector.fromArray(S, c, cOff + 2 * L));
                c10 = c10.add(FloatVector.fromArray(S, c, cOff + 1 * ldc));
                c11 = c11.add(FloatVector.fromArray(S, c, cOff + 1 * ldc + L));
                c12 = c12.add(FloatVector.fromArray(S, c, cOff + 1 * ldc + 2 * L));
                c20 = c20.add(FloatVector.fromArray(S, c, cOff + 2 * ldc));
                c21 = c21.add(FloatVector.fromArray(S, c, cOff + 2 * ldc + L));
                c22 = c22.add(FloatVector.fromArray(S, c, cOff + 2 * ldc + 2 * L));
                c30 = c30.add(FloatVector.fromArray(S, c, cOff + 3 * ldc));
                c31 = c31.add(FloatVector.fromArray(S, c, cOff + 3 * ldc + L));
                c32 = c32.add(FloatVector.fromArray(S, c, cOff + 3 * ldc + 2 * L));
                c40 = c40.add(FloatVector.fromArray(S, c, cOff + 4 * ldc));
                c41 = c41.add(FloatVector.fromArray(S, c, cOff + 4 * ldc + L));
                c42 = c42.add(FloatVector.fromArray(S, c, cOff + 4 * ldc + 2 * L));
                c50 = c50.add(FloatVector.fromArray(S, c, cOff + 5 * ldc));
                c51 = c51.add(FloatVector.fromArray(S, c, cOff + 5 * ldc + L));
                c52 = c52.add(FloatVector.fromArray(S, c, cOff + 5 * ldc + 2 * L));
                c60 = c60.add(FloatVector.fromArray(S, c, cOff + 6 * ldc));
                c61 = c61.add(FloatVector.fromArray(S, c, cOff + 6 * ldc + L));
                c62 = c62.add(FloatVector.fromArray(S, c, cOff + 6 * ldc + 2 * L));
                c70 = c70.add(FloatVector.fromArray(S, c, cOff + 7 * ldc));
                c71 = c71.add(FloatVector.fromArray(S, c, cOff + 7 * ldc + L));
                c72 = c72.add(FloatVector.fromArray(S, c, cOff + 7 * ldc + 2 * L));
            }
            c00.intoArray(c, cOff);
            c01.intoArray(c, cOff + L);
            c02.intoArray(c, cOff + 2 * L);
            c10.intoArray(c, cOff + 1 * ldc);
            c11.intoArray(c, cOff + 1 * ldc + L);
            c12.intoArray(c, cOff + 1 * ldc + 2 * L);
            c20.intoArray(c, cOff + 2 * ldc);
            c21.intoArray(c, cOff + 2 * ldc + L);
            c22.intoArray(c, cOff + 2 * ldc + 2 * L);
            c30.intoArray(c, cOff + 3 * ldc);
            c31.intoArray(c, cOff + 3 * ldc + L);
            c32.intoArray(c, cOff + 3 * ldc + 2 * L);
            c40.intoArray(c, cOff + 4 * ldc);
            c41.intoArray(c, cOff + 4 * ldc + L);
            c42.intoArray(c, cOff + 4 * ldc + 2 * L);
            c50.intoArray(c, cOff + 5 * ldc);
            c51.intoArray(c, cOff + 5 * ldc + L);
            c52.intoArray(c, cOff + 5 * ldc + 2 * L);
            c60.intoArray(c, cOff + 6 * ldc);
            c61.intoArray(c, cOff + 6 * ldc + L);
            c62.intoArray(c, cOff + 6 * ldc + 2 * L);
            c70.intoArray(c, cOff + 7 * ldc);
            c71.intoArray(c, cOff + 7 * ldc + L);
            c72.intoArray(c, cOff + 7 * ldc + 2 * L);
        }

        private static void rows3(float[] a, int aOff, int ars, int aks, float[] b, int bOff, int kLen, float[] c,
                                  int cOff, int ldc, boolean accumulate) {
            FloatVector c00 = FloatVector.zero(S);
            FloatVector c01 = c00;
            FloatVector c02 = c00;
            FloatVector c10 = c00;
            FloatVector c11 = c00;
            FloatVector c12 = c00;
            FloatVector c20 = c00;
            FloatVector c21 = c00;
            FloatVector c22 = c00;
            int a0 = aOff;
            int a1 = aOff + ars;
            int a2 = aOff + 2 * ars;
            int bk = bOff;
            int ak = 0;
            for (int k = 0; k < kLen; k++, bk += W, ak += aks) {
                FloatVector b0 = FloatVector.fromArray(S, b, bk);
                FloatVector b1 = FloatVector.fromArray(S, b, bk + L);
                FloatVector b2 = FloatVector.fromArray(S, b, bk + 2 * L);
                FloatVector x0 = FloatVector.broadcast(S, a[a0 + ak]);
                c00 = x0.fma(b0, c00);
                c01 = x0.fma(b1, c01);
                c02 = x0.fma(b2, c02);
                FloatVector x1 = FloatVector.broadcast(S, a[a1 + ak]);
                c10 = x1.fma(b0, c10);
                c11 = x1.fma(b1, c11);
                c12 = x1.fma(b2, c12);
                FloatVector x2 = FloatVector.broadcast(S, a[a2 + ak]);
                c20 = x2.fma(b0, c20);
                c21 = x2.fma(b1, c21);
                c22 = x2.fma(b2, c22);
            }
            store(c00, c01, c02, c, cOff, accumulate);
            store(c10, c11, c12, c, cOff + ldc, accumulate);
            store(c20, c21, c22, c, cOff + 2 * ldc, accumulate);
        }

        private static void rows2(float[] a, int aOff, int ars, int aks, float[] b, int bOff, int kLen, float[] c,
                                  int cOff, int ldc, boolean accumulate) {
            FloatVector c00 = FloatVector.zero(S);
            FloatVector c01 = c00;
            FloatVector c02 = c00;
            FloatVector c10 = c00;
            FloatVector c11 = c00;
            FloatVector c12 = c00;
            int a0 = aOff;
            int a1 = aOff + ars;
            int bk = bOff;
            int ak = 0;
            for (int k = 0; k < kLen; k++, bk += W, ak += aks) {
                FloatVector b0 = FloatVector.fromArray(S, b, bk);
                FloatVector b1 = FloatVector.fromArray(S, b, bk + L);
                FloatVector b2 = FloatVector.fromArray(S, b, bk + 2 * L);
                FloatVector x0 = FloatVector.broadcast(S, a[a0 + ak]);
                c00 = x0.fma(b0, c00);
                c01 = x0.fma(b1, c01);
                c02 = x0.fma(b2, c02);
                FloatVector x1 = FloatVector.broadcast(S, a[a1 + ak]);
                c10 = x1.fma(b0, c10);
                c11 = x1.fma(b1, c11);
                c12 = x1.fma(b2, c12);
            }
            store(c00, c01, c02, c, cOff, accumulate);
            store(c10, c11, c12, c, cOff + ldc, accumulate);
        }

        private static void rows1(float[] a, int aOff, int aks, float[] b, int bOff, int kLen, float[] c, int cOff,
                                  boolean accumulate) {
            FloatVector c00 = FloatVector.zero(S);
            FloatVector c01 = c00;
            FloatVector c02 = c00;
            int bk = bOff;
            int ak = aOff;
            for (int k = 0; k < kLen; k++, bk += W, ak += aks) {
                FloatVector b0 = FloatVector.fromArray(S, b, bk);
                FloatVector b1 = FloatVector.fromArray(S, b, bk + L);
                FloatVector b2 = FloatVector.fromArray(S, b, bk + 2 * L);
                FloatVector x0 = FloatVector.broadcast(S, a[ak]);
                c00 = x0.fma(b0, c00);
                c01 = x0.fma(b1, c01);
                c02 = x0.fma(b2, c02);
            }
            store(c00, c01, c02, c, cOff, accumulate);
        }
    }
}
