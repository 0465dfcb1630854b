package org.kernels4j.conformance;

import org.kernels4j.Conv2d;
import org.kernels4j.DType;
import org.kernels4j.reference.ReferenceAttention;
import org.kernels4j.reference.ReferenceConv2d;
import org.kernels4j.reference.ReferenceLayerNorm;
import org.kernels4j.spi.AttentionProblem;
import org.kernels4j.spi.Conv2dProblem;
import org.kernels4j.spi.HalfFloats;
import org.kernels4j.spi.LayerNormProblem;

/**
 * The naive algorithms of the float64 references computed in a low precision: inputs and the result of
 * every arithmetic operation (each product, each running sum, each exp) rounded to the dtype. This is "a
 * plain fp16/bf16 computation of the same reference", the yardstick of the 16-bit tolerance in
 * {@link Accuracy}; with {@link DType#FLOAT32} it is a plain fp32 computation, which the kit's self-test
 * uses to justify the fp32 tolerance.
 *
 * <p>The structure follows the references line by line so that the only difference is the rounding.
 */
public final class PlainLowPrecision {

    private final DType t;

    private PlainLowPrecision(DType dtype) {
        this.t = dtype;
    }

    /** Rounds to the dtype (through float, as a device would convert). */
    private double r(double v) {
        return HalfFloats.round(t, (float) v);
    }

    private double[] r(double[] a) {
        if (a == null) {
            return null;
        }
        double[] o = new double[a.length];
        for (int i = 0; i < a.length; i++) {
            o[i] = r(a[i]);
        }
        return o;
    }

    // ---------------------------------------------------------------- layer norm

    /** Plain low-precision {@link ReferenceLayerNorm#forward}. */
    public static ReferenceLayerNorm.Forward layerNormForward(DType dtype, LayerNormProblem p, double[] x,
                                                              double[] gamma, double[] beta) {
        PlainLowPrecision m = new PlainLowPrecision(dtype);
        x = m.r(x);
        gamma = m.r(gamma);
        beta = m.r(beta);
        int rows = p.rows();
        int cols = p.cols();
        double[] y = new double[rows * cols];
        double[] mean = p.rms() ? null : new double[rows];
        double[] rstd = new double[rows];
        for (int row = 0; row < rows; row++) {
            int base = row * cols;
            double mu = m.mean(p, x, base);
            double rs = m.rstd(p, x, base, mu);
            for (int c = 0; c < cols; c++) {
                double v = m.r(m.r(x[base + c] - mu) * rs);
                if (gamma != null) {
                    v = m.r(v * gamma[c]);
                }
                if (beta != null) {
                    v = m.r(v + beta[c]);
                }
                y[base + c] = v;
            }
            if (mean != null) {
                mean[row] = mu;
            }
            rstd[row] = rs;
        }
        return new ReferenceLayerNorm.Forward(y, mean, rstd);
    }

    /** Plain low-precision {@link ReferenceLayerNorm#backward}. */
    public static ReferenceLayerNorm.Backward layerNormBackward(DType dtype, LayerNormProblem p, double[] dy,
                                                                double[] x, double[] gamma) {
        PlainLowPrecision m = new PlainLowPrecision(dtype);
        dy = m.r(dy);
        x = m.r(x);
        gamma = m.r(gamma);
        int rows = p.rows();
        int cols = p.cols();
        double[] dx = new double[rows * cols];
        double[] dgamma = new double[cols];
        double[] dbeta = new double[cols];
        double[] xhat = new double[cols];
        double[] g = new double[cols];
        for (int row = 0; row < rows; row++) {
            int base = row * cols;
            double mu = m.mean(p, x, base);
            double rs = m.rstd(p, x, base, mu);
            double meanG = 0;
            double meanGXhat = 0;
            for (int c = 0; c < cols; c++) {
                xhat[c] = m.r(m.r(x[base + c] - mu) * rs);
                g[c] = gamma == null ? dy[base + c] : m.r(dy[base + c] * gamma[c]);
                meanG = m.r(meanG + g[c]);
                meanGXhat = m.r(meanGXhat + m.r(g[c] * xhat[c]));
                dgamma[c] = m.r(dgamma[c] + m.r(dy[base + c] * xhat[c]));
                dbeta[c] = m.r(dbeta[c] + dy[base + c]);
            }
            meanG = m.r(meanG / cols);
            meanGXhat = m.r(meanGXhat / cols);
            for (int c = 0; c < cols; c++) {
                double v = p.rms() ? g[c] : m.r(g[c] - meanG);
                v = m.r(v - m.r(xhat[c] * meanGXhat));
                dx[base + c] = m.r(rs * v);
            }
        }
        return new ReferenceLayerNorm.Backward(dx, dgamma, dbeta);
    }

    private double mean(LayerNormProblem p, double[] x, int base) {
        if (p.rms()) {
            return 0.0;
        }
        double s = 0;
        for (int c = 0; c < p.cols(); c++) {
            s = r(s + x[base + c]);
        }
        return r(s / p.cols());
    }

