package org.kernels4j.conformance;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.FloatBuffer;
import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;
import java.util.function.Consumer;

import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.function.Executable;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;
import org.kernels4j.DType;
import org.kernels4j.Device;
import org.kernels4j.Tensor;
import org.kernels4j.conformance.ConformanceBackend.Target;
import org.kernels4j.spi.HalfFloats;

/**
 * Tensors and their host transfers on every device and dtype: {@code float[]}, heap and direct
 * {@link FloatBuffer}s (from their position, position unchanged), raw native-order {@link ByteBuffer}s,
 * conversion to and from fp16/bf16 (every 16-bit pattern), rejected lengths, byte orders, read-only
 * destinations, nulls and closed tensors (each leaving the data untouched), shape queries, zero-size
 * tensors, and allocation arguments.
 */
class TensorConformanceTest {

    static List<Target> targets() {
        return ConformanceBackend.targets();
    }

    static List<Target> halfTargets() {
        return ConformanceBackend.targets().stream().filter(t -> t.dtype() != DType.FLOAT32).toList();
    }

    static List<Device> devices() {
        return ConformanceBackend.devices();
    }

    @BeforeAll
    static void backend() {
        ConformanceBackend.assumeAvailable();
    }

    /** Values with every kind of float: signed zeros, subnormals, overflow to infinity, infinities, NaN. */
    private static float[] awkwardValues(int n, SplittableRandom rnd) {
        float[] special = {0f, -0f, 1f, -1f, 0.1f, 65504f, 70000f, 1e30f, 1e-7f, -3e-8f, 1e-40f,
                Float.MIN_NORMAL, Float.POSITIVE_INFINITY, Float.NEGATIVE_INFINITY, Float.NaN, 1.0009765625f};
        float[] a = new float[n];
        for (int i = 0; i < n; i++) {
            a[i] = i < special.length ? special[i] : (float) (rnd.nextGaussian() * Math.pow(10, rnd.nextInt(-4, 5)));
        }
        return a;
    }

