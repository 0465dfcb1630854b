package org.kernels4j.bench;

import java.util.concurrent.TimeUnit;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDList;
import ai.djl.ndarray.NDManager;
import ai.djl.pytorch.engine.PtSymbolBlock;
import ai.djl.pytorch.jni.JniUtils;

import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.TearDown;

/**
 * Peer: PyTorch CPU (libtorch 2.7.1 through DJL; attention is {@code scaled_dot_product_attention}), fp32, at the CPU backend's thread count
 * ({@code kernels4j.cpu.threads}, default the machine's cores). Forward is one op call without autograd;
 * backward is autograd from the output gradient over a graph built before each call (outside the measured
 * region) on fresh leaf tensors, so every call computes each input gradient once, as kernels4j does.
 */
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.MILLISECONDS)
public class Torch {

    /** The problem's inputs as libtorch tensors. */
    @State(Scope.Benchmark)
    public static class Inputs {
        /** Problem name from the CPU set. */
        @Param({"ln-8k-1k", "ln-4k-4k", "conv-r56", "conv-r28", "conv-1x1", "conv-s2", "conv-dw",
                "attn-1k", "attn-1k-causal", "attn-4k-causal", "attn-gqa"})
        public String problem;

        BenchProblem p;
        NDManager manager;
        NDList inputs;
        PtSymbolBlock attention;
        NDArray outputGradient;

        /** Loads libtorch and uploads the inputs. */
        @Setup
        public void setUp() {
            TorchOps.start(Threads.intraOp());
            p = ProblemSet.byName(problem);
            manager = NDManager.newBaseManager();
            inputs = TorchOps.inputs(manager, p);
            attention = TorchOps.module(manager, p);
            outputGradient = TorchOps.outputGradient(manager, p);
        }

        /** Frees the tensors and the module. */
        @TearDown
        public void tearDown() {
            if (attention != null) {
                attention.close();
            }
            manager.close();
        }
    }

    /** A fresh autograd graph for one backward call. */
    @State(Scope.Thread)
    public static class Graph {
        NDManager call;
        NDArray output;

        /** Copies the inputs into new leaves that require gradients and runs the forward pass with autograd. */
        @Setup(Level.Invocation)
        public void build(Inputs in) {
            JniUtils.setGradMode(true);
            call = in.manager.newSubManager();
            NDList leaves = new NDList();
            for (NDArray a : in.inputs) {
                NDArray leaf = a.duplicate();
                leaf.attach(call);
                leaf.setRequiresGradient(true);
                leaves.add(leaf);
            }
            output = TorchOps.forward(in.p, leaves, in.attention, true);
        }

        /** Frees the graph, the leaves and their gradients. */
        @TearDown(Level.Invocation)
        public void free() {
            call.close();
        }
    }

    /** One forward pass. */
    @Benchmark
    public void forward(Inputs in) {
        try (NDManager call = in.manager.newSubManager()) {
            for (NDArray a : in.inputs) {
                a.tempAttach(call);
            }
            TorchOps.forward(in.p, in.inputs, in.attention, false);
        }
    }

    /** One backward pass: every input gradient from the output gradient. */
    @Benchmark
    public void backward(Inputs in, Graph g) {
        TorchOps.backward(g.output, in.outputGradient);
    }
}
