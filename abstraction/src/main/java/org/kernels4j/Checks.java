package org.kernels4j;

import java.util.Arrays;

import org.kernels4j.spi.DeviceImplementation;

/** Argument validation shared by the ops; every message names the argument and expected vs actual. */
final class Checks {

    private Checks() {
    }

    static Tensor present(Tensor t, String name) {
        if (t == null) {
            throw new IllegalArgumentException(name + ": must not be null");
        }
        if (t.isClosed()) {
            throw new IllegalStateException(name + ": tensor is closed");
        }
        if (!t.isContiguous()) {
            throw new IllegalArgumentException(name + ": expected a contiguous tensor, got strides "
                    + Arrays.toString(t.strides()) + " for shape " + Arrays.toString(t.shape()));
        }
        return t;
    }

    static Stream stream(Stream s, Device device) {
        if (s == null) {
            throw new IllegalArgumentException("stream: must not be null");
        }
        if (s.isClosed()) {
            throw new IllegalStateException("stream: is closed");
        }
        if (!s.device().equals(device)) {
            throw new IllegalArgumentException("stream: expected a stream of device " + device.id()
                    + " (where the tensors are), got one of " + s.device().id());
        }
        return s;
    }

    static void sameDevice(Tensor t, String name, Device device, String deviceOf) {
        if (!t.device().equals(device)) {
            throw new IllegalArgumentException(name + ": expected device " + device.id() + " (same as " + deviceOf
                    + "), got " + t.device().id());
        }
    }

    static void dtype(Tensor t, String name, DType expected, String why) {
        if (t.dtype() != expected) {
            throw new IllegalArgumentException(name + ": expected dtype " + expected + " (" + why + "), got "
                    + t.dtype());
        }
    }

    static void shape(Tensor t, String name, int[] expected, String why) {
        if (!Arrays.equals(t.shape(), expected)) {
            throw new IllegalArgumentException(name + ": expected shape " + Arrays.toString(expected)
                    + (why.isEmpty() ? "" : " (" + why + ")") + ", got " + Arrays.toString(t.shape()));
        }
    }

    static void rank(Tensor t, String name, int expected, String layout) {
        if (t.rank() != expected) {
            throw new IllegalArgumentException(name + ": expected rank " + expected + " (" + layout + "), got rank "
                    + t.rank() + " with shape " + Arrays.toString(t.shape()));
        }
    }

    static void supported(Tensor t, String name) {
        if (!t.device().capabilities().supports(t.dtype())) {
            throw new IllegalArgumentException(name + ": dtype " + t.dtype() + " is not supported on "
                    + t.device().id() + " (supported: " + t.device().capabilities().dtypes() + ")");
        }
    }

    static void distinct(Tensor[] outputs, String[] names, Tensor[] inputs, String[] inputNames) {
        for (int i = 0; i < outputs.length; i++) {
            if (outputs[i] == null) {
                continue;
            }
            for (int j = 0; j < i; j++) {
                if (outputs[j] == outputs[i]) {
                    throw new IllegalArgumentException(names[i] + ": must not be the same tensor as " + names[j]);
                }
            }
            for (int j = 0; j < inputs.length; j++) {
                if (inputs[j] == outputs[i]) {
                    throw new IllegalArgumentException(names[i] + ": must not be the same tensor as input "
                            + inputNames[j] + " (in-place is not supported)");
                }
            }
        }
    }

    static DeviceImplementation implementation(Device d) {
        if (d instanceof DeviceImplementation impl) {
            return impl;
        }
        throw new IllegalArgumentException("device " + d.id() + " (" + d.getClass().getName()
                + ") does not implement org.kernels4j.spi.DeviceImplementation");
    }

    static void finite(float v, String name) {
        if (!Float.isFinite(v)) {
            throw new IllegalArgumentException(name + ": expected a finite value, got " + v);
        }
    }
}
