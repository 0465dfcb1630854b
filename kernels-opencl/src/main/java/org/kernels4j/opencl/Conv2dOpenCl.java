package org.kernels4j.opencl;

import org.kernels4j.Stream;
import org.kernels4j.Tensor;
import org.kernels4j.spi.Conv2dKernels;
import org.kernels4j.spi.Conv2dProblem;

final class Conv2dOpenCl implements Conv2dKernels {
    Conv2dOpenCl(OpenClDevice device) {
    }

    @Override
    public void forward(Stream stream, Conv2dProblem p, Tensor x, Tensor w, Tensor bias, Tensor y) {
        throw new UnsupportedOperationException("not yet");
    }

    @Override
    public void backwardData(Stream stream, Conv2dProblem p, Tensor dy, Tensor w, Tensor dx) {
        throw new UnsupportedOperationException("not yet");
    }

    @Override
    public void backwardFilter(Stream stream, Conv2dProblem p, Tensor dy, Tensor x, Tensor dw, Tensor db) {
        throw new UnsupportedOperationException("not yet");
    }
}
