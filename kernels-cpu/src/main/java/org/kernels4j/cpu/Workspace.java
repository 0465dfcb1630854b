package org.kernels4j.cpu;

/**
 * Per-thread scratch arrays, so kernels allocate nothing on the hot path once warm.
 *
 * <p>Each thread (pool worker or calling thread) owns a few numbered slots; a slot's array grows to the
 * largest size requested and is then reused. Contents are not cleared between uses. Slots
 * {@link #TASK_SLOTS} and above are for data that lives for a whole call on the calling thread (packed
 * weights, per-worker partial results) so that they never collide with the per-task slots the same thread
 * uses as worker 0. Requests above {@link #RETAINED_FLOATS} floats are served fresh and not kept, so one
 * huge problem does not pin its memory to a thread forever.
 */
final class Workspace {

    /** Slots {@code [0, TASK_SLOTS)} are per-task scratch; {@code [TASK_SLOTS, SLOTS)} are per-call. */
    static final int TASK_SLOTS = 10;

    private static final int SLOTS = 14;

    /** Largest array (in floats, 64 MiB) a thread keeps between calls. */
    static final int RETAINED_FLOATS = 16 << 20;

    private static final ThreadLocal<float[][]> ARRAYS = ThreadLocal.withInitial(() -> new float[SLOTS][]);

    private static final ThreadLocal<int[]> INTS = ThreadLocal.withInitial(() -> new int[64]);

    private Workspace() {
    }

    /** A float array of at least {@code length} elements for slot {@code slot} of the current thread. */
    static float[] floats(int slot, int length) {
        float[][] slots = ARRAYS.get();
        float[] a = slots[slot];
        if (a != null && a.length >= length) {
            return a;
        }
        a = new float[Math.max(length, 16)];
        if (length <= RETAINED_FLOATS) {
            slots[slot] = a;
        }
        return a;
    }

    /** An int array of at least {@code length} elements, one per thread, for per-task index tables. */
    static int[] ints(int length) {
        int[] a = INTS.get();
        if (a.length < length) {
            a = new int[Math.max(length, 2 * a.length)];
            INTS.set(a);
        }
        return a;
    }
}
