package org.kernels4j.cpu;

import java.util.Arrays;

import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorSpecies;

import org.kernels4j.Stream;
import org.kernels4j.Tensor;
import org.kernels4j.spi.LayerNormKernels;
import org.kernels4j.spi.LayerNormProblem;

/**
 * Layer norm and RMS norm on the CPU, forward and backward.
 *
 * <p>Forward, per row: one read pass accumulates the sum and the sum of squares of {@code x - x[0]} (the
 * shift keeps {@code E[x²] - E[x]²} from cancelling when the mean is large next to the spread), then one
 * pass writes {@code y = (x - mean)·rstd·γ + β}. The row is still in L1/L2 for the second pass, so memory
 * sees one read of x and one write of y; on the vector path the second pass of a row and the first pass of the
 * next run in one loop, so that reads and writes interleave as in a copy.
 *
 * <p>Backward, per row with {@code x̂ = (x - mean)·rstd} and {@code g = dy·γ}: one pass accumulates
 * {@code Σg} and {@code Σg·x̂} and, fused into the same pass, adds {@code dy·x̂} and {@code dy} into the
 * dγ/dβ partial rows of its block of rows; a second pass over the cached row writes
 * {@code dx = rstd·(g - mean(g) - x̂·mean(g·x̂))} (RMS norm: without the {@code mean(g)} term). The
 * per-block partials are summed once at the end, in block order: no two threads ever write the same dγ/dβ
 * element, and the sums come out bit for bit the same on every run (per-worker partials would not: which
 * blocks a worker takes depends on the timing of the threads). Long
 * rows ({@link #FUSED_BACKWARD_COLUMNS}) fuse the dx pass with the next row's first pass, as forward does.
 *
 * <p>Rows are split over the worker pool in contiguous blocks (a few per worker so a busy core does not hold
 * up the rest); problems under {@link #MIN_ELEMENTS_PER_THREAD} elements per thread run on the caller alone.
 */
final class LayerNormCpu implements LayerNormKernels {

    /** Elements a thread must get before another thread is worth waking (tuning knob). */
    static final int MIN_ELEMENTS_PER_THREAD = 1 << 15;

    /** Row blocks per worker: more than one so a slow core does not hold up the rest (tuning knob). */
    static final int BLOCKS_PER_WORKER = 4;

    /**
     * Row length from which backward fuses a row's dx pass with the next row's sums (tuning knob): measured on one
     * core, 15% faster on 4096 columns, 7% slower on 1024 (where the two-row loop runs out of vector registers and
     * the next short row is prefetched anyway).
     */
    static final int FUSED_BACKWARD_COLUMNS = 2048;

    private static final int PARTIALS_SLOT = Workspace.TASK_SLOTS;
    private static final int SUMS_SLOT = 0;

    @Override
    public void forward(Stream stream, LayerNormProblem p, Tensor x, Tensor gamma, Tensor beta, Tensor y,
                        Tensor mean, Tensor rstd) {
        int rows = p.rows();
        int cols = p.cols();
        Operands a = new Operands(x, gamma, beta, y, mean, rstd);
        boolean rms = p.rms();
        float eps = p.epsilon();
        int workers = Parallel.workers(rows, (double) rows * cols, MIN_ELEMENTS_PER_THREAD);
        int blocks = Math.min(rows, workers * BLOCKS_PER_WORKER);
        Parallel.run(blocks, workers, (worker, block) -> {
            int r0 = (int) ((long) rows * block / blocks);
            int r1 = (int) ((long) rows * (block + 1) / blocks);
            if (Vectorization.ENABLED) {
                Panama.forwardRows(a, r0, r1, cols, rms, eps);
                return;
            }
            for (int r = r0; r < r1; r++) {
                forwardRow(a, r, cols, rms, eps);
            }
        });
    }

