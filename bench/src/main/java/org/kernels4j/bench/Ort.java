package org.kernels4j.bench;

import java.util.concurrent.TimeUnit;

import ai.onnxruntime.OrtException;
import ai.onnxruntime.OrtSession;

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
 * Peer: ONNX Runtime 1.23 (CPU execution provider), forward only (an inference runtime), fp32, at the CPU
 * backend's thread count. Each call runs the session and frees its output.
 */
@State(Scope.Benchmark)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.MILLISECONDS)
public class Ort {

    /** Problem name from the CPU set. */
    @Param({"ln-8k-1k", "ln-4k-4k", "conv-r56", "conv-r28", "conv-1x1", "conv-s2", "conv-dw",
            "attn-1k", "attn-1k-causal", "attn-4k-causal", "attn-gqa"})
    public String problem;

    private OrtOps ops;

    /** Builds the graph and the session and uploads the inputs. */
    @Setup
    public void setUp() throws OrtException {
        ops = new OrtOps(ProblemSet.byName(problem), Threads.intraOp());
    }

    /** Closes the session. */
    @TearDown
    public void tearDown() {
        ops.close();
    }

    /** One forward pass. */
    @Benchmark
    public void forward() throws OrtException {
        try (OrtSession.Result r = ops.run()) {
            if (r.size() == 0) {
                throw new IllegalStateException("no output");
            }
        }
    }
}
