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
import java.util.Random;
import java.util.TreeMap;
import java.util.concurrent.TimeUnit;

import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.kernels4j.Conv2d;
import org.kernels4j.DType;
import org.kernels4j.Stream;
import org.kernels4j.Tensor;
import org.kernels4j.conformance.Conv2dConformanceReplay;
import org.kernels4j.tuning.Parameters;
import org.kernels4j.tuning.Tuning;
import org.kernels4j.reference.ReferenceConv2d;
import org.kernels4j.spi.Conv2dProblem;

/**
 * The whole CUDA convolution path without a GPU: {@link Conv2d} runs through {@link Conv2dCuda} (kernel
 * choice, NCHW transposes, dgrad stride phases, split-K workspace, bias gradient) on {@link FakeCudaDriver},
 * and every launch it queues is executed, in order, by the host emulation of the kernels
 * ({@code src/test/cuda/conv_emulation.cpp --replay}) over a copy of the fake device memory, with guard pages
 * around every allocation. The results are compared with {@link ReferenceConv2d} in float64.
 *
 * <p>Needs the CUDA kernels of this build (nvcc) and a C++17 compiler ({@code g++}, or {@code CXX});
 * skipped, with the reason, otherwise. Problems are small: the emulation runs each GPU thread as a fiber.
 */
class Conv2dCudaReplayTest {

    private static Path runner;
    private static KernelManifest manifest;

    @BeforeAll
    static void buildEmulation() throws IOException, InterruptedException {
        manifest = KernelManifest.load();
        assumeTrue(manifest != null, "built without CUDA kernels (nvcc absent): nothing to replay");
        String cxx = System.getenv().getOrDefault("CXX", "g++");
        assumeTrue(run(List.of(cxx, "--version"), 60).exit == 0, "no C++ compiler '" + cxx + "' to build the emulation");
        Path src = Path.of("src", "test", "cuda", "conv_emulation.cpp");
        Path dir = Path.of("target", "conv-emulation");
        Files.createDirectories(dir);
        runner = dir.resolve("conv_emulation");
        if (!Files.exists(runner) || newestSource().compareTo(Files.getLastModifiedTime(runner).toMillis()) > 0) {
            Result r = run(List.of(cxx, "-std=c++17", "-O1", "-fno-strict-aliasing", "-Wno-unknown-pragmas", "-o",
                    runner.toString(), src.toString()), 900);
            assertEquals(0, r.exit, "compiling the kernel emulation failed:\n" + r.output);
        }
    }

