package org.kernels4j.cpu;

import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorSpecies;

/**
 * The register-blocked FMA tile shared by the attention and convolution kernels:
 * {@code C[rows × NR] (+)= A[rows × kLen] · B[kLen × NR]} with
 * <ul>
 * <li>{@code A[i][k] = a[aOff + i·ars + k·aks]}: any strides, read one element at a time and broadcast, so
 *     A can be a tensor read in place (attention's K, V, Q, dO) or a packed panel;</li>
 * <li>{@code B[k][j] = b[bOff + k·ldb + j]}: rows of {@link #NR} contiguous floats (a packed or padded
 *     panel);</li>
 * <li>{@code C[i][j] = c[cOff + i·ldc + j]}, overwritten or, with {@code accumulate}, added to.</li>
 * </ul>
 * On the vector path the tile is held in registers: {@link #MR} rows × two vectors, the classic
 * {@code 6×16} AVX2 / {@code 6×32} AVX-512 shape (12 accumulators, two B loads and one broadcast live),
 * with 4-, 2- and 1-row variants for the remainder rows. The scalar twin blocks the tile 2 × 4 in local
 * variables.
 */
final class MicroKernel {

    /** Rows of the register tile (tuning knob; the vector kernels exist for 6, 4, 2 and 1 rows). */
    static final int MR = 6;

    /** Columns of the tile: two vector registers of floats. */
    static final int NR = 2 * Vectorization.FLOAT_LANES;

    private MicroKernel() {
    }

    /**
     * {@code C[rows × NR] (+)= A·B}, see the class comment; {@code rows} may be any count (it is cut into
     * {@link #MR}-row tiles).
     */
    static void tile(float[] a, int aOff, int ars, int aks, float[] b, int bOff, int ldb, int kLen,
                     float[] c, int cOff, int ldc, int rows, boolean accumulate) {
        if (Vectorization.ENABLED) {
            Panama.tile(a, aOff, ars, aks, b, bOff, ldb, kLen, c, cOff, ldc, rows, accumulate);
            return;
        }
        scalarTile(a, aOff, ars, aks, b, bOff, ldb, null, 0, kLen, c, cOff, ldc, rows, accumulate);
    }

    /**
     * As {@link #tile}, but B's rows are found through a table: {@code B[k][j] = b[bOff + bRows[rowsOff + k] + j]}.
     * Convolutions use it to read rows of the (padded) input in place, one row per filter tap, instead of
     * packing them (the indirect-convolution idea).
     */
    static void tileIndirect(float[] a, int aOff, int ars, int aks, float[] b, int bOff, int[] bRows, int rowsOff,
                             int kLen, float[] c, int cOff, int ldc, int rows, boolean accumulate) {
        if (Vectorization.ENABLED) {
            Panama.tileIndirect(a, aOff, ars, aks, b, bOff, bRows, rowsOff, kLen, c, cOff, ldc, rows, accumulate);
            return;
        }
        scalarTile(a, aOff, ars, aks, b, bOff, 0, bRows, rowsOff, kLen, c, cOff, ldc, rows, accumulate);
    }

