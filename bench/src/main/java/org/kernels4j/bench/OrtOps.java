package org.kernels4j.bench;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.FloatBuffer;
import java.util.LinkedHashMap;
import java.util.Map;

import ai.onnxruntime.OnnxTensor;
import ai.onnxruntime.OrtEnvironment;
import ai.onnxruntime.OrtException;
import ai.onnxruntime.OrtSession;

import org.kernels4j.Attention;
import org.kernels4j.DType;

/**
 * The ONNX Runtime peer: a one-node ONNX graph per problem built in code ({@code LayerNormalization} opset 17,
 * {@code Conv} opset 11, {@code Attention} opset 23 on 4-D {@code [B, H, N, d]} inputs), weights as
 * initializers (so ORT may pre-pack them, as in a deployed model), activations fed from direct buffers, the
 * output written into a tensor allocated once, intra-op threads pinned, sequential execution.
 */
final class OrtOps implements AutoCloseable {

    private final OrtSession session;
    private final Map<String, OnnxTensor> feeds = new LinkedHashMap<>();
    private final Map<String, OnnxTensor> outputs = new LinkedHashMap<>();

    OrtOps(BenchProblem p, int threads) throws OrtException {
        this(p, threads, true);
    }

    /**
     * @param spinning whether ORT's intra-op threads spin between calls (its default, as in the JMH peer); off
     *                 where another library's threads run in the same process between the calls ({@link PairedPeers})
     */
    OrtOps(BenchProblem p, int threads, boolean spinning) throws OrtException {
        OrtEnvironment env = OrtEnvironment.getEnvironment();
        byte[] model = model(p);
        try (OrtSession.SessionOptions o = new OrtSession.SessionOptions()) {
            if (!spinning) {
                o.addConfigEntry("session.intra_op.allow_spinning", "0");
            }
            o.setIntraOpNumThreads(threads);
            o.setInterOpNumThreads(1);
            o.setExecutionMode(OrtSession.SessionOptions.ExecutionMode.SEQUENTIAL);
            o.setOptimizationLevel(OrtSession.SessionOptions.OptLevel.ALL_OPT);
            session = env.createSession(model, o);
        }
        try {
            switch (p.op()) {
                case LAYER_NORM -> {
                    feed(env, "x", p.randomNormal(0, (long) p.rows() * p.cols()), p.rows(), p.cols());
                    outputs.put("y", tensor(env, new float[p.rows() * p.cols()], p.rows(), p.cols()));
                }
                case CONV2D -> {
                    var cp = p.convProblem(DType.FLOAT32);
                    feed(env, "x", p.randomNormal(0, OpCase.count(cp.xShape())), cp.xShape());
                    outputs.put("y", tensor(env, new float[(int) OpCase.count(cp.yShape())], cp.yShape()));
                }
                case ATTENTION -> {
                    feed(env, "q", p.randomNormal(0, OpCase.count(p.qShape())), p.qShape());
                    feed(env, "k", p.randomNormal(1, OpCase.count(p.kvShape())), p.kvShape());
                    feed(env, "v", p.randomNormal(2, OpCase.count(p.kvShape())), p.kvShape());
                    outputs.put("o", tensor(env, new float[(int) OpCase.count(p.qShape())], p.qShape()));
                }
            }
        } catch (OrtException | RuntimeException e) {
            close();
            throw e;
        }
    }

    /** The ONNX model of the problem's forward pass. */
    static byte[] model(BenchProblem p) {
        return switch (p.op()) {
            case LAYER_NORM -> new OnnxModel("LayerNormalization", "", 17)
                    .input("x", p.rows(), p.cols())
                    .constant("gamma", p.randomNormal(1, p.cols()), p.cols())
                    .constant("beta", p.randomNormal(2, p.cols()), p.cols())
                    .output("y", p.rows(), p.cols())
                    .attr("axis", -1L).attr("epsilon", 1e-5f)
                    .toByteArray();
            case CONV2D -> {
                var cp = p.convProblem(DType.FLOAT32);
                yield new OnnxModel("Conv", "", 11)
                        .input("x", longs(cp.xShape()))
                        .constant("w", p.randomNormal(1, OpCase.count(cp.wShape())), longs(cp.wShape()))
                        .output("y", longs(cp.yShape()))
                        .attr("kernel_shape", new long[] {p.r(), p.s()})
                        .attr("strides", new long[] {p.stride(), p.stride()})
                        .attr("pads", new long[] {p.pad(), p.pad(), p.pad(), p.pad()})
                        .attr("dilations", new long[] {1, 1})
                        .attr("group", (long) p.groups())
                        .toByteArray();
            }
            case ATTENTION -> new OnnxModel("Attention", "", 23)
                    .input("q", longs(p.qShape()))
                    .input("k", longs(p.kvShape()))
                    .input("v", longs(p.kvShape()))
                    .output("o", longs(p.qShape()))
                    .attr("is_causal", p.mask() == Attention.CausalMask.NONE ? 0L : 1L)
                    .attr("scale", (float) (1 / Math.sqrt(p.headDim())))
                    .toByteArray();
        };
    }

    /**
     * Runs the graph once into the output allocated up front (as kernels4j writes into given tensors); the
     * caller closes the result, which leaves that output open.
     */
    OrtSession.Result run() throws OrtException {
        return session.run(feeds, outputs);
    }

    private void feed(OrtEnvironment env, String name, float[] data, int... shape) throws OrtException {
        feeds.put(name, tensor(env, data, shape));
    }

    private static OnnxTensor tensor(OrtEnvironment env, float[] data, int... shape) throws OrtException {
        FloatBuffer b = ByteBuffer.allocateDirect(data.length * 4).order(ByteOrder.nativeOrder()).asFloatBuffer();
        b.put(data).flip();
        return OnnxTensor.createTensor(env, b, longs(shape));
    }

    private static long[] longs(int[] a) {
        long[] l = new long[a.length];
        for (int i = 0; i < a.length; i++) {
            l[i] = a[i];
        }
        return l;
    }

    @Override
    public void close() {
        for (OnnxTensor t : feeds.values()) {
            t.close();
        }
        for (OnnxTensor t : outputs.values()) {
            t.close();
        }
        feeds.clear();
        outputs.clear();
        try {
            session.close();
        } catch (OrtException e) {
            throw new IllegalStateException("closing the ONNX Runtime session: " + e.getMessage(), e);
        }
    }
}
