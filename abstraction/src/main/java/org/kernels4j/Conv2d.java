package org.kernels4j;

import java.util.Arrays;

import org.kernels4j.spi.Conv2dProblem;

/**
 * 2-D convolution (cross-correlation, as ONNX {@code Conv} and PyTorch {@code conv2d}) with stride,
 * padding (per side), dilation, groups and optional bias; forward, backward-data and backward-filter.
 *
 * <p>Layouts: {@link Format#NCHW}: {@code x [N, C, H, W]}, {@code w [K, C/groups, R, S]},
 * {@code y [N, K, P, Q]}; {@link Format#NHWC}: {@code x [N, H, W, C]}, {@code w [K, R, S, C/groups]},
 * {@code y [N, P, Q, K]}. {@code bias} and {@code db} are {@code [K]}. Output size
 * {@code P = (H + padTop + padBottom - dilationH*(R-1) - 1) / strideH + 1}, likewise {@code Q}. Depthwise is
 * {@code groups = C = K}. All tensors share {@code x}'s dtype and device. Immutable and thread-safe;
 * validation happens before anything is queued.
 */
public final class Conv2d {

    /** Memory layout of activations and filters. */
    public enum Format {
        /** Channels-first: {@code x [N, C, H, W]}, {@code w [K, C/g, R, S]}. */
        NCHW,
        /** Channels-last: {@code x [N, H, W, C]}, {@code w [K, R, S, C/g]}. */
        NHWC
    }

    /** Gradients of the allocating {@link #backward(Stream, Tensor, Tensor, Tensor, boolean)}. */
    public record Gradients(Tensor dx, Tensor dw, Tensor db) implements AutoCloseable {
        /** Closes every tensor. */
        @Override
        public void close() {
            LayerNorm.closeAll(dx, dw, db);
        }
    }

    private final Format format;
    private final int strideH;
    private final int strideW;
    private final int padTop;
    private final int padLeft;
    private final int padBottom;
    private final int padRight;
    private final int dilationH;
    private final int dilationW;
    private final int groups;

    private Conv2d(Builder b) {
        this.format = b.format;
        this.strideH = b.strideH;
        this.strideW = b.strideW;
        this.padTop = b.padTop;
        this.padLeft = b.padLeft;
        this.padBottom = b.padBottom;
        this.padRight = b.padRight;
        this.dilationH = b.dilationH;
        this.dilationW = b.dilationW;
        this.groups = b.groups;
    }

    /** A builder starting from NCHW, stride 1, no padding, dilation 1, one group. */
    public static Builder builder() {
        return new Builder();
    }

    /** Builds a {@link Conv2d}; every setter validates its argument. */
    public static final class Builder {
        private Format format = Format.NCHW;
        private int strideH = 1;
        private int strideW = 1;
        private int padTop;
        private int padLeft;
        private int padBottom;
        private int padRight;
        private int dilationH = 1;
        private int dilationW = 1;
        private int groups = 1;

        private Builder() {
        }

        /** Layout of {@code x}, {@code w} and {@code y}. */
        public Builder format(Format format) {
            if (format == null) {
                throw new IllegalArgumentException("format: must not be null");
            }
            this.format = format;
            return this;
        }

        /** The same stride in both directions. */
        public Builder stride(int stride) {
            return stride(stride, stride);
        }

        /** Vertical and horizontal stride, each >= 1. */
        public Builder stride(int strideH, int strideW) {
            this.strideH = atLeast(strideH, 1, "strideH");
            this.strideW = atLeast(strideW, 1, "strideW");
            return this;
        }

        /** The same padding on every side. */
        public Builder padding(int pad) {
            return padding(pad, pad, pad, pad);
        }

        /** Symmetric padding: {@code padH} above and below, {@code padW} left and right. */
        public Builder padding(int padH, int padW) {
            return padding(padH, padW, padH, padW);
        }

        /** Padding per side, each >= 0 (ONNX order: begins, then ends). */
        public Builder padding(int top, int left, int bottom, int right) {
            this.padTop = atLeast(top, 0, "padTop");
            this.padLeft = atLeast(left, 0, "padLeft");
            this.padBottom = atLeast(bottom, 0, "padBottom");
            this.padRight = atLeast(right, 0, "padRight");
            return this;
        }

        /** The same dilation in both directions. */
        public Builder dilation(int dilation) {
            return dilation(dilation, dilation);
        }

        /** Vertical and horizontal dilation, each >= 1. */
        public Builder dilation(int dilationH, int dilationW) {
            this.dilationH = atLeast(dilationH, 1, "dilationH");
            this.dilationW = atLeast(dilationW, 1, "dilationW");
            return this;
        }

