package org.kernels4j;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.junit.jupiter.api.Test;

class NDRangeTest {

    @Test
    void factoriesFillMissingDimensionsWithOne() {
        assertEquals(new NDRange(5, 1, 1), NDRange.of(5));
        assertEquals(new NDRange(5, 3, 1), NDRange.of(5, 3));
        assertEquals(new NDRange(5, 3, 2), NDRange.of(5, 3, 2));
    }

    @Test
    void dimensionsCountTheLastExtentAboveOne() {
        assertEquals(1, NDRange.of(1).dimensions());
        assertEquals(1, NDRange.of(7).dimensions());
        assertEquals(2, NDRange.of(1, 2).dimensions());
        assertEquals(3, NDRange.of(1, 1, 2).dimensions());
        assertEquals(3, NDRange.of(4, 1, 2).dimensions());
    }

    @Test
    void sizeIsTheProduct() {
        assertEquals(30, NDRange.of(5, 3, 2).size());
        assertEquals(1L << 40, NDRange.of(1L << 20, 1L << 20).size());
    }

    @Test
    void extentsBelowOneAreRejected() {
        for (long[] bad : new long[][] {{0, 1, 1}, {1, 0, 1}, {1, 1, 0}, {-4, 1, 1}}) {
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                    () -> new NDRange(bad[0], bad[1], bad[2]));
            assertTrue(e.getMessage().startsWith("NDRange:"), e.getMessage());
        }
    }

    @Test
    void localMemoryNeedsAtLeastOneByte() {
        assertEquals(40, LocalMemory.floats(10).bytes());
        assertThrows(IllegalArgumentException.class, () -> new LocalMemory(0));
    }
}
