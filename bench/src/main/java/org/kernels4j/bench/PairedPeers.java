package org.kernels4j.bench;

import java.util.Arrays;
import java.util.Locale;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDList;
import ai.djl.ndarray.NDManager;
import ai.djl.pytorch.engine.PtSymbolBlock;
import ai.djl.pytorch.jni.JniUtils;
import ai.onnxruntime.OrtException;
import ai.onnxruntime.OrtSession;

import org.kernels4j.Backends;
import org.kernels4j.DType;

/**
 * kernels4j's forward (or backward) pass against a peer's in ONE JVM, in alternating blocks of calls, the way
 * {@code bench/tools/paired/Paired.java} compares two kernels4j builds. The {@code bench} command measures each side
 * in a JMH fork of its own, seconds to minutes apart; on a shared machine whose load drifts, their ratio measures
 * the drift too. Here both sides warm up together for four seconds, then each pair times a block of calls of one
 * side and then of the other (about 40 ms each, the first side alternating), and the figure is the median of the
 * pairs' ratios, peer over ours (above 1: kernels4j faster), with its quartiles.
 *
 * <p>The peers' worker threads must not spin between calls, or they take the cores from kernels4j's calls (beside
 * ONNX Runtime's default spinning, kernels4j's conv-s2, conv-1x1 and conv-r28 forward ran 1.6-1.7x slower): ONNX
 * Runtime's sessions are made with {@code session.intra_op.allow_spinning=0}; PyTorch's OpenMP threads need
 * {@code OMP_WAIT_POLICY=PASSIVE} in the environment (this tool refuses to run torch without it). Both peers at the
 * CPU backend's thread count, PyTorch offline as in the JMH forks. Not spinning can cost a peer too: compare its
 * time here with its JMH fork's before trusting a ratio (PyTorch's conv-1x1 forward took 16.2 ms here against
 * 8.4-10.0 in its forks, so its ratio here means nothing; its attn-1k and conv-s2 forward, and ONNX Runtime's
 * conv and attention forward, took what they take in their forks).
 *
 * <pre>
 * ./mvnw -q -pl bench dependency:build-classpath -Dmdep.outputFile=target/cp.txt
 * OMP_WAIT_POLICY=PASSIVE java --add-modules jdk.incubator.vector --enable-native-access=ALL-UNNAMED \
 *     -Dai.djl.offline=true -cp "$(cat bench/target/cp.txt):bench/target/classes" \
 *     org.kernels4j.bench.PairedPeers ort|torch PAIRS PROBLEM[:backward]...
 * </pre>
 * A problem named with {@code :backward} compares the backward pass (every input gradient; PyTorch only, ONNX
 * Runtime has none): PyTorch's autograd graph is built before each call and only its backward is timed, as in its JMH
 * benchmark, so each side's block is the sum of its calls' measured parts.
 */
public final class PairedPeers {
    private static final long WARM_UP_NANOS = 4_000_000_000L;
    private static final long BLOCK_NANOS = 40_000_000L;

    private PairedPeers() {
    }

    /**
     * Command line: {@code ort|torch PAIRS PROBLEM[:backward]...}, problems from the CPU set (forward passes, or
     * backward with the suffix).
     */
    public static void main(String[] args) throws Exception {
        if (args.length < 3 || !(args[0].equals("ort") || args[0].equals("torch"))) {
            System.err.println("usage: PairedPeers ort|torch PAIRS PROBLEM[:backward]...");
            System.exit(2);
        }
        boolean torch = args[0].equals("torch");
        if (torch && !"PASSIVE".equalsIgnoreCase(System.getenv("OMP_WAIT_POLICY"))) {
            System.err.println("PairedPeers torch: set OMP_WAIT_POLICY=PASSIVE, or PyTorch's spinning OpenMP threads"
                    + " slow kernels4j's calls down");
            System.exit(2);
        }
        int pairs;
        try {
            pairs = Integer.parseInt(args[1]);
        } catch (NumberFormatException e) {
            pairs = 0;
        }
        if (pairs < 1) {
            System.err.println("PairedPeers: PAIRS must be a whole number of at least 1, got '" + args[1] + "'");
            System.exit(2);
        }
        for (int i = 2; i < args.length; i++) {
            boolean backward = args[i].endsWith(BACKWARD);
            if (backward && !torch) {
                System.err.println("PairedPeers: ONNX Runtime has no backward pass to compare (" + args[i] + ")");
                System.exit(2);
            }
            ProblemSet.byName(problemName(args[i]));
        }
        int threads = Threads.intraOp();
        System.out.printf(Locale.ROOT, "%-16s %10s %10s %10s   (%d pairs, %d threads, median of pair ratios)%n",
                "problem", "ours ms", args[0] + " ms", args[0] + "/ours", pairs, threads);
        for (int i = 2; i < args.length; i++) {
            BenchProblem p = ProblemSet.byName(problemName(args[i]));
            boolean backward = args[i].endsWith(BACKWARD);
            try (OpCase ours = new OpCase(p, Backends.require("cpu").defaultDevice(), DType.FLOAT32);
                 Peer peer = torch ? new TorchPeer(p, threads) : new OrtPeer(p, threads)) {
                Timed oursCall = backward ? timed(ours::backward) : timed(ours::forward);
                Timed peerCall = backward ? ((TorchPeer) peer)::backward : timed(peer::forward);
                compare(args[i], oursCall, peerCall, pairs);
            }
        }
    }

