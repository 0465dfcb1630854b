package org.kernels4j.spi;

import org.kernels4j.DType;

/** Conversions between float and the 16-bit storage types, rounding to nearest even. */
public final class HalfFloats {

    private HalfFloats() {
    }

    /** IEEE binary16 bits of {@code f}. */
    public static short toFloat16(float f) {
        return Float.floatToFloat16(f);
    }

    /** The float value of binary16 bits. */
    public static float fromFloat16(short bits) {
        return Float.float16ToFloat(bits);
    }

    /** bfloat16 bits of {@code f} (NaN stays a quiet NaN). */
    public static short toBfloat16(float f) {
        int bits = Float.floatToRawIntBits(f);
        if ((bits & 0x7fffffff) > 0x7f800000) {
            return (short) ((bits >>> 16) | 0x0040);
        }
        int rounded = bits + 0x7fff + ((bits >>> 16) & 1);
        return (short) (rounded >>> 16);
    }

    /** The float value of bfloat16 bits. */
    public static float fromBfloat16(short bits) {
        return Float.intBitsToFloat((bits & 0xffff) << 16);
    }

    /** {@code f} rounded to the precision of {@code dtype} and back. */
    public static float round(DType dtype, float f) {
        return switch (dtype) {
            case FLOAT32 -> f;
            case FLOAT16 -> fromFloat16(toFloat16(f));
            case BFLOAT16 -> fromBfloat16(toBfloat16(f));
        };
    }

    /** Bits of {@code f} in a 16-bit dtype. */
    public static short encode(DType dtype, float f) {
        return switch (dtype) {
            case FLOAT16 -> toFloat16(f);
            case BFLOAT16 -> toBfloat16(f);
            case FLOAT32 -> throw new IllegalArgumentException("dtype: float32 is not a 16-bit type");
        };
    }

    /** The float value of 16-bit {@code bits} in {@code dtype}. */
    public static float decode(DType dtype, short bits) {
        return switch (dtype) {
            case FLOAT16 -> fromFloat16(bits);
            case BFLOAT16 -> fromBfloat16(bits);
            case FLOAT32 -> throw new IllegalArgumentException("dtype: float32 is not a 16-bit type");
        };
    }
}
