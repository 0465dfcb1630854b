package org.kernels4j.reference;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.SplittableRandom;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.kernels4j.Conv2d;
import org.kernels4j.Conv2d.Format;
import org.kernels4j.DType;
import org.kernels4j.spi.Conv2dProblem;

class ReferenceConv2dTest {

    /** n, c, h, w, k, r, s, stride, padTop, padLeft, padBottom, padRight, dilation, groups. */
    private static Conv2dProblem problem(Format f, int... a) {
        Conv2d conv = Conv2d.builder().format(f).stride(a[7], Math.max(1, a[7] - 1)).padding(a[8], a[9], a[10], a[11])
                .dilation(a[12], 1).groups(a[13]).build();
        int cg = a[1] / a[13];
        int[] x = f == Format.NCHW ? new int[] {a[0], a[1], a[2], a[3]} : new int[] {a[0], a[2], a[3], a[1]};
        int[] w = f == Format.NCHW ? new int[] {a[4], cg, a[5], a[6]} : new int[] {a[4], a[5], a[6], cg};
        return conv.problem(x, w, DType.FLOAT32);
    }

    private static int count(int[] shape) {
        int n = 1;
        for (int d : shape) {
            n *= d;
        }
        return n;
    }

    /**
     * A second, differently written forward: the input copied into an explicitly zero-padded NCHW buffer,
     * then a correlation over it with no bounds checks.
     */
    private static double[] paddedForward(Conv2dProblem p, double[] x, double[] w, double[] bias) {
        int hp = p.h() + p.padTop() + p.padBottom();
        int wp = p.w() + p.padLeft() + p.padRight();
        boolean nchw = p.format() == Format.NCHW;
        double[] padded = new double[p.n() * p.c() * hp * wp];
        for (int n = 0; n < p.n(); n++) {
            for (int c = 0; c < p.c(); c++) {
                for (int i = 0; i < p.h(); i++) {
                    for (int j = 0; j < p.w(); j++) {
                        int src = nchw ? ((n * p.c() + c) * p.h() + i) * p.w() + j : ((n * p.h() + i) * p.w() + j) * p.c() + c;
                        padded[((n * p.c() + c) * hp + i + p.padTop()) * wp + j + p.padLeft()] = x[src];
                    }
                }
            }
        }
        double[] y = new double[count(p.yShape())];
        int cg = p.cPerGroup();
        int kg = p.kPerGroup();
        for (int n = 0; n < p.n(); n++) {
            for (int k = 0; k < p.k(); k++) {
                for (int i = 0; i < p.p(); i++) {
                    for (int j = 0; j < p.q(); j++) {
                        double acc = bias == null ? 0 : bias[k];
                        for (int c = 0; c < cg; c++) {
                            for (int r = 0; r < p.r(); r++) {
                                for (int s = 0; s < p.s(); s++) {
                                    int wi = nchw ? ((k * cg + c) * p.r() + r) * p.s() + s : ((k * p.r() + r) * p.s() + s) * cg + c;
                                    int ch = (k / kg) * cg + c;
                                    acc += w[wi] * padded[((n * p.c() + ch) * hp + i * p.strideH() + r * p.dilationH()) * wp
                                            + j * p.strideW() + s * p.dilationW()];
                                }
                            }
                        }
                        int yi = nchw ? ((n * p.k() + k) * p.p() + i) * p.q() + j : ((n * p.p() + i) * p.q() + j) * p.k() + k;
                        y[yi] = acc;
                    }
                }
            }
        }
        return y;
    }

    static final String SHAPES = """
            NCHW, 2,3,6,7,4,3,3,1,1,1,1,1,1,1
            NHWC, 2,3,6,7,4,3,3,1,1,1,1,1,1,1
            NCHW, 1,4,9,8,6,3,2,2,0,1,2,1,1,2
            NHWC, 1,4,9,8,6,3,2,2,0,1,2,1,1,2
            NCHW, 1,6,7,7,6,3,3,1,2,2,2,2,2,6
            NHWC, 2,4,5,6,8,1,1,3,0,0,0,0,1,4
            NCHW, 1,2,5,4,3,5,3,2,3,1,0,2,1,1
            NHWC, 0,3,4,4,2,3,3,1,1,1,1,1,1,1
            """;

    @ParameterizedTest
    @CsvSource(textBlock = SHAPES)
    void forwardMatchesAnExplicitlyPaddedCorrelation(Format f, int n, int c, int h, int w, int k, int r, int s,
                                                     int stride, int pt, int pl, int pb, int pr, int dil, int g) {
        Conv2dProblem p = problem(f, n, c, h, w, k, r, s, stride, pt, pl, pb, pr, dil, g);
        SplittableRandom rnd = new SplittableRandom(c * 7 + k);
        double[] x = FiniteDifferences.gaussian(rnd, count(p.xShape()));
        double[] wt = FiniteDifferences.gaussian(rnd, count(p.wShape()));
        double[] bias = FiniteDifferences.gaussian(rnd, p.k());
        assertArrayEquals(paddedForward(p, x, wt, bias), ReferenceConv2d.forward(p, x, wt, bias), 1e-12);
    }

