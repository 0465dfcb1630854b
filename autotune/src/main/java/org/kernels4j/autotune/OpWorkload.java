package org.kernels4j.autotune;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.ArrayList;
import java.util.List;
import java.util.random.RandomGenerator;
import java.util.stream.IntStream;
import java.util.random.RandomGeneratorFactory;

import org.kernels4j.Attention;
import org.kernels4j.Conv2d;
import org.kernels4j.DType;
import org.kernels4j.Device;
import org.kernels4j.Event;
import org.kernels4j.LayerNorm;
import org.kernels4j.Stream;
import org.kernels4j.Tensor;
import org.kernels4j.spi.Conv2dProblem;

/**
 * One pass of one {@link Problem} on one device, through the public ops, as a {@link Workload}: random normal
 * inputs for timing, copied into enough input sets to exceed {@link #ROTATION_BYTES} together (so caches do
 * not flatter the measurement), a separate set of fresh verification inputs, and for backward passes the
 * forward's saved outputs. {@link #check} writes into outputs poisoned with NaN, each allocated between two guard tensors
 * filled with a sentinel; the guards catch a kernel writing past its outputs where the device allocates them
 * next to each other (and the JVM's bounds checks catch it in the CPU backend).
 */
final class OpWorkload implements Workload {

    /** Input sets are added until together they hold at least this many bytes (at most {@link #MAX_ROTATIONS}). */
    static final long ROTATION_BYTES = 96L << 20;
    static final int MAX_ROTATIONS = 4;
    static final int GUARD_ELEMENTS = 1024;
    static final float SENTINEL = -1536f;
    private static final int CHUNK = 1 << 20;

    private final Problem problem;
    private final String pass;
    private final Device device;
    private final Stream stream;
    private final List<Tensor[]> sets = new ArrayList<>();
    private final Tensor[] verification;
    private final Tensor[] outputs;
    private final List<Tensor> owned = new ArrayList<>();

    private OpWorkload(Problem problem, String pass, Device device, long seed) {
        this.problem = problem;
        this.pass = pass;
        this.device = device;
        this.stream = device.defaultStream();
        try {
            Tensor[] first = inputs(seed);
            sets.add(first);
            long setBytes = 0;
            for (Tensor t : first) {
                setBytes += t == null ? 0 : t.byteSize();
            }
            long rotations = Math.max(1, Math.min(MAX_ROTATIONS, (ROTATION_BYTES + setBytes - 1) / Math.max(1, setBytes)));
            for (int r = 1; r < rotations; r++) {
                sets.add(copyOf(first));
            }
            this.verification = inputs(System.nanoTime());
            this.outputs = allocateOutputs(owned);
            stream.synchronize();
        } catch (RuntimeException e) {
            close();
            throw e;
        }
    }

    /**
     * A workload of {@code problem}'s {@code pass} on {@code device}.
     *
     * @param seed seeds the timing inputs (the verification inputs are always fresh)
     */
    static OpWorkload create(Problem problem, String pass, Device device, long seed) {
        if (!problem.passes().contains(pass)) {
            throw new IllegalArgumentException("pass: " + problem.op() + " has " + problem.passes() + ", got " + pass);
        }
        return new OpWorkload(problem, pass, device, seed);
    }

    @Override
    public String name() {
        return problem.name() + " " + pass + " " + problem.dtype() + " on " + device.id();
    }

    @Override
    public DType dtype() {
        return problem.dtype();
    }

    @Override
    public boolean parallelChecks() {
        return !device.backend().name().equals("cpu");
    }

    @Override
    public int rotations() {
        return sets.size();
    }

    @Override
    public double time(int rotation) {
        Tensor[] in = sets.get(Math.floorMod(rotation, sets.size()));
        Event start = stream.record();
        run(in, outputs);
        Event end = stream.record();
        return end.elapsedMillisSince(start);
    }

    @Override
    public Check check() {
        List<Tensor> mine = new ArrayList<>();
        try {
            List<Tensor> guards = new ArrayList<>();
            Tensor[] out = allocateGuarded(mine, guards);
            for (Tensor t : out) {
                t.fill(Float.NaN);
            }
            for (Tensor g : guards) {
                g.fill(SENTINEL);
            }
            run(verification, out);
            stream.synchronize();
            String canary = null;
            for (int i = 0; i < guards.size() && canary == null; i++) {
                float[] g = guards.get(i).toFloatArray();
                for (int j = 0; j < g.length; j++) {
                    if (Float.floatToRawIntBits(g[j]) != Float.floatToRawIntBits(SENTINEL)) {
                        canary = "guard " + (i % 2 == 0 ? "before" : "after") + " output " + (i / 2) + " element " + j
                                + " became " + g[j];
                        break;
                    }
                }
            }
            long n = 0;
            for (Tensor t : out) {
                n += t.elementCount();
            }
            float[] all = new float[Math.toIntExact(n)];
            int at = 0;
            for (Tensor t : out) {
                float[] a = t.toFloatArray();
                System.arraycopy(a, 0, all, at, a.length);
                at += a.length;
            }
            return new Check(all, canary);
        } finally {
            for (Tensor t : mine) {
                t.close();
            }
        }
    }

