package org.kernels4j.conformance;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.IdentityHashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.SplittableRandom;
import java.util.TreeSet;
import java.util.function.Supplier;

import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;
import org.kernels4j.Attention;
import org.kernels4j.Conv2d;
import org.kernels4j.DType;
import org.kernels4j.Device;
import org.kernels4j.LayerNorm;
import org.kernels4j.Stream;
import org.kernels4j.Tensor;
import org.kernels4j.conformance.BadInputs.Arg;
import org.kernels4j.conformance.BadInputs.Entry;

/**
 * Every bad input the ops promise to reject, on every device of the backend: each public entry point is
 * called with valid fp32 arguments except one that is null, closed, non-contiguous, of the wrong rank,
 * shape or dtype, on another device, or an output aliasing an input; then the special cases (head counts
 * that do not divide, groups that do not divide C or K, a mean given to RMS norm, dgamma without gamma,
 * ...) and invalid op parameters (negative padding, stride 0, ...).
 *
 * <p>Each call must throw {@link IllegalArgumentException} or {@link IllegalStateException} whose message
 * starts with the name of the offending argument ({@code "x: ..."}). Where the fault is a mismatch between
 * two arguments (shape, rank, dtype, device), naming either side is accepted. Afterwards every tensor of the
 * call, inputs and outputs, must hold exactly what it held before: nothing is written on a rejected call.
 */
class BadInputConformanceTest {

    /** How one argument is broken. */
    enum Fault {
        NULL, CLOSED, NON_CONTIGUOUS, WRONG_RANK, WRONG_SECOND_DIM, WRONG_LAST_DIM, WRONG_DTYPE, OTHER_DEVICE, ALIAS,
        NULL_STREAM, OTHER_DEVICE_STREAM, AS_GIVEN;

        /** Faults between two arguments, where the message may name either. */
        boolean mismatch() {
            return this == WRONG_RANK || this == WRONG_SECOND_DIM || this == WRONG_LAST_DIM || this == WRONG_DTYPE
                    || this == OTHER_DEVICE;
        }
    }

    record Case(Device device, Entry entry, String arg, Fault fault, String aliasOf) {
        @Override
        public String toString() {
            String what = switch (fault) {
                case AS_GIVEN -> "rejected as given";
                case NULL_STREAM -> "stream null";
                case OTHER_DEVICE_STREAM -> "stream of another device";
                case ALIAS -> arg + " is the same tensor as " + aliasOf;
                default -> arg + " " + fault.name().toLowerCase(java.util.Locale.ROOT).replace('_', ' ');
            };
            return device.id() + " " + entry.name() + ": " + what;
        }
    }

    static List<Case> cases() {
        List<Case> out = new ArrayList<>();
        for (Device d : ConformanceBackend.devices()) {
            for (Entry e : BadInputs.entries()) {
                if (!e.baselineError().isEmpty()) {
                    out.add(new Case(d, e, null, Fault.AS_GIVEN, null));
                    continue;
                }
                out.add(new Case(d, e, "stream", Fault.NULL_STREAM, null));
                out.add(new Case(d, e, "stream", Fault.OTHER_DEVICE_STREAM, null));
                for (Arg a : e.args()) {
                    if (a.required()) {
                        out.add(new Case(d, e, a.name(), Fault.NULL, null));
                    }
                    for (Fault f : List.of(Fault.CLOSED, Fault.NON_CONTIGUOUS, Fault.WRONG_RANK, Fault.WRONG_DTYPE,
                            Fault.OTHER_DEVICE)) {
                        out.add(new Case(d, e, a.name(), f, null));
                    }
                    // Sizes: the second dimension of rank 3+ arguments (channels, heads) and the last one
                    // (width, head dim, the normalised length).
                    if (a.shape().length >= 3) {
                        out.add(new Case(d, e, a.name(), Fault.WRONG_SECOND_DIM, null));
                    }
                    if (!a.lastDimFree()) {
                        out.add(new Case(d, e, a.name(), Fault.WRONG_LAST_DIM, null));
                    }
                }
                // An output replaced by an earlier argument of the same shape and storage: in-place use of an
                // input, or two outputs in one tensor. Other pairs would fail the shape check first.
                List<Arg> args = e.args();
                for (int i = 0; i < args.size(); i++) {
                    Arg o = args.get(i);
                    if (!o.output()) {
                        continue;
                    }
                    for (int j = 0; j < args.size(); j++) {
                        Arg other = args.get(j);
                        boolean earlierOutput = other.output() && j < i;
                        if ((!other.output() || earlierOutput) && other.stat() == o.stat()
                                && Arrays.equals(other.shape(), o.shape())) {
                            out.add(new Case(d, e, o.name(), Fault.ALIAS, other.name()));
                        }
                    }
                }
            }
        }
        return out;
    }