    /** A problem argument's suffix that asks for the backward pass (every input gradient). */
    private static final String BACKWARD = ":backward";

    private static String problemName(String arg) {
        return arg.endsWith(BACKWARD) ? arg.substring(0, arg.length() - BACKWARD.length()) : arg;
    }

    /**
     * One call of one side, returning the nanoseconds of the part that is measured: all of it, except PyTorch's
     * backward, whose autograd graph is built before each call outside the measured part (as in its JMH benchmark).
     */
    private interface Timed {
        long call() throws Exception;
    }

    private interface Call {
        void run() throws Exception;
    }

    private static Timed timed(Call c) {
        return () -> {
            long t0 = System.nanoTime();
            c.run();
            return System.nanoTime() - t0;
        };
    }

    private static void compare(String name, Timed ours, Timed peer, int pairs) throws Exception {
        long warmed = 0;
        int warmCalls = 0;
        for (long start = System.nanoTime(); System.nanoTime() - start < WARM_UP_NANOS || warmCalls < 5;
             warmCalls++) {
            warmed += ours.call() + peer.call();
        }
        int calls = (int) Math.max(1, Math.min(100, BLOCK_NANOS * 2 * warmCalls / Math.max(1, warmed)));
        double[] oursMs = new double[pairs];
        double[] peerMs = new double[pairs];
        double[] ratio = new double[pairs];
        for (int k = 0; k < pairs; k++) {
            for (int side = 0; side < 2; side++) {
                boolean oursNow = (side == 0) == (k % 2 == 0);
                long nanos = 0;
                for (int c = 0; c < calls; c++) {
                    nanos += oursNow ? ours.call() : peer.call();
                }
                double ms = nanos / 1e6 / calls;
                if (oursNow) {
                    oursMs[k] = ms;
                } else {
                    peerMs[k] = ms;
                }
            }
            ratio[k] = peerMs[k] / oursMs[k];
        }
        Arrays.sort(oursMs);
        Arrays.sort(peerMs);
        Arrays.sort(ratio);
        System.out.printf(Locale.ROOT, "%-16s %10.3f %10.3f %10.3f   (quartiles of the ratios %.3f, %.3f)%n", name,
                oursMs[pairs / 2], peerMs[pairs / 2], ratio[pairs / 2], ratio[pairs / 4], ratio[3 * pairs / 4]);
    }

    /** One peer's forward pass on one problem. */
    private interface Peer extends AutoCloseable {
        void forward() throws Exception;

        @Override
        void close();
    }

    /** As the {@code Ort} benchmark, without spinning threads. */
    private static final class OrtPeer implements Peer {
        private final OrtOps ops;

        OrtPeer(BenchProblem p, int threads) throws OrtException {
            ops = new OrtOps(p, threads, false);
        }

        @Override
        public void forward() throws OrtException {
            try (OrtSession.Result r = ops.run()) {
                if (r.size() == 0) {
                    throw new IllegalStateException("no output");
                }
            }
        }

        @Override
        public void close() {
            ops.close();
        }
    }

    /** As the {@code Torch} benchmark's forward. */
    private static final class TorchPeer implements Peer {
        private final BenchProblem p;
        private final NDManager manager;
        private final NDList inputs;
        private final PtSymbolBlock attention;
        private final NDArray outputGradient;

        TorchPeer(BenchProblem p, int threads) {
            TorchOps.start(threads);
            this.p = p;
            manager = NDManager.newBaseManager();
            inputs = TorchOps.inputs(manager, p);
            attention = TorchOps.module(manager, p);
            outputGradient = TorchOps.outputGradient(manager, p);
        }

        @Override
        public void forward() {
            try (NDManager call = manager.newSubManager()) {
                for (NDArray a : inputs) {
                    a.tempAttach(call);
                }
                TorchOps.forward(p, inputs, attention, false);
            }
        }

        /**
         * One backward pass, timed alone: a fresh graph (leaves copied from the inputs, the forward with autograd) is
         * built first, as the {@code Torch} benchmark's per-invocation setup does, and freed after.
         */
        long backward() {
            JniUtils.setGradMode(true);
            try (NDManager call = manager.newSubManager()) {
                NDList leaves = new NDList();
                for (NDArray a : inputs) {
                    NDArray leaf = a.duplicate();
                    leaf.attach(call);
                    leaf.setRequiresGradient(true);
                    leaves.add(leaf);
                }
                NDArray out = TorchOps.forward(p, leaves, attention, true);
                long t0 = System.nanoTime();
                TorchOps.backward(out, outputGradient);
                return System.nanoTime() - t0;
            }
        }

        @Override
        public void close() {
            if (attention != null) {
                attention.close();
            }
            manager.close();
        }
    }
}