        /** Number of groups, >= 1; must divide both C and K. */
        public Builder groups(int groups) {
            this.groups = atLeast(groups, 1, "groups");
            return this;
        }

        /** The convolution. */
        public Conv2d build() {
            return new Conv2d(this);
        }

        private static int atLeast(int v, int min, String name) {
            if (v < min) {
                throw new IllegalArgumentException(name + ": expected >= " + min + ", got " + v);
            }
            return v;
        }
    }

    /** The layout. */
    public Format format() {
        return format;
    }

    /** Number of groups. */
    public int groups() {
        return groups;
    }

    /**
     * The problem this convolution poses for an input of shape {@code xShape} and a filter of shape
     * {@code wShape}: every derived size, validated.
     *
     * @throws IllegalArgumentException naming the argument when the shapes do not fit
     */
    public Conv2dProblem problem(int[] xShape, int[] wShape, DType dtype) {
        if (xShape == null) {
            throw new IllegalArgumentException("x: shape must not be null");
        }
        if (wShape == null) {
            throw new IllegalArgumentException("w: shape must not be null");
        }
        if (dtype == null) {
            throw new IllegalArgumentException("dtype: must not be null");
        }
        if (xShape.length != 4) {
            throw new IllegalArgumentException("x: expected rank 4 (" + xLayout() + "), got rank " + xShape.length
                    + " with shape " + Arrays.toString(xShape));
        }
        if (wShape.length != 4) {
            throw new IllegalArgumentException("w: expected rank 4 (" + wLayout() + "), got rank " + wShape.length
                    + " with shape " + Arrays.toString(wShape));
        }
        boolean nchw = format == Format.NCHW;
        int n = xShape[0];
        int c = nchw ? xShape[1] : xShape[3];
        int h = nchw ? xShape[2] : xShape[1];
        int w = nchw ? xShape[3] : xShape[2];
        int k = wShape[0];
        int r = nchw ? wShape[2] : wShape[1];
        int s = nchw ? wShape[3] : wShape[2];
        int cg = nchw ? wShape[1] : wShape[3];
        if (c < 1 || h < 1 || w < 1) {
            throw new IllegalArgumentException("x: expected C, H, W >= 1, got shape " + Arrays.toString(xShape)
                    + " (" + xLayout() + ")");
        }
        if (k < 1 || r < 1 || s < 1) {
            throw new IllegalArgumentException("w: expected K, R, S >= 1, got shape " + Arrays.toString(wShape)
                    + " (" + wLayout() + ")");
        }
        if (c % groups != 0) {
            throw new IllegalArgumentException("x: channel count " + c + " is not divisible by groups " + groups);
        }
        if (k % groups != 0) {
            throw new IllegalArgumentException("w: output channel count K=" + k + " is not divisible by groups " + groups);
        }
        if (cg != c / groups) {
            throw new IllegalArgumentException("w: expected C/groups = " + (c / groups) + " input channels per group ("
                    + wLayout() + "), got " + cg + " in shape " + Arrays.toString(wShape));
        }
        long effH = (long) dilationH * (r - 1) + 1;
        long effW = (long) dilationW * (s - 1) + 1;
        long padded = (long) h + padTop + padBottom;
        long paddedW = (long) w + padLeft + padRight;
        if (padded < effH || paddedW < effW) {
            throw new IllegalArgumentException("w: dilated filter " + effH + "x" + effW
                    + " is larger than the padded input " + padded + "x" + paddedW);
        }
        int p = (int) ((padded - effH) / strideH + 1);
        int q = (int) ((paddedW - effW) / strideW + 1);
        return new Conv2dProblem(format, n, c, h, w, k, r, s, p, q, strideH, strideW, padTop, padLeft, padBottom,
                padRight, dilationH, dilationW, groups, dtype);
    }

    /** Queues the forward pass {@code y = conv(x, w) + bias} ({@code bias} may be null). */
    public void forward(Stream stream, Tensor x, Tensor w, Tensor bias, Tensor y) {
        Conv2dProblem p = validate(stream, x, "x", w, "w");
        checkBias(bias, "bias", x, p);
        checkOut(y, "y", x, p.yShape(), "output of the convolution");
        Checks.distinct(new Tensor[] {y}, new String[] {"y"}, new Tensor[] {x, w, bias}, new String[] {"x", "w", "bias"});
        Checks.implementation(x.device()).conv2dKernels().forward(stream, p, x, w, bias, y);
    }

