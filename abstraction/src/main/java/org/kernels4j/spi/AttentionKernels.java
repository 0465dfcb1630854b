package org.kernels4j.spi;

import org.kernels4j.Stream;
import org.kernels4j.Tensor;

/**
 * A backend's attention kernels. Arguments are validated by {@link org.kernels4j.Attention}. A backend may
 * reject a problem it cannot run (e.g. an unsupported head dimension) with {@link IllegalArgumentException}
 * before writing anything.
 */
public interface AttentionKernels {

    /** Writes o and the fp32 log-sum-exp. */
    void forward(Stream stream, AttentionProblem p, Tensor q, Tensor k, Tensor v, Tensor o, Tensor lse);

    /** Writes dq, dk and dv. */
    void backward(Stream stream, AttentionProblem p, Tensor q, Tensor k, Tensor v, Tensor o, Tensor lse, Tensor dO,
                  Tensor dq, Tensor dk, Tensor dv);
}