    @ParameterizedTest
    @CsvSource(textBlock = SHAPES)
    void backwardsAreTheGradientsOfForward(Format f, int n, int c, int h, int w, int k, int r, int s,
                                           int stride, int pt, int pl, int pb, int pr, int dil, int g) {
        Conv2dProblem p = problem(f, n, c, h, w, k, r, s, stride, pt, pl, pb, pr, dil, g);
        SplittableRandom rnd = new SplittableRandom(c * 11 + k);
        double[] x = FiniteDifferences.gaussian(rnd, count(p.xShape()));
        double[] wt = FiniteDifferences.gaussian(rnd, count(p.wShape()));
        double[] bias = FiniteDifferences.gaussian(rnd, p.k());
        double[] dy = FiniteDifferences.gaussian(rnd, count(p.yShape()));
        double[] dx = ReferenceConv2d.backwardData(p, dy, wt);
        ReferenceConv2d.FilterGradients fg = ReferenceConv2d.backwardFilter(p, dy, x);
        FiniteDifferences.check(f + " dx", x, dx, dy, () -> ReferenceConv2d.forward(p, x, wt, bias));
        FiniteDifferences.check(f + " dw", wt, fg.dw(), dy, () -> ReferenceConv2d.forward(p, x, wt, bias));
        FiniteDifferences.check(f + " db", bias, fg.db(), dy, () -> ReferenceConv2d.forward(p, x, wt, bias));
    }

    @Test
    void layoutsAgreeAfterTransposition() {
        SplittableRandom rnd = new SplittableRandom(12);
        int[] a = {2, 4, 5, 6, 6, 3, 3, 2, 1, 0, 1, 2, 1, 2};
        Conv2dProblem pc = problem(Format.NCHW, a);
        Conv2dProblem pl = problem(Format.NHWC, a);
        double[] xc = FiniteDifferences.gaussian(rnd, count(pc.xShape()));
        double[] wc = FiniteDifferences.gaussian(rnd, count(pc.wShape()));
        double[] yc = ReferenceConv2d.forward(pc, xc, wc, null);
        double[] yl = ReferenceConv2d.forward(pl, toChannelsLast(xc, pc.xShape()), toChannelsLast(wc, pc.wShape()), null);
        assertArrayEquals(toChannelsLast(yc, pc.yShape()), yl, 1e-12);
    }

    /** [A, B, C, D] row-major to [A, C, D, B]. */
    private static double[] toChannelsLast(double[] t, int[] s) {
        double[] o = new double[t.length];
        for (int a = 0; a < s[0]; a++) {
            for (int b = 0; b < s[1]; b++) {
                for (int c = 0; c < s[2]; c++) {
                    for (int d = 0; d < s[3]; d++) {
                        o[((a * s[2] + c) * s[3] + d) * s[1] + b] = t[((a * s[1] + b) * s[2] + c) * s[3] + d];
                    }
                }
            }
        }
        return o;
    }

    @Test
    void identityFilterCopiesTheInput() {
        Conv2dProblem p = problem(Format.NCHW, 1, 3, 4, 5, 3, 1, 1, 1, 0, 0, 0, 0, 1, 1);
        double[] x = FiniteDifferences.gaussian(new SplittableRandom(1), 60);
        double[] id = {1, 0, 0, 0, 1, 0, 0, 0, 1};
        assertArrayEquals(x, ReferenceConv2d.forward(p, x, id, null));
    }

    @Test
    void emptyBatchGivesZeroFilterGradients() {
        Conv2dProblem p = problem(Format.NCHW, 0, 2, 4, 4, 3, 3, 3, 1, 1, 1, 1, 1, 1, 1);
        ReferenceConv2d.FilterGradients fg = ReferenceConv2d.backwardFilter(p, new double[0], new double[0]);
        assertArrayEquals(new double[54], fg.dw());
        assertArrayEquals(new double[3], fg.db());
        assertEquals(0, ReferenceConv2d.backwardData(p, new double[0], new double[54]).length);
    }

    @Test
    void wrongLengthsNameTheArgument() {
        Conv2dProblem p = problem(Format.NCHW, 1, 2, 4, 4, 3, 3, 3, 1, 1, 1, 1, 1, 1, 1);
        assertTrue(assertThrows(IllegalArgumentException.class,
                () -> ReferenceConv2d.forward(p, new double[31], new double[54], null)).getMessage().startsWith("x:"));
        assertTrue(assertThrows(IllegalArgumentException.class,
                () -> ReferenceConv2d.forward(p, new double[32], new double[54], new double[2])).getMessage().startsWith("bias:"));
        assertTrue(assertThrows(IllegalArgumentException.class,
                () -> ReferenceConv2d.backwardData(p, new double[47], new double[54])).getMessage().startsWith("dy:"));
        assertTrue(assertThrows(IllegalArgumentException.class,
                () -> ReferenceConv2d.backwardFilter(p, new double[48], null)).getMessage().startsWith("x:"));
    }
}
