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
import org.kernels4j.tuning.Tuning;

/**
 * One pass of one {@link Problem} on one device, through the public ops, as a {@link Workload}: one set of
 * random normal inputs, generated once (GPU-sized sets are hundreds of millions of values, and generating
 * them is the costly part of a workload), which {@link #check} verifies on; for {@link #time}, copies of it
 * in other memory (a host round trip, cheap next to generating), added until the sets together hold
 * {@link #ROTATION_BYTES}, so that small problems do not run from caches warm from the previous run (a set
 * that large by itself is not copied); for backward passes the forward's saved outputs.
 * {@link #check} writes into outputs poisoned with NaN, each allocated between two guard tensors filled
 * with a sentinel; the guards catch a kernel writing past its outputs where the device allocates them next
 * to each other (and the JVM's bounds checks catch it in the CPU backend).
 *
 * <p>{@link #survey} runs a pass once on zero-filled inputs (allocated and filled on the device, nothing
 * generated) to see which tunable kernels it dispatches and how long it takes on the device, so that a
 * tuning run can plan its budget before it pays for any input generation.
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
    private final Tensor[] outputs;
    private final List<Tensor> owned = new ArrayList<>();

    private OpWorkload(Problem problem, String pass, Device device, long seed, boolean zeros) {
        this.problem = problem;
        this.pass = pass;
        this.device = device;
        this.stream = device.defaultStream();
        try {
            Tensor[] first = inputs(zeros ? null : RandomGeneratorFactory.of("L64X128MixRandom").create(seed));
            sets.add(first);
            long setBytes = 0;
            for (Tensor t : first) {
                setBytes += t == null ? 0 : t.byteSize();
            }
            long rotations = zeros ? 1 : Math.max(1, Math.min(MAX_ROTATIONS, (ROTATION_BYTES + setBytes - 1) / Math.max(1, setBytes)));
            for (int r = 1; r < rotations; r++) {
                sets.add(copyOf(first));
            }
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
     * @param seed seeds the inputs
     */
    static OpWorkload create(Problem problem, String pass, Device device, long seed) {
        checkPass(problem, pass);
        return new OpWorkload(problem, pass, device, seed, false);
    }

    /**
     * What one run of a pass dispatches and costs.
     *
     * @param trace          the parameter resolutions of the run (every tunable kernel it launched)
     * @param deviceMillis   the device time of a second run (device events around the op's launches)
     * @param inputElements  elements of one input set (what {@link #create} generates)
     * @param outputElements elements of the outputs (what {@link #check} reads back and compares)
     */
    record Survey(List<Tuning.Resolution> trace, double deviceMillis, long inputElements, long outputElements) {
    }

    /** Runs {@code pass} of {@code problem} on zero-filled inputs: once traced, then once timed. */
    static Survey survey(Problem problem, String pass, Device device) {
        checkPass(problem, pass);
        try (OpWorkload w = new OpWorkload(problem, pass, device, 0, true)) {
            Tensor[] in = w.sets.get(0);
            List<Tuning.Resolution> trace = Tuning.trace(() -> {
                w.run(in, w.outputs);
                w.stream.synchronize();
            });
            double millis = w.time(0);
            long inputs = 0;
            for (Tensor t : in) {
                inputs += t == null ? 0 : t.elementCount();
            }
            long outputs = 0;
            for (Tensor t : w.outputs) {
                outputs += t.elementCount();
            }
            return new Survey(trace, millis, inputs, outputs);
        }
    }

    private static void checkPass(Problem problem, String pass) {
        if (!problem.passes().contains(pass)) {
            throw new IllegalArgumentException("pass: " + problem.op() + " has " + problem.passes() + ", got " + pass);
        }
    }

    @Override
    public String name() {
        return problem.name() + " " + pass + " " + problem.dtype() + " on " + device.id();
    }

    @Override
    public DType dtype() {
        return problem.dtype();
    }

    /**
     * Only OpenCL checks candidates concurrently: its candidates compile programs, which overlap; CUDA's kernels
     * are compiled ahead of time, and concurrent checks would only multiply the memory of GPU-sized outputs.
     */
    @Override
    public boolean parallelChecks() {
        return device.backend().name().equals("opencl");
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
            run(sets.get(0), out);
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
            if (out.length == 1) {
                return new Check(out[0].toFloatArray(), canary);
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

    /**
     * One input set of the pass; backward passes include the forward's saved outputs. With {@code rng} null
     * every input is zero-filled on the device and the saved outputs too (no forward run): good enough to see
     * what the pass dispatches and what it costs.
     */
    private Tensor[] inputs(RandomGenerator rng) {
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
                    if (rng != null) {
                        ln.forward(stream, x, gamma, beta, y, mean, rstd);
                    } else {
                        if (mean != null) {
                            mean.fill(0);
                        }
                        rstd.fill(1);
                    }
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
                    if (rng != null) {
                        problem.attention().forward(stream, q, k, v, o, lse);
                    } else {
                        o.fill(0);
                        lse.fill(0);
                    }
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

    /** Random normal values, or zeros filled on the device when {@code rng} is null. */
    private Tensor random(List<Tensor> made, RandomGenerator rng, DType dt, int... shape) {
        if (rng == null) {
            Tensor t = device.allocate(dt, shape);
            made.add(t);
            t.fill(0);
            return t;
        }
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
