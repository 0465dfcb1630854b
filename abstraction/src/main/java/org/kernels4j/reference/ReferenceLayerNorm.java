package org.kernels4j.reference;

import org.kernels4j.spi.LayerNormProblem;

/**
 * Plain float64 layer norm and RMS norm over the last dimension, forward and backward, exactly as
 * {@link org.kernels4j.LayerNorm} documents them: biased variance, {@code rstd = 1 / sqrt(var + eps)} (RMS:
 * {@code 1 / sqrt(mean(x^2) + eps)}), {@code y = (x - mean) * rstd * gamma + beta} (RMS: without the mean).
 *
 * <p>{@code x}, {@code y}, {@code dy}, {@code dx} hold {@code rows * cols} values row-major; {@code gamma},
 * {@code beta} and their gradients {@code cols}; statistics {@code rows}. A null {@code gamma} means 1, a
 * null {@code beta} 0.
 */
public final class ReferenceLayerNorm {

    /**
     * Forward results.
     *
     * @param y    the normalised output, {@code rows * cols}
     * @param mean the per-row mean, {@code rows}; null for RMS norm
     * @param rstd the per-row reciprocal standard deviation (RMS norm: reciprocal root mean square), {@code rows}
     */
    public record Forward(double[] y, double[] mean, double[] rstd) {
    }

    /**
     * Backward results.
     *
     * @param dx     gradient with respect to x, {@code rows * cols}
     * @param dgamma gradient with respect to gamma, {@code cols} (meaningful also when gamma was null: the
     *               gradient at gamma = 1)
     * @param dbeta  gradient with respect to beta, {@code cols}
     */
    public record Backward(double[] dx, double[] dgamma, double[] dbeta) {
    }

    private ReferenceLayerNorm() {
    }

    /** The forward pass; {@code gamma} and {@code beta} may be null. */
    public static Forward forward(LayerNormProblem p, double[] x, double[] gamma, double[] beta) {
        Arrays64.notNull(p, "p");
        int rows = p.rows();
        int cols = p.cols();
        Arrays64.length(x, (long) rows * cols, "x");
        Arrays64.optionalLength(gamma, cols, "gamma");
        Arrays64.optionalLength(beta, cols, "beta");
        double[] y = new double[Arrays64.size("x", rows, cols)];
        double[] mean = p.rms() ? null : new double[rows];
        double[] rstd = new double[rows];
        for (int r = 0; r < rows; r++) {
            int base = r * cols;
            double mu = rowMean(p, x, base);
            double rs = rowRstd(p, x, base, mu);
            for (int c = 0; c < cols; c++) {
                double g = gamma == null ? 1.0 : gamma[c];
                double b = beta == null ? 0.0 : beta[c];
                y[base + c] = (x[base + c] - mu) * rs * g + b;
            }
            if (mean != null) {
                mean[r] = mu;
            }
            rstd[r] = rs;
        }
        return new Forward(y, mean, rstd);
    }

    /**
     * The backward pass from {@code dy}; the statistics are recomputed from {@code x} in float64.
     * {@code gamma} may be null (meaning 1).
     */
    public static Backward backward(LayerNormProblem p, double[] dy, double[] x, double[] gamma) {
        Arrays64.notNull(p, "p");
        int rows = p.rows();
        int cols = p.cols();
        Arrays64.length(dy, (long) rows * cols, "dy");
        Arrays64.length(x, (long) rows * cols, "x");
        Arrays64.optionalLength(gamma, cols, "gamma");
        double[] dx = new double[Arrays64.size("x", rows, cols)];
        double[] dgamma = new double[cols];
        double[] dbeta = new double[cols];
        double[] xhat = new double[cols];
        double[] g = new double[cols];
        for (int r = 0; r < rows; r++) {
            int base = r * cols;
            double mu = rowMean(p, x, base);
            double rs = rowRstd(p, x, base, mu);
            double meanG = 0;
            double meanGXhat = 0;
            for (int c = 0; c < cols; c++) {
                xhat[c] = (x[base + c] - mu) * rs;
                g[c] = dy[base + c] * (gamma == null ? 1.0 : gamma[c]);
                meanG += g[c];
                meanGXhat += g[c] * xhat[c];
                dgamma[c] += dy[base + c] * xhat[c];
                dbeta[c] += dy[base + c];
            }
            meanG /= cols;
            meanGXhat /= cols;
            // d(mean)/dx only exists for layer norm; RMS norm has no mean to differentiate through.
            double centre = p.rms() ? 0.0 : meanG;
            for (int c = 0; c < cols; c++) {
                dx[base + c] = rs * (g[c] - centre - xhat[c] * meanGXhat);
            }
        }
        return new Backward(dx, dgamma, dbeta);
    }

    private static double rowMean(LayerNormProblem p, double[] x, int base) {
        if (p.rms()) {
            return 0.0;
        }
        double s = 0;
        for (int c = 0; c < p.cols(); c++) {
            s += x[base + c];
        }
        return s / p.cols();
    }

    /** Two-pass variance around {@code mu} (0 for RMS norm, which makes it the mean square). */
    private static double rowRstd(LayerNormProblem p, double[] x, int base, double mu) {
        double s = 0;
        for (int c = 0; c < p.cols(); c++) {
            double d = x[base + c] - mu;
            s += d * d;
        }
        return 1.0 / Math.sqrt(s / p.cols() + (double) p.epsilon());
    }
}