    private static Long newestSource() throws IOException {
        long t = 0;
        for (Path dir : List.of(Path.of("src", "main", "cuda"), Path.of("src", "test", "cuda"))) {
            try (var files = Files.list(dir)) {
                for (Path f : (Iterable<Path>) files.filter(p -> p.getFileName().toString().startsWith("conv"))::iterator) {
                    t = Math.max(t, Files.getLastModifiedTime(f).toMillis());
                }
            }
        }
        return t;
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

    /**
     * A {@link CudaDriver} that is a {@link FakeCudaDriver}, except that each kernel launch is executed by the
     * emulation on the spot, over every live allocation.
     */
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
            long bytes = 64;
            for (long size : allocations.values()) {
                bytes += 16 + size;
            }
            bytes += 4 + l.kernel().length() + 7 * 4 + 4 + 9L * l.args().length;
            ByteBuffer b = ByteBuffer.allocate(Math.toIntExact(bytes)).order(ByteOrder.LITTLE_ENDIAN);
            b.put("K4JCONV1".getBytes(StandardCharsets.US_ASCII)).putInt(allocations.size());
            for (Map.Entry<Long, Long> a : allocations.entrySet()) {
                b.putLong(a.getKey()).putLong(a.getValue()).put(fake.bytesAt(a.getKey(), a.getValue()));
            }
            byte[] name = l.kernel().getBytes(StandardCharsets.US_ASCII);
            b.putInt(name.length).put(name);
            b.putInt(l.grid().x()).putInt(l.grid().y()).putInt(l.grid().z());
            b.putInt(l.block().x()).putInt(l.block().y()).putInt(l.block().z()).putInt(l.sharedBytes());
            b.putInt(l.args().length);
            for (Object a : l.args()) {
                if (a instanceof Long v) {
                    b.put((byte) 'L').putLong(v);
                } else if (a instanceof Integer v) {
                    b.put((byte) 'I').putLong(v & 0xffffffffL);
                } else {
                    throw new AssertionError(l.kernel() + ": argument " + a + " is neither Long nor Integer");
                }
            }
            Path file = Files.createTempFile("conv-launch", ".bin");
            try {
                Files.write(file, java.util.Arrays.copyOf(b.array(), b.position()));
                Result r = run(List.of(runner.toString(), "--replay", file.toString()), 1800);
                assertEquals(0, r.exit, l.kernel() + " grid " + l.grid() + " failed in the emulation:\n" + r.output);
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

    private static float[] random(Random rnd, int n, double scale) {
        float[] a = new float[n];
        for (int i = 0; i < n; i++) {
            a[i] = (float) (rnd.nextGaussian() * scale);
        }
        return a;
    }

    /** A tensor holding random values; {@code values} receives them as stored (rounded to the dtype). */
    private static Tensor input(CudaDevice d, DType dt, int[] shape, Random rnd, double scale, List<double[]> values) {
        Tensor t = d.allocate(dt, shape);
        t.copyFrom(random(rnd, Math.toIntExact(t.elementCount()), scale));
        float[] stored = t.toFloatArray();
        double[] v = new double[stored.length];
        for (int i = 0; i < v.length; i++) {
            v[i] = stored[i];
        }
        values.add(v);
        return t;
    }

    private static Tensor poisoned(CudaDevice d, DType dt, int... shape) {
        Tensor t = d.allocate(dt, shape);
        t.fill(Float.NaN);
        return t;
    }

    private static void assertClose(String what, Tensor out, double[] ref, DType dt) {
        float[] got = out.toFloatArray();
        double num = 0;
        double den = 0;
        for (int i = 0; i < got.length; i++) {
            assertTrue(Float.isFinite(got[i]), what + ": element " + i + " is " + got[i] + " (unwritten or NaN)");
            num += (got[i] - ref[i]) * (got[i] - ref[i]);
            den += ref[i] * ref[i];
        }
        double err = Math.sqrt(num / Math.max(den, 1e-300));
        double tol = switch (dt) {
            case FLOAT32 -> 1e-5;
            case FLOAT16 -> 2e-3;
            case BFLOAT16 -> 1.6e-2;
        };
        assertTrue(err <= tol, what + ": relative error " + err + " > " + tol);
    }

    /** Forward (with bias), backward-data and backward-filter (with db) of one problem, each against float64. */
    private static List<String> check(Conv2d conv, DType dt, int[] xShape, int[] wShape, long seed) {
        Run run = Run.start();
        CudaDevice d = run.device();
        Random rnd = new Random(seed);
        Conv2dProblem p = conv.problem(xShape, wShape, dt);
        List<double[]> v = new ArrayList<>();
        try (Tensor x = input(d, dt, xShape, rnd, 1, v);
             Tensor w = input(d, dt, wShape, rnd, 1 / Math.sqrt(p.cPerGroup() * p.r() * p.s()), v);
             Tensor b = input(d, dt, new int[] {p.k()}, rnd, 1, v);
             Tensor dy = input(d, dt, p.yShape(), rnd, 1, v);
             Tensor y = poisoned(d, dt, p.yShape());
             Tensor dx = poisoned(d, dt, xShape);
             Tensor dw = poisoned(d, dt, wShape);
             Tensor db = poisoned(d, dt, p.k());
             Stream s = d.createStream()) {
            conv.forward(s, x, w, b, y);
            conv.backwardData(s, dy, w, dx);
            conv.backwardFilter(s, dy, x, dw, db);
            s.synchronize();
            String tag = p.format() + " " + dt + " " + java.util.Arrays.toString(xShape) + " " + conv;
            assertClose("y " + tag, y, ReferenceConv2d.forward(p, v.get(0), v.get(1), v.get(2)), dt);
            assertClose("dx " + tag, dx, ReferenceConv2d.backwardData(p, v.get(3), v.get(1)), dt);
            ReferenceConv2d.FilterGradients g = ReferenceConv2d.backwardFilter(p, v.get(3), v.get(0));
            assertClose("dw " + tag, dw, g.dw(), dt);
            assertClose("db " + tag, db, g.db(), dt);
        }
        return run.replay().kernels;
    }

    /**
     * The cases of the first GPU run (H200): backward-filter case 36 passed, then case 37 (fp16 NCHW 1x1, K=7) hit
     * CUDA_ERROR_ILLEGAL_ADDRESS; replayed in that order on one device.
     */
    @Test
    void conformanceCasesOfTheFirstGpuRun() {
        Run run = Run.start();
        List<String> names = Conv2dConformanceReplay.names(run.device());
        assertEquals("cuda:0 float16 NCHW depthwise-x2 Conv2d(NCHW, stride=1x1, pad=1,1,1,1, dilation=1x1, groups=4) "
                + "N=1 C=4 HxW=6x5 K=8 RxS=3x3 bias", names.get(35));
        assertEquals("cuda:0 float16 NCHW 1x1 Conv2d(NCHW, stride=1x1, pad=0,0,0,0, dilation=1x1, groups=1) "
                + "N=3 C=16 HxW=5x5 K=7 RxS=1x1", names.get(36));
        Conv2dConformanceReplay.run(Conv2dConformanceReplay.Pass.BACKWARD_FILTER, run.device(), 36);
        Conv2dConformanceReplay.run(Conv2dConformanceReplay.Pass.BACKWARD_FILTER, run.device(), 37);
        assertTrue(run.replay().kernels.contains("conv_wgrad_f16_64x64w4_ss"), run.replay().kernels.toString());
    }

    /**
     * Every case of the convolution conformance suite, as the GPU runs them, for the passes named in system
     * property {@code kernels4j.cuda.replayConformance} (comma-separated FORWARD, BACKWARD_DATA, BACKWARD_FILTER;
     * unset: skipped, since the whole list takes minutes in the emulation).
     */
    @Test
    void wholeConformanceList() {
        String passes = System.getProperty("kernels4j.cuda.replayConformance", "");
        assumeTrue(!passes.isBlank(), "set -Dkernels4j.cuda.replayConformance=FORWARD,BACKWARD_DATA,BACKWARD_FILTER to run");
        Run run = Run.start();
        int cases = Conv2dConformanceReplay.names(run.device()).size();
        List<String> failed = new ArrayList<>();
        for (String pass : passes.split(",")) {
            Conv2dConformanceReplay.Pass ps = Conv2dConformanceReplay.Pass.valueOf(pass.trim());
            for (int i = 1; i <= cases; i++) {
                long t0 = System.nanoTime();
                int launches = run.replay().kernels.size();
                try {
                    Conv2dConformanceReplay.run(ps, run.device(), i);
                    System.out.printf("replayed %s [%d] %s: %d launches, %.1f s%n", ps, i,
                            Conv2dConformanceReplay.names(run.device()).get(i - 1), run.replay().kernels.size() - launches,
                            (System.nanoTime() - t0) * 1e-9);
                } catch (AssertionError | RuntimeException e) {
                    failed.add(ps + " [" + i + "] " + Conv2dConformanceReplay.names(run.device()).get(i - 1) + ": " + e.getMessage());
                }
            }
        }
        assertEquals(List.of(), failed);
    }

    @Test
    void tensorCoresNhwcWithBias() {
        List<String> k = check(Conv2d.builder().format(Conv2d.Format.NHWC).padding(1).build(), DType.BFLOAT16,
                new int[] {2, 7, 6, 16}, new int[] {24, 3, 3, 16}, 1);
        assertTrue(k.stream().anyMatch(n -> n.startsWith("conv_fprop_bf16_") && n.endsWith("_vv")), k.toString());
        assertTrue(k.contains("conv_bias_grad_bf16") && k.contains("conv_reduce_bf16"), k.toString());
    }

    /** The wgmma engine chosen by the system property on a compute capability 9.0 device (the fake's). */
    @Test
    void wgmmaEngineWhenAskedFor() {
        System.setProperty(Conv2dCuda.ENGINE_PROPERTY, "wgmma");
        try {
            List<String> k = check(Conv2d.builder().format(Conv2d.Format.NHWC).stride(2, 1).padding(1).build(),
                    DType.BFLOAT16, new int[] {2, 9, 7, 40}, new int[] {24, 3, 3, 40}, 9);
            assertTrue(k.contains("conv_wg_fprop_bf16_128x64_vv") && k.contains("conv_wg_wgrad_bf16_64x256_vv")
                    && k.stream().filter(n -> n.startsWith("conv_wg_dgrad_bf16_")).count() == 2, k.toString());
            // K = 12: dy (operand A of dgrad and wgrad) has no 16-byte loader, so those passes run mma.sync whatever
            // the engine; fprop reads x and w, whose C = 8 can
            List<String> narrow = check(Conv2d.builder().format(Conv2d.Format.NHWC).padding(1).build(), DType.FLOAT16,
                    new int[] {1, 5, 6, 8}, new int[] {12, 3, 3, 8}, 10);
            assertTrue(narrow.contains("conv_wg_fprop_f16_128x64_vv") && narrow.contains("conv_dgrad_f16_128x16w4_ss")
                    && narrow.contains("conv_wgrad_f16_64x64w4_ss"), narrow.toString());
        } finally {
            System.clearProperty(Conv2dCuda.ENGINE_PROPERTY);
        }
    }

    /**
     * The warp-specialized wgmma kernels (tuned ENGINE 1 and their TILE), 256 and 128 columns, every pass through
     * the Java path; fprop's and dgrad's 12 and 14 k-tiles reuse stages (wgrad's splits are short here: the
     * emulation's own test runs one split of 18 k-tiles).
     */
    @Test
    void warpSpecializedWgmmaByTuning() {
        for (int tile : new int[] {4, 5}) {
            Parameters wg = Parameters.of("ENGINE", 1, "TILE", tile);
            Parameters wgSplit = Parameters.of("ENGINE", 1, "TILE", tile, "SPLIT_WAVES", 1);
            Tuning.Scope f = Tuning.scoped(Conv2dCuda.FPROP_SPACE.kernelId(), wg);
            Tuning.Scope d = Tuning.scoped(Conv2dCuda.DGRAD_SPACE.kernelId(), wg);
            Tuning.Scope w = Tuning.scoped(Conv2dCuda.WGRAD_SPACE.kernelId(), wgSplit);
            try {
                List<String> k = check(Conv2d.builder().format(Conv2d.Format.NHWC).padding(1).build(), DType.BFLOAT16,
                        new int[] {3, 11, 9, 40}, new int[] {48, 3, 3, 40}, 13 + tile);
                String id = Conv2dCuda.Pass.FPROP.wgTiles.get(tile - 1).id();
                assertTrue(k.containsAll(List.of("conv_wg_fprop_bf16_" + id + "_vv", "conv_wg_dgrad_bf16_" + id + "_vv",
                        "conv_wg_wgrad_bf16_" + id + "_vv")), k.toString());
            } finally {
                w.close();
                d.close();
                f.close();
            }
        }
    }

    @Test
    void tensorCoresNchwStridedThroughTransposesAndStridePhases() {
        List<String> k = check(Conv2d.builder().format(Conv2d.Format.NCHW).stride(2).padding(1, 0, 1, 1).build(),
                DType.FLOAT16, new int[] {2, 8, 9, 7}, new int[] {16, 8, 3, 3}, 2);
        assertTrue(k.contains("conv_transpose_b16"), k.toString());
        assertEquals(4, k.stream().filter(n -> n.startsWith("conv_dgrad_f16_")).count(), "one dgrad launch per phase: " + k);
    }

    @Test
    void tensorCoresWithFewInputChannelsUseSingleElementLoaders() {
        List<String> k = check(Conv2d.builder().format(Conv2d.Format.NHWC).stride(1, 2).padding(2).build(), DType.FLOAT16,
                new int[] {1, 11, 10, 3}, new int[] {8, 5, 5, 3}, 3);
        assertTrue(k.contains("conv_fprop_f16_128x64w4_ss") && k.contains("conv_dgrad_f16_128x16w4_vs")
                && k.contains("conv_wgrad_f16_64x64w4_vs"), k.toString());
    }

    /**
     * A stride-2 convolution over 3 channels (an RGB stem) as the stride-1 one over 2x2 pixel blocks: odd sizes (a
     * half block at the bottom and right), odd padding on one side, both layouts.
     */
    @Test
    void fewChannelStride2ThroughSpaceToDepth() {
        List<String> k = check(Conv2d.builder().format(Conv2d.Format.NHWC).stride(2).padding(3).build(), DType.BFLOAT16,
                new int[] {2, 15, 13, 3}, new int[] {16, 7, 7, 3}, 11);
        assertTrue(k.containsAll(List.of("conv_s2d_x_b16", "conv_s2d_w_b16", "conv_d2s_x_b16", "conv_d2s_w_b16",
                "conv_dgrad_bf16_128x16w4_vs")) && k.stream().anyMatch(n -> n.matches("conv_fprop_bf16_.*_vv"))
                && k.stream().anyMatch(n -> n.matches("conv_wgrad_bf16_.*_vv")), k.toString());
        List<String> nchw = check(Conv2d.builder().format(Conv2d.Format.NCHW).stride(2).padding(2, 1, 1, 2).build(),
                DType.FLOAT16, new int[] {1, 5, 10, 9}, new int[] {8, 5, 5, 5}, 12);
        assertTrue(nchw.contains("conv_s2d_x_b16") && nchw.contains("conv_d2s_w_b16"), nchw.toString());
    }

    @Test
    void fp32GroupedDilatedNchwOnTheSimtKernels() {
        List<String> k = check(Conv2d.builder().format(Conv2d.Format.NCHW).padding(2).dilation(2).groups(2).build(),
                DType.FLOAT32, new int[] {2, 4, 6, 7}, new int[] {6, 2, 3, 3}, 4);
        assertTrue(k.contains("conv_simt_fprop_f32") && k.contains("conv_simt_wgrad_f32"), k.toString());
    }

    @Test
    void depthwiseInBothLayouts() {
        check(Conv2d.builder().format(Conv2d.Format.NHWC).stride(2).padding(1).groups(8).build(), DType.BFLOAT16,
                new int[] {2, 7, 8, 8}, new int[] {8, 3, 3, 1}, 5);
        List<String> k = check(Conv2d.builder().format(Conv2d.Format.NCHW).padding(1).groups(4).build(), DType.FLOAT32,
                new int[] {1, 4, 6, 5}, new int[] {8, 1, 3, 3}, 6);
        assertTrue(k.contains("conv_dw_dgrad_f32"), k.toString());
    }

    @Test
    void misalignedFrameworkMemoryTakesTheSingleElementLoaders() {
        Run run = Run.start();
        CudaDevice d = run.device();
        Conv2d conv = Conv2d.builder().format(Conv2d.Format.NHWC).padding(1).build();
        int[] xShape = {1, 5, 5, 8};
        int[] wShape = {8, 3, 3, 8};
        Conv2dProblem p = conv.problem(xShape, wShape, DType.BFLOAT16);
        List<double[]> v = new ArrayList<>();
        Random rnd = new Random(7);
        try (Tensor buf = d.allocate(DType.BFLOAT16, 5 * 5 * 8 + 1);
             Tensor w = input(d, DType.BFLOAT16, wShape, rnd, 0.1, v);
             Tensor y = poisoned(d, DType.BFLOAT16, p.yShape())) {
            Tensor x = CudaInterop.wrap(d, CudaInterop.devicePointer(buf) + 2, DType.BFLOAT16, xShape);
            x.copyFrom(random(rnd, 5 * 5 * 8, 1));
            float[] xs = x.toFloatArray();
            double[] xv = new double[xs.length];
            for (int i = 0; i < xs.length; i++) {
                xv[i] = xs[i];
            }
            conv.forward(d.defaultStream(), x, w, null, y);
            d.synchronize();
            assertEquals(List.of("conv_fprop_bf16_128x64w4_ss"), run.replay().kernels);
            assertClose("y from a misaligned x", y, ReferenceConv2d.forward(p, xv, v.get(0), null), DType.BFLOAT16);
        }
    }

    /**
     * An aligned x with a misaligned filter: the A operand could take the 16-byte loader but the kernel launched
     * ("_ss") has the single-element one, whose pixel table must be in the shared memory the launch asks for.
     */
    @Test
    void misalignedFilterLaunchesWithTheScalarLoadersSharedMemory() {
        Run run = Run.start();
        CudaDevice d = run.device();
        Conv2d conv = Conv2d.builder().format(Conv2d.Format.NHWC).padding(1).build();
        int[] xShape = {1, 5, 5, 8};
        int[] wShape = {8, 3, 3, 8};
        Conv2dProblem p = conv.problem(xShape, wShape, DType.FLOAT16);
        List<double[]> v = new ArrayList<>();
        Random rnd = new Random(8);
        try (Tensor buf = d.allocate(DType.FLOAT16, 8 * 3 * 3 * 8 + 1);
             Tensor x = input(d, DType.FLOAT16, xShape, rnd, 1, v);
             Tensor y = poisoned(d, DType.FLOAT16, p.yShape())) {
            Tensor w = CudaInterop.wrap(d, CudaInterop.devicePointer(buf) + 2, DType.FLOAT16, wShape);
            w.copyFrom(random(rnd, 8 * 3 * 3 * 8, 0.2));
            float[] ws = w.toFloatArray();
            double[] wv = new double[ws.length];
            for (int i = 0; i < ws.length; i++) {
                wv[i] = ws[i];
            }
            conv.forward(d.defaultStream(), x, w, null, y);
            d.synchronize();
            assertEquals(List.of("conv_fprop_f16_128x64w4_ss"), run.replay().kernels);
            assertEquals(Conv2dCuda.smemBytes(Conv2dCuda.Pass.FPROP, Conv2dCuda.FPROP_ANY, false, false),
                    run.replay().fake.launches.getLast().sharedBytes());
            assertClose("y from a misaligned w", y, ReferenceConv2d.forward(p, v.get(0), wv, null), DType.FLOAT16);
        }
    }

    @Test
    void anEmptyBatchHasZeroFilterAndBiasGradients() {
        Run run = Run.start();
        CudaDevice d = run.device();
        Conv2d conv = Conv2d.builder().format(Conv2d.Format.NHWC).padding(1).build();
        try (Tensor x = d.allocate(DType.FLOAT16, 0, 4, 4, 8);
             Tensor dy = d.allocate(DType.FLOAT16, 0, 4, 4, 8);
             Tensor dw = poisoned(d, DType.FLOAT16, 8, 3, 3, 8);
             Tensor db = poisoned(d, DType.FLOAT16, 8)) {
            conv.backwardFilter(d.defaultStream(), dy, x, dw, db);
            d.synchronize();
            assertEquals(List.of(), run.replay().kernels);
            for (float f : dw.toFloatArray()) {
                assertEquals(0f, f);
            }
            for (float f : db.toFloatArray()) {
                assertEquals(0f, f);
            }
        }
    }
}