    @Override
    public void backward(Stream stream, LayerNormProblem p, Tensor dy, Tensor x, Tensor gamma, Tensor mean,
                         Tensor rstd, Tensor dx, Tensor dgamma, Tensor dbeta) {
        int rows = p.rows();
        int cols = p.cols();
        Operands a = new Operands(x, gamma, null, dx, mean, rstd);
        float[] dya = CpuTensor.data(dy);
        int dyo = CpuTensor.offset(dy);
        boolean rms = p.rms();
        boolean wantG = dgamma != null;
        boolean wantB = dbeta != null;
        int workers = Parallel.workers(rows, 2.0 * rows * cols, MIN_ELEMENTS_PER_THREAD);
        // at least one block, so that zero rows give zero dγ/dβ
        int blocks = Math.max(1, Math.min(rows, workers * BLOCKS_PER_WORKER));
        // per block: a dγ partial row then a dβ partial row
        int stride = 2 * cols;
        float[] partials = Workspace.floats(PARTIALS_SLOT, blocks * stride);
        if (wantG || wantB) {
            Arrays.fill(partials, 0, blocks * stride, 0f);
        }
        Parallel.run(blocks, workers, (worker, block) -> {
            int r0 = (int) ((long) rows * block / blocks);
            int r1 = (int) ((long) rows * (block + 1) / blocks);
            int pg = wantG ? block * stride : -1;
            int pb = wantB ? block * stride + cols : -1;
            if (Vectorization.ENABLED) {
                Panama.backwardRows(a, dya, dyo, r0, r1, cols, rms, partials, pg, pb);
                return;
            }
            for (int r = r0; r < r1; r++) {
                backwardRow(a, dya, dyo, r, cols, rms, partials, pg, pb);
            }
        });
        if (wantG) {
            reducePartials(partials, 0, stride, blocks, cols, CpuTensor.data(dgamma), CpuTensor.offset(dgamma));
        }
        if (wantB) {
            reducePartials(partials, cols, stride, blocks, cols, CpuTensor.data(dbeta), CpuTensor.offset(dbeta));
        }
    }

    private static void reducePartials(float[] partials, int first, int stride, int parts, int cols, float[] out,
                                       int outOffset) {
        System.arraycopy(partials, first, out, outOffset, cols);
        for (int part = 1; part < parts; part++) {
            int base = first + part * stride;
            for (int j = 0; j < cols; j++) {
                out[outOffset + j] += partials[base + j];
            }
        }
    }

    /**
     * The arrays and offsets of one call: {@code x}, the optional γ and β, the output ({@code y} forward,
     * {@code dx} backward) and the statistics ({@code mean} absent for RMS norm).
     */
    private static final class Operands {
        final float[] x;
        final int xo;
        final float[] g;
        final int go;
        final float[] b;
        final int bo;
        final float[] out;
        final int oo;
        final float[] mean;
        final int mo;
        final float[] rstd;
        final int ro;

        Operands(Tensor x, Tensor gamma, Tensor beta, Tensor out, Tensor mean, Tensor rstd) {
            this.x = CpuTensor.data(x);
            this.xo = CpuTensor.offset(x);
            this.g = gamma == null ? null : CpuTensor.data(gamma);
            this.go = gamma == null ? 0 : CpuTensor.offset(gamma);
            this.b = beta == null ? null : CpuTensor.data(beta);
            this.bo = beta == null ? 0 : CpuTensor.offset(beta);
            this.out = CpuTensor.data(out);
            this.oo = CpuTensor.offset(out);
            this.mean = mean == null ? null : CpuTensor.data(mean);
            this.mo = mean == null ? 0 : CpuTensor.offset(mean);
            this.rstd = CpuTensor.data(rstd);
            this.ro = CpuTensor.offset(rstd);
        }
    }

    // ---- scalar path: double accumulators; the JIT vectorises the element-wise passes where it can ----

