package org.kernels4j.opencl;

import org.kernels4j.DType;

/** The dialect's {@code K4J_DTYPE} values. */
final class Dtypes {

    private Dtypes() {
    }

    static String define(DType dtype) {
        return switch (dtype) {
            case FLOAT32 -> "K4J_FLOAT32";
            case FLOAT16 -> "K4J_FLOAT16";
            case BFLOAT16 -> "K4J_BFLOAT16";
        };
    }
}
