package org.kernels4j.cpu;

import java.util.Arrays;

import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorOperators;
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
 * sees one read of x and one write of y.
 *
 * <p>Backward, per row with {@code x̂ = (x - mean)·rstd} and {@code g = dy·γ}: one pass accumulates
 * {@code Σg} and {@code Σg·x̂} and, fused into the same pass, adds {@code dy·x̂} and {@code dy} into this
 * worker's own dγ/dβ partial rows; a second pass over the cached row writes
 * {@code dx = rstd·(g - mean(g) - x̂·mean(g·x̂))} (RMS norm: without the {@code mean(g)} term). The
 * per-worker partials are summed once at the end, so no two threads ever write the same dγ/dβ element.
 *
 * <p>Rows are split over the worker pool in contiguous blocks (a few per worker so a busy core does not hold
 * up the rest); problems under {@link #MIN_ELEMENTS_PER_THREAD} elements per thread run on the caller alone.
 */
final class LayerNormCpu implements LayerNormKernels {

    /** Elements a thread must get before another thread is worth waking (tuning knob). */
    static final int MIN_ELEMENTS_PER_THREAD = 1 << 15;

    /** Row blocks per worker: more than one so a slow core does not hold up the rest (tuning knob). */
    static final int BLOCKS_PER_WORKER = 4;

    private static final int PARTIALS_SLOT = Workspace.TASK_SLOTS;

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
            for (int r = r0; r < r1; r++) {
                if (Vectorization.ENABLED) {
                    Panama.forwardRow(a, r, cols, rms, eps);
                } else {
                    forwardRow(a, r, cols, rms, eps);
                }
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
        int blocks = Math.min(rows, workers * BLOCKS_PER_WORKER);
        // per worker: a dγ partial row then a dβ partial row
        int stride = 2 * cols;
        float[] partials = Workspace.floats(PARTIALS_SLOT, workers * stride);
        if (wantG || wantB) {
            Arrays.fill(partials, 0, workers * stride, 0f);
        }
        Parallel.run(blocks, workers, (worker, block) -> {
            int r0 = (int) ((long) rows * block / blocks);
            int r1 = (int) ((long) rows * (block + 1) / blocks);
            int pg = wantG ? worker * stride : -1;
            int pb = wantB ? worker * stride + cols : -1;
            for (int r = r0; r < r1; r++) {
                if (Vectorization.ENABLED) {
                    Panama.backwardRow(a, dya, dyo, r, cols, rms, partials, pg, pb);
                } else {
                    backwardRow(a, dya, dyo, r, cols, rms, partials, pg, pb);
                }
            }
        });
        if (wantG) {
            reducePartials(partials, 0, stride, workers, cols, CpuTensor.data(dgamma), CpuTensor.offset(dgamma));
        }
        if (wantB) {
            reducePartials(partials, cols, stride, workers, cols, CpuTensor.data(dbeta), CpuTensor.offset(dbeta));
        }
    }

    private static void reducePartials(float[] partials, int first, int stride, int workers, int cols, float[] out,
                                       int outOffset) {
        System.arraycopy(partials, first, out, outOffset, cols);
        for (int w = 1; w < workers; w++) {
            int base = first + w * stride;
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
        double sum = 0;
        double sq = 0;
        for (int j = 0; j < n; j++) {
            double v = x[xo + j] - shift;
            sum += v;
            sq += v * v;
        }
        double meanShifted = rms ? 0 : sum / n;
        double var = Math.max(0, sq / n - meanShifted * meanShifted);
        float mean = (float) (shift + meanShifted);
        float rstd = (float) (1.0 / Math.sqrt(var + eps));
        writeStats(a, r, mean, rstd);
        float[] y = a.out;
        int yo = a.oo + r * n;
        float[] g = a.g;
        float[] b = a.b;
        for (int j = 0; j < n; j++) {
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

        static void forwardRow(Operands a, int r, int n, boolean rms, float eps) {
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
            for (; j <= n - L; j += L) {
                FloatVector v0 = FloatVector.fromArray(S, x, xo + j).sub(sh);
                s0 = s0.add(v0);
                q0 = v0.fma(v0, q0);
            }
            float sum = s0.add(s1).reduceLanes(VectorOperators.ADD);
            float sq = q0.add(q1).reduceLanes(VectorOperators.ADD);
            for (; j < n; j++) {
                float v = x[xo + j] - shift;
                sum += v;
                sq += v * v;
            }
            float meanShifted = rms ? 0f : sum / n;
            float var = Math.max(0f, sq / n - meanShifted * meanShifted);
            float mean = shift + meanShifted;
            float rstd = (float) (1.0 / Math.sqrt(var + eps));
            writeStats(a, r, mean, rstd);

            float[] y = a.out;
            int yo = a.oo + r * n;
            float[] g = a.g;
            float[] b = a.b;
            int go = a.go;
            int bo = a.bo;
            FloatVector vm = FloatVector.broadcast(S, mean);
            FloatVector vr = FloatVector.broadcast(S, rstd);
            j = 0;
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
            for (; j < n; j++) {
                float v = (x[xo + j] - mean) * rstd;
                if (g != null) {
                    v *= g[go + j];
                }
                if (b != null) {
                    v += b[bo + j];
                }
                y[yo + j] = v;
            }
        }

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
            float sumG = sg.reduceLanes(VectorOperators.ADD);
            float sumGx = sgx.reduceLanes(VectorOperators.ADD);
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
    }
}
