package org.kernels4j.cuda;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.io.IOException;
import java.lang.reflect.InvocationHandler;
import java.lang.reflect.InvocationTargetException;
import java.lang.reflect.Method;
import java.lang.reflect.Proxy;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.concurrent.TimeUnit;
import java.util.function.IntPredicate;

import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.kernels4j.Attention;
import org.kernels4j.Attention.CausalMask;
import org.kernels4j.DType;
import org.kernels4j.Stream;
import org.kernels4j.Tensor;
import org.kernels4j.conformance.AttentionConformanceReplay;
import org.kernels4j.conformance.AttentionConformanceReplay.Pass;
import org.kernels4j.reference.ReferenceAttention;
import org.kernels4j.spi.AttentionProblem;

/**
 * The whole CUDA attention path without a GPU: {@link Attention} runs through {@link AttentionCuda} (kernel and
 * launch records read from the sm_90 cubin, padded staging of rows that are not 16-byte multiples or not
 * aligned, workspaces, atomic and deterministic dQ, fp32 kernels) on {@link FakeCudaDriver}, and every launch it
 * queues is executed, in order, by the CPU emulation of the kernels ({@code src/test/cuda/attention_emulator.cpp
 * --replay}, built with the sm_90 shapes) over a copy of the fake device memory; the emulation also checks each
 * launch's block and shared memory against the kernel's own record, and every global access against the
 * allocations. Results are judged by the conformance kit's own test methods (float64 reference, the kit's
 * tolerances).
 *
 * <p>Needs the CUDA kernels of this build (nvcc) and a C++17 compiler ({@code g++}, or {@code CXX}); skipped,
 * with the reason, otherwise.
 */
class AttentionCudaReplayTest {

    private static Path runner;
    private static KernelManifest manifest;

    @BeforeAll
    static void buildEmulation() throws IOException, InterruptedException {
        manifest = KernelManifest.load();
        assumeTrue(manifest != null, "built without CUDA kernels (nvcc absent): nothing to replay");
        String cxx = System.getenv().getOrDefault("CXX", "g++");
        assumeTrue(run(List.of(cxx, "--version"), 60).exit() == 0, "no C++ compiler '" + cxx + "' to build the emulation");
        Path src = Path.of("src", "test", "cuda", "attention_emulator.cpp");
        Path kernels = Path.of("src", "main", "cuda", "attention.cu");
        Path dir = Path.of("target", "emu");
        Files.createDirectories(dir);
        runner = dir.resolve("attention_replay");
        long newest = Math.max(Files.getLastModifiedTime(src).toMillis(), Files.getLastModifiedTime(kernels).toMillis());
        if (!Files.exists(runner) || newest > Files.getLastModifiedTime(runner).toMillis()) {
            Result r = run(List.of(cxx, "-std=c++17", "-O1", "-w", "-DK4J_ATTN_HOPPER_SHAPES", "-o", runner.toString(),
                    src.toString()), 900);
            assertEquals(0, r.exit(), "compiling the attention emulation failed:\n" + r.output());
        }
    }

    private record Result(int exit, String output) {
    }

    private static Result run(List<String> command, int timeoutSeconds) throws IOException, InterruptedException {
        Process p;
        try {
            p = new ProcessBuilder(command).redirectErrorStream(true).start();
        } catch (IOException e) {
            return new Result(-1, e.toString());
        }
        byte[] out = p.getInputStream().readAllBytes();
        if (!p.waitFor(timeoutSeconds, TimeUnit.SECONDS)) {
            p.destroyForcibly();
            return new Result(-1, "timed out: " + command);
        }
        return new Result(p.exitValue(), new String(out, StandardCharsets.UTF_8));
    }

    /** A {@link FakeCudaDriver} whose kernel launches the emulation executes on the spot, over every allocation. */
    private static final class Replaying implements InvocationHandler {
        final FakeCudaDriver fake = new FakeCudaDriver();
        final Map<Long, Long> allocations = new TreeMap<>();
        final List<String> kernels = new ArrayList<>();

        CudaDriver driver() {
            return (CudaDriver) Proxy.newProxyInstance(CudaDriver.class.getClassLoader(), new Class<?>[] {CudaDriver.class},
                    this);
        }

        @Override
        public Object invoke(Object proxy, Method m, Object[] args) throws Throwable {
            Object r;
            try {
                r = m.invoke(fake, args);
            } catch (InvocationTargetException e) {
                throw e.getCause();
            }
            switch (m.getName()) {
                case "memAlloc" -> allocations.put((Long) r, (Long) args[0]);
                case "memFree" -> allocations.remove((Long) args[0]);
                case "launchKernel" -> execute(fake.launches.getLast());
                default -> {
                }
            }
            return r;
        }

