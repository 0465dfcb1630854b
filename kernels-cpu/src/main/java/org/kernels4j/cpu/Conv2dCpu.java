package org.kernels4j.cpu;

import org.kernels4j.Stream;
import org.kernels4j.Tensor;
import org.kernels4j.spi.Conv2dKernels;
import org.kernels4j.spi.Conv2dProblem;

final class Conv2dCpu implements Conv2dKernels {
    @Override
    public void forward(Stream stream, Conv2dProblem p, Tensor x, Tensor w, Tensor bias, Tensor y) {
        throw new UnsupportedOperationException();
    }

    @Override
    public void backwardData(Stream stream, Conv2dProblem p, Tensor dy, Tensor w, Tensor dx) {
        throw new UnsupportedOperationException();
    }

    @Override
    public void backwardFilter(Stream stream, Conv2dProblem p, Tensor dy, Tensor x, Tensor dw, Tensor db) {
        throw new UnsupportedOperationException();
    }
}