    private static void forwardRow(Operands a, int r, int n, boolean rms, float eps) {
        float[] x = a.x;
        int xo = a.xo + r * n;
        float shift = rms ? 0f : x[xo];
        // four sums of each kind, over every fourth element: one chain of dependent adds would wait out the add
        // latency on every element (the JIT keeps float reductions in order, so it does not vectorise them)
        double s0 = 0;
        double s1 = 0;
        double s2 = 0;
        double s3 = 0;
        double q0 = 0;
        double q1 = 0;
        double q2 = 0;
        double q3 = 0;
        int j = 0;
        for (; j + 4 <= n; j += 4) {
            double v0 = x[xo + j] - shift;
            double v1 = x[xo + j + 1] - shift;
            double v2 = x[xo + j + 2] - shift;
            double v3 = x[xo + j + 3] - shift;
            s0 += v0;
            s1 += v1;
            s2 += v2;
            s3 += v3;
            q0 += v0 * v0;
            q1 += v1 * v1;
            q2 += v2 * v2;
            q3 += v3 * v3;
        }
        for (; j < n; j++) {
            double v = x[xo + j] - shift;
            s0 += v;
            q0 += v * v;
        }
        double sum = (s0 + s1) + (s2 + s3);
        double sq = (q0 + q1) + (q2 + q3);
        double meanShifted = rms ? 0 : sum / n;
        double var = Math.max(0, sq / n - meanShifted * meanShifted);
        float mean = (float) (shift + meanShifted);
        float rstd = (float) (1.0 / Math.sqrt(var + eps));
        writeStats(a, r, mean, rstd);
        float[] y = a.out;
        int yo = a.oo + r * n;
        float[] g = a.g;
        float[] b = a.b;
        for (j = 0; j < n; j++) {
            float v = (x[xo + j] - mean) * rstd;
            if (g != null) {
                v *= g[a.go + j];
            }
            if (b != null) {
                v += b[a.bo + j];
            }
            y[yo + j] = v;
        }
    }

    private static void backwardRow(Operands a, float[] dy, int dyo, int r, int n, boolean rms, float[] partials,
                                    int pg, int pb) {
        float[] x = a.x;
        int xo = a.xo + r * n;
        int dro = dyo + r * n;
        float mean = rms ? 0f : a.mean[a.mo + r];
        float rstd = a.rstd[a.ro + r];
        float[] g = a.g;
        double sumG = 0;
        double sumGx = 0;
        for (int j = 0; j < n; j++) {
            float d = dy[dro + j];
            float xh = (x[xo + j] - mean) * rstd;
            float gd = g == null ? d : d * g[a.go + j];
            sumG += gd;
            sumGx += gd * xh;
            if (pg >= 0) {
                partials[pg + j] += d * xh;
            }
            if (pb >= 0) {
                partials[pb + j] += d;
            }
        }
        float meanG = rms ? 0f : (float) (sumG / n);
        float meanGx = (float) (sumGx / n);
        float[] dx = a.out;
        int dxo = a.oo + r * n;
        for (int j = 0; j < n; j++) {
            float xh = (x[xo + j] - mean) * rstd;
            float gd = g == null ? dy[dro + j] : dy[dro + j] * g[a.go + j];
            dx[dxo + j] = rstd * (gd - meanG - xh * meanGx);
        }
    }

    private static void writeStats(Operands a, int r, float mean, float rstd) {
        if (a.mean != null) {
            a.mean[a.mo + r] = mean;
        }
        a.rstd[a.ro + r] = rstd;
    }

    /** The Panama Vector API twins of the row kernels; loaded only on the vector path. */
    private static final class Panama {
        private static final VectorSpecies<Float> S = FloatVector.SPECIES_PREFERRED;
        private static final int L = S.length();

        /**
         * Rows {@code [r0, r1)}: the statistics of the first, then for each row one pass that writes its y and, in
         * the same loop, accumulates the next row's sums. Memory then sees the reads of one row interleaved with the
         * writes of the previous one, as in a copy, instead of a burst of reads (the statistics pass) and a burst of
         * writes (measured on ln-4k-4k, one thread: 75% of the copy bandwidth before).
         */
        static void forwardRows(Operands a, int r0, int r1, int n, boolean rms, float eps) {
            if (r0 >= r1) {
                return;
            }
            statistics(a, r0, n, rms, eps);
            for (int r = r0; r < r1; r++) {
                if (r + 1 < r1) {
                    normalizeAndAccumulate(a, r, n, rms, eps);
                } else {
                    normalize(a, r, n, rms);
                }
            }
        }

