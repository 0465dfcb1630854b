package org.kernels4j;

import java.util.Arrays;

import org.kernels4j.spi.LayerNormProblem;

/**
 * Layer normalisation and RMS normalisation over the last dimension, forward and backward.
 *
 * <p>Layer norm: {@code y = (x - mean) * rstd * gamma + beta} with {@code rstd = 1 / sqrt(var + eps)} and
 * the biased variance, as ONNX {@code LayerNormalization} (axis = -1) and PyTorch {@code layer_norm}.
 * RMS norm: {@code y = x * rstd * gamma + beta} with {@code rstd = 1 / sqrt(mean(x^2) + eps)}; it saves no
 * mean. {@code gamma} and {@code beta} are optional (null means 1 and 0).
 *
 * <p>Shapes: {@code x} and {@code y} are {@code [..., D]} (rank 1 or more, D = the normalised length),
 * {@code gamma}, {@code beta} and their gradients {@code [D]}, the saved {@code mean} and {@code rstd} are
 * {@link DType#FLOAT32} with one element per row: any shape with that many elements is accepted (the
 * allocating variants use the leading dimensions' shape, {@code [1]} for rank-1 {@code x}; PyTorch's
 * {@code [..., 1]} works too). As in PyTorch, {@code epsilon = 0} on a constant row gives an infinite rstd. All other
 * tensors share {@code x}'s dtype and device. Instances are immutable and thread-safe; validation happens
 * before anything is queued, and a rejected call writes nothing.
 */
public final class LayerNorm {

    /** Which normalisation. */
    public enum Kind {
        /** Subtract the mean, divide by the standard deviation. */
        LAYER_NORM,
        /** Divide by the root mean square; no mean is saved. */
        RMS_NORM
    }

    /** Outputs of the allocating {@link #forward(Stream, Tensor, Tensor, Tensor)}; {@code mean} is null for RMS norm. */
    public record Outputs(Tensor y, Tensor mean, Tensor rstd) implements AutoCloseable {
        /** Closes every tensor. */
        @Override
        public void close() {
            closeAll(y, mean, rstd);
        }
    }

    /** Gradients of the allocating {@link #backward(Stream, Tensor, Tensor, Tensor, Tensor, Tensor, boolean)}. */
    public record Gradients(Tensor dx, Tensor dgamma, Tensor dbeta) implements AutoCloseable {
        /** Closes every tensor. */
        @Override
        public void close() {
            closeAll(dx, dgamma, dbeta);
        }
    }

    /** The default epsilon, as PyTorch's and ONNX's. */
    public static final float DEFAULT_EPSILON = 1e-5f;

    private final Kind kind;
    private final float epsilon;

    private LayerNorm(Kind kind, float epsilon) {
        if (!(epsilon >= 0f) || !Float.isFinite(epsilon)) {
            throw new IllegalArgumentException("epsilon: expected a finite value >= 0, got " + epsilon);
        }
        this.kind = kind;
        this.epsilon = epsilon;
    }

    /** Layer norm with {@code epsilon}. */
    public static LayerNorm layerNorm(float epsilon) {
        return new LayerNorm(Kind.LAYER_NORM, epsilon);
    }

    /** Layer norm with {@link #DEFAULT_EPSILON}. */
    public static LayerNorm layerNorm() {
        return layerNorm(DEFAULT_EPSILON);
    }

    /** RMS norm with {@code epsilon}. */
    public static LayerNorm rmsNorm(float epsilon) {
        return new LayerNorm(Kind.RMS_NORM, epsilon);
    }

    /** Which normalisation this is. */
    public Kind kind() {
        return kind;
    }

    /** The epsilon added to the variance (or mean square). */
    public float epsilon() {
        return epsilon;
    }

    /**
     * Queues the forward pass, writing {@code y}, {@code mean} (layer norm only; must be null for RMS norm)
     * and {@code rstd}.
     */
    public void forward(Stream stream, Tensor x, Tensor gamma, Tensor beta, Tensor y, Tensor mean, Tensor rstd) {
        LayerNormProblem p = validateForward(stream, x, gamma, beta, y, mean, rstd);
        Checks.implementation(x.device()).layerNormKernels().forward(stream, p, x, gamma, beta, y, mean, rstd);
    }