    private double rstd(LayerNormProblem p, double[] x, int base, double mu) {
        double s = 0;
        for (int c = 0; c < p.cols(); c++) {
            double d = r(x[base + c] - mu);
            s = r(s + r(d * d));
        }
        double var = r(r(s / p.cols()) + r(p.epsilon()));
        return r(1.0 / r(Math.sqrt(var)));
    }

    // ---------------------------------------------------------------- attention

    /** Plain low-precision {@link ReferenceAttention#forward}. */
    public static ReferenceAttention.Forward attentionForward(DType dtype, AttentionProblem p, double[] q,
                                                              double[] k, double[] v) {
        PlainLowPrecision m = new PlainLowPrecision(dtype);
        q = m.r(q);
        k = m.r(k);
        v = m.r(v);
        int d = p.headDim();
        double[] o = new double[q.length];
        double[] lse = new double[p.batch() * p.heads() * p.queries()];
        double[] s = new double[p.keys()];
        for (int b = 0; b < p.batch(); b++) {
            for (int h = 0; h < p.heads(); h++) {
                int kvBase = (b * p.kvHeads() + h / p.groupSize()) * p.keys();
                for (int i = 0; i < p.queries(); i++) {
                    int row = (b * p.heads() + h) * p.queries() + i;
                    int visible = p.visibleKeys(i);
                    if (visible == 0) {
                        lse[row] = Double.NEGATIVE_INFINITY;
                        continue;
                    }
                    double l = m.scores(p, q, row * d, k, kvBase, visible, s);
                    lse[row] = l;
                    for (int j = 0; j < visible; j++) {
                        double pj = m.r(Math.exp(m.r(s[j] - l)));
                        for (int x = 0; x < d; x++) {
                            o[row * d + x] = m.r(o[row * d + x] + m.r(pj * v[(kvBase + j) * d + x]));
                        }
                    }
                }
            }
        }
        return new ReferenceAttention.Forward(o, lse);
    }

    /** Plain low-precision {@link ReferenceAttention#backward}. */
    public static ReferenceAttention.Backward attentionBackward(DType dtype, AttentionProblem p, double[] q,
                                                                double[] k, double[] v, double[] dO) {
        PlainLowPrecision m = new PlainLowPrecision(dtype);
        q = m.r(q);
        k = m.r(k);
        v = m.r(v);
        dO = m.r(dO);
        double scale = m.r(p.scale());
        int d = p.headDim();
        double[] dq = new double[q.length];
        double[] dk = new double[k.length];
        double[] dv = new double[v.length];
        double[] s = new double[p.keys()];
        double[] dp = new double[p.keys()];
        for (int b = 0; b < p.batch(); b++) {
            for (int h = 0; h < p.heads(); h++) {
                int kvBase = (b * p.kvHeads() + h / p.groupSize()) * p.keys();
                for (int i = 0; i < p.queries(); i++) {
                    int row = (b * p.heads() + h) * p.queries() + i;
                    int visible = p.visibleKeys(i);
                    if (visible == 0) {
                        continue;
                    }
                    double l = m.scores(p, q, row * d, k, kvBase, visible, s);
                    double rowD = 0;
                    for (int j = 0; j < visible; j++) {
                        s[j] = m.r(Math.exp(m.r(s[j] - l)));
                        double acc = 0;
                        for (int x = 0; x < d; x++) {
                            acc = m.r(acc + m.r(dO[row * d + x] * v[(kvBase + j) * d + x]));
                        }
                        dp[j] = acc;
                        rowD = m.r(rowD + m.r(s[j] * acc));
                    }
                    for (int j = 0; j < visible; j++) {
                        double ds = m.r(m.r(s[j] * m.r(dp[j] - rowD)) * scale);
                        for (int x = 0; x < d; x++) {
                            int qi = row * d + x;
                            int ki = (kvBase + j) * d + x;
                            dq[qi] = m.r(dq[qi] + m.r(ds * k[ki]));
                            dk[ki] = m.r(dk[ki] + m.r(ds * q[qi]));
                            dv[ki] = m.r(dv[ki] + m.r(s[j] * dO[qi]));
                        }
                    }
                }
            }
        }
        return new ReferenceAttention.Backward(dq, dk, dv);
    }

    private double scores(AttentionProblem p, double[] q, int qOff, double[] k, int kvBase, int visible, double[] s) {
        int d = p.headDim();
        double scale = r(p.scale());
        double max = Double.NEGATIVE_INFINITY;
        for (int j = 0; j < visible; j++) {
            double dot = 0;
            for (int x = 0; x < d; x++) {
                dot = r(dot + r(q[qOff + x] * k[(kvBase + j) * d + x]));
            }
            s[j] = r(scale * dot);
            max = Math.max(max, s[j]);
        }
        double sum = 0;
        for (int j = 0; j < visible; j++) {
            sum = r(sum + r(Math.exp(r(s[j] - max))));
        }
        return r(max + r(Math.log(sum)));
    }

    // ---------------------------------------------------------------- conv2d

