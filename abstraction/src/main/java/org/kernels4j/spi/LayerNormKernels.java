package org.kernels4j.spi;

import org.kernels4j.Stream;
import org.kernels4j.Tensor;

/**
 * A backend's layer-norm kernels. Arguments are validated by {@link org.kernels4j.LayerNorm}; optional tensors
 * are null when absent. A backend may still reject a problem it cannot run (with
 * {@link IllegalArgumentException}) but must do so before writing anything.
 */
public interface LayerNormKernels {

    /** Writes y, mean (null for RMS norm) and rstd. */
    void forward(Stream stream, LayerNormProblem p, Tensor x, Tensor gamma, Tensor beta, Tensor y, Tensor mean,
                 Tensor rstd);

    /** Writes dx, and dgamma and dbeta where given. */
    void backward(Stream stream, LayerNormProblem p, Tensor dy, Tensor x, Tensor gamma, Tensor mean, Tensor rstd,
                  Tensor dx, Tensor dgamma, Tensor dbeta);
}
