package org.kernels4j;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.SplittableRandom;

import org.junit.jupiter.api.Test;
import org.kernels4j.Conv2d.Format;
import org.kernels4j.spi.Conv2dProblem;

class Conv2dProblemTest {

    /** Output positions counted one by one: those whose dilated window ends inside the padded input. */
    private static int countOutputs(int in, int padBegin, int padEnd, int filter, int stride, int dilation) {
        int n = 0;
        for (int o = 0; ; o++) {
            int lastTap = o * stride - padBegin + dilation * (filter - 1);
            if (lastTap > in - 1 + padEnd) {
                return n;
            }
            n++;
        }
    }

    @Test
    void outputSizesMatchCountingValidWindowPositions() {
        SplittableRandom rnd = new SplittableRandom(3);
        for (int i = 0; i < 2000; i++) {
            int h = rnd.nextInt(1, 30);
            int w = rnd.nextInt(1, 30);
            int r = rnd.nextInt(1, 8);
            int s = rnd.nextInt(1, 8);
            int[] pad = {rnd.nextInt(0, 4), rnd.nextInt(0, 4), rnd.nextInt(0, 4), rnd.nextInt(0, 4)};
            int sh = rnd.nextInt(1, 4);
            int sw = rnd.nextInt(1, 4);
            int dh = rnd.nextInt(1, 4);
            int dw = rnd.nextInt(1, 4);
            Format f = rnd.nextBoolean() ? Format.NCHW : Format.NHWC;
            Conv2d conv = Conv2d.builder().format(f).stride(sh, sw).padding(pad[0], pad[1], pad[2], pad[3])
                    .dilation(dh, dw).build();
            int[] x = f == Format.NCHW ? new int[] {2, 3, h, w} : new int[] {2, h, w, 3};
            int[] wt = f == Format.NCHW ? new int[] {4, 3, r, s} : new int[] {4, r, s, 3};
            boolean fits = h + pad[0] + pad[2] >= dh * (r - 1) + 1 && w + pad[1] + pad[3] >= dw * (s - 1) + 1;
            if (!fits) {
                IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                        () -> conv.problem(x, wt, DType.FLOAT32));
                assertTrue(e.getMessage().startsWith("w:"), e.getMessage());
                continue;
            }
            Conv2dProblem p = conv.problem(x, wt, DType.FLOAT32);
            String why = conv + " H=" + h + " W=" + w + " R=" + r + " S=" + s;
            assertEquals(countOutputs(h, pad[0], pad[2], r, sh, dh), p.p(), why);
            assertEquals(countOutputs(w, pad[1], pad[3], s, sw, dw), p.q(), why);
            assertArrayEquals(x, p.xShape());
            assertArrayEquals(wt, p.wShape());
        }
    }

    @Test
    void layoutsGroupsAndFlops() {
        Conv2d nchw = Conv2d.builder().groups(2).padding(1).build();
        Conv2dProblem p = nchw.problem(new int[] {3, 4, 6, 5}, new int[] {6, 2, 3, 3}, DType.BFLOAT16);
        assertArrayEquals(new int[] {3, 6, 6, 5}, p.yShape());
        assertEquals(2, p.cPerGroup());
        assertEquals(3, p.kPerGroup());
        assertFalse(p.depthwise());
        assertEquals(DType.BFLOAT16, p.dtype());
        assertEquals(2.0 * 3 * 6 * 2 * 3 * 3 * 6 * 5, p.flops());

        Conv2d nhwc = Conv2d.builder().format(Format.NHWC).groups(4).stride(2).build();
        Conv2dProblem d = nhwc.problem(new int[] {1, 9, 7, 4}, new int[] {4, 3, 3, 1}, DType.FLOAT32);
        assertTrue(d.depthwise());
        assertArrayEquals(new int[] {1, 4, 3, 4}, d.yShape());
        assertArrayEquals(new int[] {4, 3, 3, 1}, d.wShape());

        Conv2dProblem empty = Conv2d.builder().build().problem(new int[] {0, 3, 5, 5}, new int[] {2, 3, 3, 3}, DType.FLOAT32);
        assertEquals(0, empty.n(), "a batch of zero is a valid problem");
        assertArrayEquals(new int[] {0, 2, 3, 3}, empty.yShape());
    }

    @Test
    void shapeErrorsNameTheTensor() {
        Conv2d conv = Conv2d.builder().groups(2).build();
        assertStarts("x:", () -> conv.problem(new int[] {1, 4, 5}, new int[] {2, 2, 3, 3}, DType.FLOAT32));
        assertStarts("w:", () -> conv.problem(new int[] {1, 4, 5, 5}, new int[] {2, 2, 3}, DType.FLOAT32));
        assertStarts("x:", () -> conv.problem(new int[] {1, 3, 5, 5}, new int[] {2, 1, 3, 3}, DType.FLOAT32));
        assertStarts("w:", () -> conv.problem(new int[] {1, 4, 5, 5}, new int[] {3, 2, 3, 3}, DType.FLOAT32));
        assertStarts("w:", () -> conv.problem(new int[] {1, 4, 5, 5}, new int[] {2, 4, 3, 3}, DType.FLOAT32));
        assertStarts("x:", () -> conv.problem(new int[] {1, 4, 0, 5}, new int[] {2, 2, 3, 3}, DType.FLOAT32));
        assertStarts("w:", () -> conv.problem(new int[] {1, 4, 5, 5}, new int[] {2, 2, 0, 3}, DType.FLOAT32));
    }

    private static void assertStarts(String prefix, Runnable r) {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, r::run);
        assertTrue(e.getMessage().startsWith(prefix), e.getMessage());
    }
}
