package org.kernels4j.spi;

import org.kernels4j.Stream;
import org.kernels4j.Tensor;

/** A backend's convolution kernels. Arguments are validated by {@link org.kernels4j.Conv2d}. */
public interface Conv2dKernels {

    /** Writes y = conv(x, w) + bias (bias may be null). */
    void forward(Stream stream, Conv2dProblem p, Tensor x, Tensor w, Tensor bias, Tensor y);

    /** Writes dx from dy and w. */
    void backwardData(Stream stream, Conv2dProblem p, Tensor dy, Tensor w, Tensor dx);

    /** Writes dw, and db when not null, from dy and x. */
    void backwardFilter(Stream stream, Conv2dProblem p, Tensor dy, Tensor x, Tensor dw, Tensor db);
}
