package org.kernels4j.autotune;

import org.kernels4j.Backends;
import org.kernels4j.Conv2d;
import org.kernels4j.DType;
import org.kernels4j.Device;
import org.kernels4j.Tensor;

/** Run in a child JVM by {@link OpsUseCachedParametersTest}: one CPU conv2d forward of the test's problem. */
public final class RunConvMain {

    private RunConvMain() {
    }

    public static void main(String[] args) {
        Device d = Backends.require("cpu").defaultDevice();
        try (Tensor x = d.upload(DType.FLOAT32, new float[OpsUseCachedParametersTest.X_COUNT], OpsUseCachedParametersTest.X);
             Tensor w = d.upload(DType.FLOAT32, new float[OpsUseCachedParametersTest.W_COUNT], OpsUseCachedParametersTest.W);
             Tensor y = OpsUseCachedParametersTest.CONV.forward(d.defaultStream(), x, w, null)) {
            d.synchronize();
            System.out.println("ran " + y);
        }
    }
}
