package org.kernels4j.conformance;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotSame;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.List;

import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;
import org.kernels4j.DType;
import org.kernels4j.Device;
import org.kernels4j.Event;
import org.kernels4j.LayerNorm;
import org.kernels4j.Stream;
import org.kernels4j.Tensor;
import org.kernels4j.reference.ReferenceLayerNorm;
import org.kernels4j.spi.LayerNormProblem;

/**
 * Streams and events on every device: the default stream survives close, created streams are independent
 * and give the same results, events complete after synchronisation and time work with a non-negative,
 * finite elapsed time, and events from another device or null are rejected.
 */
class StreamEventConformanceTest {

    static List<Device> devices() {
        return ConformanceBackend.devices();
    }

    @BeforeAll
    static void backend() {
        ConformanceBackend.assumeAvailable();
    }

    private static final int ROWS = 64;
    private static final int COLS = 257;

    private static double[] input(Device d) {
        return TestData.gaussian(TestData.random("stream " + d.id()), ROWS * COLS, DType.FLOAT32, 0, 1);
    }

    /** Runs a layer norm on {@code s} and returns y; enough work for an event to time. */
    private static float[] layerNorm(Device d, Stream s, double[] x) {
        try (Tensor xt = TestData.upload(d, DType.FLOAT32, x, ROWS, COLS);
             LayerNorm.Outputs o = LayerNorm.layerNorm().forward(s, xt, null, null)) {
            return o.y().toFloatArray();
        }
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("devices")
    void defaultStreamBelongsToTheDeviceAndSurvivesClose(Device d) {
        Stream s = d.defaultStream();
        assertSame(d, s.device());
        assertSame(s, d.defaultStream(), "the default stream is one object");
        s.close();
        double[] x = input(d);
        float[] y = layerNorm(d, d.defaultStream(), x);
        LayerNormProblem p = new LayerNormProblem(LayerNorm.Kind.LAYER_NORM, LayerNorm.DEFAULT_EPSILON, ROWS, COLS,
                DType.FLOAT32);
        Accuracy.assertClose("y", DType.FLOAT32, TestData.toDoubles(y), ReferenceLayerNorm.forward(p, x, null, null).y(),
                null);
        s.synchronize();
        d.synchronize();
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("devices")
    void createdStreamsAreIndependentAndAgree(Device d) {
        double[] x = input(d);
        try (Stream a = d.createStream(); Stream b = d.createStream()) {
            assertNotSame(a, b);
            assertSame(d, a.device());
            float[] ya = layerNorm(d, a, x);
            float[] yb = layerNorm(d, b, x);
            float[] y0 = layerNorm(d, d.defaultStream(), x);
            assertArrayEquals(ya, yb, "the same op on two streams must give the same result");
            assertArrayEquals(ya, y0, "a created stream and the default stream must give the same result");
            a.synchronize();
            b.synchronize();
        }
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("devices")
    void eventsCompleteAndTimeWork(Device d) {
        double[] x = input(d);
        try (Stream s = d.createStream();
             Tensor xt = TestData.upload(d, DType.FLOAT32, x, ROWS, COLS)) {
            Event start = s.record();
            LayerNorm.Outputs o = LayerNorm.layerNorm().forward(s, xt, null, null);
            Event end = s.record();
            double ms = end.elapsedMillisSince(start);
            assertTrue(ms >= 0 && Double.isFinite(ms), "elapsed time must be finite and >= 0, got " + ms);
            end.synchronize();
            assertTrue(end.isComplete(), "an event is complete after synchronize()");
            assertTrue(start.isComplete(), "an earlier event of the same stream is complete too");
            s.synchronize();
            assertEquals(0.0, start.elapsedMillisSince(start), 1e-3, "an event is 0 ms from itself");
            o.close();
        }
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("devices")
    void elapsedTimeRejectsNullAndForeignEvents(Device d) {
        try (Stream s = d.createStream()) {
            Event e = s.record();
            IllegalArgumentException nul = assertThrows(IllegalArgumentException.class, () -> e.elapsedMillisSince(null));
            assertTrue(nul.getMessage().startsWith("start:"), nul.getMessage());
            Event foreign = new ForeignDevice().defaultStream().record();
            IllegalArgumentException other = assertThrows(IllegalArgumentException.class,
                    () -> e.elapsedMillisSince(foreign));
            assertTrue(other.getMessage().startsWith("start:"), other.getMessage());
        }
    }
}
