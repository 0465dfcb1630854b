package org.kernels4j.conformance;

import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;

import org.kernels4j.Conv2d.Format;
import org.kernels4j.DType;
import org.kernels4j.Device;
import org.kernels4j.conformance.Conv2dConformanceTest.Case;
import org.kernels4j.conformance.Conv2dConformanceTest.Shape;
import org.kernels4j.conformance.ConformanceBackend.Target;

/**
 * The convolution conformance cases of the test kit, run on a device that discovery does not see (the CUDA
 * backend on a fake driver whose launches the kernel emulation executes, {@code Conv2dCudaReplayTest}), so
 * that a case a GPU run reported can be replayed without a GPU: same list, same numbering (1-based, as JUnit
 * shows {@code backwardFilter(Case)[37]}), same inputs, references and tolerances, because the test methods
 * that run are the kit's own.
 *
 * <p>The list is {@link Conv2dConformanceTest#cases()} with {@link ConformanceBackend#targets()} replaced by
 * the given device's dtypes; that method cannot be called as it is, since it asks discovery for the devices.
 */
public final class Conv2dConformanceReplay {

    private Conv2dConformanceReplay() {
    }

    /** A conformance method of {@link Conv2dConformanceTest}. */
    public enum Pass {
        FORWARD, BACKWARD_DATA, BACKWARD_FILTER
    }

    /** The cases' display names for {@code device}, in the order JUnit numbers them. */
    public static List<String> names(Device device) {
        return cases(device).stream().map(Case::toString).toList();
    }

    /** Runs case {@code number} (1-based) of {@code pass} on {@code device}; throws what the kit's test throws. */
    public static void run(Pass pass, Device device, int number) {
        Case c = cases(device).get(number - 1);
        Conv2dConformanceTest test = new Conv2dConformanceTest();
        switch (pass) {
            case FORWARD -> test.forward(c);
            case BACKWARD_DATA -> test.backwardData(c);
            case BACKWARD_FILTER -> test.backwardFilter(c);
        }
    }

    private static List<Case> cases(Device device) {
        List<Case> out = new ArrayList<>();
        for (DType dtype : DType.values()) {
            if (!device.capabilities().supports(dtype)) {
                continue;
            }
            Target t = new Target(device, dtype);
            for (Format f : Format.values()) {
                for (Shape s : Conv2dConformanceTest.SHAPES) {
                    out.add(new Case(t, f, s));
                }
            }
            // as Conv2dConformanceTest.cases() draws them
            SplittableRandom shapes = TestData.random("conv shapes " + t);
            for (int i = 0; i < Conv2dConformanceTest.RANDOM_CASES; i++) {
                int g = shapes.nextInt(1, 4);
                int r = shapes.nextInt(1, 6);
                int s = shapes.nextInt(1, 6);
                int dh = shapes.nextInt(1, 3);
                int dw = shapes.nextInt(1, 3);
                int[] pad = {shapes.nextInt(0, 3), shapes.nextInt(0, 3), shapes.nextInt(0, 3), shapes.nextInt(0, 3)};
                int h = Math.max(1, dh * (r - 1) + 1 - pad[0] - pad[2]) + shapes.nextInt(0, 12);
                int w = Math.max(1, dw * (s - 1) + 1 - pad[1] - pad[3]) + shapes.nextInt(0, 12);
                Shape shape = new Shape("random", shapes.nextInt(0, 3), g * shapes.nextInt(1, 5), h, w,
                        g * shapes.nextInt(1, 5), r, s, shapes.nextInt(1, 4), shapes.nextInt(1, 4), pad, dh, dw, g,
                        shapes.nextBoolean());
                out.add(new Case(t, shapes.nextBoolean() ? Format.NCHW : Format.NHWC, shape));
            }
        }
        return out;
    }
}