    /** Plain low-precision {@link ReferenceConv2d#forward}. */
    public static double[] convForward(DType dtype, Conv2dProblem p, double[] x, double[] w, double[] bias) {
        PlainLowPrecision m = new PlainLowPrecision(dtype);
        double[] xr = m.r(x);
        double[] wr = m.r(w);
        double[] br = m.r(bias);
        double[] y = new double[TestData.count(p.yShape())];
        Conv conv = new Conv(p);
        for (int n = 0; n < p.n(); n++) {
            for (int k = 0; k < p.k(); k++) {
                for (int op = 0; op < p.p(); op++) {
                    for (int oq = 0; oq < p.q(); oq++) {
                        double acc = br == null ? 0.0 : br[k];
                        for (int c = 0; c < p.cPerGroup(); c++) {
                            for (int r = 0; r < p.r(); r++) {
                                for (int s = 0; s < p.s(); s++) {
                                    int xi = conv.x(n, k, c, op, oq, r, s);
                                    if (xi >= 0) {
                                        acc = m.r(acc + m.r(xr[xi] * wr[conv.w(k, c, r, s)]));
                                    }
                                }
                            }
                        }
                        y[conv.y(n, k, op, oq)] = acc;
                    }
                }
            }
        }
        return y;
    }

    /** Plain low-precision {@link ReferenceConv2d#backwardData}. */
    public static double[] convBackwardData(DType dtype, Conv2dProblem p, double[] dy, double[] w) {
        PlainLowPrecision m = new PlainLowPrecision(dtype);
        double[] dyr = m.r(dy);
        double[] wr = m.r(w);
        double[] dx = new double[TestData.count(p.xShape())];
        Conv conv = new Conv(p);
        for (int n = 0; n < p.n(); n++) {
            for (int k = 0; k < p.k(); k++) {
                for (int op = 0; op < p.p(); op++) {
                    for (int oq = 0; oq < p.q(); oq++) {
                        double g = dyr[conv.y(n, k, op, oq)];
                        for (int c = 0; c < p.cPerGroup(); c++) {
                            for (int r = 0; r < p.r(); r++) {
                                for (int s = 0; s < p.s(); s++) {
                                    int xi = conv.x(n, k, c, op, oq, r, s);
                                    if (xi >= 0) {
                                        dx[xi] = m.r(dx[xi] + m.r(g * wr[conv.w(k, c, r, s)]));
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        return dx;
    }

    /** Plain low-precision {@link ReferenceConv2d#backwardFilter}. */
    public static ReferenceConv2d.FilterGradients convBackwardFilter(DType dtype, Conv2dProblem p, double[] dy,
                                                                     double[] x) {
        PlainLowPrecision m = new PlainLowPrecision(dtype);
        double[] dyr = m.r(dy);
        double[] xr = m.r(x);
        double[] dw = new double[TestData.count(p.wShape())];
        double[] db = new double[p.k()];
        Conv conv = new Conv(p);
        for (int n = 0; n < p.n(); n++) {
            for (int k = 0; k < p.k(); k++) {
                for (int op = 0; op < p.p(); op++) {
                    for (int oq = 0; oq < p.q(); oq++) {
                        double g = dyr[conv.y(n, k, op, oq)];
                        db[k] = m.r(db[k] + g);
                        for (int c = 0; c < p.cPerGroup(); c++) {
                            for (int r = 0; r < p.r(); r++) {
                                for (int s = 0; s < p.s(); s++) {
                                    int xi = conv.x(n, k, c, op, oq, r, s);
                                    if (xi >= 0) {
                                        int wi = conv.w(k, c, r, s);
                                        dw[wi] = m.r(dw[wi] + m.r(g * xr[xi]));
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        return new ReferenceConv2d.FilterGradients(dw, db);
    }

    /** Index arithmetic of a convolution in either layout. */
    private record Conv(Conv2dProblem p) {

        /** Index of the input read by output (n, k, op, oq) at filter tap (c, r, s), or -1 in the padding. */
        int x(int n, int k, int c, int op, int oq, int r, int s) {
            int ih = op * p.strideH() - p.padTop() + r * p.dilationH();
            int iw = oq * p.strideW() - p.padLeft() + s * p.dilationW();
            if (ih < 0 || ih >= p.h() || iw < 0 || iw >= p.w()) {
                return -1;
            }
            int ch = (k / p.kPerGroup()) * p.cPerGroup() + c;
            return p.format() == Conv2d.Format.NCHW
                    ? ((n * p.c() + ch) * p.h() + ih) * p.w() + iw
                    : ((n * p.h() + ih) * p.w() + iw) * p.c() + ch;
        }

        int w(int k, int c, int r, int s) {
            return p.format() == Conv2d.Format.NCHW
                    ? ((k * p.cPerGroup() + c) * p.r() + r) * p.s() + s
                    : ((k * p.r() + r) * p.s() + s) * p.cPerGroup() + c;
        }

        int y(int n, int k, int op, int oq) {
            return p.format() == Conv2d.Format.NCHW
                    ? ((n * p.k() + k) * p.p() + op) * p.q() + oq
                    : ((n * p.p() + op) * p.q() + oq) * p.k() + k;
        }
    }
}
