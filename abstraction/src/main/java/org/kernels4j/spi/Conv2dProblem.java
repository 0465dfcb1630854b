package org.kernels4j.spi;

import org.kernels4j.Conv2d;
import org.kernels4j.DType;

/**
 * A validated convolution problem with every derived size. Filters have {@code C / groups} input channels;
 * output pixel {@code (p, q)} reads input rows {@code p*strideH - padTop + r*dilationH}.
 *
 * @param format    layout of x, w and y
 * @param n         batch N (may be 0)
 * @param c         input channels C
 * @param h         input height H
 * @param w         input width W
 * @param k         output channels K
 * @param r         filter height R
 * @param s         filter width S
 * @param p         output height P
 * @param q         output width Q
 * @param strideH   vertical stride
 * @param strideW   horizontal stride
 * @param padTop    padding above
 * @param padLeft   padding left
 * @param padBottom padding below
 * @param padRight  padding right
 * @param dilationH vertical dilation
 * @param dilationW horizontal dilation
 * @param groups    groups
 * @param dtype     element type
 */
public record Conv2dProblem(Conv2d.Format format, int n, int c, int h, int w, int k, int r, int s, int p, int q,
                            int strideH, int strideW, int padTop, int padLeft, int padBottom, int padRight,
                            int dilationH, int dilationW, int groups, DType dtype) {

    /** Input channels per group. */
    public int cPerGroup() {
        return c / groups;
    }

    /** Output channels per group. */
    public int kPerGroup() {
        return k / groups;
    }

    /** Whether this is a depthwise convolution (one input and one output channel per group). */
    public boolean depthwise() {
        return groups == c && groups == k;
    }

    /** The shape of x in this layout. */
    public int[] xShape() {
        return format == Conv2d.Format.NCHW ? new int[] {n, c, h, w} : new int[] {n, h, w, c};
    }

    /** The shape of w in this layout. */
    public int[] wShape() {
        return format == Conv2d.Format.NCHW ? new int[] {k, cPerGroup(), r, s} : new int[] {k, r, s, cPerGroup()};
    }

    /** The shape of y in this layout. */
    public int[] yShape() {
        return format == Conv2d.Format.NCHW ? new int[] {n, k, p, q} : new int[] {n, p, q, k};
    }

    /** Floating-point operations of one pass: 2·N·K·(C/groups)·R·S·P·Q. */
    public double flops() {
        return 2.0 * n * k * (double) cPerGroup() * r * s * p * q;
    }
}