    @Override
    public void close() {
        for (Tensor[] s : sets) {
            closeAll(s);
        }
        sets.clear();
        if (verification != null) {
            closeAll(verification);
        }
        for (Tensor t : owned) {
            t.close();
        }
        owned.clear();
    }

    /**
     * Another set in other memory with the same contents: rotation is about caches, not values, and copying
     * is much cheaper than generating random data and running the forward pass again.
     */
    private Tensor[] copyOf(Tensor[] set) {
        Tensor[] out = new Tensor[set.length];
        try {
            for (int i = 0; i < set.length; i++) {
                if (set[i] != null) {
                    ByteBuffer b = ByteBuffer.allocateDirect(Math.toIntExact(set[i].byteSize())).order(ByteOrder.nativeOrder());
                    set[i].copyTo(b);
                    out[i] = device.allocate(set[i].dtype(), set[i].shape());
                    out[i].copyFrom(b);
                }
            }
            return out;
        } catch (RuntimeException e) {
            closeAll(out);
            throw e;
        }
    }

    private static void closeAll(Tensor[] ts) {
        for (Tensor t : ts) {
            if (t != null) {
                t.close();
            }
        }
    }

    /** Output shapes and dtypes of the pass, in the order {@link #run} takes them. */
    private List<Object[]> outputSpecs() {
        DType dt = problem.dtype();
        List<Object[]> o = new ArrayList<>();
        switch (problem.op()) {
            case "layernorm" -> {
                int rows = problem.i("rows");
                int cols = problem.i("cols");
                if (pass.equals("forward")) {
                    o.add(new Object[] {dt, new int[] {rows, cols}});
                    if (problem.layerNorm().kind() == LayerNorm.Kind.LAYER_NORM) {
                        o.add(new Object[] {DType.FLOAT32, new int[] {rows}});
                    }
                    o.add(new Object[] {DType.FLOAT32, new int[] {rows}});
                } else {
                    o.add(new Object[] {dt, new int[] {rows, cols}});
                    o.add(new Object[] {dt, new int[] {cols}});
                    o.add(new Object[] {dt, new int[] {cols}});
                }
            }
            case "conv2d" -> {
                Conv2dProblem p = convProblem();
                switch (pass) {
                    case "forward" -> o.add(new Object[] {dt, p.yShape()});
                    case "backward-data" -> o.add(new Object[] {dt, p.xShape()});
                    default -> {
                        o.add(new Object[] {dt, p.wShape()});
                        o.add(new Object[] {dt, new int[] {p.k()}});
                    }
                }
            }
            default -> {
                int[] q = problem.attnQ();
                int[] k = problem.attnK();
                if (pass.equals("forward")) {
                    o.add(new Object[] {dt, q});
                    o.add(new Object[] {DType.FLOAT32, new int[] {q[0], q[1], q[2]}});
                } else {
                    o.add(new Object[] {dt, q});
                    o.add(new Object[] {dt, k});
                    o.add(new Object[] {dt, k});
                }
            }
        }
        return o;
    }

    private Tensor[] allocateOutputs(List<Tensor> into) {
        List<Object[]> specs = outputSpecs();
        Tensor[] out = new Tensor[specs.size()];
        for (int i = 0; i < out.length; i++) {
            out[i] = device.allocate((DType) specs.get(i)[0], (int[]) specs.get(i)[1]);
            into.add(out[i]);
        }
        return out;
    }

    private Tensor[] allocateGuarded(List<Tensor> into, List<Tensor> guards) {
        List<Object[]> specs = outputSpecs();
        Tensor[] out = new Tensor[specs.size()];
        for (int i = 0; i < out.length; i++) {
            DType dt = (DType) specs.get(i)[0];
            Tensor before = device.allocate(dt, GUARD_ELEMENTS);
            into.add(before);
            out[i] = device.allocate(dt, (int[]) specs.get(i)[1]);
            into.add(out[i]);
            Tensor after = device.allocate(dt, GUARD_ELEMENTS);
            into.add(after);
            guards.add(before);
            guards.add(after);
        }
        return out;
    }

    private Conv2dProblem convProblem() {
        return problem.conv().problem(problem.convX(), problem.convW(), problem.dtype());
    }

