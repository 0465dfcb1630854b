package org.kernels4j.cpu;

import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorShuffle;

/**
 * The sum of a vector's lanes in one fixed order, and the interleaving shuffles the kernels share; vector path only
 * (this class links the incubator module).
 *
 * <p>{@code reduceLanes(ADD)} may add the lanes in any order, and does: HotSpot's compiled intrinsic adds
 * halves, the interpreter and C1 add lane after lane, so the result of one call changed once its code was
 * compiled (layer norm's dx, in the last bits, between the first calls and the later ones). Here the lanes are
 * added pairwise in one fixed tree, lane {@code i} with lane {@code i + L/2} first: the same bits in every tier.
 * With 4 or 8 lanes they are read one by one ({@code lane(i)} with a constant {@code i} compiles to a lane
 * extract), about as fast as the intrinsic. With 16 lanes the same tree is built from lanewise adds over
 * shuffles ({@code v + v[i ^ 8]}, then 4, 2, 1; lane 0 ends with the sum, bit for bit the sum of the lane
 * extracts): on the 2-core Zen 5 (AVX-512, JDK 25.0.3) sixteen extracts cost some 300 cycles a call, and layer
 * norm's forward, two sums a row, ran at 15 GB/s with them against 22 with the shuffles (a harness copy of its
 * loops, one core, ln-8k-1k).
 */
final class Lanes {

    private static final int L = FloatVector.SPECIES_PREFERRED.length();

    private static final VectorShuffle<Float> XOR_8 = L == 16 ? xor(8) : null;
    private static final VectorShuffle<Float> XOR_4 = L == 16 ? xor(4) : null;
    private static final VectorShuffle<Float> XOR_2 = L == 16 ? xor(2) : null;
    private static final VectorShuffle<Float> XOR_1 = L == 16 ? xor(1) : null;

    /**
     * Two-vector shuffles of the preferred species that interleave {@code a} and {@code b}: {@code a.rearrange(ZIP_LOW,
     * b)} is {@code a0 b0 a1 b1 ...} over their low halves, {@code ZIP_HIGH} the same over their high halves.
     */
    static final VectorShuffle<Float> ZIP_LOW =
            VectorShuffle.fromOp(FloatVector.SPECIES_PREFERRED, i -> i / 2 + (i % 2) * L);
    static final VectorShuffle<Float> ZIP_HIGH =
            VectorShuffle.fromOp(FloatVector.SPECIES_PREFERRED, i -> L / 2 + i / 2 + (i % 2) * L);

    private Lanes() {
    }

    private static VectorShuffle<Float> xor(int bit) {
        return VectorShuffle.fromOp(FloatVector.SPECIES_PREFERRED, i -> i ^ bit);
    }

    /** The lanes of {@code v} (of the preferred species) added in a fixed order. */
    static float sum(FloatVector v) {
        return switch (L) {
            case 4 -> (v.lane(0) + v.lane(2)) + (v.lane(1) + v.lane(3));
            case 8 -> ((v.lane(0) + v.lane(4)) + (v.lane(2) + v.lane(6)))
                    + ((v.lane(1) + v.lane(5)) + (v.lane(3) + v.lane(7)));
            case 16 -> {
                // lane 0 after each step: v0+v8; (v0+v8)+(v4+v12); ... the tree of the 4- and 8-lane cases
                FloatVector t = v.add(v.rearrange(XOR_8));
                t = t.add(t.rearrange(XOR_4));
                t = t.add(t.rearrange(XOR_2));
                t = t.add(t.rearrange(XOR_1));
                yield t.lane(0);
            }
            default -> {
                float s = 0f;
                for (int i = 0; i < L; i++) {
                    s += v.lane(i);
                }
                yield s;
            }
        };
    }
}
