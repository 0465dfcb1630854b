package org.kernels4j.opencl;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;

import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;

import org.junit.jupiter.api.Test;
import org.kernels4j.DType;
import org.kernels4j.Device;
import org.kernels4j.LayerNorm;
import org.kernels4j.Stream;
import org.kernels4j.Tensor;

/** Ops from several threads, each on its own stream, share the cached kernels without mixing arguments. */
class ConcurrencyTest {

    @Test
    void threadsOnTheirOwnStreamsGetTheirOwnResults() throws Exception {
        Device d = TestSupport.device();
        int threads = 4;
        int rows = 16;
        int cols = 40;
        float[][] inputs = new float[threads][];
        float[][] expected = new float[threads][];
        LayerNorm ln = LayerNorm.rmsNorm(1e-5f);
        for (int t = 0; t < threads; t++) {
            inputs[t] = TestSupport.random(new Random(t), rows * cols);
            try (Tensor x = d.upload(DType.FLOAT32, inputs[t], rows, cols);
                 LayerNorm.Outputs o = ln.forward(d.defaultStream(), x, null, null)) {
                expected[t] = o.y().toFloatArray();
            }
        }
        ExecutorService pool = Executors.newFixedThreadPool(threads);
        try {
            List<Future<float[]>> results = new ArrayList<>();
            for (int t = 0; t < threads; t++) {
                float[] in = inputs[t];
                results.add(pool.submit(() -> {
                    try (Stream s = d.createStream();
                         Tensor x = d.upload(DType.FLOAT32, in, rows, cols);
                         Tensor y = d.allocate(DType.FLOAT32, rows, cols);
                         Tensor rstd = d.allocate(DType.FLOAT32, rows)) {
                        for (int i = 0; i < 20; i++) {
                            ln.forward(s, x, null, null, y, null, rstd);
                        }
                        s.synchronize();
                        return y.toFloatArray();
                    }
                }));
            }
            for (int t = 0; t < threads; t++) {
                assertArrayEquals(expected[t], results.get(t).get(), "thread " + t);
            }
        } finally {
            pool.shutdownNow();
        }
    }
}