        /** The sums of row {@code r} (of {@code x - x[0]}, see the class comment), turned into its statistics. */
        private static void statistics(Operands a, int r, int n, boolean rms, float eps) {
            float[] x = a.x;
            int xo = a.xo + r * n;
            float shift = rms ? 0f : x[xo];
            FloatVector sh = FloatVector.broadcast(S, shift);
            FloatVector s0 = FloatVector.zero(S);
            FloatVector s1 = s0;
            FloatVector q0 = s0;
            FloatVector q1 = s0;
            int j = 0;
            for (; j <= n - 2 * L; j += 2 * L) {
                FloatVector v0 = FloatVector.fromArray(S, x, xo + j).sub(sh);
                FloatVector v1 = FloatVector.fromArray(S, x, xo + j + L).sub(sh);
                s0 = s0.add(v0);
                s1 = s1.add(v1);
                q0 = v0.fma(v0, q0);
                q1 = v1.fma(v1, q1);
            }
            float sum = Lanes.sum(s0.add(s1));
            float sq = Lanes.sum(q0.add(q1));
            for (; j < n; j++) {
                float v = x[xo + j] - shift;
                sum += v;
                sq += v * v;
            }
            finishStatistics(a, r, n, rms, eps, shift, sum, sq);
        }

        private static void finishStatistics(Operands a, int r, int n, boolean rms, float eps, float shift, float sum,
                                             float sq) {
            float meanShifted = rms ? 0f : sum / n;
            float var = Math.max(0f, sq / n - meanShifted * meanShifted);
            writeStats(a, r, shift + meanShifted, (float) (1.0 / Math.sqrt(var + eps)));
        }

        /** y of row {@code r} from its statistics. */
        private static void normalize(Operands a, int r, int n, boolean rms) {
            float[] x = a.x;
            int xo = a.xo + r * n;
            float mean = rms ? 0f : a.mean[a.mo + r];
            float rstd = a.rstd[a.ro + r];
            float[] y = a.out;
            int yo = a.oo + r * n;
            float[] g = a.g;
            float[] b = a.b;
            int go = a.go;
            int bo = a.bo;
            FloatVector vm = FloatVector.broadcast(S, mean);
            FloatVector vr = FloatVector.broadcast(S, rstd);
            int j = 0;
            for (; j <= n - L; j += L) {
                FloatVector v = FloatVector.fromArray(S, x, xo + j).sub(vm).mul(vr);
                if (g != null) {
                    v = v.mul(FloatVector.fromArray(S, g, go + j));
                }
                if (b != null) {
                    v = v.add(FloatVector.fromArray(S, b, bo + j));
                }
                v.intoArray(y, yo + j);
            }
            normalizeTail(a, x, xo, y, yo, j, n, mean, rstd);
        }