    /** Allocates the outputs on {@code x}'s device and queues the forward pass. */
    public Outputs forward(Stream stream, Tensor x, Tensor gamma, Tensor beta) {
        Checks.present(x, "x");
        // before allocating in x's dtype, so that an unsupported dtype is blamed on x, not on allocate()
        Checks.supported(x, "x");
        Device d = x.device();
        int[] stats = statsShape(x.shape());
        Tensor y = null;
        Tensor mean = null;
        Tensor rstd = null;
        try {
            y = d.allocate(x.dtype(), x.shape());
            mean = kind == Kind.LAYER_NORM ? d.allocate(DType.FLOAT32, stats) : null;
            rstd = d.allocate(DType.FLOAT32, stats);
            forward(stream, x, gamma, beta, y, mean, rstd);
            return new Outputs(y, mean, rstd);
        } catch (RuntimeException e) {
            closeAll(y, mean, rstd);
            throw e;
        }
    }

    /**
     * Queues the backward pass from {@code dy}: writes {@code dx}, and {@code dgamma} and {@code dbeta} where
     * they are given ({@code dgamma} needs {@code gamma}). {@code mean} and {@code rstd} are the forward's
     * saved statistics ({@code mean} null for RMS norm).
     */
    public void backward(Stream stream, Tensor dy, Tensor x, Tensor gamma, Tensor mean, Tensor rstd,
                         Tensor dx, Tensor dgamma, Tensor dbeta) {
        LayerNormProblem p = validateBackward(stream, dy, x, gamma, mean, rstd, dx, dgamma, dbeta);
        Checks.implementation(x.device()).layerNormKernels()
                .backward(stream, p, dy, x, gamma, mean, rstd, dx, dgamma, dbeta);
    }

    /**
     * Allocates the gradients and queues the backward pass; {@code dgamma} is computed when {@code gamma} is
     * given, {@code dbeta} when {@code withBeta}.
     */
    public Gradients backward(Stream stream, Tensor dy, Tensor x, Tensor gamma, Tensor mean, Tensor rstd,
                              boolean withBeta) {
        Checks.present(x, "x");
        Checks.supported(x, "x");
        Device d = x.device();
        int cols = x.rank() == 0 ? 0 : x.dim(-1);
        Tensor dx = null;
        Tensor dg = null;
        Tensor db = null;
        try {
            dx = d.allocate(x.dtype(), x.shape());
            dg = gamma != null ? d.allocate(x.dtype(), cols) : null;
            db = withBeta ? d.allocate(x.dtype(), cols) : null;
            backward(stream, dy, x, gamma, mean, rstd, dx, dg, db);
            return new Gradients(dx, dg, db);
        } catch (RuntimeException e) {
            closeAll(dx, dg, db);
            throw e;
        }
    }

    private LayerNormProblem validateForward(Stream stream, Tensor x, Tensor gamma, Tensor beta, Tensor y,
                                             Tensor mean, Tensor rstd) {
        LayerNormProblem p = problemOf(x);
        Device d = x.device();
        Checks.stream(stream, d);
        checkParam(gamma, "gamma", x, p.cols());
        checkParam(beta, "beta", x, p.cols());
        Checks.present(y, "y");
        Checks.sameDevice(y, "y", d, "x");
        Checks.dtype(y, "y", x.dtype(), "same as x");
        Checks.shape(y, "y", x.shape(), "same as x");
        checkStats(mean, rstd, x, p.rows());
        Checks.distinct(new Tensor[] {y, mean, rstd}, new String[] {"y", "mean", "rstd"},
                new Tensor[] {x, gamma, beta}, new String[] {"x", "gamma", "beta"});
        return p;
    }

    private LayerNormProblem validateBackward(Stream stream, Tensor dy, Tensor x, Tensor gamma, Tensor mean,
                                              Tensor rstd, Tensor dx, Tensor dgamma, Tensor dbeta) {
        LayerNormProblem p = problemOf(x);
        Device d = x.device();
        Checks.stream(stream, d);
        Checks.present(dy, "dy");
        Checks.sameDevice(dy, "dy", d, "x");
        Checks.dtype(dy, "dy", x.dtype(), "same as x");
        Checks.shape(dy, "dy", x.shape(), "same as x");
        checkParam(gamma, "gamma", x, p.cols());
        checkStats(mean, rstd, x, p.rows());
        Checks.present(dx, "dx");
        Checks.sameDevice(dx, "dx", d, "x");
        Checks.dtype(dx, "dx", x.dtype(), "same as x");
        Checks.shape(dx, "dx", x.shape(), "same as x");
        if (dgamma != null && gamma == null) {
            throw new IllegalArgumentException("dgamma: given, but gamma is null (no scale was applied)");
        }
        checkParam(dgamma, "dgamma", x, p.cols());
        checkParam(dbeta, "dbeta", x, p.cols());
        Checks.distinct(new Tensor[] {dx, dgamma, dbeta}, new String[] {"dx", "dgamma", "dbeta"},
                new Tensor[] {dy, x, gamma, mean, rstd}, new String[] {"dy", "x", "gamma", "mean", "rstd"});
        return p;
    }

