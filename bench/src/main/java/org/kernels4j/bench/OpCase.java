package org.kernels4j.bench;

import java.util.ArrayList;
import java.util.List;

import org.kernels4j.Attention;
import org.kernels4j.Conv2d;
import org.kernels4j.DType;
import org.kernels4j.Device;
import org.kernels4j.LayerNorm;
import org.kernels4j.Stream;
import org.kernels4j.Tensor;

/**
 * One problem set up on one device in one dtype through the public op API: inputs from the problem's fixed
 * seed, outputs and gradients allocated once, the forward's saved tensors computed once for the backward.
 * {@link #forward()} and {@link #backward()} queue one pass and wait for it.
 */
final class OpCase implements AutoCloseable {

    private final List<Tensor> tensors = new ArrayList<>();
    private final Stream stream;
    private final Runnable forward;
    private final Runnable backward;

    OpCase(BenchProblem p, Device device, DType dtype) {
        if (!device.capabilities().supports(dtype)) {
            throw new IllegalArgumentException("dtype: " + device.id() + " does not support " + dtype);
        }
        stream = device.createStream();
        try {
            switch (p.op()) {
                case LAYER_NORM -> {
                    LayerNorm ln = LayerNorm.layerNorm();
                    Tensor x = upload(device, dtype, p.randomNormal(0, (long) p.rows() * p.cols()), p.rows(), p.cols());
                    Tensor gamma = upload(device, dtype, p.randomNormal(1, p.cols()), p.cols());
                    Tensor beta = upload(device, dtype, p.randomNormal(2, p.cols()), p.cols());
                    Tensor dy = upload(device, dtype, p.randomNormal(3, (long) p.rows() * p.cols()), p.rows(), p.cols());
                    Tensor y = alloc(device, dtype, p.rows(), p.cols());
                    Tensor mean = alloc(device, DType.FLOAT32, p.rows());
                    Tensor rstd = alloc(device, DType.FLOAT32, p.rows());
                    Tensor dx = alloc(device, dtype, p.rows(), p.cols());
                    Tensor dgamma = alloc(device, dtype, p.cols());
                    Tensor dbeta = alloc(device, dtype, p.cols());
                    forward = () -> ln.forward(stream, x, gamma, beta, y, mean, rstd);
                    backward = () -> ln.backward(stream, dy, x, gamma, mean, rstd, dx, dgamma, dbeta);
                }
                case CONV2D -> {
                    Conv2d conv = p.convolution();
                    var cp = p.convProblem(dtype);
                    Tensor x = upload(device, dtype, p.randomNormal(0, count(cp.xShape())), cp.xShape());
                    Tensor w = upload(device, dtype, p.randomNormal(1, count(cp.wShape())), cp.wShape());
                    Tensor dy = upload(device, dtype, p.randomNormal(2, count(cp.yShape())), cp.yShape());
                    Tensor y = alloc(device, dtype, cp.yShape());
                    Tensor dx = alloc(device, dtype, cp.xShape());
                    Tensor dw = alloc(device, dtype, cp.wShape());
                    forward = () -> conv.forward(stream, x, w, null, y);
                    backward = () -> {
                        conv.backwardData(stream, dy, w, dx);
                        conv.backwardFilter(stream, dy, x, dw, null);
                    };
                }
                case ATTENTION -> {
                    Attention attn = Attention.of(p.mask());
                    int[] qs = p.qShape();
                    int[] kvs = p.kvShape();
                    Tensor q = upload(device, dtype, p.randomNormal(0, count(qs)), qs);
                    Tensor k = upload(device, dtype, p.randomNormal(1, count(kvs)), kvs);
                    Tensor v = upload(device, dtype, p.randomNormal(2, count(kvs)), kvs);
                    Tensor dO = upload(device, dtype, p.randomNormal(3, count(qs)), qs);
                    Tensor o = alloc(device, dtype, qs);
                    Tensor lse = alloc(device, DType.FLOAT32, qs[0], qs[1], qs[2]);
                    Tensor dq = alloc(device, dtype, qs);
                    Tensor dk = alloc(device, dtype, kvs);
                    Tensor dv = alloc(device, dtype, kvs);
                    forward = () -> attn.forward(stream, q, k, v, o, lse);
                    backward = () -> attn.backward(stream, q, k, v, o, lse, dO, dq, dk, dv);
                }
                default -> throw new IllegalStateException("unknown op " + p.op());
            }
            // the backward reads the forward's saved statistics (mean/rstd, o/lse)
            forward();
        } catch (RuntimeException e) {
            close();
            throw e;
        }
    }

    /** Queues one forward pass and waits for it. */
    void forward() {
        forward.run();
        stream.synchronize();
    }

    /** Queues one backward pass (every input gradient) and waits for it. */
    void backward() {
        backward.run();
        stream.synchronize();
    }

    private Tensor upload(Device d, DType dtype, float[] data, int... shape) {
        Tensor t = d.upload(dtype, data, shape);
        tensors.add(t);
        return t;
    }

    private Tensor alloc(Device d, DType dtype, int... shape) {
        Tensor t = d.allocate(dtype, shape);
        tensors.add(t);
        return t;
    }

    static long count(int[] shape) {
        long n = 1;
        for (int s : shape) {
            n *= s;
        }
        return n;
    }

    @Override
    public void close() {
        for (Tensor t : tensors) {
            t.close();
        }
        tensors.clear();
        stream.close();
    }
}