    /**
     * The scalar twin of both tiles ({@code bRows} null: B rows {@code ldb} apart): 2 × 4 blocks of the tile
     * in 8 local accumulators, which the JIT keeps in registers (with the four B values and the A value,
     * within the 16 floating-point registers of x86-64), so each loaded value feeds several multiply-adds.
     */
    private static void scalarTile(float[] a, int aOff, int ars, int aks, float[] b, int bOff, int ldb, int[] bRows,
                                   int rowsOff, int kLen, float[] c, int cOff, int ldc, int rows, boolean accumulate) {
        int i = 0;
        for (; i + 2 <= rows; i += 2) {
            int a0 = aOff + i * ars;
            int a1 = a0 + ars;
            for (int j = 0; j < NR; j += 4) {
                float c00 = 0f, c01 = 0f, c02 = 0f, c03 = 0f;
                float c10 = 0f, c11 = 0f, c12 = 0f, c13 = 0f;
                for (int k = 0, ak = 0; k < kLen; k++, ak += aks) {
                    int bk = (bRows == null ? bOff + k * ldb : bOff + bRows[rowsOff + k]) + j;
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
                for (int k = 0, ak = 0; k < kLen; k++, ak += aks) {
                    int bk = (bRows == null ? bOff + k * ldb : bOff + bRows[rowsOff + k]) + j;
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

        static void tile(float[] a, int aOff, int ars, int aks, float[] b, int bOff, int ldb, int kLen,
                         float[] c, int cOff, int ldc, int rows, boolean accumulate) {
            int i = 0;
            for (; i + 6 <= rows; i += 6) {
                rows6(a, aOff + i * ars, ars, aks, b, bOff, ldb, kLen, c, cOff + i * ldc, ldc, accumulate);
            }
            int left = rows - i;
            if (left >= 4) {
                rows4(a, aOff + i * ars, ars, aks, b, bOff, ldb, kLen, c, cOff + i * ldc, ldc, accumulate);
                i += 4;
                left -= 4;
            }
            if (left >= 2) {
                rows2(a, aOff + i * ars, ars, aks, b, bOff, ldb, kLen, c, cOff + i * ldc, ldc, accumulate);
                i += 2;
                left -= 2;
            }
            if (left == 1) {
                rows1(a, aOff + i * ars, ars, aks, b, bOff, ldb, kLen, c, cOff + i * ldc, ldc, accumulate);
            }
        }

        static void tileIndirect(float[] a, int aOff, int ars, int aks, float[] b, int bOff, int[] bRows, int rowsOff,
                                 int kLen, float[] c, int cOff, int ldc, int rows, boolean accumulate) {
            int i = 0;
            for (; i + 6 <= rows; i += 6) {
                rows6Indirect(a, aOff + i * ars, ars, aks, b, bOff, bRows, rowsOff, kLen, c, cOff + i * ldc, ldc,
                        accumulate);
            }
            int left = rows - i;
            if (left >= 4) {
                rows4Indirect(a, aOff + i * ars, ars, aks, b, bOff, bRows, rowsOff, kLen, c, cOff + i * ldc, ldc,
                        accumulate);
                i += 4;
                left -= 4;
            }
            if (left >= 2) {
                rows2Indirect(a, aOff + i * ars, ars, aks, b, bOff, bRows, rowsOff, kLen, c, cOff + i * ldc, ldc,
                        accumulate);
                i += 2;
                left -= 2;
            }
            if (left == 1) {
                rows1Indirect(a, aOff + i * ars, ars, aks, b, bOff, bRows, rowsOff, kLen, c, cOff + i * ldc, ldc,
                        accumulate);
            }
        }

        private static void store(FloatVector v0, FloatVector v1, float[] c, int off, boolean accumulate) {
            if (accumulate) {
                v0 = v0.add(FloatVector.fromArray(S, c, off));
                v1 = v1.add(FloatVector.fromArray(S, c, off + L));
            }
            v0.intoArray(c, off);
            v1.intoArray(c, off + L);
        }

        private static void rows6(float[] a, int aOff, int ars, int aks, float[] b, int bOff, int ldb, int kLen,
                     float[] c, int cOff, int ldc, boolean accumulate) {
            FloatVector c00 = FloatVector.zero(S);
            FloatVector c01 = c00;
            FloatVector c10 = FloatVector.zero(S);
            FloatVector c11 = c10;
            FloatVector c20 = FloatVector.zero(S);
            FloatVector c21 = c20;
            FloatVector c30 = FloatVector.zero(S);
            FloatVector c31 = c30;
            FloatVector c40 = FloatVector.zero(S);
            FloatVector c41 = c40;
            FloatVector c50 = FloatVector.zero(S);
            FloatVector c51 = c50;
            int a0 = aOff;
            int a1 = aOff + ars;
            int a2 = aOff + 2 * ars;
            int a3 = aOff + 3 * ars;
            int a4 = aOff + 4 * ars;
            int a5 = aOff + 5 * ars;
            int bk = bOff;
            int ak = 0;
            for (int k = 0; k < kLen; k++, bk += ldb, ak += aks) {
                FloatVector b0 = FloatVector.fromArray(S, b, bk);
                FloatVector b1 = FloatVector.fromArray(S, b, bk + L);
                FloatVector x0 = FloatVector.broadcast(S, a[a0 + ak]);
                c00 = x0.fma(b0, c00);
                c01 = x0.fma(b1, c01);
                FloatVector x1 = FloatVector.broadcast(S, a[a1 + ak]);
                c10 = x1.fma(b0, c10);
                c11 = x1.fma(b1, c11);
                FloatVector x2 = FloatVector.broadcast(S, a[a2 + ak]);
                c20 = x2.fma(b0, c20);
                c21 = x2.fma(b1, c21);
                FloatVector x3 = FloatVector.broadcast(S, a[a3 + ak]);
                c30 = x3.fma(b0, c30);
                c31 = x3.fma(b1, c31);
                FloatVector x4 = FloatVector.broadcast(S, a[a4 + ak]);
                c40 = x4.fma(b0, c40);
                c41 = x4.fma(b1, c41);
                FloatVector x5 = FloatVector.broadcast(S, a[a5 + ak]);
                c50 = x5.fma(b0, c50);
                c51 = x5.fma(b1, c51);
            }
            store(c00, c01, c, cOff, accumulate);
            store(c10, c11, c, cOff + ldc, accumulate);
            store(c20, c21, c, cOff + 2 * ldc, accumulate);
            store(c30, c31, c, cOff + 3 * ldc, accumulate);
            store(c40, c41, c, cOff + 4 * ldc, accumulate);
            store(c50, c51, c, cOff + 5 * ldc, accumulate);
        }

        private static void rows4(float[] a, int aOff, int ars, int aks, float[] b, int bOff, int ldb, int kLen,
                     float[] c, int cOff, int ldc, boolean accumulate) {
            FloatVector c00 = FloatVector.zero(S);
            FloatVector c01 = c00;
            FloatVector c10 = FloatVector.zero(S);
            FloatVector c11 = c10;
            FloatVector c20 = FloatVector.zero(S);
            FloatVector c21 = c20;
            FloatVector c30 = FloatVector.zero(S);
            FloatVector c31 = c30;
            int a0 = aOff;
            int a1 = aOff + ars;
            int a2 = aOff + 2 * ars;
            int a3 = aOff + 3 * ars;
            int bk = bOff;
            int ak = 0;
            for (int k = 0; k < kLen; k++, bk += ldb, ak += aks) {
                FloatVector b0 = FloatVector.fromArray(S, b, bk);
                FloatVector b1 = FloatVector.fromArray(S, b, bk + L);
                FloatVector x0 = FloatVector.broadcast(S, a[a0 + ak]);
                c00 = x0.fma(b0, c00);
                c01 = x0.fma(b1, c01);
                FloatVector x1 = FloatVector.broadcast(S, a[a1 + ak]);
                c10 = x1.fma(b0, c10);
                c11 = x1.fma(b1, c11);
                FloatVector x2 = FloatVector.broadcast(S, a[a2 + ak]);
                c20 = x2.fma(b0, c20);
                c21 = x2.fma(b1, c21);
                FloatVector x3 = FloatVector.broadcast(S, a[a3 + ak]);
                c30 = x3.fma(b0, c30);
                c31 = x3.fma(b1, c31);
            }
            store(c00, c01, c, cOff, accumulate);
            store(c10, c11, c, cOff + ldc, accumulate);
            store(c20, c21, c, cOff + 2 * ldc, accumulate);
            store(c30, c31, c, cOff + 3 * ldc, accumulate);
        }

        private static void rows2(float[] a, int aOff, int ars, int aks, float[] b, int bOff, int ldb, int kLen,
                     float[] c, int cOff, int ldc, boolean accumulate) {
            FloatVector c00 = FloatVector.zero(S);
            FloatVector c01 = c00;
            FloatVector c10 = FloatVector.zero(S);
            FloatVector c11 = c10;
            int a0 = aOff;
            int a1 = aOff + ars;
            int bk = bOff;
            int ak = 0;
            for (int k = 0; k < kLen; k++, bk += ldb, ak += aks) {
                FloatVector b0 = FloatVector.fromArray(S, b, bk);
                FloatVector b1 = FloatVector.fromArray(S, b, bk + L);
                FloatVector x0 = FloatVector.broadcast(S, a[a0 + ak]);
                c00 = x0.fma(b0, c00);
                c01 = x0.fma(b1, c01);
                FloatVector x1 = FloatVector.broadcast(S, a[a1 + ak]);
                c10 = x1.fma(b0, c10);
                c11 = x1.fma(b1, c11);
            }
            store(c00, c01, c, cOff, accumulate);
            store(c10, c11, c, cOff + ldc, accumulate);
        }

        private static void rows1(float[] a, int aOff, int ars, int aks, float[] b, int bOff, int ldb, int kLen,
                     float[] c, int cOff, int ldc, boolean accumulate) {
            FloatVector c00 = FloatVector.zero(S);
            FloatVector c01 = c00;
            int a0 = aOff;
            int bk = bOff;
            int ak = 0;
            for (int k = 0; k < kLen; k++, bk += ldb, ak += aks) {
                FloatVector b0 = FloatVector.fromArray(S, b, bk);
                FloatVector b1 = FloatVector.fromArray(S, b, bk + L);
                FloatVector x0 = FloatVector.broadcast(S, a[a0 + ak]);
                c00 = x0.fma(b0, c00);
                c01 = x0.fma(b1, c01);
            }
            store(c00, c01, c, cOff, accumulate);
        }

        private static void rows6Indirect(float[] a, int aOff, int ars, int aks, float[] b, int bOff, int[] bRows,
                                          int rowsOff, int kLen,
                             float[] c, int cOff, int ldc, boolean accumulate) {
            FloatVector c00 = FloatVector.zero(S);
            FloatVector c01 = c00;
            FloatVector c10 = FloatVector.zero(S);
            FloatVector c11 = c10;
            FloatVector c20 = FloatVector.zero(S);
            FloatVector c21 = c20;
            FloatVector c30 = FloatVector.zero(S);
            FloatVector c31 = c30;
            FloatVector c40 = FloatVector.zero(S);
            FloatVector c41 = c40;
            FloatVector c50 = FloatVector.zero(S);
            FloatVector c51 = c50;
            int a0 = aOff;
            int a1 = aOff + ars;
            int a2 = aOff + 2 * ars;
            int a3 = aOff + 3 * ars;
            int a4 = aOff + 4 * ars;
            int a5 = aOff + 5 * ars;
            int ak = 0;
            for (int k = 0; k < kLen; k++, ak += aks) {
                int bk = bOff + bRows[rowsOff + k];
                FloatVector b0 = FloatVector.fromArray(S, b, bk);
                FloatVector b1 = FloatVector.fromArray(S, b, bk + L);
                FloatVector x0 = FloatVector.broadcast(S, a[a0 + ak]);
                c00 = x0.fma(b0, c00);
                c01 = x0.fma(b1, c01);
                FloatVector x1 = FloatVector.broadcast(S, a[a1 + ak]);
                c10 = x1.fma(b0, c10);
                c11 = x1.fma(b1, c11);
                FloatVector x2 = FloatVector.broadcast(S, a[a2 + ak]);
                c20 = x2.fma(b0, c20);
                c21 = x2.fma(b1, c21);
                FloatVector x3 = FloatVector.broadcast(S, a[a3 + ak]);
                c30 = x3.fma(b0, c30);
                c31 = x3.fma(b1, c31);
                FloatVector x4 = FloatVector.broadcast(S, a[a4 + ak]);
                c40 = x4.fma(b0, c40);
                c41 = x4.fma(b1, c41);
                FloatVector x5 = FloatVector.broadcast(S, a[a5 + ak]);
                c50 = x5.fma(b0, c50);
                c51 = x5.fma(b1, c51);
            }
            store(c00, c01, c, cOff, accumulate);
            store(c10, c11, c, cOff + ldc, accumulate);
            store(c20, c21, c, cOff + 2 * ldc, accumulate);
            store(c30, c31, c, cOff + 3 * ldc, accumulate);
            store(c40, c41, c, cOff + 4 * ldc, accumulate);
            store(c50, c51, c, cOff + 5 * ldc, accumulate);
        }

        private static void rows4Indirect(float[] a, int aOff, int ars, int aks, float[] b, int bOff, int[] bRows,
                                          int rowsOff, int kLen,
                             float[] c, int cOff, int ldc, boolean accumulate) {
            FloatVector c00 = FloatVector.zero(S);
            FloatVector c01 = c00;
            FloatVector c10 = FloatVector.zero(S);
            FloatVector c11 = c10;
            FloatVector c20 = FloatVector.zero(S);
            FloatVector c21 = c20;
            FloatVector c30 = FloatVector.zero(S);
            FloatVector c31 = c30;
            int a0 = aOff;
            int a1 = aOff + ars;
            int a2 = aOff + 2 * ars;
            int a3 = aOff + 3 * ars;
            int ak = 0;
            for (int k = 0; k < kLen; k++, ak += aks) {
                int bk = bOff + bRows[rowsOff + k];
                FloatVector b0 = FloatVector.fromArray(S, b, bk);
                FloatVector b1 = FloatVector.fromArray(S, b, bk + L);
                FloatVector x0 = FloatVector.broadcast(S, a[a0 + ak]);
                c00 = x0.fma(b0, c00);
                c01 = x0.fma(b1, c01);
                FloatVector x1 = FloatVector.broadcast(S, a[a1 + ak]);
                c10 = x1.fma(b0, c10);
                c11 = x1.fma(b1, c11);
                FloatVector x2 = FloatVector.broadcast(S, a[a2 + ak]);
                c20 = x2.fma(b0, c20);
                c21 = x2.fma(b1, c21);
                FloatVector x3 = FloatVector.broadcast(S, a[a3 + ak]);
                c30 = x3.fma(b0, c30);
                c31 = x3.fma(b1, c31);
            }
            store(c00, c01, c, cOff, accumulate);
            store(c10, c11, c, cOff + ldc, accumulate);
            store(c20, c21, c, cOff + 2 * ldc, accumulate);
            store(c30, c31, c, cOff + 3 * ldc, accumulate);
        }

        private static void rows2Indirect(float[] a, int aOff, int ars, int aks, float[] b, int bOff, int[] bRows,
                                          int rowsOff, int kLen,
                             float[] c, int cOff, int ldc, boolean accumulate) {
            FloatVector c00 = FloatVector.zero(S);
            FloatVector c01 = c00;
            FloatVector c10 = FloatVector.zero(S);
            FloatVector c11 = c10;
            int a0 = aOff;
            int a1 = aOff + ars;
            int ak = 0;
            for (int k = 0; k < kLen; k++, ak += aks) {
                int bk = bOff + bRows[rowsOff + k];
                FloatVector b0 = FloatVector.fromArray(S, b, bk);
                FloatVector b1 = FloatVector.fromArray(S, b, bk + L);
                FloatVector x0 = FloatVector.broadcast(S, a[a0 + ak]);
                c00 = x0.fma(b0, c00);
                c01 = x0.fma(b1, c01);
                FloatVector x1 = FloatVector.broadcast(S, a[a1 + ak]);
                c10 = x1.fma(b0, c10);
                c11 = x1.fma(b1, c11);
            }
            store(c00, c01, c, cOff, accumulate);
            store(c10, c11, c, cOff + ldc, accumulate);
        }

        private static void rows1Indirect(float[] a, int aOff, int ars, int aks, float[] b, int bOff, int[] bRows,
                                          int rowsOff, int kLen,
                             float[] c, int cOff, int ldc, boolean accumulate) {
            FloatVector c00 = FloatVector.zero(S);
            FloatVector c01 = c00;
            int a0 = aOff;
            int ak = 0;
            for (int k = 0; k < kLen; k++, ak += aks) {
                int bk = bOff + bRows[rowsOff + k];
                FloatVector b0 = FloatVector.fromArray(S, b, bk);
                FloatVector b1 = FloatVector.fromArray(S, b, bk + L);
                FloatVector x0 = FloatVector.broadcast(S, a[a0 + ak]);
                c00 = x0.fma(b0, c00);
                c01 = x0.fma(b1, c01);
            }
            store(c00, c01, c, cOff, accumulate);
        }
    }
}
