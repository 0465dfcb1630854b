package org.kernels4j.cpu;

import java.util.Arrays;
import java.util.function.Consumer;

/**
 * The Winograd filter transforms held in the calling thread's workspace, and the weights they were computed from,
 * so that a forward or backward-data call whose weights are bit for bit those of the thread's previous call (an
 * inference loop) reuses them instead of transforming the weights again.
 *
 * <p>Why: the stride-2 Winograd's transforms are nine times the size of the weights and are written to memory on
 * every call (conv-s2, 2-core Zen 5: 2.65 MB, 7% of its forward's samples). The check that the weights did not change
 * compares them with a copy kept from the call that computed the transforms (exactly, through
 * {@link Arrays#mismatch(float[], int, int, float[], int, int)}; weights that do change, as in a training step, usually
 * differ in the first elements compared), and a miss copies them once; the key holds everything else the transforms
 * depend on (which transform, the shape, the layout). ONNX Runtime's convolutions likewise pack constant weights once,
 * when a session is created. Paired in one JVM on that host, the same weights every call: conv-s2 forward 0.87-0.89x
 * the time, conv-r28 forward 0.91-0.96x, conv-r28 backward-data 0.96x; other weights every call (the bench tool's
 * {@code fwd-new-weights}): conv-s2 forward level (0.97-1.02x in four runs).
 *
 * <p>Every writer of the workspace slot the transforms live in goes through {@link #of}, so a slot whose contents
 * another transform replaced is never taken for this one's; the array itself is checked too (a slot's array grows,
 * and arrays over {@link Workspace#RETAINED_FLOATS} are not kept).
 */
final class FilterTransforms {

    /** The workspace slot (per call, calling thread) of the filter transforms. */
    static final int SLOT = Workspace.TASK_SLOTS + 3;

    private static final ThreadLocal<FilterTransforms> HELD = ThreadLocal.withInitial(FilterTransforms::new);

    /** The slot's array when its transforms were computed; null when nothing is held. */
    private float[] transforms;
    private int[] key = new int[0];
    private float[] weights = new float[0];
    private int weightCount;

    private FilterTransforms() {
    }

    /**
     * The calling thread's transforms ({@code size} floats in its {@link #SLOT}) of the weights
     * {@code w[from, from + count)}: those it holds when {@code key} and the weights are those they were computed
     * from, else computed by {@code compute} into the slot's array (and remembered).
     */
    static float[] of(int[] key, float[] w, int from, int count, int size, Consumer<float[]> compute) {
        FilterTransforms held = HELD.get();
        float[] u = Workspace.floats(SLOT, size);
        if (size > Workspace.RETAINED_FLOATS) {
            // a fresh array every call (the workspace does not keep it): nothing to reuse, nor weights to keep
            held.transforms = null;
            compute.accept(u);
            return u;
        }
        if (held.transforms == u && Arrays.equals(held.key, key) && held.weightCount == count
                && Arrays.mismatch(held.weights, 0, count, w, from, from + count) < 0) {
            return u;
        }
        // forget first: if compute fails, the slot holds a partial transform that must not be taken for a whole one
        held.transforms = null;
        compute.accept(u);
        if (held.weights.length < count) {
            held.weights = new float[count];
        }
        System.arraycopy(w, from, held.weights, 0, count);
        held.weightCount = count;
        held.key = key.clone();
        held.transforms = u;
        return u;
    }
}