    @BeforeAll
    static void backend() {
        ConformanceBackend.assumeAvailable();
    }

    /** Every backend supports fp32, so every device gets the same fixtures. */
    static final DType FIXTURE_DTYPE = DType.FLOAT32;

    /** Sentinel written to outputs: exactly representable in every dtype. */
    static final float SENTINEL = 7.25f;

    @ParameterizedTest(name = "{0}")
    @MethodSource("cases")
    void rejectedNamingTheArgumentAndNothingWritten(Case c) {
        Device device = c.device();
        Entry e = c.entry();
        List<Tensor> owned = new ArrayList<>();
        ForeignDevice foreign = new ForeignDevice();
        try {
            SplittableRandom rnd = TestData.random(c.toString());
            Map<String, Tensor> args = new LinkedHashMap<>();
            for (Arg a : e.args()) {
                Tensor t = device.allocate(a.stat() ? DType.FLOAT32 : FIXTURE_DTYPE, a.shape());
                fill(t, a, rnd);
                owned.add(t);
                args.put(a.name(), t);
            }
            Stream stream = device.defaultStream();
            Set<String> blame = Set.of(c.arg() == null ? "" : c.arg());
            switch (c.fault()) {
                case AS_GIVEN -> blame = e.baselineError();
                case NULL_STREAM -> stream = null;
                case OTHER_DEVICE_STREAM -> stream = otherDevice(device, foreign).defaultStream();
                case NULL -> args = BadInputs.with(args, c.arg(), null);
                case ALIAS -> args = BadInputs.with(args, c.arg(), args.get(c.aliasOf()));
                default -> {
                    Tensor broken = broken(c, device, foreign, e.arg(c.arg()), rnd);
                    owned.add(broken);
                    args = BadInputs.with(args, c.arg(), broken);
                }
            }
            if (c.fault().mismatch()) {
                blame = new TreeSet<>(e.args().stream().map(Arg::name).toList());
                blame.add("stream");
            }
            Map<Tensor, float[]> before = snapshot(args.values());
            Map<String, Tensor> call = args;
            Stream s = stream;
            RuntimeException ex = assertThrows(RuntimeException.class, () -> e.invoker().call(s, call),
                    c + ": expected the call to be rejected");
            if (!(ex instanceof IllegalArgumentException) && !(ex instanceof IllegalStateException)) {
                fail(c + ": expected IllegalArgumentException or IllegalStateException, got " + ex, ex);
            }
            String m = ex.getMessage();
            assertNotNull(m, c + ": the exception has no message");
            String named = m.contains(":") ? m.substring(0, m.indexOf(':')) : "";
            if (!blame.contains(named)) {
                fail(c + ": message must start with the offending argument (one of " + blame + ") and a colon, got: " + m,
                        ex);
            }
            for (var t : before.entrySet()) {
                assertArrayEquals(t.getValue(), t.getKey().toFloatArray(),
                        c + ": tensor " + t.getKey() + " was written by a rejected call (" + m + ")");
            }
        } finally {
            owned.forEach(Tensor::close);
        }
    }

    /** Contents of every open tensor of the call. */
    private static Map<Tensor, float[]> snapshot(Iterable<Tensor> tensors) {
        Map<Tensor, float[]> m = new IdentityHashMap<>();
        for (Tensor t : tensors) {
            if (t != null && !t.isClosed() && !m.containsKey(t)) {
                m.put(t, t.toFloatArray());
            }
        }
        return m;
    }

    /** Random inputs, sentinel outputs. */
    private static void fill(Tensor t, Arg a, SplittableRandom rnd) {
        if (a.output()) {
            t.fill(SENTINEL);
        } else {
            t.copyFrom(TestData.toFloats(TestData.gaussian(rnd, TestData.count(t.shape()), t.dtype(), 0, 1)));
        }
    }

    private static Tensor broken(Case c, Device device, ForeignDevice foreign, Arg a, SplittableRandom rnd) {
        // The fixture is fp32 throughout (statistics are fp32 anyway), so every argument's own dtype is fp32.
        DType own = DType.FLOAT32;
        int[] shape = a.shape();
        Tensor t;
        switch (c.fault()) {
            case CLOSED -> {
                t = device.allocate(own, shape);
                t.close();
                return t;
            }
            case NON_CONTIGUOUS -> t = ForeignDevice.tensorClaiming(device, own, false, shape);
            case WRONG_RANK -> {
                // One more dimension of size 2: also changes the element count, so no check by count passes it.
                int[] s = Arrays.copyOf(shape, shape.length + 1);
                s[shape.length] = 2;
                t = device.allocate(own, s);
            }
            case WRONG_SECOND_DIM, WRONG_LAST_DIM -> {
                int[] s = shape.clone();
                s[c.fault() == Fault.WRONG_SECOND_DIM ? 1 : s.length - 1] += 1;
                t = device.allocate(own, s);
            }
            case WRONG_DTYPE -> t = otherDtype(device, own, shape);
            case OTHER_DEVICE -> t = otherDevice(device, foreign).allocate(own, shape);
            default -> throw new IllegalStateException(c.fault().toString());
        }
        fill(t, a, rnd);
        return t;
    }

