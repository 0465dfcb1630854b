package org.kernels4j.bench;

import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;

import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorSpecies;

import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.TearDown;
import org.openjdk.jmh.infra.Blackhole;

/**
 * The machine's measured ceilings for the roofline, on the CPU backend's thread count: memory-copy bandwidth
 * (a large array copy split over the threads; bytes counted as read + written, the way layer norm's are) and
 * the FMA peak (a Vector API loop of independent fused multiply-adds in the preferred vector width).
 */
@State(Scope.Benchmark)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.MILLISECONDS)
public class Ceilings {

    /** Floats per copied array: 256 MiB, far beyond any cache. */
    static final int COPY_FLOATS = 64 << 20;
    /** Bytes one {@link #copy} call moves: the source read and the destination written. */
    static final double COPY_BYTES = 2.0 * COPY_FLOATS * Float.BYTES;

    static final VectorSpecies<Float> SPECIES = FloatVector.SPECIES_PREFERRED;
    /** Independent accumulators per thread: enough to cover the FMA latency on two pipes. */
    static final int ACCUMULATORS = 12;
    /** Loop trips per thread per {@link #fma} call (about a millisecond at the peak of a 256-bit core). */
    static final int FMA_TRIPS = 1 << 18;
    /** Short calls made in the set-up so that C2 compiles the loop with the vector intrinsics before any measurement. */
    private static final int JIT_CALLS = 20_000;

    /** FLOPs one {@link #fma} call does on {@code threads} threads (2 per lane per FMA). */
    static double fmaFlops(int threads) {
        return 2.0 * SPECIES.length() * ACCUMULATORS * (double) FMA_TRIPS * threads;
    }

    private float[] src;
    private float[] dst;
    private ExecutorService pool;
    private int threads;

    /** Allocates the arrays and the thread pool. */
    @Setup
    public void setUp() {
        threads = Threads.intraOp();
        src = new float[COPY_FLOATS];
        dst = new float[COPY_FLOATS];
        for (int i = 0; i < src.length; i++) {
            src[i] = i;
        }
        pool = Executors.newFixedThreadPool(threads);
        // interpreted or C1-compiled Vector API code boxes every vector and runs ~100x slower than the peak;
        // a quick run's single warm-up iteration would not outlast that, so compile the loop here
        float sink = 0;
        for (int i = 0; i < JIT_CALLS; i++) {
            sink += fmaLoop(1, 64);
        }
        if (Float.isNaN(sink)) {
            throw new IllegalStateException("FMA loop produced NaN");
        }
    }

    /** Stops the pool. */
    @TearDown
    public void tearDown() {
        pool.shutdownNow();
    }

    /** Copies 256 MiB, each thread its contiguous share. */
    @Benchmark
    public void copy() throws InterruptedException, ExecutionException {
        List<Future<?>> parts = new ArrayList<>();
        int share = (COPY_FLOATS + threads - 1) / threads;
        for (int t = 0; t < threads; t++) {
            int from = t * share;
            int len = Math.min(share, COPY_FLOATS - from);
            parts.add(pool.submit(() -> System.arraycopy(src, from, dst, from, len)));
        }
        for (Future<?> f : parts) {
            f.get();
        }
    }

    /** {@link #FMA_TRIPS} rounds of {@link #ACCUMULATORS} independent vector FMAs on each thread. */
    @Benchmark
    public void fma(Blackhole bh) throws InterruptedException, ExecutionException {
        List<Future<Float>> parts = new ArrayList<>();
        for (int t = 0; t < threads; t++) {
            float seed = t + 1;
            parts.add(pool.submit(() -> fmaLoop(seed, FMA_TRIPS)));
        }
        for (Future<Float> f : parts) {
            bh.consume(f.get());
        }
    }

    static float fmaLoop(float seed, int trips) {
        // each accumulator is the addend, c = a·b + c, as in the kernels' register tiles: on the 2-core development
        // host a chain through the multiplicand (c = c·a + b) ran at 85.6 GFLOP/s a core against 102.7 through the
        // addend, so that form understated the peak by a sixth. Every trip adds a·b (seed·1e-3) to each accumulator:
        // after FMA_TRIPS trips they hold a few hundred, far from overflow, and no denormals arise
        FloatVector a = FloatVector.broadcast(SPECIES, 0.999f);
        FloatVector b = FloatVector.broadcast(SPECIES, seed * 1e-3f);
        FloatVector c0 = FloatVector.broadcast(SPECIES, seed);
        FloatVector c1 = c0.add(1f);
        FloatVector c2 = c0.add(2f);
        FloatVector c3 = c0.add(3f);
        FloatVector c4 = c0.add(4f);
        FloatVector c5 = c0.add(5f);
        FloatVector c6 = c0.add(6f);
        FloatVector c7 = c0.add(7f);
        FloatVector c8 = c0.add(8f);
        FloatVector c9 = c0.add(9f);
        FloatVector c10 = c0.add(10f);
        FloatVector c11 = c0.add(11f);
        for (int i = 0; i < trips; i++) {
            c0 = a.fma(b, c0);
            c1 = a.fma(b, c1);
            c2 = a.fma(b, c2);
            c3 = a.fma(b, c3);
            c4 = a.fma(b, c4);
            c5 = a.fma(b, c5);
            c6 = a.fma(b, c6);
            c7 = a.fma(b, c7);
            c8 = a.fma(b, c8);
            c9 = a.fma(b, c9);
            c10 = a.fma(b, c10);
            c11 = a.fma(b, c11);
        }
        return c0.add(c1).add(c2).add(c3).add(c4).add(c5).add(c6).add(c7).add(c8).add(c9).add(c10).add(c11)
                .reduceLanes(jdk.incubator.vector.VectorOperators.ADD);
    }
}
