package org.kernels4j.bench;

import ai.djl.engine.Engine;
import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDList;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.Shape;
import ai.djl.pytorch.engine.PtNDArray;
import ai.djl.pytorch.engine.PtSymbolBlock;
import ai.djl.pytorch.jni.JniUtils;
import ai.djl.training.ParameterStore;

import org.kernels4j.Attention;

/**
 * The PyTorch CPU peer through DJL: the problem's inputs as libtorch tensors and its forward pass as libtorch
 * ops ({@code layer_norm}, {@code convolution}, and {@code scaled_dot_product_attention} through a TorchScript
 * module, see {@link TorchAttention}). Backward is libtorch autograd from the given output gradient.
 *
 * <p>{@link #start(int)} loads libtorch from the {@code pytorch-native-cpu} jar without any download and pins
 * the intra-op thread count.
 */
final class TorchOps {

    private TorchOps() {
    }

    /**
     * Loads the engine offline and sets libtorch's intra-op threads to {@code threads} (inter-op to 1).
     *
     * @throws IllegalStateException when the engine does not load or does not take the thread count
     */
    static Engine start(int threads) {
        System.setProperty("ai.djl.offline", "true");
        System.setProperty("ai.djl.pytorch.num_threads", String.valueOf(threads));
        System.setProperty("ai.djl.pytorch.num_interop_threads", "1");
        Engine e = Engine.getEngine("PyTorch");
        if (JniUtils.getNumThreads() != threads) {
            JniUtils.setNumThreads(threads);
        }
        if (JniUtils.getNumThreads() != threads) {
            throw new IllegalStateException("libtorch runs " + JniUtils.getNumThreads() + " threads, wanted " + threads);
        }
        return e;
    }

    /** The inputs of a problem's forward pass as tensors of {@code m}, from the problem's fixed seed. */
    static NDList inputs(NDManager m, BenchProblem p) {
        return switch (p.op()) {
            case LAYER_NORM -> new NDList(
                    m.create(p.randomNormal(0, (long) p.rows() * p.cols()), new Shape(p.rows(), p.cols())),
                    m.create(p.randomNormal(1, p.cols()), new Shape(p.cols())),
                    m.create(p.randomNormal(2, p.cols()), new Shape(p.cols())));
            case CONV2D -> {
                var cp = p.convProblem(org.kernels4j.DType.FLOAT32);
                yield new NDList(
                        m.create(p.randomNormal(0, OpCase.count(cp.xShape())), shape(cp.xShape())),
                        m.create(p.randomNormal(1, OpCase.count(cp.wShape())), shape(cp.wShape())));
            }
            case ATTENTION -> new NDList(
                    m.create(p.randomNormal(0, OpCase.count(p.qShape())), shape(p.qShape())),
                    m.create(p.randomNormal(1, OpCase.count(p.kvShape())), shape(p.kvShape())),
                    m.create(p.randomNormal(2, OpCase.count(p.kvShape())), shape(p.kvShape())));
        };
    }

    /** The gradient of the forward's output, from the same seed stream as kernels4j's. */
    static NDArray outputGradient(NDManager m, BenchProblem p) {
        return switch (p.op()) {
            case LAYER_NORM -> m.create(p.randomNormal(3, (long) p.rows() * p.cols()), new Shape(p.rows(), p.cols()));
            case CONV2D -> {
                int[] ys = p.convProblem(org.kernels4j.DType.FLOAT32).yShape();
                yield m.create(p.randomNormal(2, OpCase.count(ys)), shape(ys));
            }
            case ATTENTION -> m.create(p.randomNormal(3, OpCase.count(p.qShape())), shape(p.qShape()));
        };
    }

    /**
     * The op of a problem: for attention the SDPA module with its mask and GQA flags, else null (layer norm and
     * convolution are direct libtorch calls).
     */
    static PtSymbolBlock module(NDManager m, BenchProblem p) {
        if (p.op() != BenchProblem.Op.ATTENTION) {
            return null;
        }
        if (p.mask() == Attention.CausalMask.BOTTOM_RIGHT) {
            throw new IllegalArgumentException("mask: SDPA's is_causal is top-left; got " + p.mask());
        }
        return TorchAttention.load(m, p.mask() == Attention.CausalMask.TOP_LEFT, p.kvHeads() != p.heads());
    }

    /**
     * The forward pass; its output belongs to the manager of {@code in.get(0)} (callers temporarily attach the
     * inputs to a per-call manager). {@code attention} is {@link #module}'s result; {@code autograd} records the
     * graph (the inputs must require gradients).
     */
    static NDArray forward(BenchProblem p, NDList in, PtSymbolBlock attention, boolean autograd) {
        return switch (p.op()) {
            case LAYER_NORM -> JniUtils.layerNorm((PtNDArray) in.get(0), new Shape(p.cols()), (PtNDArray) in.get(1),
                    (PtNDArray) in.get(2), 1e-5);
            case CONV2D -> JniUtils.convolution((PtNDArray) in.get(0), (PtNDArray) in.get(1), null,
                    new Shape(p.stride(), p.stride()), new Shape(p.pad(), p.pad()), new Shape(1, 1), p.groups());
            case ATTENTION -> attention.forward(new ParameterStore(in.get(0).getManager(), false), in, autograd)
                    .singletonOrThrow();
        };
    }

    /** Runs autograd backward from {@code out} with output gradient {@code grad}, freeing the graph. */
    static void backward(NDArray out, NDArray grad) {
        JniUtils.backward((PtNDArray) out, (PtNDArray) grad, false, false);
    }

    private static Shape shape(int[] dims) {
        long[] l = new long[dims.length];
        for (int i = 0; i < dims.length; i++) {
            l[i] = dims[i];
        }
        return new Shape(l);
    }
}
