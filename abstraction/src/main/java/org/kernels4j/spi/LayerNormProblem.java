package org.kernels4j.spi;

import org.kernels4j.DType;
import org.kernels4j.LayerNorm;

/**
 * A validated layer-norm problem: {@code rows} rows of {@code cols} elements.
 *
 * @param kind    layer norm or RMS norm
 * @param epsilon added to the variance
 * @param rows    product of the leading dimensions (may be 0)
 * @param cols    the normalised length, at least 1
 * @param dtype   element type of x, y, gamma, beta and their gradients
 */
public record LayerNormProblem(LayerNorm.Kind kind, float epsilon, int rows, int cols, DType dtype) {

    /** Validates the sizes (built by {@link LayerNorm#problem}, or by hand in tools and tests). */
    public LayerNormProblem {
        if (kind == null || dtype == null) {
            throw new IllegalArgumentException("layer norm problem: kind and dtype must not be null");
        }
        if (rows < 0 || cols < 1) {
            throw new IllegalArgumentException("layer norm problem: expected rows >= 0 and cols >= 1, got rows=" + rows
                    + " cols=" + cols);
        }
    }

    /** Whether this is RMS norm (no mean). */
    public boolean rms() {
        return kind == LayerNorm.Kind.RMS_NORM;
    }
}