    private static void assertStored(DType t, float[] written, float[] read) {
        assertEquals(written.length, read.length);
        for (int i = 0; i < written.length; i++) {
            float expected = HalfFloats.round(t, written[i]);
            if (Float.isNaN(expected)) {
                assertTrue(Float.isNaN(read[i]), "element " + i + ": expected NaN, got " + read[i]);
            } else {
                assertEquals(Float.floatToIntBits(expected), Float.floatToIntBits(read[i]),
                        "element " + i + ": wrote " + written[i] + ", expected " + expected + " in " + t + ", got " + read[i]);
            }
        }
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("targets")
    void floatArrayRoundTripRoundsToTheDtype(Target c) {
        float[] a = awkwardValues(37, TestData.random(c.toString()));
        try (Tensor t = c.device().allocate(c.dtype(), 37)) {
            t.copyFrom(a);
            float[] back = new float[37];
            t.copyTo(back);
            assertStored(c.dtype(), a, back);
            assertStored(c.dtype(), a, t.toFloatArray());
        }
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("targets")
    void floatBuffersTransferFromTheirPositionAndKeepIt(Target c) {
        int n = 23;
        float[] a = awkwardValues(n, TestData.random(c.toString()));
        for (boolean direct : new boolean[] {false, true}) {
            FloatBuffer src = direct
                    ? ByteBuffer.allocateDirect(4 * (n + 5)).order(ByteOrder.nativeOrder()).asFloatBuffer()
                    : FloatBuffer.allocate(n + 5);
            src.position(3);
            src.put(a);
            src.position(3).limit(3 + n);
            FloatBuffer dst = direct
                    ? ByteBuffer.allocateDirect(4 * (n + 4)).order(ByteOrder.nativeOrder()).asFloatBuffer()
                    : FloatBuffer.allocate(n + 4);
            dst.position(2).limit(2 + n);
            try (Tensor t = c.device().allocate(c.dtype(), 1, n)) {
                t.copyFrom(src);
                assertEquals(3, src.position(), "copyFrom must leave the source position unchanged");
                t.copyTo(dst);
                assertEquals(2, dst.position(), "copyTo must leave the destination position unchanged");
                float[] back = new float[n];
                dst.get(2, back);
                assertStored(c.dtype(), a, back);
                assertEquals(0f, dst.get(0), "copyTo wrote before the buffer's position");
            }
        }
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("targets")
    void nativeByteBuffersCarryRawElements(Target c) {
        int n = 29;
        DType t = c.dtype();
        float[] a = awkwardValues(n, TestData.random(c.toString()));
        ByteBuffer raw = ByteBuffer.allocateDirect(n * t.byteSize() + 8).order(ByteOrder.nativeOrder());
        for (int i = 0; i < n; i++) {
            if (t == DType.FLOAT32) {
                raw.putFloat(8 + 4 * i, a[i]);
            } else {
                raw.putShort(8 + 2 * i, HalfFloats.encode(t, a[i]));
            }
        }
        raw.position(8);
        try (Tensor tensor = c.device().allocate(t, n)) {
            tensor.copyFrom(raw);
            assertEquals(8, raw.position());
            assertStored(t, a, tensor.toFloatArray());
            ByteBuffer out = ByteBuffer.allocateDirect(n * t.byteSize() + 4).order(ByteOrder.nativeOrder());
            out.position(4);
            tensor.copyTo(out);
            assertEquals(4, out.position());
            for (int i = 0; i < n * t.byteSize(); i++) {
                assertEquals(raw.get(8 + i), out.get(4 + i), "byte " + i + " differs after a raw round trip");
            }
        }
    }

    /**
     * Every 16-bit pattern: raw bytes in, floats out equal the decoded values; floats in, the same bits out.
     * A backend with no 16-bit dtype has no case here.
     */
    @ParameterizedTest(name = "{0}", allowZeroInvocations = true)
    @MethodSource("halfTargets")
    void everySixteenBitPatternConvertsBothWays(Target c) {
        DType t = c.dtype();
        int n = 65536;
        ByteBuffer raw = ByteBuffer.allocateDirect(2 * n).order(ByteOrder.nativeOrder());
        for (int i = 0; i < n; i++) {
            raw.putShort(2 * i, (short) i);
        }
        try (Tensor tensor = c.device().allocate(t, n)) {
            tensor.copyFrom(raw);
            float[] f = tensor.toFloatArray();
            for (int i = 0; i < n; i++) {
                float expected = HalfFloats.decode(t, (short) i);
                assertTrue(Float.isNaN(expected) ? Float.isNaN(f[i]) : Float.floatToIntBits(expected) == Float.floatToIntBits(f[i]),
                        "pattern 0x" + Integer.toHexString(i) + ": expected " + expected + ", got " + f[i]);
            }
            tensor.copyFrom(f);
            ByteBuffer back = ByteBuffer.allocateDirect(2 * n).order(ByteOrder.nativeOrder());
            tensor.copyTo(back);
            for (int i = 0; i < n; i++) {
                short bits = back.getShort(2 * i);
                if (Float.isNaN(f[i])) {
                    assertTrue(Float.isNaN(HalfFloats.decode(t, bits)), "NaN pattern 0x" + Integer.toHexString(i)
                            + " came back as a number");
                } else {
                    assertEquals((short) i, bits, "pattern 0x" + Integer.toHexString(i) + " did not survive float and back");
                }
            }
        }
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("targets")
    void rejectedTransfersNameTheBufferAndChangeNothing(Target c) {
        DType t = c.dtype();
        int n = 11;
        float[] a = TestData.toFloats(TestData.gaussian(TestData.random(c.toString()), n, t, 0, 1));
        try (Tensor tensor = c.device().upload(t, a, n)) {
            List<Executable> badSources = List.of(
                    () -> tensor.copyFrom((float[]) null),
                    () -> tensor.copyFrom(new float[n - 1]),
                    () -> tensor.copyFrom(new float[n + 1]),
                    () -> tensor.copyFrom((FloatBuffer) null),
                    () -> tensor.copyFrom(FloatBuffer.allocate(n + 1)),
                    () -> tensor.copyFrom((ByteBuffer) null),
                    () -> tensor.copyFrom(ByteBuffer.allocateDirect(n * t.byteSize() - 1).order(ByteOrder.nativeOrder())),
                    () -> tensor.copyFrom(ByteBuffer.allocateDirect(n * t.byteSize()).order(nonNative())));
            for (Executable bad : badSources) {
                IllegalArgumentException e = assertThrows(IllegalArgumentException.class, bad);
                assertTrue(e.getMessage().startsWith("src:"), "message must name src: " + e.getMessage());
                assertStored(t, a, tensor.toFloatArray());
            }
            float[] dstArray = new float[n + 1];
            FloatBuffer readOnly = FloatBuffer.allocate(n).asReadOnlyBuffer();
            List<Executable> badDestinations = List.of(
                    () -> tensor.copyTo((float[]) null),
                    () -> tensor.copyTo(dstArray),
                    () -> tensor.copyTo((FloatBuffer) null),
                    () -> tensor.copyTo(FloatBuffer.allocate(n - 1)),
                    () -> tensor.copyTo(readOnly),
                    () -> tensor.copyTo((ByteBuffer) null),
                    () -> tensor.copyTo(ByteBuffer.allocateDirect(n * t.byteSize() + 2).order(ByteOrder.nativeOrder())),
                    () -> tensor.copyTo(ByteBuffer.allocateDirect(n * t.byteSize()).order(nonNative())),
                    () -> tensor.copyTo(ByteBuffer.allocateDirect(n * t.byteSize()).order(ByteOrder.nativeOrder())
                            .asReadOnlyBuffer().order(ByteOrder.nativeOrder())));
            for (Executable bad : badDestinations) {
                IllegalArgumentException e = assertThrows(IllegalArgumentException.class, bad);
                assertTrue(e.getMessage().startsWith("dst:"), "message must name dst: " + e.getMessage());
            }
            assertArrayEquals(new float[n + 1], dstArray, "a rejected copyTo wrote into the array");
        }
    }

    private static ByteOrder nonNative() {
        return ByteOrder.nativeOrder() == ByteOrder.LITTLE_ENDIAN ? ByteOrder.BIG_ENDIAN : ByteOrder.LITTLE_ENDIAN;
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("targets")
    void closedTensorsRejectEveryTransfer(Target c) {
        Tensor t = c.device().allocate(c.dtype(), 4);
        assertFalse(t.isClosed());
        t.close();
        assertTrue(t.isClosed());
        t.close();
        assertTrue(t.isClosed(), "close must be idempotent");
        List<Consumer<Tensor>> uses = List.of(
                x -> x.copyFrom(new float[4]),
                x -> x.copyTo(new float[4]),
                x -> x.copyFrom(FloatBuffer.allocate(4)),
                x -> x.copyTo(FloatBuffer.allocate(4)),
                x -> x.copyFrom(ByteBuffer.allocateDirect(4 * c.dtype().byteSize()).order(ByteOrder.nativeOrder())),
                x -> x.copyTo(ByteBuffer.allocateDirect(4 * c.dtype().byteSize()).order(ByteOrder.nativeOrder())),
                x -> x.fill(1f),
                Tensor::toFloatArray);
        for (Consumer<Tensor> use : uses) {
            assertThrows(IllegalStateException.class, () -> use.accept(t));
        }
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("targets")
    void shapeQueriesDescribeARowMajorTensor(Target c) {
        try (Tensor t = c.device().allocate(c.dtype(), 2, 3, 5)) {
            assertSame(c.device(), t.device());
            assertEquals(c.dtype(), t.dtype());
            assertArrayEquals(new int[] {2, 3, 5}, t.shape());
            t.shape()[0] = 99;
            assertArrayEquals(new int[] {2, 3, 5}, t.shape(), "shape() must return a copy");
            assertEquals(3, t.rank());
            assertEquals(5, t.dim(-1));
            assertEquals(2, t.dim(0));
            assertThrows(IndexOutOfBoundsException.class, () -> t.dim(3));
            assertThrows(IndexOutOfBoundsException.class, () -> t.dim(-4));
            assertEquals(30, t.elementCount());
            assertEquals(30L * c.dtype().byteSize(), t.byteSize());
            assertArrayEquals(new long[] {15, 5, 1}, t.strides());
            assertTrue(t.isContiguous());
        }
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("targets")
    void fillAndZeroSizeTensors(Target c) {
        try (Tensor t = c.device().allocate(c.dtype(), 3, 7);
             Tensor empty = c.device().allocate(c.dtype(), 4, 0, 2)) {
            t.fill(0.3f);
            float expected = HalfFloats.round(c.dtype(), 0.3f);
            for (float v : t.toFloatArray()) {
                assertEquals(expected, v);
            }
            assertEquals(0, empty.elementCount());
            empty.copyFrom(new float[0]);
            empty.fill(1f);
            assertEquals(0, empty.toFloatArray().length);
        }
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("targets")
    void tensorsDoNotShareMemory(Target c) {
        List<Tensor> ts = new ArrayList<>();
        try {
            for (int i = 0; i < 4; i++) {
                Tensor t = c.device().allocate(c.dtype(), 64);
                t.fill(i);
                ts.add(t);
            }
            for (int i = 0; i < 4; i++) {
                for (float v : ts.get(i).toFloatArray()) {
                    assertEquals(i, v, "tensor " + i + " was overwritten by another allocation");
                }
            }
        } finally {
            ts.forEach(Tensor::close);
        }
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("devices")
    void allocationArgumentsAreValidated(Device d) {
        IllegalArgumentException negative = assertThrows(IllegalArgumentException.class,
                () -> d.allocate(DType.FLOAT32, 3, -1));
        assertTrue(negative.getMessage().startsWith("shape:"), negative.getMessage());
        IllegalArgumentException nullType = assertThrows(IllegalArgumentException.class, () -> d.allocate(null, 3));
        assertTrue(nullType.getMessage().startsWith("dtype:"), nullType.getMessage());
        for (DType t : DType.values()) {
            if (!d.capabilities().supports(t)) {
                IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> d.allocate(t, 3));
                assertTrue(e.getMessage().startsWith("dtype:"), e.getMessage());
            }
        }
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("devices")
    void deviceDescribesItself(Device d) {
        assertEquals(d.backend().name() + ":" + d.index(), d.id());
        assertTrue(d.backend().devices().contains(d));
        assertFalse(d.name().isBlank());
        var caps = d.capabilities();
        assertTrue(caps.supports(DType.FLOAT32), "every backend supports float32");
        assertTrue(caps.computeUnits() >= 1);
        assertTrue(caps.maxWorkgroupSize() >= 1);
        assertTrue(caps.globalMemoryBytes() > 0);
        assertTrue(caps.driverVersion() != null && caps.architecture() != null);
        if (!caps.dialectKernels()) {
            assertThrows(UnsupportedOperationException.class, () -> d.compileKernel(
                    org.kernels4j.KernelSource.of("noop", "__kernel void noop() {}", "noop")));
        }
    }
}
