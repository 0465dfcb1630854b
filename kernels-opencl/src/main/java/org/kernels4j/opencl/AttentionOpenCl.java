package org.kernels4j.opencl;

import org.kernels4j.Stream;
import org.kernels4j.Tensor;
import org.kernels4j.spi.AttentionKernels;
import org.kernels4j.spi.AttentionProblem;

final class AttentionOpenCl implements AttentionKernels {
    AttentionOpenCl(OpenClDevice device) {
    }

    @Override
    public void forward(Stream stream, AttentionProblem p, Tensor q, Tensor k, Tensor v, Tensor o, Tensor lse) {
        throw new UnsupportedOperationException("not yet");
    }

    @Override
    public void backward(Stream stream, AttentionProblem p, Tensor q, Tensor k, Tensor v, Tensor o, Tensor lse, Tensor dO,
                         Tensor dq, Tensor dk, Tensor dv) {
        throw new UnsupportedOperationException("not yet");
    }
}