        private void execute(FakeCudaDriver.Launch l) throws IOException, InterruptedException {
            kernels.add(l.kernel());
            long bytes = 12;
            for (long size : allocations.values()) {
                bytes += 16 + size;
            }
            bytes += 4 + l.kernel().length() + 7 * 4 + 4 + 9L * l.args().length;
            ByteBuffer b = ByteBuffer.allocate(Math.toIntExact(bytes)).order(ByteOrder.LITTLE_ENDIAN);
            b.put("K4JATTN1".getBytes(StandardCharsets.US_ASCII)).putInt(allocations.size());
            for (Map.Entry<Long, Long> a : allocations.entrySet()) {
                b.putLong(a.getKey()).putLong(a.getValue()).put(fake.bytesAt(a.getKey(), a.getValue()));
            }
            byte[] name = l.kernel().getBytes(StandardCharsets.US_ASCII);
            b.putInt(name.length).put(name);
            b.putInt(l.grid().x()).putInt(l.grid().y()).putInt(l.grid().z());
            b.putInt(l.block().x()).putInt(l.block().y()).putInt(l.block().z()).putInt(l.sharedBytes());
            b.putInt(l.args().length);
            for (Object a : l.args()) {
                switch (a) {
                    case Long v -> b.put((byte) 'L').putLong(v);
                    case Integer v -> b.put((byte) 'I').putLong(v & 0xffffffffL);
                    case Float v -> b.put((byte) 'F').putLong(Float.floatToRawIntBits(v) & 0xffffffffL);
                    default -> throw new AssertionError(l.kernel() + ": argument " + a + " is not a Long, Integer or Float");
                }
            }
            Path file = Files.createTempFile("attention-launch", ".bin");
            try {
                Files.write(file, java.util.Arrays.copyOf(b.array(), b.position()));
                Result r = run(List.of(runner.toString(), "--replay", file.toString()), 1800);
                assertEquals(0, r.exit(), l.kernel() + " grid " + l.grid() + " failed in the emulation:\n" + r.output());
                ByteBuffer back = ByteBuffer.wrap(Files.readAllBytes(file)).order(ByteOrder.LITTLE_ENDIAN);
                back.position(12);
                for (Map.Entry<Long, Long> a : allocations.entrySet()) {
                    back.position(back.position() + 16);
                    byte[] data = new byte[Math.toIntExact(a.getValue())];
                    back.get(data);
                    fake.bytesAt(a.getKey(), a.getValue()).put(data);
                }
            } finally {
                Files.deleteIfExists(file);
            }
        }
    }

    private record Run(Replaying replay, CudaDevice device) {
        static Run start() {
            Replaying r = new Replaying();
            return new Run(r, (CudaDevice) CudaBackendProvider.start(r.driver(), manifest).defaultDevice());
        }
    }

    /**
     * Runs the kit's forward and backward of every case {@code pick} accepts, the backward also with deterministic
     * dQ where {@code deterministicToo} accepts the case; returns the failures.
     */
    private static List<String> replayConformance(IntPredicate pick, IntPredicate deterministicToo) {
        Run run = Run.start();
        List<String> names = AttentionConformanceReplay.names(run.device());
        List<String> failed = new ArrayList<>();
        for (int i = 1; i <= names.size(); i++) {
            if (!pick.test(i)) {
                continue;
            }
            for (boolean deterministic : deterministicToo.test(i) ? new boolean[] {false, true} : new boolean[] {false}) {
                String mode = deterministic ? " (deterministic dQ)" : "";
                for (Pass pass : deterministic ? new Pass[] {Pass.BACKWARD} : Pass.values()) {
                    long t0 = System.nanoTime();
                    int launches = run.replay().kernels.size();
                    System.setProperty("kernels4j.attention.deterministic", Boolean.toString(deterministic));
                    try {
                        AttentionConformanceReplay.run(pass, run.device(), i);
                        System.out.printf("replayed %s [%d] %s%s: %s, %.1f s%n", pass, i, names.get(i - 1), mode,
                                run.replay().kernels.subList(launches, run.replay().kernels.size()),
                                (System.nanoTime() - t0) * 1e-9);
                    } catch (AssertionError | RuntimeException e) {
                        failed.add(pass + " [" + i + "] " + names.get(i - 1) + mode + ": " + e.getMessage());
                    } finally {
                        System.clearProperty("kernels4j.attention.deterministic");
                    }
                }
            }
        }
        return failed;
    }

