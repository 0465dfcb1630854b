package org.kernels4j.cpu;

import org.kernels4j.Stream;
import org.kernels4j.Tensor;
import org.kernels4j.spi.AttentionKernels;
import org.kernels4j.spi.AttentionProblem;

final class AttentionCpu implements AttentionKernels {
    @Override
    public void forward(Stream stream, AttentionProblem p, Tensor q, Tensor k, Tensor v, Tensor o, Tensor lse) {
        throw new UnsupportedOperationException();
    }

    @Override
    public void backward(Stream stream, AttentionProblem p, Tensor q, Tensor k, Tensor v, Tensor o, Tensor lse,
                         Tensor dO, Tensor dq, Tensor dk, Tensor dv) {
        throw new UnsupportedOperationException();
    }
}
