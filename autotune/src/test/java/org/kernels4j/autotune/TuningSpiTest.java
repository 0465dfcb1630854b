package org.kernels4j.autotune;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.HashSet;
import java.util.List;
import java.util.Set;

import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.kernels4j.DType;
import org.kernels4j.tuning.Parameters;
import org.kernels4j.tuning.ShapeBuckets;
import org.kernels4j.tuning.Tuning;
import org.kernels4j.tuning.TuningSpace;

/** The tuning SPI in abstraction: spaces, constraints, precedence of overrides, tracing. */
class TuningSpiTest {

    static final TuningSpace<Integer> SPACE = TuningSpace.builder("test.spi.kernel", Integer.class)
            .source("kernel source v1")
            .parameter("TILE", 16, 8, 32, 64)
            .parameter("WG", 64, 32, 128, 256)
            .constraint("TILE * WG <= 8 * maxWorkgroupSize", (p, c) -> p.get("TILE") * p.get("WG") <= 8 * c.maxWorkgroupSize())
            .bucket(n -> "n" + ShapeBuckets.pow2(n))
            .build();

    final FakeDevice device = new FakeDevice("SPI Device " + System.nanoTime());

    @AfterEach
    void clear() {
        Tuning.clearOverrides();
    }

    @Test
    void declaresCandidatesDefaultsAndCombinations() {
        assertEquals(Parameters.of("TILE", 16, "WG", 64), SPACE.defaults());
        assertEquals(List.of(8, 16, 32, 64), SPACE.parameter("TILE").candidates(), "default added, sorted");
        assertEquals(16, SPACE.size());
        Set<Parameters> all = new HashSet<>();
        for (long i = 0; i < SPACE.size(); i++) {
            all.add(SPACE.combination(i));
        }
        assertEquals(16, all.size(), "every index names a different combination");
        assertEquals(16, SPACE.sourceHash().length());
        assertEquals("n128", SPACE.bucket(100));
        assertTrue(Tuning.spaces().contains(SPACE));
    }

    @Test
    void constraintsDependOnTheDevice() {
        FakeDevice small = new FakeDevice("small", "v", "a", "1", 64);
        Parameters big = Parameters.of("TILE", 64, "WG", 256);
        assertFalse(SPACE.isValid(big, small.capabilities()));
        assertTrue(SPACE.invalidReason(big, small.capabilities()).contains("TILE * WG <= 8 * maxWorkgroupSize"));
        assertTrue(SPACE.isValid(Parameters.of("TILE", 8, "WG", 32), small.capabilities()));
        assertTrue(SPACE.invalidReason(Parameters.of("TILE", 8), small.capabilities()).contains("WG is missing"));
        assertTrue(SPACE.invalidReason(Parameters.of("TILE", 8, "WG", 32, "X", 1), small.capabilities())
                .contains("X is not a parameter"));
        List<Parameters> valid = SPACE.validCombinations(small.capabilities());
        assertTrue(valid.stream().allMatch(p -> p.get("TILE") * p.get("WG") <= 512));
        assertTrue(valid.size() < SPACE.size());
    }

    @Test
    @SuppressWarnings("try") // the scopes matter, not their variables
    void overridesWinOverDefaultsAndMergeWithThem() {
        assertEquals(SPACE.defaults(), SPACE.resolve(device, DType.FLOAT32, 10));
        assertEquals(Tuning.Source.DEFAULT, Tuning.resolve(device, SPACE, DType.FLOAT32, "n16").source());
        Tuning.override(SPACE.kernelId(), Parameters.of("WG", 128));
        Tuning.Resolution r = Tuning.resolve(device, SPACE, DType.FLOAT32, "n16");
        assertEquals(Tuning.Source.OVERRIDE, r.source());
        assertEquals(Parameters.of("TILE", 16, "WG", 128), r.parameters(), "a partial override keeps the other defaults");
        assertEquals(Parameters.of("WG", 128), Tuning.overrideOf(SPACE.kernelId()).orElseThrow());
        try (Tuning.Scope s = Tuning.scoped(SPACE.kernelId(), Parameters.of("TILE", 8, "WG", 32))) {
            assertEquals(Parameters.of("TILE", 8, "WG", 32), SPACE.resolve(device, DType.FLOAT32, 10),
                    "the thread's scope beats the JVM-wide override");
            try (Tuning.Scope inner = Tuning.scoped(SPACE.kernelId(), Parameters.of("TILE", 32, "WG", 32))) {
                assertEquals(32, SPACE.resolve(device, DType.FLOAT32, 10).get("TILE"));
            }
            assertEquals(8, SPACE.resolve(device, DType.FLOAT32, 10).get("TILE"), "inner scope restored the outer");
        }
        assertEquals(128, SPACE.resolve(device, DType.FLOAT32, 10).get("WG"));
        Tuning.clearOverride(SPACE.kernelId());
        assertEquals(SPACE.defaults(), SPACE.resolve(device, DType.FLOAT32, 10));
    }

    @Test
    void badOverridesAreRejected() {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> Tuning.override(SPACE.kernelId(), Parameters.of("NOPE", 1)));
        assertTrue(e.getMessage().contains("NOPE"), e.getMessage());
        FakeDevice small = new FakeDevice("small2", "v", "a", "1", 64);
        Tuning.override(SPACE.kernelId(), Parameters.of("TILE", 64, "WG", 256));
        e = assertThrows(IllegalArgumentException.class, () -> SPACE.resolve(small, DType.FLOAT32, 10));
        assertTrue(e.getMessage().contains("maxWorkgroupSize") && e.getMessage().contains(small.id()), e.getMessage());
    }

    @Test
    void traceRecordsEachDispatch() {
        List<Tuning.Resolution> rs = Tuning.trace(() -> {
            SPACE.resolve(device, DType.FLOAT32, 3);
            SPACE.resolve(device, DType.FLOAT32, 1000);
        });
        assertEquals(2, rs.size());
        assertEquals("n4", rs.get(0).bucket());
        assertEquals("n1024", rs.get(1).bucket());
        assertEquals(SPACE.kernelId(), rs.get(0).kernelId());
    }

    @Test
    void parametersParseTheirOwnText() {
        Parameters p = Parameters.of("A", 1, "B", -2);
        assertEquals(p, Parameters.parse(p.toString()));
        assertEquals(p, Parameters.parse("B=-2;A=1"));
        assertThrows(IllegalArgumentException.class, () -> Parameters.parse("A=x"));
        assertThrows(IllegalArgumentException.class, () -> Parameters.of("A", 1, "A", 2));
        assertThrows(IllegalArgumentException.class, () -> TuningSpace.builder("test.nosource", Integer.class)
                .parameter("X", 1).build());
    }

    @Test
    void bucketsRoundToPowersOfTwo() {
        assertEquals(1, ShapeBuckets.pow2(0));
        assertEquals(1, ShapeBuckets.pow2(1));
        assertEquals(64, ShapeBuckets.pow2(33));
        assertEquals(64, ShapeBuckets.pow2(64));
        assertEquals(16, ShapeBuckets.pow2(3, 16, 1024));
        assertEquals(1024, ShapeBuckets.pow2(5000, 16, 1024));
    }
}