        /** y of row {@code r}, and in the same loop the sums of row {@code r + 1}, then its statistics. */
        private static void normalizeAndAccumulate(Operands a, int r, int n, boolean rms, float eps) {
            float[] x = a.x;
            int xo = a.xo + r * n;
            int xn = xo + n;
            float mean = rms ? 0f : a.mean[a.mo + r];
            float rstd = a.rstd[a.ro + r];
            float shift = rms ? 0f : x[xn];
            float[] y = a.out;
            int yo = a.oo + r * n;
            float[] g = a.g;
            float[] b = a.b;
            int go = a.go;
            int bo = a.bo;
            FloatVector vm = FloatVector.broadcast(S, mean);
            FloatVector vr = FloatVector.broadcast(S, rstd);
            FloatVector sh = FloatVector.broadcast(S, shift);
            FloatVector s0 = FloatVector.zero(S);
            FloatVector q0 = s0;
            int j = 0;
            for (; j <= n - L; j += L) {
                FloatVector v = FloatVector.fromArray(S, x, xo + j).sub(vm).mul(vr);
                if (g != null) {
                    v = v.mul(FloatVector.fromArray(S, g, go + j));
                }
                if (b != null) {
                    v = v.add(FloatVector.fromArray(S, b, bo + j));
                }
                v.intoArray(y, yo + j);
                FloatVector w = FloatVector.fromArray(S, x, xn + j).sub(sh);
                s0 = s0.add(w);
                q0 = w.fma(w, q0);
            }
            normalizeTail(a, x, xo, y, yo, j, n, mean, rstd);
            float sum = Lanes.sum(s0);
            float sq = Lanes.sum(q0);
            for (int t = j; t < n; t++) {
                float w = x[xn + t] - shift;
                sum += w;
                sq += w * w;
            }
            finishStatistics(a, r + 1, n, rms, eps, shift, sum, sq);
        }

        private static void normalizeTail(Operands a, float[] x, int xo, float[] y, int yo, int j, int n, float mean,
                                          float rstd) {
            for (; j < n; j++) {
                float v = (x[xo + j] - mean) * rstd;
                if (a.g != null) {
                    v *= a.g[a.go + j];
                }
                if (a.b != null) {
                    v += a.b[a.bo + j];
                }
                y[yo + j] = v;
            }
        }

        /**
         * Rows {@code [r0, r1)}, fused as in {@link #forwardRows} for long rows: one loop writes row r's dx and
         * accumulates row {@code r + 1}'s sums and dγ/dβ partials, so reads and writes interleave. The two sums of
         * the next row travel through a two-float scratch array.
         */
        static void backwardRows(Operands a, float[] dy, int dyo, int r0, int r1, int n, boolean rms,
                                 float[] partials, int pg, int pb) {
            if (r0 >= r1) {
                return;
            }
            if (n < FUSED_BACKWARD_COLUMNS) {
                for (int r = r0; r < r1; r++) {
                    backwardRow(a, dy, dyo, r, n, rms, partials, pg, pb);
                }
                return;
            }
            float[] sums = Workspace.floats(SUMS_SLOT, 2);
            accumulate(a, dy, dyo, r0, n, rms, partials, pg, pb, sums);
            for (int r = r0; r < r1; r++) {
                gradient(a, dy, dyo, r, n, rms, partials, pg, pb, sums, r + 1 < r1);
            }
        }

        /** One row in two passes (sums and partials, then dx): shorter rows, see {@link #FUSED_BACKWARD_COLUMNS}. */
        static void backwardRow(Operands a, float[] dy, int dyo, int r, int n, boolean rms, float[] partials,
                                int pg, int pb) {
            float[] x = a.x;
            int xo = a.xo + r * n;
            int dro = dyo + r * n;
            float mean = rms ? 0f : a.mean[a.mo + r];
            float rstd = a.rstd[a.ro + r];
            float[] g = a.g;
            int go = a.go;
            FloatVector vm = FloatVector.broadcast(S, mean);
            FloatVector vr = FloatVector.broadcast(S, rstd);
            FloatVector sg = FloatVector.zero(S);
            FloatVector sgx = sg;
            int j = 0;
            for (; j <= n - L; j += L) {
                FloatVector d = FloatVector.fromArray(S, dy, dro + j);
                FloatVector xh = FloatVector.fromArray(S, x, xo + j).sub(vm).mul(vr);
                FloatVector gd = g == null ? d : d.mul(FloatVector.fromArray(S, g, go + j));
                sg = sg.add(gd);
                sgx = gd.fma(xh, sgx);
                if (pg >= 0) {
                    d.fma(xh, FloatVector.fromArray(S, partials, pg + j)).intoArray(partials, pg + j);
                }
                if (pb >= 0) {
                    d.add(FloatVector.fromArray(S, partials, pb + j)).intoArray(partials, pb + j);
                }
            }
            float sumG = Lanes.sum(sg);
            float sumGx = Lanes.sum(sgx);
            for (int t = j; t < n; t++) {
                float d = dy[dro + t];
                float xh = (x[xo + t] - mean) * rstd;
                float gd = g == null ? d : d * g[go + t];
                sumG += gd;
                sumGx += gd * xh;
                if (pg >= 0) {
                    partials[pg + t] += d * xh;
                }
                if (pb >= 0) {
                    partials[pb + t] += d;
                }
            }
            float meanG = rms ? 0f : sumG / n;
            float meanGx = sumGx / n;
            float[] dx = a.out;
            int dxo = a.oo + r * n;
            FloatVector vmg = FloatVector.broadcast(S, meanG);
            FloatVector vnmgx = FloatVector.broadcast(S, -meanGx);
            j = 0;
            for (; j <= n - L; j += L) {
                FloatVector d = FloatVector.fromArray(S, dy, dro + j);
                FloatVector xh = FloatVector.fromArray(S, x, xo + j).sub(vm).mul(vr);
                FloatVector gd = g == null ? d : d.mul(FloatVector.fromArray(S, g, go + j));
                xh.fma(vnmgx, gd.sub(vmg)).mul(vr).intoArray(dx, dxo + j);
            }
            for (; j < n; j++) {
                float xh = (x[xo + j] - mean) * rstd;
                float gd = g == null ? dy[dro + j] : dy[dro + j] * g[go + j];
                dx[dxo + j] = rstd * (gd - meanG - xh * meanGx);
            }
        }

