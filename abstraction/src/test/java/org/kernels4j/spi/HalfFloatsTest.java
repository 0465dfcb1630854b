package org.kernels4j.spi;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.SplittableRandom;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;
import org.kernels4j.DType;

class HalfFloatsTest {

    @ParameterizedTest
    @EnumSource(value = DType.class, names = {"FLOAT16", "BFLOAT16"})
    void everyPatternSurvivesDecodeAndEncode(DType t) {
        for (int i = 0; i < 65536; i++) {
            short bits = (short) i;
            float f = HalfFloats.decode(t, bits);
            if (Float.isNaN(f)) {
                assertTrue(Float.isNaN(HalfFloats.decode(t, HalfFloats.encode(t, f))), "NaN stays NaN");
            } else {
                assertEquals(bits, HalfFloats.encode(t, f), "pattern 0x" + Integer.toHexString(i));
            }
        }
    }

    /** Encoding picks the nearest representable value, ties to the even pattern. */
    @ParameterizedTest
    @EnumSource(value = DType.class, names = {"FLOAT16", "BFLOAT16"})
    void encodingRoundsToNearestEven(DType t) {
        SplittableRandom rnd = new SplittableRandom(7);
        double limit = t == DType.FLOAT16 ? 65504 : Float.MAX_VALUE / 2;
        for (int n = 0; n < 200_000; n++) {
            float f = (float) ((rnd.nextDouble() * 2 - 1) * Math.pow(limit, rnd.nextDouble()));
            short bits = HalfFloats.encode(t, f);
            double got = HalfFloats.decode(t, bits);
            double below = HalfFloats.decode(t, (short) (bits - 1));
            double above = HalfFloats.decode(t, (short) (bits + 1));
            double err = Math.abs(got - f);
            String why = t + " " + f + " -> " + got;
            if (Double.isFinite(below) && Math.signum(below) == Math.signum(got)) {
                assertTrue(err <= Math.abs(below - f), why);
                if (err == Math.abs(below - f)) {
                    assertEquals(0, bits & 1, "tie must go to the even pattern: " + why);
                }
            }
            if (Double.isFinite(above) && Math.signum(above) == Math.signum(got)) {
                assertTrue(err <= Math.abs(above - f), why);
            }
        }
    }

    @Test
    void tiesOverflowAndSpecialValues() {
        assertEquals(1f, HalfFloats.round(DType.FLOAT16, 1f + 0x1p-11f), "halfway below an odd pattern rounds down");
        assertEquals(1f + 0x1p-9f, HalfFloats.round(DType.FLOAT16, 1f + 3 * 0x1p-11f), "halfway above rounds up to even");
        assertEquals(1f, HalfFloats.round(DType.BFLOAT16, 1f + 0x1p-8f));
        assertEquals(1f + 0x1p-6f, HalfFloats.round(DType.BFLOAT16, 1f + 3 * 0x1p-8f));
        assertEquals(65504f, HalfFloats.round(DType.FLOAT16, 65519f));
        assertEquals(Float.POSITIVE_INFINITY, HalfFloats.round(DType.FLOAT16, 65520f));
        assertEquals(Float.NEGATIVE_INFINITY, HalfFloats.round(DType.BFLOAT16, -Float.MAX_VALUE));
        assertEquals(0x1p-24f, HalfFloats.round(DType.FLOAT16, 0x1p-24f), "smallest fp16 subnormal");
        assertEquals(0f, HalfFloats.round(DType.FLOAT16, 0x1p-26f));
        assertEquals((short) 0x8000, HalfFloats.toFloat16(-0f));
        assertEquals((short) 0x8000, HalfFloats.toBfloat16(-0f));
        assertTrue(Float.isNaN(HalfFloats.round(DType.BFLOAT16, Float.NaN)));
        assertTrue(Float.isNaN(HalfFloats.round(DType.BFLOAT16, Float.intBitsToFloat(0x7f800001))),
                "a NaN whose payload is in the low bits must not become infinity");
        assertTrue(Float.isNaN(HalfFloats.round(DType.FLOAT16, Float.NaN)));
        assertEquals(Float.POSITIVE_INFINITY, HalfFloats.round(DType.BFLOAT16, Float.POSITIVE_INFINITY));
        assertEquals(0.1f, HalfFloats.round(DType.FLOAT32, 0.1f));
    }

    @Test
    void float32IsNotASixteenBitType() {
        assertTrue(assertThrows(IllegalArgumentException.class, () -> HalfFloats.encode(DType.FLOAT32, 1f))
                .getMessage().startsWith("dtype:"));
        assertTrue(assertThrows(IllegalArgumentException.class, () -> HalfFloats.decode(DType.FLOAT32, (short) 0))
                .getMessage().startsWith("dtype:"));
    }
}