    /** Another device of the same backend where there is one (the realistic mix-up), else the foreign test device. */
    private static Device otherDevice(Device device, ForeignDevice foreign) {
        for (Device d : device.backend().devices()) {
            if (!d.equals(device)) {
                return d;
            }
        }
        return foreign;
    }

    /**
     * A tensor of another dtype on {@code device}: a real one where the device supports a second dtype,
     * otherwise a host tensor that claims the device (the op must reject it before a backend sees it).
     */
    private static Tensor otherDtype(Device device, DType own, int[] shape) {
        for (DType t : DType.values()) {
            if (t != own && device.capabilities().supports(t)) {
                return device.allocate(t, shape);
            }
        }
        return ForeignDevice.tensorClaiming(device, DType.FLOAT16, true, shape);
    }

    // ------------------------------------------------------------------ op parameters

    record Parameter(String label, String name, Supplier<Object> build) {
        @Override
        public String toString() {
            return label;
        }
    }

    static List<Parameter> parameters() {
        return List.of(
                new Parameter("Conv2d stride 0", "strideH", () -> Conv2d.builder().stride(0)),
                new Parameter("Conv2d strideW 0", "strideW", () -> Conv2d.builder().stride(1, 0)),
                new Parameter("Conv2d negative stride", "strideH", () -> Conv2d.builder().stride(-2, 1)),
                new Parameter("Conv2d negative padding", "padTop", () -> Conv2d.builder().padding(-1)),
                new Parameter("Conv2d negative padLeft", "padLeft", () -> Conv2d.builder().padding(0, -1, 0, 0)),
                new Parameter("Conv2d negative padBottom", "padBottom", () -> Conv2d.builder().padding(0, 0, -1, 0)),
                new Parameter("Conv2d negative padRight", "padRight", () -> Conv2d.builder().padding(0, 0, 0, -3)),
                new Parameter("Conv2d negative symmetric padW", "padLeft", () -> Conv2d.builder().padding(1, -1)),
                new Parameter("Conv2d dilation 0", "dilationH", () -> Conv2d.builder().dilation(0)),
                new Parameter("Conv2d dilationW 0", "dilationW", () -> Conv2d.builder().dilation(1, 0)),
                new Parameter("Conv2d groups 0", "groups", () -> Conv2d.builder().groups(0)),
                new Parameter("Conv2d format null", "format", () -> Conv2d.builder().format(null)),
                new Parameter("Conv2d problem x of rank 3", "x",
                        () -> Conv2d.builder().build().problem(new int[] {1, 3, 5}, new int[] {2, 3, 3, 3}, DType.FLOAT32)),
                new Parameter("Conv2d problem w of rank 5", "w",
                        () -> Conv2d.builder().build().problem(new int[] {1, 3, 5, 5}, new int[] {2, 3, 3, 3, 1}, DType.FLOAT32)),
                new Parameter("Conv2d problem groups not dividing K", "w",
                        () -> Conv2d.builder().groups(3).build().problem(new int[] {1, 3, 5, 5}, new int[] {4, 1, 3, 3}, DType.FLOAT32)),
                new Parameter("LayerNorm negative epsilon", "epsilon", () -> LayerNorm.layerNorm(-1e-5f)),
                new Parameter("LayerNorm NaN epsilon", "epsilon", () -> LayerNorm.layerNorm(Float.NaN)),
                new Parameter("RMSNorm infinite epsilon", "epsilon", () -> LayerNorm.rmsNorm(Float.POSITIVE_INFINITY)),
                new Parameter("Attention null mask", "mask", () -> Attention.of(null)),
                new Parameter("Attention NaN scale", "scale", () -> Attention.create().withScale(Float.NaN)),
                new Parameter("Attention infinite scale", "scale", () -> Attention.create().withScale(Float.NEGATIVE_INFINITY)),
                new Parameter("DType parse null", "dtype", () -> DType.parse(null)),
                new Parameter("DType parse unknown", "dtype", () -> DType.parse("fp8")));
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("parameters")
    void invalidOpParameterRejectedNamingIt(Parameter p) {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, p.build::get);
        assertTrue(e.getMessage() != null && e.getMessage().startsWith(p.name() + ":"),
                "message must start with '" + p.name() + ":', got: " + e.getMessage());
    }
}