    /** Allocates {@code y} and queues the forward pass. */
    public Tensor forward(Stream stream, Tensor x, Tensor w, Tensor bias) {
        Conv2dProblem p = validate(stream, x, "x", w, "w");
        Tensor y = x.device().allocate(x.dtype(), p.yShape());
        try {
            forward(stream, x, w, bias, y);
            return y;
        } catch (RuntimeException e) {
            y.close();
            throw e;
        }
    }

    /** Queues backward-data: {@code dx} from {@code dy} and the filter {@code w}. */
    public void backwardData(Stream stream, Tensor dy, Tensor w, Tensor dx) {
        Conv2dProblem p = validate(stream, dx, "dx", w, "w");
        checkOut(dy, "dy", dx, p.yShape(), "the output shape of the convolution");
        Checks.distinct(new Tensor[] {dx}, new String[] {"dx"}, new Tensor[] {dy, w}, new String[] {"dy", "w"});
        Checks.implementation(dx.device()).conv2dKernels().backwardData(stream, p, dy, w, dx);
    }

    /** Queues backward-filter: {@code dw} (and {@code db} when not null) from {@code dy} and the input {@code x}. */
    public void backwardFilter(Stream stream, Tensor dy, Tensor x, Tensor dw, Tensor db) {
        Conv2dProblem p = validate(stream, x, "x", dw, "dw");
        checkOut(dy, "dy", x, p.yShape(), "the output shape of the convolution");
        checkBias(db, "db", x, p);
        Checks.distinct(new Tensor[] {dw, db}, new String[] {"dw", "db"}, new Tensor[] {dy, x}, new String[] {"dy", "x"});
        Checks.implementation(x.device()).conv2dKernels().backwardFilter(stream, p, dy, x, dw, db);
    }

    /** Allocates {@code dx}, {@code dw} and ({@code withBias}) {@code db}, and queues both backward passes. */
    public Gradients backward(Stream stream, Tensor dy, Tensor x, Tensor w, boolean withBias) {
        Conv2dProblem p = validate(stream, x, "x", w, "w");
        checkOut(dy, "dy", x, p.yShape(), "the output shape of the convolution");
        Device d = x.device();
        Tensor dx = null;
        Tensor dw = null;
        Tensor db = null;
        try {
            dx = d.allocate(x.dtype(), x.shape());
            dw = d.allocate(w.dtype(), w.shape());
            db = withBias ? d.allocate(x.dtype(), p.k()) : null;
            backwardData(stream, dy, w, dx);
            backwardFilter(stream, dy, x, dw, db);
            return new Gradients(dx, dw, db);
        } catch (RuntimeException e) {
            LayerNorm.closeAll(dx, dw, db);
            throw e;
        }
    }

    private Conv2dProblem validate(Stream stream, Tensor x, String xName, Tensor w, String wName) {
        Checks.present(x, xName);
        Checks.supported(x, xName);
        Checks.stream(stream, x.device());
        Checks.present(w, wName);
        Checks.sameDevice(w, wName, x.device(), xName);
        Checks.dtype(w, wName, x.dtype(), "same as " + xName);
        try {
            return problem(x.shape(), w.shape(), x.dtype());
        } catch (IllegalArgumentException e) {
            String m = e.getMessage();
            if (m.startsWith("x:") && !xName.equals("x")) {
                m = xName + ":" + m.substring(2);
            } else if (m.startsWith("w:") && !wName.equals("w")) {
                m = wName + ":" + m.substring(2);
            }
            throw new IllegalArgumentException(m, e);
        }
    }

    private static void checkBias(Tensor b, String name, Tensor x, Conv2dProblem p) {
        if (b == null) {
            return;
        }
        Checks.present(b, name);
        Checks.sameDevice(b, name, x.device(), "x");
        Checks.dtype(b, name, x.dtype(), "same as x");
        Checks.shape(b, name, new int[] {p.k()}, "one per output channel K");
    }

    private static void checkOut(Tensor t, String name, Tensor x, int[] shape, String why) {
        Checks.present(t, name);
        Checks.sameDevice(t, name, x.device(), "x");
        Checks.dtype(t, name, x.dtype(), "same as x");
        Checks.shape(t, name, shape, why);
    }

    private String xLayout() {
        return format == Format.NCHW ? "[N, C, H, W]" : "[N, H, W, C]";
    }

    private String wLayout() {
        return format == Format.NCHW ? "[K, C/groups, R, S]" : "[K, R, S, C/groups]";
    }

    @Override
    public String toString() {
        return "Conv2d(" + format + ", stride=" + strideH + "x" + strideW + ", pad=" + padTop + "," + padLeft + ","
                + padBottom + "," + padRight + ", dilation=" + dilationH + "x" + dilationW + ", groups=" + groups + ")";
    }
}