    /** One input set of the pass; backward passes include the forward's saved outputs. */
    private Tensor[] inputs(long seed) {
        RandomGenerator rng = RandomGeneratorFactory.of("L64X128MixRandom").create(seed);
        DType dt = problem.dtype();
        List<Tensor> made = new ArrayList<>();
        try {
            switch (problem.op()) {
                case "layernorm" -> {
                    int rows = problem.i("rows");
                    int cols = problem.i("cols");
                    Tensor x = random(made, rng, dt, rows, cols);
                    Tensor gamma = random(made, rng, dt, cols);
                    Tensor beta = random(made, rng, dt, cols);
                    if (pass.equals("forward")) {
                        return new Tensor[] {x, gamma, beta};
                    }
                    LayerNorm ln = problem.layerNorm();
                    Tensor y = device.allocate(dt, rows, cols);
                    Tensor mean = ln.kind() == LayerNorm.Kind.LAYER_NORM ? device.allocate(DType.FLOAT32, rows) : null;
                    Tensor rstd = device.allocate(DType.FLOAT32, rows);
                    made.add(y);
                    if (mean != null) {
                        made.add(mean);
                    }
                    made.add(rstd);
                    ln.forward(stream, x, gamma, beta, y, mean, rstd);
                    stream.synchronize();
                    y.close();
                    made.remove(y);
                    beta.close();
                    made.remove(beta);
                    Tensor dy = random(made, rng, dt, rows, cols);
                    return new Tensor[] {dy, x, gamma, mean, rstd};
                }
                case "conv2d" -> {
                    Conv2dProblem p = convProblem();
                    switch (pass) {
                        case "forward" -> {
                            return new Tensor[] {random(made, rng, dt, p.xShape()), random(made, rng, dt, p.wShape()),
                                    random(made, rng, dt, p.k())};
                        }
                        case "backward-data" -> {
                            return new Tensor[] {random(made, rng, dt, p.yShape()), random(made, rng, dt, p.wShape())};
                        }
                        default -> {
                            return new Tensor[] {random(made, rng, dt, p.yShape()), random(made, rng, dt, p.xShape())};
                        }
                    }
                }
                default -> {
                    int[] qs = problem.attnQ();
                    int[] ks = problem.attnK();
                    Tensor q = random(made, rng, dt, qs);
                    Tensor k = random(made, rng, dt, ks);
                    Tensor v = random(made, rng, dt, ks);
                    if (pass.equals("forward")) {
                        return new Tensor[] {q, k, v};
                    }
                    Tensor o = device.allocate(dt, qs);
                    made.add(o);
                    Tensor lse = device.allocate(DType.FLOAT32, qs[0], qs[1], qs[2]);
                    made.add(lse);
                    problem.attention().forward(stream, q, k, v, o, lse);
                    Tensor dO = random(made, rng, dt, qs);
                    stream.synchronize();
                    return new Tensor[] {q, k, v, o, lse, dO};
                }
            }
        } catch (RuntimeException e) {
            for (Tensor t : made) {
                t.close();
            }
            throw e;
        }
    }

    private Tensor random(List<Tensor> made, RandomGenerator rng, DType dt, int... shape) {
        long n = 1;
        for (int d : shape) {
            n *= d;
        }
        float[] a = new float[Math.toIntExact(n)];
        // chunks with their own generators, in parallel: GPU-sized inputs are hundreds of millions of values
        long base = rng.nextLong();
        int chunks = (a.length + CHUNK - 1) / CHUNK;
        IntStream.range(0, chunks).parallel().forEach(c -> {
            RandomGenerator g = RandomGeneratorFactory.<RandomGenerator>of("L64X128MixRandom").create(base + c);
            for (int i = c * CHUNK, end = Math.min(a.length, i + CHUNK); i < end; i++) {
                a[i] = (float) g.nextGaussian();
            }
        });
        Tensor t = device.upload(dt, a, shape);
        made.add(t);
        return t;
    }

    private void run(Tensor[] in, Tensor[] out) {
        switch (problem.op()) {
            case "layernorm" -> {
                LayerNorm ln = problem.layerNorm();
                boolean layer = ln.kind() == LayerNorm.Kind.LAYER_NORM;
                if (pass.equals("forward")) {
                    ln.forward(stream, in[0], in[1], in[2], out[0], layer ? out[1] : null, layer ? out[2] : out[1]);
                } else {
                    ln.backward(stream, in[0], in[1], in[2], in[3], in[4], out[0], out[1], out[2]);
                }
            }
            case "conv2d" -> {
                Conv2d c = problem.conv();
                switch (pass) {
                    case "forward" -> c.forward(stream, in[0], in[1], in[2], out[0]);
                    case "backward-data" -> c.backwardData(stream, in[0], in[1], out[0]);
                    default -> c.backwardFilter(stream, in[0], in[1], out[0], out[1]);
                }
            }
            default -> {
                Attention a = problem.attention();
                if (pass.equals("forward")) {
                    a.forward(stream, in[0], in[1], in[2], out[0], out[1]);
                } else {
                    a.backward(stream, in[0], in[1], in[2], in[3], in[4], in[5], out[0], out[1], out[2]);
                }
            }
        }
    }
}
