package org.kernels4j.reference;

import org.kernels4j.Conv2d;
import org.kernels4j.spi.Conv2dProblem;

/**
 * Plain float64 2-D convolution (cross-correlation), forward, backward-data and backward-filter, exactly as
 * {@link org.kernels4j.Conv2d} documents it, in either layout: output pixel {@code (p, q)} of output channel
 * {@code k} in group {@code g = k / (K/groups)} reads input channels {@code g*(C/groups) ..} at rows
 * {@code p*strideH - padTop + r*dilationH} and columns {@code q*strideW - padLeft + s*dilationW}; positions
 * outside the input are zero padding.
 *
 * <p>Arrays are in the problem's {@link Conv2d.Format}: {@code x} {@code xShape()}, {@code w}
 * {@code wShape()}, {@code y} and {@code dy} {@code yShape()}, {@code bias} and {@code db} {@code [K]}.
 * Backward passes loop over the forward's index space and scatter, so they are the forward's exact
 * transposes.
 */
public final class ReferenceConv2d {

    /**
     * Backward-filter results.
     *
     * @param dw gradient with respect to the filter, in {@code wShape()}
     * @param db gradient with respect to the bias, {@code [K]}
     */
    public record FilterGradients(double[] dw, double[] db) {
    }

    private ReferenceConv2d() {
    }

    /** {@code y = conv(x, w) + bias}; {@code bias} may be null. */
    public static double[] forward(Conv2dProblem p, double[] x, double[] w, double[] bias) {
        Arrays64.notNull(p, "p");
        Arrays64.length(x, count(p.xShape()), "x");
        Arrays64.length(w, count(p.wShape()), "w");
        Arrays64.optionalLength(bias, p.k(), "bias");
        double[] y = new double[Arrays64.size("y", count(p.yShape()))];
        for (int n = 0; n < p.n(); n++) {
            for (int k = 0; k < p.k(); k++) {
                for (int op = 0; op < p.p(); op++) {
                    for (int oq = 0; oq < p.q(); oq++) {
                        double acc = bias == null ? 0.0 : bias[k];
                        for (int c = 0; c < p.cPerGroup(); c++) {
                            for (int r = 0; r < p.r(); r++) {
                                int ih = inputRow(p, op, r);
                                for (int s = 0; s < p.s(); s++) {
                                    int iw = inputColumn(p, oq, s);
                                    if (ih >= 0 && ih < p.h() && iw >= 0 && iw < p.w()) {
                                        acc += x[xIndex(p, n, channel(p, k, c), ih, iw)] * w[wIndex(p, k, c, r, s)];
                                    }
                                }
                            }
                        }
                        y[yIndex(p, n, k, op, oq)] = acc;
                    }
                }
            }
        }
        return y;
    }

    /** {@code dx}, the gradient with respect to {@code x}, from {@code dy} and the filter. */
    public static double[] backwardData(Conv2dProblem p, double[] dy, double[] w) {
        Arrays64.notNull(p, "p");
        Arrays64.length(dy, count(p.yShape()), "dy");
        Arrays64.length(w, count(p.wShape()), "w");
        double[] dx = new double[Arrays64.size("dx", count(p.xShape()))];
        forEachTap(p, (n, k, op, oq, c, r, s, ih, iw) ->
                dx[xIndex(p, n, channel(p, k, c), ih, iw)] += dy[yIndex(p, n, k, op, oq)] * w[wIndex(p, k, c, r, s)]);
        return dx;
    }

    /** {@code dw} and {@code db}, the gradients with respect to the filter and the bias, from {@code dy} and {@code x}. */
    public static FilterGradients backwardFilter(Conv2dProblem p, double[] dy, double[] x) {
        Arrays64.notNull(p, "p");
        Arrays64.length(dy, count(p.yShape()), "dy");
        Arrays64.length(x, count(p.xShape()), "x");
        double[] dw = new double[Arrays64.size("dw", count(p.wShape()))];
        double[] db = new double[p.k()];
        forEachTap(p, (n, k, op, oq, c, r, s, ih, iw) ->
                dw[wIndex(p, k, c, r, s)] += dy[yIndex(p, n, k, op, oq)] * x[xIndex(p, n, channel(p, k, c), ih, iw)]);
        for (int n = 0; n < p.n(); n++) {
            for (int k = 0; k < p.k(); k++) {
                for (int op = 0; op < p.p(); op++) {
                    for (int oq = 0; oq < p.q(); oq++) {
                        db[k] += dy[yIndex(p, n, k, op, oq)];
                    }
                }
            }
        }
        return new FilterGradients(dw, db);
    }

    /** One multiply of the forward: output (n, k, op, oq) times filter tap (k, c, r, s) reading input (ih, iw). */
    private interface Tap {
        void accept(int n, int k, int op, int oq, int c, int r, int s, int ih, int iw);
    }

    /** Visits every multiply of the forward whose input position lies inside the (unpadded) input. */
    private static void forEachTap(Conv2dProblem p, Tap tap) {
        for (int n = 0; n < p.n(); n++) {
            for (int k = 0; k < p.k(); k++) {
                for (int op = 0; op < p.p(); op++) {
                    for (int oq = 0; oq < p.q(); oq++) {
                        for (int c = 0; c < p.cPerGroup(); c++) {
                            for (int r = 0; r < p.r(); r++) {
                                int ih = inputRow(p, op, r);
                                for (int s = 0; s < p.s(); s++) {
                                    int iw = inputColumn(p, oq, s);
                                    if (ih >= 0 && ih < p.h() && iw >= 0 && iw < p.w()) {
                                        tap.accept(n, k, op, oq, c, r, s, ih, iw);
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    private static int inputRow(Conv2dProblem p, int op, int r) {
        return op * p.strideH() - p.padTop() + r * p.dilationH();
    }

    private static int inputColumn(Conv2dProblem p, int oq, int s) {
        return oq * p.strideW() - p.padLeft() + s * p.dilationW();
    }

    /** The input channel that filter channel {@code c} of output channel {@code k} reads. */
    private static int channel(Conv2dProblem p, int k, int c) {
        return (k / p.kPerGroup()) * p.cPerGroup() + c;
    }

    private static int xIndex(Conv2dProblem p, int n, int c, int h, int w) {
        return p.format() == Conv2d.Format.NCHW
                ? ((n * p.c() + c) * p.h() + h) * p.w() + w
                : ((n * p.h() + h) * p.w() + w) * p.c() + c;
    }

    private static int wIndex(Conv2dProblem p, int k, int c, int r, int s) {
        return p.format() == Conv2d.Format.NCHW
                ? ((k * p.cPerGroup() + c) * p.r() + r) * p.s() + s
                : ((k * p.r() + r) * p.s() + s) * p.cPerGroup() + c;
    }

    private static int yIndex(Conv2dProblem p, int n, int k, int op, int oq) {
        return p.format() == Conv2d.Format.NCHW
                ? ((n * p.k() + k) * p.p() + op) * p.q() + oq
                : ((n * p.p() + op) * p.q() + oq) * p.k() + k;
    }

    private static long count(int[] shape) {
        long n = 1;
        for (int d : shape) {
            n *= d;
        }
        return n;
    }
}