    /**
     * The conformance cases the first GPU run could not judge (a conv fault had poisoned the context): every
     * head dim that takes the padded staging (not a multiple of 8: 1 and the random cases' odd ones, backward in
     * both dQ modes), no keys, one query, one key, grouped-query heads, both causal alignments, an explicit scale,
     * each dtype. The whole list: {@link #wholeConformanceList}.
     */
    @Test
    void conformanceCasesThatStageOrDegenerate() {
        Run probe = Run.start();
        List<String> names = AttentionConformanceReplay.names(probe.device());
        IntPredicate staged = i -> AttentionConformanceReplay.headDim(probe.device(), i) % 8 != 0;
        List<String> failed = replayConformance(i -> {
            String n = names.get(i - 1);
            return staged.test(i) || n.contains("Nk=0") || n.contains("Nq=1 ") || n.contains("Nk=1 ") || n.contains("scale=")
                    || n.contains("H=8/2");
        }, staged);
        assertEquals(List.of(), failed);
    }

    /**
     * Every case of the attention conformance suite, as the GPU runs them (forward, backward with atomic dQ,
     * backward with deterministic dQ), when system property {@code kernels4j.cuda.replayAttention=true} (the
     * list takes a few minutes in the emulation).
     */
    @Test
    void wholeConformanceList() {
        assumeTrue(Boolean.getBoolean("kernels4j.cuda.replayAttention"),
                "set -Dkernels4j.cuda.replayAttention=true to replay every attention conformance case");
        assertEquals(List.of(), replayConformance(i -> true, i -> true));
    }

    /**
     * A q that starts 2 bytes into its allocation (a framework's view): the 16-bit kernels need 16-byte rows, so
     * everything goes through the padded staging although d = 64 is a multiple of 8.
     */
    @Test
    void misalignedFrameworkMemoryIsStaged() {
        Run run = Run.start();
        CudaDevice d = run.device();
        int b = 1;
        int h = 2;
        int n = 19;
        int dim = 64;
        Attention att = Attention.of(CausalMask.BOTTOM_RIGHT);
        AttentionProblem p = att.problem(new int[] {b, h, n, dim}, new int[] {b, h, n, dim}, DType.BFLOAT16);
        java.util.Random rnd = new java.util.Random(11);
        int count = b * h * n * dim;
        try (Tensor buf = d.allocate(DType.BFLOAT16, count + 1);
             Tensor k = input(d, rnd, count, b, h, n, dim);
             Tensor v = input(d, rnd, count, b, h, n, dim);
             Tensor o = d.allocate(DType.BFLOAT16, b, h, n, dim);
             Tensor lse = d.allocate(DType.FLOAT32, b, h, n);
             Stream s = d.createStream();
             Tensor q = CudaInterop.wrap(d, CudaInterop.devicePointer(buf) + 2, DType.BFLOAT16, b, h, n, dim)) {
            q.copyFrom(gaussian(rnd, count));
            o.fill(Float.NaN);
            att.forward(s, q, k, v, o, lse);
            s.synchronize();
            assertTrue(run.replay().kernels.contains("k4j_attn_copy_rows"), run.replay().kernels.toString());
            ReferenceAttention.Forward ref = ReferenceAttention.forward(p, doubles(q), doubles(k), doubles(v));
            double[] got = doubles(o);
            double num = 0;
            double den = 0;
            for (int i = 0; i < got.length; i++) {
                assertTrue(Double.isFinite(got[i]), "o[" + i + "] unwritten");
                num += (got[i] - ref.o()[i]) * (got[i] - ref.o()[i]);
                den += ref.o()[i] * ref.o()[i];
            }
            // bf16 output rounding (2^-9 relative) plus P rounded to bf16 before P V
            assertTrue(Math.sqrt(num / den) < 1e-2, "relative error " + Math.sqrt(num / den));
        }
    }

    private static Tensor input(CudaDevice d, java.util.Random rnd, int count, int... shape) {
        Tensor t = d.allocate(DType.BFLOAT16, shape);
        t.copyFrom(gaussian(rnd, count));
        return t;
    }

    private static float[] gaussian(java.util.Random rnd, int n) {
        float[] a = new float[n];
        for (int i = 0; i < n; i++) {
            a[i] = (float) rnd.nextGaussian();
        }
        return a;
    }

    private static double[] doubles(Tensor t) {
        float[] f = t.toFloatArray();
        double[] a = new double[f.length];
        for (int i = 0; i < f.length; i++) {
            a[i] = f[i];
        }
        return a;
    }
}
