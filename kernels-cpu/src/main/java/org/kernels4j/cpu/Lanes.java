package org.kernels4j.cpu;

import jdk.incubator.vector.FloatVector;

/**
 * The sum of a vector's lanes in one fixed order; vector path only (this class links the incubator module).
 *
 * <p>{@code reduceLanes(ADD)} may add the lanes in any order, and does: HotSpot's compiled intrinsic adds
 * halves, the interpreter and C1 add lane after lane, so the result of one call changed once its code was
 * compiled (layer norm's dx, in the last bits, between the first calls and the later ones). Here the lanes are
 * read one by one ({@code lane(i)} with a constant {@code i} compiles to a lane extract) and added pairwise in a
 * fixed tree: the same bits in every tier, about as fast as the intrinsic (a tree of lanewise adds over
 * shuffles was measured slower on the 2-core Zen 4).
 */
final class Lanes {

    private static final int L = FloatVector.SPECIES_PREFERRED.length();

    private Lanes() {
    }

    /** The lanes of {@code v} (of the preferred species) added in a fixed order. */
    static float sum(FloatVector v) {
        return switch (L) {
            case 4 -> (v.lane(0) + v.lane(2)) + (v.lane(1) + v.lane(3));
            case 8 -> ((v.lane(0) + v.lane(4)) + (v.lane(2) + v.lane(6)))
                    + ((v.lane(1) + v.lane(5)) + (v.lane(3) + v.lane(7)));
            case 16 -> (((v.lane(0) + v.lane(8)) + (v.lane(4) + v.lane(12)))
                    + ((v.lane(2) + v.lane(10)) + (v.lane(6) + v.lane(14))))
                    + (((v.lane(1) + v.lane(9)) + (v.lane(5) + v.lane(13)))
                    + ((v.lane(3) + v.lane(11)) + (v.lane(7) + v.lane(15))));
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
