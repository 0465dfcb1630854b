package org.kernels4j.cpu;

import java.lang.management.ManagementFactory;
import java.util.Locale;

/**
 * The Lucene-style switch between the Panama Vector API kernels and the scalar ones.
 *
 * <p>The vector path is used when the module {@code jdk.incubator.vector} is readable (the JVM was started
 * with {@code --add-modules jdk.incubator.vector}), its preferred species holds at least 4 floats and the
 * JIT emits real FMA instructions; otherwise every kernel runs its scalar twin. The system property
 * {@code kernels4j.cpu.vector=false} forces the scalar path (for comparisons). The decision is made once,
 * logged once (INFO, logger {@code org.kernels4j.cpu}) and never changes in a JVM. No class of the incubator
 * module is loaded unless the vector path is chosen: each kernel keeps its Panama code in a nested class
 * that only the vector branch touches.
 */
final class Vectorization {

    /** Whether the kernels use the Vector API. */
    static final boolean ENABLED;

    /** Bits of the preferred float species on the vector path, 0 on the scalar path. */
    static final int VECTOR_BITS;

    /**
     * Floats per vector register that the kernels block for: the preferred species' lane count on the vector
     * path, and 8 on the scalar path (so panels keep a shape the JIT's auto-vectoriser likes).
     */
    static final int FLOAT_LANES;

    /**
     * Whether HotSpot emits FMA instructions for {@code Math.fma} (where it does not, the call is emulated and
     * slow): the scalar kernels use it only then.
     */
    static final boolean FAST_FMA;

    /** The one line describing the choice, as logged. */
    static final String DESCRIPTION;

    private static final String ENABLE_HINT = "start the JVM with --add-modules jdk.incubator.vector";

    static {
        int bits = 0;
        String why;
        boolean forcedOff = "false".equalsIgnoreCase(System.getProperty("kernels4j.cpu.vector", "true"));
        FAST_FMA = fastFma();
        if (forcedOff) {
            why = "scalar Java kernels (the system property kernels4j.cpu.vector=false disables the Vector API)";
        } else if (ModuleLayer.boot().findModule("jdk.incubator.vector").isEmpty()) {
            why = "scalar Java kernels; for the Panama Vector API kernels (several times faster) " + ENABLE_HINT;
        } else if (!FAST_FMA) {
            why = "scalar Java kernels (the JVM runs with -XX:-UseFMA, so vector FMA would be emulated)";
        } else {
            int b = PanamaProbe.preferredBits();
            if (b < 128) {
                why = "scalar Java kernels (the preferred vector size is " + b + " bits, below 128)";
            } else {
                bits = b;
                why = "the Panama Vector API kernels (" + b + "-bit vectors, " + (b / 32) + " float lanes)";
            }
        }
        ENABLED = bits > 0;
        VECTOR_BITS = bits;
        FLOAT_LANES = ENABLED ? bits / 32 : 8;
        DESCRIPTION = "kernels4j CPU backend uses " + why;
        System.getLogger("org.kernels4j.cpu").log(System.Logger.Level.INFO, DESCRIPTION);
    }

    private Vectorization() {
    }

    /** A short architecture label for the tuning defaults' fallback chain, e.g. {@code avx512}, {@code neon}. */
    static String architecture() {
        String arch = System.getProperty("os.arch", "unknown").toLowerCase(Locale.ROOT);
        if (!ENABLED) {
            return arch;
        }
        boolean x86 = arch.equals("amd64") || arch.equals("x86_64");
        boolean arm = arch.equals("aarch64") || arch.equals("arm64");
        if (x86 && VECTOR_BITS >= 512) {
            return "avx512";
        }
        if (x86 && VECTOR_BITS == 256) {
            return "avx2";
        }
        if (arm && VECTOR_BITS == 128) {
            return "neon";
        }
        if (arm) {
            return "sve" + VECTOR_BITS;
        }
        return arch + "-" + VECTOR_BITS;
    }

    /** Whether HotSpot emits FMA instructions; assumed when the flag cannot be read (other VMs). */
    private static boolean fastFma() {
        try {
            var bean = ManagementFactory.getPlatformMXBean(com.sun.management.HotSpotDiagnosticMXBean.class);
            return bean == null || !"false".equals(bean.getVMOption("UseFMA").getValue());
        } catch (RuntimeException | LinkageError e) {
            return true;
        }
    }

    /** Touches the incubator module; loaded only after the module was found. */
    private static final class PanamaProbe {
        static int preferredBits() {
            return jdk.incubator.vector.FloatVector.SPECIES_PREFERRED.vectorBitSize();
        }
    }
}
