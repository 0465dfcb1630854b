package org.kernels4j.conformance;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;

import org.kernels4j.Attention;
import org.kernels4j.Conv2d;
import org.kernels4j.LayerNorm;
import org.kernels4j.Stream;
import org.kernels4j.Tensor;

/**
 * Every public op entry point as a list of named tensor arguments with valid shapes, for
 * {@link BadInputConformanceTest} to break one at a time. An {@link Entry} whose {@code baselineError} is
 * not empty is invalid as given (a special case such as a head count that does not divide) and names the
 * arguments its rejection may blame.
 */
final class BadInputs {

    private BadInputs() {
    }

    /** What an argument is, which decides its dtype in the fixture and the mutations that apply. */
    enum Role {
        /** An input in the op's dtype. */
        INPUT,
        /** An output in the op's dtype (filled with a sentinel, must be untouched on rejection). */
        OUTPUT,
        /** A float32 statistic read by the op (saved mean/rstd, lse given to backward). */
        STAT_INPUT,
        /** A float32 statistic written by the op. */
        STAT_OUTPUT
    }

    /**
     * One tensor argument: name, shape in the fixture, role, whether null is rejected, and whether its last
     * dimension is free (changing it poses another valid problem, as the width of x for an allocating
     * convolution, so a wrong last dimension is no bad input there).
     */
    record Arg(String name, int[] shape, Role role, boolean required, boolean lastDimFree) {
        Arg(String name, int[] shape, Role role, boolean required) {
            this(name, shape, role, required, false);
        }

        Arg withLastDimFree() {
            return new Arg(name, shape, role, required, true);
        }

        boolean output() {
            return role == Role.OUTPUT || role == Role.STAT_OUTPUT;
        }

        boolean stat() {
            return role == Role.STAT_INPUT || role == Role.STAT_OUTPUT;
        }

        @Override
        public String toString() {
            return name + Arrays.toString(shape);
        }
    }

    /** Calls the entry point with the stream and the arguments by name (absent names are null). */
    interface Invoker {
        void call(Stream stream, Map<String, Tensor> args);
    }

    /** A public entry point with a fixture of valid (or, for a special case, deliberately invalid) arguments. */
    record Entry(String name, List<Arg> args, Invoker invoker, Set<String> baselineError) {
        Arg arg(String n) {
            return args.stream().filter(a -> a.name().equals(n)).findFirst().orElseThrow();
        }

        @Override
        public String toString() {
            return name;
        }
    }

    private static Arg in(String name, int... shape) {
        return new Arg(name, shape, Role.INPUT, true);
    }

    private static Arg optIn(String name, int... shape) {
        return new Arg(name, shape, Role.INPUT, false);
    }

    private static Arg out(String name, int... shape) {
        return new Arg(name, shape, Role.OUTPUT, true);
    }

    private static Arg optOut(String name, int... shape) {
        return new Arg(name, shape, Role.OUTPUT, false);
    }

    private static Arg statIn(String name, int... shape) {
        return new Arg(name, shape, Role.STAT_INPUT, true);
    }

    private static Arg statOut(String name, int... shape) {
        return new Arg(name, shape, Role.STAT_OUTPUT, true);
    }

    private static Entry valid(String name, Invoker invoker, Arg... args) {
        return new Entry(name, List.of(args), invoker, Set.of());
    }

    private static Entry invalid(String name, Set<String> blame, Invoker invoker, Arg... args) {
        return new Entry(name, List.of(args), invoker, blame);
    }

    // Fixture geometry: small, every dimension distinct where that keeps shape mix-ups detectable.
    private static final int ROWS = 3;
    private static final int D = 5;
    private static final int B = 1;
    private static final int HQ = 4;
    private static final int HKV = 2;
    private static final int NQ = 3;
    private static final int NK = 5;
    private static final int HD = 32;