        /** Row {@code r}'s sums {@code Σg} and {@code Σg·x̂} into {@code sums}, and its dγ/dβ partials. */
        private static void accumulate(Operands a, float[] dy, int dyo, int r, int n, boolean rms, float[] partials,
                                       int pg, int pb, float[] sums) {
            float[] x = a.x;
            int xo = a.xo + r * n;
            int dro = dyo + r * n;
            float mean = rms ? 0f : a.mean[a.mo + r];
            float rstd = a.rstd[a.ro + r];
            float[] g = a.g;
            int go = a.go;
            FloatVector vm = FloatVector.broadcast(S, mean);
            FloatVector vr = FloatVector.broadcast(S, rstd);
            FloatVector sg = FloatVector.zero(S);
            FloatVector sgx = sg;
            int j = 0;
            for (; j <= n - L; j += L) {
                FloatVector d = FloatVector.fromArray(S, dy, dro + j);
                FloatVector xh = FloatVector.fromArray(S, x, xo + j).sub(vm).mul(vr);
                FloatVector gd = g == null ? d : d.mul(FloatVector.fromArray(S, g, go + j));
                sg = sg.add(gd);
                sgx = gd.fma(xh, sgx);
                if (pg >= 0) {
                    d.fma(xh, FloatVector.fromArray(S, partials, pg + j)).intoArray(partials, pg + j);
                }
                if (pb >= 0) {
                    d.add(FloatVector.fromArray(S, partials, pb + j)).intoArray(partials, pb + j);
                }
            }
            sums[0] = Lanes.sum(sg);
            sums[1] = Lanes.sum(sgx);
            accumulateTail(a, dy, dro, xo, j, n, mean, rstd, partials, pg, pb, sums);
        }

