package org.kernels4j.autotune;

import java.util.Arrays;

import org.kernels4j.DType;
import org.kernels4j.Device;
import org.kernels4j.tuning.Parameters;
import org.kernels4j.tuning.TuningSpace;

/**
 * A kernel whose behaviour the test chooses per MODE: each mode either computes {@code out = 2 * in + 1}
 * correctly, gets one element wrong, or writes one element past its output (into a canary), and takes a
 * mode-dependent time. It reads MODE from the tuning SPI at "dispatch", as a real kernel does.
 */
final class SyntheticWorkload implements Workload {

    static final TuningSpace<Integer> SPACE = TuningSpace.builder("test.synthetic", Integer.class)
            .source("synthetic kernel v1")
            .parameter("MODE", 0, 1, 2, 3, 4)
            .bucket(n -> "n" + n)
            .build();

    static final int CORRECT_SLOW = 0;
    static final int CORRECT_FAST = 1;
    static final int WRONG_VALUE = 2;
    static final int TOUCHES_CANARY = 3;
    static final int CORRECT_VERY_SLOW = 4;

    private static final int GUARD = 16;
    private static final float CANARY = -777f;

    private final Device device;
    private final int n;
    private final double[] millisPerMode;

    /**
     * @param millisPerMode how long each mode's run takes (index = MODE)
     */
    SyntheticWorkload(Device device, int n, double... millisPerMode) {
        this.device = device;
        this.n = n;
        this.millisPerMode = millisPerMode;
    }

    private int mode() {
        Parameters p = SPACE.resolve(device, DType.FLOAT32, n);
        return p.get("MODE");
    }

    @Override
    public String name() {
        return "synthetic n=" + n;
    }

    @Override
    public DType dtype() {
        return DType.FLOAT32;
    }

    @Override
    public Check check() {
        int mode = mode();
        float[] buf = new float[n + 2 * GUARD];
        Arrays.fill(buf, CANARY);
        for (int i = 0; i < n; i++) {
            buf[GUARD + i] = 2f * i + 1f;
        }
        if (mode == WRONG_VALUE) {
            buf[GUARD + n / 2] += 1f;
        }
        if (mode == TOUCHES_CANARY) {
            buf[GUARD + n] = 0f;
        }
        String canary = null;
        for (int i = 0; i < GUARD; i++) {
            if (buf[i] != CANARY || buf[GUARD + n + i] != CANARY) {
                canary = "guard element " + i + " overwritten";
            }
        }
        return new Check(Arrays.copyOfRange(buf, GUARD, GUARD + n), canary);
    }

    @Override
    public double time(int rotation) {
        int mode = mode();
        long start = System.nanoTime();
        long until = start + (long) (millisPerMode[mode] * 1e6);
        while (System.nanoTime() < until) {
            long left = until - System.nanoTime();
            if (left > 2_000_000) {
                try {
                    Thread.sleep(left / 2_000_000);
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                    throw new IllegalStateException(e);
                }
            } else {
                Thread.onSpinWait();
            }
        }
        return (System.nanoTime() - start) / 1e6;
    }

    @Override
    public int rotations() {
        return 2;
    }

    @Override
    public boolean parallelChecks() {
        return true;
    }

    @Override
    public void close() {
    }
}
