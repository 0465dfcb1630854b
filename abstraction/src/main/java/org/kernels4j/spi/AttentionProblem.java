package org.kernels4j.spi;

import org.kernels4j.Attention;
import org.kernels4j.DType;

/**
 * A validated attention problem.
 *
 * @param batch    B
 * @param heads    query heads Hq
 * @param kvHeads  key/value heads Hkv, dividing Hq
 * @param queries  Nq (may be 0)
 * @param keys     Nk (may be 0: every row then sees no key)
 * @param headDim  d
 * @param scale    the resolved softmax scale
 * @param mask     the causal mask
 * @param dtype    element type of q, k, v, o and the gradients
 */
public record AttentionProblem(int batch, int heads, int kvHeads, int queries, int keys, int headDim, float scale,
                               Attention.CausalMask mask, DType dtype) {

    /** Validates the sizes (built by {@link Attention#problem}, or by hand in tools and tests). */
    public AttentionProblem {
        if (batch < 0 || heads < 1 || kvHeads < 1 || heads % kvHeads != 0 || queries < 0 || keys < 0 || headDim < 1) {
            throw new IllegalArgumentException("attention problem: expected batch >= 0, heads >= 1, kvHeads >= 1 dividing"
                    + " heads, queries >= 0, keys >= 0, headDim >= 1; got B=" + batch + " Hq=" + heads + " Hkv=" + kvHeads
                    + " Nq=" + queries + " Nk=" + keys + " d=" + headDim);
        }
        if (mask == null || dtype == null) {
            throw new IllegalArgumentException("attention problem: mask and dtype must not be null");
        }
    }

    /** Query heads per key/value head. */
    public int groupSize() {
        return heads / kvHeads;
    }

    /**
     * The last key index (exclusive) query row {@code i} may see, in {@code [0, keys]}.
     */
    public int visibleKeys(int i) {
        return switch (mask) {
            case NONE -> keys;
            case TOP_LEFT -> Math.max(0, Math.min(keys, i + 1));
            case BOTTOM_RIGHT -> (int) Math.max(0, Math.min(keys, (long) i + 1 + keys - queries));
        };
    }

    /** Floating-point operations of the forward pass, as DESIGN.md counts them (halved when causal). */
    public double forwardFlops() {
        double f = 4.0 * batch * heads * (double) queries * keys * headDim;
        return mask == Attention.CausalMask.NONE ? f : f / 2;
    }
}