        /**
         * Row {@code r}'s dx from its sums; with {@code next}, the same loop accumulates row {@code r + 1} as
         * {@link #accumulate} does, leaving its sums in {@code sums}.
         */
        private static void gradient(Operands a, float[] dy, int dyo, int r, int n, boolean rms, float[] partials,
                                     int pg, int pb, float[] sums, boolean next) {
            float[] x = a.x;
            int xo = a.xo + r * n;
            int dro = dyo + r * n;
            float mean = rms ? 0f : a.mean[a.mo + r];
            float rstd = a.rstd[a.ro + r];
            float meanG = rms ? 0f : sums[0] / n;
            float meanGx = sums[1] / n;
            float[] g = a.g;
            int go = a.go;
            float[] dx = a.out;
            int dxo = a.oo + r * n;
            FloatVector vm = FloatVector.broadcast(S, mean);
            FloatVector vr = FloatVector.broadcast(S, rstd);
            FloatVector vmg = FloatVector.broadcast(S, meanG);
            FloatVector vnmgx = FloatVector.broadcast(S, -meanGx);
            int j = 0;
            if (next) {
                int xn = xo + n;
                int dn = dro + n;
                float meanN = rms ? 0f : a.mean[a.mo + r + 1];
                float rstdN = a.rstd[a.ro + r + 1];
                FloatVector vmN = FloatVector.broadcast(S, meanN);
                FloatVector vrN = FloatVector.broadcast(S, rstdN);
                FloatVector sg = FloatVector.zero(S);
                FloatVector sgx = sg;
                for (; j <= n - L; j += L) {
                    FloatVector gv = g == null ? null : FloatVector.fromArray(S, g, go + j);
                    FloatVector d = FloatVector.fromArray(S, dy, dro + j);
                    FloatVector xh = FloatVector.fromArray(S, x, xo + j).sub(vm).mul(vr);
                    FloatVector gd = g == null ? d : d.mul(gv);
                    xh.fma(vnmgx, gd.sub(vmg)).mul(vr).intoArray(dx, dxo + j);
                    FloatVector dN = FloatVector.fromArray(S, dy, dn + j);
                    FloatVector xhN = FloatVector.fromArray(S, x, xn + j).sub(vmN).mul(vrN);
                    FloatVector gdN = g == null ? dN : dN.mul(gv);
                    sg = sg.add(gdN);
                    sgx = gdN.fma(xhN, sgx);
                    if (pg >= 0) {
                        dN.fma(xhN, FloatVector.fromArray(S, partials, pg + j)).intoArray(partials, pg + j);
                    }
                    if (pb >= 0) {
                        dN.add(FloatVector.fromArray(S, partials, pb + j)).intoArray(partials, pb + j);
                    }
                }
                gradientTail(a, dy, dro, xo, dx, dxo, j, n, mean, rstd, meanG, meanGx);
                sums[0] = Lanes.sum(sg);
                sums[1] = Lanes.sum(sgx);
                accumulateTail(a, dy, dn, xn, j, n, meanN, rstdN, partials, pg, pb, sums);
                return;
            }
            for (; j <= n - L; j += L) {
                FloatVector d = FloatVector.fromArray(S, dy, dro + j);
                FloatVector xh = FloatVector.fromArray(S, x, xo + j).sub(vm).mul(vr);
                FloatVector gd = g == null ? d : d.mul(FloatVector.fromArray(S, g, go + j));
                xh.fma(vnmgx, gd.sub(vmg)).mul(vr).intoArray(dx, dxo + j);
            }
            gradientTail(a, dy, dro, xo, dx, dxo, j, n, mean, rstd, meanG, meanGx);
        }

        private static void accumulateTail(Operands a, float[] dy, int dro, int xo, int j, int n, float mean,
                                           float rstd, float[] partials, int pg, int pb, float[] sums) {
            for (; j < n; j++) {
                float d = dy[dro + j];
                float xh = (a.x[xo + j] - mean) * rstd;
                float gd = a.g == null ? d : d * a.g[a.go + j];
                sums[0] += gd;
                sums[1] += gd * xh;
                if (pg >= 0) {
                    partials[pg + j] += d * xh;
                }
                if (pb >= 0) {
                    partials[pb + j] += d;
                }
            }
        }

        private static void gradientTail(Operands a, float[] dy, int dro, int xo, float[] dx, int dxo, int j, int n,
                                         float mean, float rstd, float meanG, float meanGx) {
            for (; j < n; j++) {
                float xh = (a.x[xo + j] - mean) * rstd;
                float gd = a.g == null ? dy[dro + j] : dy[dro + j] * a.g[a.go + j];
                dx[dxo + j] = rstd * (gd - meanG - xh * meanGx);
            }
        }
    }
}