    /** Every entry point with valid arguments, then the invalid special cases. */
    static List<Entry> entries() {
        LayerNorm ln = LayerNorm.layerNorm();
        LayerNorm rms = LayerNorm.rmsNorm(LayerNorm.DEFAULT_EPSILON);
        Attention att = Attention.of(Attention.CausalMask.TOP_LEFT);
        // C = K with "same" padding, so that y, dy and dx share x's shape and in-place aliasing is reachable.
        Conv2d conv = Conv2d.builder().padding(1).build();
        int[] x = {ROWS, D};
        int[] q = {B, HQ, NQ, HD};
        int[] kv = {B, HKV, NK, HD};
        int[] lse = {B, HQ, NQ};
        int[] cx = {2, 3, 5, 5};
        int[] cw = {3, 3, 3, 3};
        List<Entry> e = new ArrayList<>();

        e.add(valid("LayerNorm.forward", (s, a) -> ln.forward(s, a.get("x"), a.get("gamma"), a.get("beta"),
                        a.get("y"), a.get("mean"), a.get("rstd")),
                in("x", x), optIn("gamma", D), optIn("beta", D), out("y", x), statOut("mean", ROWS), statOut("rstd", ROWS)));
        e.add(valid("RMSNorm.forward", (s, a) -> rms.forward(s, a.get("x"), a.get("gamma"), a.get("beta"),
                        a.get("y"), a.get("mean"), a.get("rstd")),
                in("x", x), optIn("gamma", D), optIn("beta", D), out("y", x), statOut("rstd", ROWS)));
        e.add(valid("LayerNorm.backward", (s, a) -> ln.backward(s, a.get("dy"), a.get("x"), a.get("gamma"),
                        a.get("mean"), a.get("rstd"), a.get("dx"), a.get("dgamma"), a.get("dbeta")),
                in("dy", x), in("x", x), optIn("gamma", D), statIn("mean", ROWS), statIn("rstd", ROWS),
                out("dx", x), optOut("dgamma", D), optOut("dbeta", D)));
        e.add(valid("RMSNorm.backward", (s, a) -> rms.backward(s, a.get("dy"), a.get("x"), a.get("gamma"),
                        a.get("mean"), a.get("rstd"), a.get("dx"), a.get("dgamma"), a.get("dbeta")),
                in("dy", x), in("x", x), optIn("gamma", D), statIn("rstd", ROWS),
                out("dx", x), optOut("dgamma", D), optOut("dbeta", D)));
        e.add(valid("LayerNorm.forward(allocating)", (s, a) -> closeAll(ln.forward(s, a.get("x"), a.get("gamma"),
                        a.get("beta"))),
                in("x", x), optIn("gamma", D), optIn("beta", D)));
        e.add(valid("LayerNorm.backward(allocating)", (s, a) -> closeAll(ln.backward(s, a.get("dy"), a.get("x"),
                        a.get("gamma"), a.get("mean"), a.get("rstd"), true)),
                in("dy", x), in("x", x), optIn("gamma", D), statIn("mean", ROWS), statIn("rstd", ROWS)));

        e.add(valid("Attention.forward", (s, a) -> att.forward(s, a.get("q"), a.get("k"), a.get("v"), a.get("o"),
                        a.get("lse")),
                in("q", q), in("k", kv), in("v", kv), out("o", q), statOut("lse", lse)));
        e.add(valid("Attention.backward", (s, a) -> att.backward(s, a.get("q"), a.get("k"), a.get("v"), a.get("o"),
                        a.get("lse"), a.get("dO"), a.get("dq"), a.get("dk"), a.get("dv")),
                in("q", q), in("k", kv), in("v", kv), in("o", q), statIn("lse", lse), in("dO", q),
                out("dq", q), out("dk", kv), out("dv", kv)));
        e.add(valid("Attention.forward(allocating)", (s, a) -> closeAll(att.forward(s, a.get("q"), a.get("k"),
                        a.get("v"))),
                in("q", q), in("k", kv), in("v", kv)));
        e.add(valid("Attention.backward(allocating)", (s, a) -> closeAll(att.backward(s, a.get("q"), a.get("k"),
                        a.get("v"), a.get("o"), a.get("lse"), a.get("dO"))),
                in("q", q), in("k", kv), in("v", kv), in("o", q), statIn("lse", lse), in("dO", q)));

        e.add(valid("Conv2d.forward", (s, a) -> conv.forward(s, a.get("x"), a.get("w"), a.get("bias"), a.get("y")),
                in("x", cx), in("w", cw), optIn("bias", 3), out("y", cx)));
        e.add(valid("Conv2d.backwardData", (s, a) -> conv.backwardData(s, a.get("dy"), a.get("w"), a.get("dx")),
                in("dy", cx), in("w", cw), out("dx", cx)));
        e.add(valid("Conv2d.backwardFilter", (s, a) -> conv.backwardFilter(s, a.get("dy"), a.get("x"), a.get("dw"),
                        a.get("db")),
                in("dy", cx), in("x", cx), out("dw", cw), optOut("db", 3)));
        e.add(valid("Conv2d.forward(allocating)", (s, a) -> closeAll(conv.forward(s, a.get("x"), a.get("w"),
                        a.get("bias"))),
                in("x", cx).withLastDimFree(), in("w", cw).withLastDimFree(), optIn("bias", 3)));
        e.add(valid("Conv2d.backward(allocating)", (s, a) -> closeAll(conv.backward(s, a.get("dy"), a.get("x"),
                        a.get("w"), true)),
                in("dy", cx), in("x", cx), in("w", cw)));

        // Special cases: invalid as given.
        e.add(invalid("RMSNorm.forward with a mean tensor", Set.of("mean"),
                (s, a) -> rms.forward(s, a.get("x"), null, null, a.get("y"), a.get("mean"), a.get("rstd")),
                in("x", x), out("y", x), statOut("mean", ROWS), statOut("rstd", ROWS)));
        e.add(invalid("RMSNorm.backward with a mean tensor", Set.of("mean"),
                (s, a) -> rms.backward(s, a.get("dy"), a.get("x"), null, a.get("mean"), a.get("rstd"), a.get("dx"),
                        null, null),
                in("dy", x), in("x", x), statIn("mean", ROWS), statIn("rstd", ROWS), out("dx", x)));
        e.add(invalid("LayerNorm.backward dgamma without gamma", Set.of("dgamma"),
                (s, a) -> ln.backward(s, a.get("dy"), a.get("x"), null, a.get("mean"), a.get("rstd"), a.get("dx"),
                        a.get("dgamma"), null),
                in("dy", x), in("x", x), statIn("mean", ROWS), statIn("rstd", ROWS), out("dx", x), out("dgamma", D)));
        e.add(invalid("LayerNorm.forward x of rank 0", Set.of("x"),
                (s, a) -> ln.forward(s, a.get("x"), null, null, a.get("y"), a.get("mean"), a.get("rstd")),
                in("x"), out("y"), statOut("mean", 1), statOut("rstd", 1)));
        e.add(invalid("LayerNorm.forward x with last dimension 0", Set.of("x"),
                (s, a) -> ln.forward(s, a.get("x"), null, null, a.get("y"), a.get("mean"), a.get("rstd")),
                in("x", ROWS, 0), out("y", ROWS, 0), statOut("mean", ROWS), statOut("rstd", ROWS)));
        e.add(invalid("LayerNorm.forward mean and rstd of the wrong length", Set.of("mean"),
                (s, a) -> ln.forward(s, a.get("x"), null, null, a.get("y"), a.get("mean"), a.get("rstd")),
                in("x", 2, 3, D), out("y", 2, 3, D), statOut("mean", 2), statOut("rstd", 2)));
        for (int[] badKv : new int[][] {{B, 3, NK, HD}, {B, 0, NK, HD}}) {
            String label = " with " + HQ + " query heads and " + badKv[1] + " key/value heads";
            e.add(invalid("Attention.forward" + label, Set.of("k"),
                    (s, a) -> att.forward(s, a.get("q"), a.get("k"), a.get("v"), a.get("o"), a.get("lse")),
                    in("q", q), in("k", badKv), in("v", badKv), out("o", q), statOut("lse", lse)));
            e.add(invalid("Attention.backward" + label, Set.of("k"),
                    (s, a) -> att.backward(s, a.get("q"), a.get("k"), a.get("v"), a.get("o"), a.get("lse"),
                            a.get("dO"), a.get("dq"), a.get("dk"), a.get("dv")),
                    in("q", q), in("k", badKv), in("v", badKv), in("o", q), statIn("lse", lse), in("dO", q),
                    out("dq", q), out("dk", badKv), out("dv", badKv)));
        }
        e.add(invalid("Attention.forward k of another batch", Set.of("k"),
                (s, a) -> att.forward(s, a.get("q"), a.get("k"), a.get("v"), a.get("o"), a.get("lse")),
                in("q", q), in("k", 2, HKV, NK, HD), in("v", 2, HKV, NK, HD), out("o", q), statOut("lse", lse)));
        e.add(invalid("Attention.forward v with another key count than k", Set.of("v"),
                (s, a) -> att.forward(s, a.get("q"), a.get("k"), a.get("v"), a.get("o"), a.get("lse")),
                in("q", q), in("k", kv), in("v", B, HKV, NK + 1, HD), out("o", q), statOut("lse", lse)));
        e.add(invalid("Attention.forward head dimension 0", Set.of("q"),
                (s, a) -> att.forward(s, a.get("q"), a.get("k"), a.get("v"), a.get("o"), a.get("lse")),
                in("q", B, HQ, NQ, 0), in("k", B, HKV, NK, 0), in("v", B, HKV, NK, 0), out("o", B, HQ, NQ, 0),
                statOut("lse", lse)));
        Conv2d groups2 = Conv2d.builder().padding(1).groups(2).build();
        e.add(invalid("Conv2d.forward groups=2 not dividing C=3", Set.of("x"),
                (s, a) -> groups2.forward(s, a.get("x"), a.get("w"), null, a.get("y")),
                in("x", cx), in("w", 4, 1, 3, 3), out("y", 2, 4, 5, 5)));
        Conv2d groups3 = Conv2d.builder().padding(1).groups(3).build();
        e.add(invalid("Conv2d.forward groups=3 not dividing K=4", Set.of("w"),
                (s, a) -> groups3.forward(s, a.get("x"), a.get("w"), null, a.get("y")),
                in("x", cx), in("w", 4, 1, 3, 3), out("y", 2, 4, 5, 5)));
        e.add(invalid("Conv2d.backwardFilter groups=3 not dividing K=4", Set.of("dw"),
                (s, a) -> groups3.backwardFilter(s, a.get("dy"), a.get("x"), a.get("dw"), null),
                in("dy", 2, 4, 5, 5), in("x", cx), out("dw", 4, 1, 3, 3)));
        e.add(invalid("Conv2d.backwardData groups=2 not dividing C=3", Set.of("dx"),
                (s, a) -> groups2.backwardData(s, a.get("dy"), a.get("w"), a.get("dx")),
                in("dy", 2, 4, 5, 5), in("w", 4, 1, 3, 3), out("dx", cx)));
        e.add(invalid("Conv2d.forward w with C/groups mismatching x", Set.of("w"),
                (s, a) -> conv.forward(s, a.get("x"), a.get("w"), null, a.get("y")),
                in("x", cx), in("w", 3, 2, 3, 3), out("y", cx)));
        Conv2d noPad = Conv2d.builder().dilation(2).build();
        e.add(invalid("Conv2d.forward dilated filter larger than the input", Set.of("w"),
                (s, a) -> noPad.forward(s, a.get("x"), a.get("w"), null, a.get("y")),
                in("x", 1, 3, 4, 4), in("w", 3, 3, 3, 3), out("y", 1, 3, 1, 1)));
        e.add(invalid("Conv2d.forward x with height 0", Set.of("x"),
                (s, a) -> conv.forward(s, a.get("x"), a.get("w"), null, a.get("y")),
                in("x", 2, 3, 0, 5), in("w", cw), out("y", 2, 3, 0, 5)));
        return e;
    }

    private static void closeAll(AutoCloseable outputs) {
        try {
            outputs.close();
        } catch (Exception e) {
            throw new IllegalStateException(e);
        }
    }

    /** A copy of {@code args} with one name replaced (null removes the tensor, as a null argument). */
    static Map<String, Tensor> with(Map<String, Tensor> args, String name, Tensor replacement) {
        Map<String, Tensor> m = new LinkedHashMap<>(args);
        m.put(name, replacement);
        return m;
    }
}
