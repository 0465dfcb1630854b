package org.kernels4j.bench;

import java.util.concurrent.TimeUnit;

import org.kernels4j.Backends;
import org.kernels4j.DType;
import org.kernels4j.Device;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.TearDown;

/**
 * kernels4j's ops through the public API, on one backend's default device, one problem, one dtype. Each
 * measured call queues the pass and synchronizes the stream, so device backends are timed to completion.
 * The {@code bench} command sets the parameters per backend (the CPU set for cpu and opencl, the GPU set
 * with its dtypes for cuda); the defaults here are the CPU set on the CPU backend.
 */
@State(Scope.Benchmark)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.MILLISECONDS)
public class Ours {

    /** Backend name: cpu, opencl, cuda. */
    @Param({"cpu"})
    public String backend;

    /** Problem name from benchmark-shapes.md. */
    @Param({"ln-8k-1k", "ln-4k-4k", "conv-r56", "conv-r28", "conv-1x1", "conv-s2", "conv-dw",
            "attn-1k", "attn-1k-causal", "attn-4k-causal", "attn-gqa"})
    public String problem;

    /** Storage dtype. */
    @Param({"float32"})
    public String dtype;

    private OpCase op;

    /** Uploads the problem's inputs and runs the forward once (the backward reads its saved tensors). */
    @Setup
    public void setUp() {
        Device device = Backends.require(backend).defaultDevice();
        op = new OpCase(ProblemSet.byName(problem), device, DType.parse(dtype));
    }

    /** Frees the device tensors. */
    @TearDown
    public void tearDown() {
        op.close();
    }

    /** One forward pass. */
    @Benchmark
    public void forward() {
        op.forward();
    }

    /** One backward pass: every input gradient. */
    @Benchmark
    public void backward() {
        op.backward();
    }
}