    /**
     * The problem this normalisation poses for an input of shape {@code xShape}: rows and the normalised length.
     *
     * @throws IllegalArgumentException naming the argument when the shape does not fit
     */
    public LayerNormProblem problem(int[] xShape, DType dtype) {
        if (xShape == null) {
            throw new IllegalArgumentException("x: shape must not be null");
        }
        if (dtype == null) {
            throw new IllegalArgumentException("dtype: must not be null");
        }
        if (xShape.length < 1) {
            throw new IllegalArgumentException("x: expected rank >= 1 ([..., D]), got rank 0");
        }
        int cols = xShape[xShape.length - 1];
        if (cols < 1) {
            throw new IllegalArgumentException("x: expected a normalised (last) dimension >= 1, got shape "
                    + Arrays.toString(xShape));
        }
        long rows = org.kernels4j.spi.AbstractTensor.elementCount(xShape) / cols;
        if (rows > Integer.MAX_VALUE) {
            throw new IllegalArgumentException("x: expected at most " + Integer.MAX_VALUE + " rows, got " + rows);
        }
        return new LayerNormProblem(kind, epsilon, (int) rows, cols, dtype);
    }

    private LayerNormProblem problemOf(Tensor x) {
        Checks.present(x, "x");
        if (x.rank() < 1) {
            throw new IllegalArgumentException("x: expected rank >= 1 ([..., D]), got rank 0");
        }
        int cols = x.dim(-1);
        if (cols < 1) {
            throw new IllegalArgumentException("x: expected a normalised (last) dimension >= 1, got shape "
                    + Arrays.toString(x.shape()));
        }
        Checks.supported(x, "x");
        long rows = x.elementCount() / cols;
        if (rows > Integer.MAX_VALUE) {
            throw new IllegalArgumentException("x: expected at most " + Integer.MAX_VALUE + " rows, got " + rows);
        }
        return new LayerNormProblem(kind, epsilon, (int) rows, cols, x.dtype());
    }

    private static void checkParam(Tensor t, String name, Tensor x, int cols) {
        if (t == null) {
            return;
        }
        Checks.present(t, name);
        Checks.sameDevice(t, name, x.device(), "x");
        Checks.dtype(t, name, x.dtype(), "same as x");
        Checks.shape(t, name, new int[] {cols}, "the last dimension of x");
    }

    private void checkStats(Tensor mean, Tensor rstd, Tensor x, int rows) {
        if (kind == Kind.RMS_NORM) {
            if (mean != null) {
                throw new IllegalArgumentException("mean: must be null for RMS norm (it saves no mean)");
            }
        } else {
            checkStat(mean, "mean", x, rows);
        }
        checkStat(rstd, "rstd", x, rows);
    }

    private static void checkStat(Tensor t, String name, Tensor x, int rows) {
        Checks.present(t, name);
        Checks.sameDevice(t, name, x.device(), "x");
        Checks.dtype(t, name, DType.FLOAT32, "saved statistics are always float32");
        if (t.elementCount() != rows) {
            throw new IllegalArgumentException(name + ": expected " + rows + " elements (shape "
                    + Arrays.toString(statsShape(x.shape())) + ", one per row of x), got shape "
                    + Arrays.toString(t.shape()));
        }
    }

    static int[] statsShape(int[] xShape) {
        return xShape.length <= 1 ? new int[] {1} : Arrays.copyOf(xShape, xShape.length - 1);
    }

    static void closeAll(Tensor... ts) {
        for (Tensor t : ts) {
            if (t != null) {
                t.close();
            }
        }
    }

    @Override
    public String toString() {
        return (kind == Kind.LAYER_NORM ? "LayerNorm" : "RMSNorm") + "(eps=" + epsilon + ")";
    }
}
