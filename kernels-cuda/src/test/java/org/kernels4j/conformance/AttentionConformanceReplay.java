package org.kernels4j.conformance;

import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;

import org.kernels4j.Attention.CausalMask;
import org.kernels4j.DType;
import org.kernels4j.Device;
import org.kernels4j.conformance.AttentionConformanceTest.Case;
import org.kernels4j.conformance.ConformanceBackend.Target;

/**
 * The attention conformance cases of the test kit, run on a device that discovery does not see (the CUDA
 * backend on a fake driver whose launches the kernel emulation executes, {@code AttentionCudaReplayTest}), so
 * that the suite's cases can be checked without a GPU: same list, same numbering (1-based, as JUnit shows
 * {@code backward(Case)[14]}), same inputs, references and tolerances, because the test methods that run are
 * the kit's own.
 *
 * <p>The list is {@link AttentionConformanceTest#cases()} with {@link ConformanceBackend#targets()} replaced by
 * the given device's dtypes; that method cannot be called as it is, since it asks discovery for the devices.
 */
public final class AttentionConformanceReplay {

    private AttentionConformanceReplay() {
    }

    /** A conformance method of {@link AttentionConformanceTest}. */
    public enum Pass {
        FORWARD, BACKWARD
    }

    /** The cases' display names for {@code device}, in the order JUnit numbers them. */
    public static List<String> names(Device device) {
        return cases(device).stream().map(Case::toString).toList();
    }

    /** Head dimension of case {@code number} (1-based). */
    public static int headDim(Device device, int number) {
        return cases(device).get(number - 1).d();
    }

    /** Runs case {@code number} (1-based) of {@code pass} on {@code device}; throws what the kit's test throws. */
    public static void run(Pass pass, Device device, int number) {
        Case c = cases(device).get(number - 1);
        AttentionConformanceTest test = new AttentionConformanceTest();
        switch (pass) {
            case FORWARD -> test.forward(c);
            case BACKWARD -> test.backward(c);
        }
    }

    private static List<Case> cases(Device device) {
        List<Case> out = new ArrayList<>();
        for (DType dtype : DType.values()) {
            if (!device.capabilities().supports(dtype)) {
                continue;
            }
            Target t = new Target(device, dtype);
            // as AttentionConformanceTest.cases() lists and draws them
            out.add(new Case(t, 1, 1, 1, 1, 1, 1, CausalMask.NONE, null));
            out.add(new Case(t, 1, 2, 2, 2, 17, 8, CausalMask.NONE, null));
            out.add(new Case(t, 2, 2, 1, 17, 63, 16, CausalMask.TOP_LEFT, null));
            out.add(new Case(t, 1, 4, 2, 63, 17, 32, CausalMask.BOTTOM_RIGHT, null));
            out.add(new Case(t, 1, 3, 3, 64, 65, 40, CausalMask.NONE, null));
            out.add(new Case(t, 1, 2, 1, 65, 64, 64, CausalMask.TOP_LEFT, null));
            out.add(new Case(t, 1, 1, 1, 130, 63, 80, CausalMask.BOTTOM_RIGHT, null));
            out.add(new Case(t, 1, 1, 1, 17, 130, 128, CausalMask.TOP_LEFT, null));
            out.add(new Case(t, 1, 2, 2, 65, 65, 32, CausalMask.BOTTOM_RIGHT, null));
            out.add(new Case(t, 2, 2, 2, 2, 1, 64, CausalMask.NONE, null));
            out.add(new Case(t, 1, 8, 2, 63, 64, 128, CausalMask.NONE, null));
            out.add(new Case(t, 1, 2, 1, 1, 130, 64, CausalMask.BOTTOM_RIGHT, null));
            out.add(new Case(t, 1, 2, 1, 130, 1, 32, CausalMask.TOP_LEFT, null));
            out.add(new Case(t, 2, 2, 2, 7, 9, 1, CausalMask.BOTTOM_RIGHT, null));
            out.add(new Case(t, 1, 1, 1, 17, 33, 256, CausalMask.TOP_LEFT, null));
            out.add(new Case(t, 1, 2, 2, 17, 17, 64, CausalMask.NONE, 0.3f));
            out.add(new Case(t, 1, 2, 1, 5, 0, 32, CausalMask.NONE, null));
            out.add(new Case(t, 1, 2, 2, 5, 0, 32, CausalMask.BOTTOM_RIGHT, null));
            out.add(new Case(t, 1, 2, 2, 0, 7, 32, CausalMask.TOP_LEFT, null));
            out.add(new Case(t, 0, 2, 2, 3, 3, 32, CausalMask.NONE, null));
            SplittableRandom shapes = TestData.random("attention shapes " + t);
            for (int i = 0; i < AttentionConformanceTest.RANDOM_CASES; i++) {
                int kvHeads = shapes.nextInt(1, 4);
                out.add(new Case(t, shapes.nextInt(1, 3), kvHeads * shapes.nextInt(1, 4), kvHeads,
                        shapes.nextInt(0, 80), shapes.nextInt(0, 80),
                        i % 2 == 0 ? shapes.nextInt(HeadDims.MIN_GUARANTEED, 129) : shapes.nextInt(1, 33),
                        CausalMask.values()[shapes.nextInt(3)],
                        shapes.nextBoolean() ? null : (float) shapes.nextDouble(0.05, 0.5)));
            }
        }
        return out;
    }
}
