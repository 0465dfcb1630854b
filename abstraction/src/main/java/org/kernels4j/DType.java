package org.kernels4j;

/**
 * Element types a {@link Tensor} can hold. Arithmetic inside every op accumulates in fp32 whatever the
 * storage type; saved statistics (layer-norm mean/rstd, attention log-sum-exp) are always {@link #FLOAT32}.
 */
public enum DType {
    /** IEEE-754 binary32. Supported by every backend. */
    FLOAT32("float32", 4),
    /** IEEE-754 binary16. Storage only; accumulation is fp32. */
    FLOAT16("float16", 2),
    /** bfloat16 (8-bit exponent, 7-bit mantissa). Storage only; accumulation is fp32. */
    BFLOAT16("bfloat16", 2);

    private final String label;
    private final int byteSize;

    DType(String label, int byteSize) {
        this.label = label;
        this.byteSize = byteSize;
    }

    /** Bytes per element. */
    public int byteSize() {
        return byteSize;
    }

    /** The name used in messages and result files, e.g. {@code "bfloat16"}. */
    public String label() {
        return label;
    }

    /** Parses {@link #label()} or the enum name, case-insensitively; also accepts fp32, fp16 and bf16. */
    public static DType parse(String name) {
        if (name == null) {
            throw new IllegalArgumentException("dtype: must not be null");
        }
        String n = name.trim().toLowerCase(java.util.Locale.ROOT);
        return switch (n) {
            case "float32", "fp32", "f32" -> FLOAT32;
            case "float16", "fp16", "f16", "half" -> FLOAT16;
            case "bfloat16", "bf16" -> BFLOAT16;
            default -> throw new IllegalArgumentException(
                    "dtype: expected one of float32, float16, bfloat16, got '" + name + "'");
        };
    }

    @Override
    public String toString() {
        return label;
    }
}
