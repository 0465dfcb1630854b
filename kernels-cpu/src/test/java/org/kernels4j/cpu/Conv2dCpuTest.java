package org.kernels4j.cpu;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.Random;
import java.util.stream.IntStream;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.kernels4j.Conv2d;
import org.kernels4j.Conv2d.Format;
import org.kernels4j.Stream;
import org.kernels4j.Tensor;
import org.kernels4j.spi.Conv2dProblem;

class Conv2dCpuTest {

    /** Index of activation element (n, c, h, w) in this layout. */
    static int act(Format f, int n, int c, int h, int w, int cs, int hs, int ws) {
        return f == Format.NCHW ? ((n * cs + c) * hs + h) * ws + w : ((n * hs + h) * ws + w) * cs + c;
    }

    /** Index of filter element (k, c, r, s) in this layout. */
    static int filt(Format f, int k, int c, int r, int s, int cg, int rs, int ss) {
        return f == Format.NCHW ? ((k * cg + c) * rs + r) * ss + s : ((k * rs + r) * ss + s) * cg + c;
    }

    /** Float64 convolution: {y, dx, dw, db} from x, w, bias (may be null) and dy. */
    static double[][] reference(Conv2dProblem p, float[] x, float[] w, float[] bias, float[] dy) {
        Format f = p.format();
        double[] y = new double[p.n() * p.k() * p.p() * p.q()];
        double[] dx = new double[x.length];
        double[] dw = new double[w.length];
        double[] db = new double[p.k()];
        int cg = p.cPerGroup();
        int kg = p.kPerGroup();
        for (int n = 0; n < p.n(); n++) {
            for (int k = 0; k < p.k(); k++) {
                int g = k / kg;
                for (int pp = 0; pp < p.p(); pp++) {
                    for (int q = 0; q < p.q(); q++) {
                        int yi = act(f, n, k, pp, q, p.k(), p.p(), p.q());
                        double acc = bias == null ? 0 : bias[k];
                        double d = dy[yi];
                        db[k] += d;
                        for (int c = 0; c < cg; c++) {
                            for (int r = 0; r < p.r(); r++) {
                                int ih = pp * p.strideH() - p.padTop() + r * p.dilationH();
                                if (ih < 0 || ih >= p.h()) {
                                    continue;
                                }
                                for (int s = 0; s < p.s(); s++) {
                                    int iw = q * p.strideW() - p.padLeft() + s * p.dilationW();
                                    if (iw < 0 || iw >= p.w()) {
                                        continue;
                                    }
                                    int xi = act(f, n, g * cg + c, ih, iw, p.c(), p.h(), p.w());
                                    int wi = filt(f, k, c, r, s, cg, p.r(), p.s());
                                    acc += (double) w[wi] * x[xi];
                                    dx[xi] += w[wi] * d;
                                    dw[wi] += x[xi] * d;
                                }
                            }
                        }
                        y[yi] = acc;
                    }
                }
            }
        }
        return new double[][] {y, dx, dw, db};
    }

    @ParameterizedTest(name = "{0} N={1} C={2} {3}x{4} K={5} {6}x{7} stride {8},{9} pad {10},{11},{12},{13} dil {14},{15} g={16} bias={17}")
    @CsvSource({
            "NCHW, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 1, 1, 1, false",
            "NCHW, 2, 3, 7, 5, 4, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, true",
            "NHWC, 2, 3, 7, 5, 4, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, true",
            "NCHW, 1, 4, 9, 11, 6, 3, 2, 2, 3, 1, 0, 2, 1, 1, 2, 2, true",
            "NHWC, 1, 4, 9, 11, 6, 3, 2, 2, 3, 1, 0, 2, 1, 1, 2, 2, true",
            "NCHW, 2, 8, 13, 13, 8, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 8, true",
            "NHWC, 2, 8, 13, 13, 8, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 8, true",
            "NCHW, 1, 5, 12, 10, 5, 3, 3, 2, 2, 1, 2, 0, 1, 2, 1, 5, false",
            "NHWC, 1, 5, 12, 10, 5, 3, 3, 2, 2, 1, 2, 0, 1, 2, 1, 5, true",
            "NCHW, 1, 32, 6, 7, 100, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, true",
            "NHWC, 1, 32, 6, 7, 100, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, true",
            "NCHW, 2, 30, 17, 19, 40, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, true",
            "NHWC, 2, 30, 17, 19, 40, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, false",
            "NCHW, 1, 3, 40, 41, 5, 1, 1, 1, 1, 0, 0, 0, 0, 1, 1, 1, true",
            "NHWC, 1, 3, 40, 41, 5, 1, 1, 1, 1, 0, 0, 0, 0, 1, 1, 1, true",
            "NCHW, 1, 4, 9, 9, 3, 1, 1, 2, 2, 0, 0, 0, 0, 1, 1, 1, true",
            "NHWC, 1, 4, 9, 9, 3, 1, 1, 3, 2, 1, 0, 0, 1, 1, 1, 1, true",
            "NCHW, 2, 9, 8, 6, 6, 2, 3, 1, 2, 0, 1, 1, 0, 1, 1, 3, true",
            "NHWC, 2, 9, 8, 6, 6, 2, 3, 1, 2, 0, 1, 1, 0, 1, 1, 3, true",
            "NCHW, 0, 3, 5, 5, 4, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, true",
            "NHWC, 0, 3, 5, 5, 4, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, true",
            "NCHW, 1, 2, 3, 3, 2, 5, 5, 1, 1, 2, 2, 2, 2, 1, 1, 1, true",
            "NHWC, 2, 16, 14, 14, 16, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1, 16, true",
            "NCHW, 1, 6, 11, 9, 6, 3, 2, 1, 1, 2, 0, 1, 3, 2, 3, 6, true",
            "NCHW, 1, 4, 6, 6, 4, 3, 3, 1, 1, 3, 3, 0, 0, 1, 1, 4, false",
            "NCHW, 1, 4, 6, 6, 5, 3, 3, 1, 1, 3, 3, 0, 0, 1, 1, 1, true",
            "NHWC, 1, 4, 6, 6, 5, 3, 3, 1, 1, 3, 3, 0, 0, 1, 1, 1, true",
            "NCHW, 1, 6, 11, 9, 12, 3, 2, 1, 1, 2, 0, 1, 3, 2, 3, 3, true",
            // 3x3 stride 1 (Winograd) with padding beyond the filter: backward-data crops dy (2 - pad < 0)
            "NCHW, 2, 5, 9, 8, 6, 3, 3, 1, 1, 4, 5, 1, 0, 1, 1, 1, true",
            // odd output sizes (half tiles) and groups on the Winograd path
            "NCHW, 2, 6, 7, 9, 4, 3, 3, 1, 1, 1, 0, 0, 1, 1, 1, 2, true",
            // stride-2 rows long enough for the vector split into column phases (whole vectors and a tail)
            "NCHW, 2, 3, 9, 45, 4, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1, 1, true",
            "NCHW, 1, 2, 7, 40, 3, 3, 3, 2, 2, 0, 0, 0, 0, 1, 1, 1, false",
            // stride-2 backward-data with both column phases of a row phase in one task (even width, groups)
            "NCHW, 2, 4, 10, 36, 6, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1, 2, true",
            // ... in several blocks of positions per row phase, taken block by block (even height: as many blocks in
            // each row phase) or phase by phase (odd height: 31 and 30 rows)
            "NCHW, 2, 8, 60, 36, 6, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1, 1, true",
            "NCHW, 2, 8, 61, 36, 6, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1, 1, false",
            // depthwise 3x3 "same" read in place: rows with an inner vector, and a row just over one vector
            "NCHW, 2, 3, 5, 28, 3, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 3, true",
            "NCHW, 2, 2, 4, 9, 2, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 2, false",
            // depthwise planes handed out in blocks: a last block that is not full
            "NCHW, 3, 7, 6, 10, 7, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 7, true",
            // filters one column wide: products written straight into y, tasks and panels across images (panels
            // where one image ends and the next begins, through a scratch tile), per group
            "NCHW, 3, 6, 5, 7, 9, 1, 1, 1, 1, 0, 0, 0, 0, 1, 1, 3, true",
            "NCHW, 2, 4, 9, 10, 5, 3, 1, 1, 1, 1, 0, 1, 0, 1, 1, 1, true",
            "NCHW, 2, 24, 14, 14, 40, 1, 1, 1, 1, 0, 0, 0, 0, 1, 1, 1, false",
            // A read in place in several row and depth blocks (more than MC = 96 rows, more than KC = 256 deep; the
            // scalar path copies A's columns once per product for all of them)
            "NCHW, 1, 32, 9, 11, 100, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1, 1, true",
            "NCHW, 1, 100, 8, 9, 32, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1, 1, true",
            "NCHW, 1, 20, 5, 6, 130, 1, 1, 1, 1, 0, 0, 0, 0, 1, 1, 1, true",
            // backward-filter with a plane per filter entry and at least as many filters as entries (dy in place,
            // xᵀ packed): a partial last panel wider and narrower than a vector, padded and strided planes, images
            // packed in two blocks (64 groups of 2 channels, 3000 pixels: 4.6 M floats of panels an image), a 3 × 3
            // filter at stride 3 (each tap its own phase)
            "NCHW, 2, 40, 7, 9, 56, 1, 1, 1, 1, 0, 0, 0, 0, 1, 1, 1, true",
            "NCHW, 3, 52, 4, 5, 60, 1, 1, 1, 1, 0, 0, 0, 0, 1, 1, 2, true",
            "NCHW, 2, 10, 9, 11, 12, 1, 1, 2, 2, 1, 1, 1, 1, 1, 1, 1, true",
            "NCHW, 2, 128, 50, 60, 128, 1, 1, 1, 1, 0, 0, 0, 0, 1, 1, 64, true",
            "NCHW, 1, 2, 12, 12, 20, 3, 3, 3, 3, 0, 0, 0, 0, 1, 1, 1, true",
            // strided forward in bands of output rows: dilated filter rows two band rows deep, a stride of 3 (every
            // row phase its own filter row), bands of several rows with a shorter last one
            "NCHW, 2, 6, 23, 20, 7, 3, 3, 2, 2, 1, 1, 1, 1, 2, 2, 1, true",
            "NCHW, 1, 5, 31, 29, 9, 3, 3, 3, 3, 1, 1, 1, 1, 1, 1, 1, true",
            "NCHW, 1, 3, 120, 14, 4, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1, 1, false"})
    void allPassesMatchFloat64(Format format, int n, int c, int h, int w, int k, int r, int s, int sh, int sw, int pt,
                               int pl, int pb, int pr, int dh, int dw, int groups, boolean withBias) {
        Conv2d conv = Conv2d.builder().format(format).stride(sh, sw).padding(pt, pl, pb, pr).dilation(dh, dw)
                .groups(groups).build();
        int[] xs = format == Format.NCHW ? new int[] {n, c, h, w} : new int[] {n, h, w, c};
        int[] ws = format == Format.NCHW ? new int[] {k, c / groups, r, s} : new int[] {k, r, s, c / groups};
        Conv2dProblem p = conv.problem(xs, ws, org.kernels4j.DType.FLOAT32);
        Random rnd = new Random(n * 7919L + c * 104729L + h * 31L + w + k * 17L + sh + groups);
        float[] x = Check.random(rnd, n * c * h * w);
        float[] wt = Check.random(rnd, k * (c / groups) * r * s);
        float[] bias = withBias ? Check.random(rnd, k) : null;
        float[] dy = Check.random(rnd, n * k * p.p() * p.q());
        double[][] ref = reference(p, x, wt, bias, dy);
        Stream st = Check.device().defaultStream();
        try (Tensor tx = Check.upload(x, xs); Tensor tw = Check.upload(wt, ws);
             Tensor tb = bias == null ? null : Check.upload(bias, k); Tensor ty = Check.poisoned(p.yShape());
             Tensor tdy = Check.upload(dy, p.yShape()); Tensor tdx = Check.poisoned(xs); Tensor tdw = Check.poisoned(ws);
             Tensor tdb = Check.poisoned(k)) {
            conv.forward(st, tx, tw, tb, ty);
            Check.close("y", ref[0], ty);
            conv.backwardData(st, tdy, tw, tdx);
            Check.close("dx", ref[1], tdx);
            conv.backwardFilter(st, tdy, tx, tdw, withBias ? tdb : null);
            Check.close("dw", ref[2], tdw);
            if (withBias) {
                Check.close("db", ref[3], tdb);
            }
        }
    }

    /**
     * The 3 × 3 stride-2 forward by F(4×4, 2×2) ({@link Conv2dWinogradStride2}, {@code WINOGRAD = 2}; 3, the default,
     * takes it too):
     * outputs not a multiple of 4 (16 × 19), tile rows shorter than a vector (5) and longer (9), asymmetric padding,
     * groups, output channels past a panel, padding wider than the rows' phases reach, panels that span images,
     * several tasks, a batch of none.
     */
    @ParameterizedTest(name = "{0} N={1} C={2} {3}x{4} K={5} pad {10},{11},{12},{13} g={16} bias={17}")
    @CsvSource({
            "NCHW, 2, 5, 31, 37, 7, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1, 1, true",
            "NCHW, 1, 3, 40, 71, 30, 3, 3, 2, 2, 0, 1, 2, 1, 1, 1, 1, false",
            "NCHW, 3, 8, 24, 24, 6, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1, 2, true",
            "NCHW, 1, 20, 17, 17, 50, 3, 3, 2, 2, 0, 0, 0, 0, 1, 1, 1, true",
            "NCHW, 1, 4, 12, 13, 3, 3, 3, 2, 2, 9, 10, 9, 10, 1, 1, 1, true",
            "NCHW, 3, 4, 57, 57, 5, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1, 1, true",
            "NCHW, 0, 4, 57, 57, 5, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1, 1, true"})
    void strideTwoWinogradMatchesFloat64(Format format, int n, int c, int h, int w, int k, int r, int s, int sh,
                                         int sw, int pt, int pl, int pb, int pr, int dh, int dw, int groups,
                                         boolean withBias) {
        Conv2dProblem p = Conv2d.builder().format(format).stride(sh, sw).padding(pt, pl, pb, pr).groups(groups).build()
                .problem(new int[] {n, c, h, w}, new int[] {k, c / groups, r, s}, org.kernels4j.DType.FLOAT32);
        assertTrue(Conv2dWinogradStride2.applies(p), "the shape takes the stride-2 Winograd");
        try (var scope = org.kernels4j.tuning.Tuning.scoped("cpu.conv2d.forward",
                org.kernels4j.tuning.Parameters.of("WINOGRAD", Conv2dCpu.WINOGRAD_WITH_STRIDE_2))) {
            allPassesMatchFloat64(format, n, c, h, w, k, r, s, sh, sw, pt, pl, pb, pr, dh, dw, groups, withBias);
        }
    }

    /**
     * The 3 × 3 stride-1 forward and backward-data by F(4×4, 3×3) ({@link Conv2dWinograd4x4}, {@code WINOGRAD = 3},
     * the default): outputs not a multiple of 4, tile rows shorter than a vector (3 to 6 tiles) and longer (18),
     * asymmetric padding and padding beyond the filter above and left (backward-data crops dy's rows and columns),
     * groups, output channels past a register tile and past a panel, input channels past a vector (the filter
     * transforms' tail), panels that span images, several tasks, a batch of none.
     */
    @ParameterizedTest(name = "{0} N={1} C={2} {3}x{4} K={5} pad {10},{11},{12},{13} g={16} bias={17}")
    @CsvSource({
            "NCHW, 2, 5, 7, 9, 4, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, true",
            "NCHW, 1, 20, 19, 70, 50, 3, 3, 1, 1, 0, 1, 2, 1, 1, 1, 1, false",
            "NCHW, 3, 8, 16, 16, 6, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 2, true",
            "NCHW, 1, 17, 13, 13, 9, 3, 3, 1, 1, 3, 2, 0, 4, 1, 1, 1, true",
            "NCHW, 2, 6, 11, 10, 7, 3, 3, 1, 1, 1, 3, 2, 1, 1, 1, 1, true",
            "NCHW, 4, 33, 22, 21, 70, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, true",
            "NCHW, 0, 4, 12, 12, 5, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, true"})
    void winograd4x4MatchesFloat64(Format format, int n, int c, int h, int w, int k, int r, int s, int sh, int sw,
                                   int pt, int pl, int pb, int pr, int dh, int dw, int groups, boolean withBias) {
        Conv2dProblem p = Conv2d.builder().format(format).padding(pt, pl, pb, pr).groups(groups).build()
                .problem(new int[] {n, c, h, w}, new int[] {k, c / groups, r, s}, org.kernels4j.DType.FLOAT32);
        assertTrue(Conv2dWinograd4x4.applies(p), "the shape takes F(4x4, 3x3)");
        assertTrue(Conv2dWinograd4x4.appliesToData(p), "the shape's backward-data takes F(4x4, 3x3)");
        try (var forward = org.kernels4j.tuning.Tuning.scoped("cpu.conv2d.forward",
                org.kernels4j.tuning.Parameters.of("WINOGRAD", Conv2dCpu.WINOGRAD_4X4));
             var data = org.kernels4j.tuning.Tuning.scoped("cpu.conv2d.backward-data",
                org.kernels4j.tuning.Parameters.of("WINOGRAD", Conv2dCpu.WINOGRAD_4X4))) {
            allPassesMatchFloat64(format, n, c, h, w, k, r, s, sh, sw, pt, pl, pb, pr, dh, dw, groups, withBias);
        }
    }

    /** The stride-1 F(2×2, 3×3) of forward and backward-data ({@code WINOGRAD = 1}, the tuner's) on the same shapes. */
    @ParameterizedTest(name = "{0} N={1} C={2} {3}x{4} K={5} pad {10},{11},{12},{13} g={16} bias={17}")
    @CsvSource({
            "NCHW, 2, 5, 7, 9, 4, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, true",
            "NCHW, 1, 20, 19, 70, 50, 3, 3, 1, 1, 0, 1, 2, 1, 1, 1, 1, false",
            "NCHW, 3, 8, 16, 16, 6, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 2, true",
            "NCHW, 1, 17, 13, 13, 9, 3, 3, 1, 1, 3, 2, 0, 4, 1, 1, 1, true"})
    void winograd2x2MatchesFloat64(Format format, int n, int c, int h, int w, int k, int r, int s, int sh, int sw,
                                   int pt, int pl, int pb, int pr, int dh, int dw, int groups, boolean withBias) {
        try (var forward = org.kernels4j.tuning.Tuning.scoped("cpu.conv2d.forward",
                org.kernels4j.tuning.Parameters.of("WINOGRAD", 1));
             var data = org.kernels4j.tuning.Tuning.scoped("cpu.conv2d.backward-data",
                org.kernels4j.tuning.Parameters.of("WINOGRAD", 1))) {
            allPassesMatchFloat64(format, n, c, h, w, k, r, s, sh, sw, pt, pl, pb, pr, dh, dw, groups, withBias);
        }
    }

    /**
     * F(4×4, 3×3) on conv-r28's channels (128 in, 128 out, 28 × 28, one image), forward and backward-data: its error
     * against float64, the largest of the Winograd transforms', stays within the suite's fp32 rule.
     */
    @Test
    void winograd4x4AtConvR28Depth() {
        allPassesMatchFloat64(Format.NCHW, 1, 128, 28, 28, 128, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, true);
    }

    /** F(4×4, 3×3) takes NCHW 3 × 3 stride 1 where its tiles multiply less than F(2×2, 3×3)'s and U stays bounded. */
    @Test
    void winograd4x4WhereItSavesMultiplies() {
        Conv2d same = Conv2d.builder().padding(1, 1, 1, 1).build();
        org.kernels4j.DType f32 = org.kernels4j.DType.FLOAT32;
        assertTrue(Conv2dWinograd4x4.applies(same.problem(new int[] {8, 64, 56, 56}, new int[] {64, 64, 3, 3}, f32)),
                "conv-r56");
        assertTrue(Conv2dWinograd4x4.applies(same.problem(new int[] {8, 128, 28, 28}, new int[] {128, 128, 3, 3}, f32)),
                "conv-r28");
        assertFalse(Conv2dWinograd4x4.applies(same.problem(new int[] {1, 4, 2, 2}, new int[] {4, 4, 3, 3}, f32)),
                "2 x 2 outputs: 16 computed by one 4 x 4 tile");
        assertFalse(Conv2dWinograd4x4.applies(same.problem(new int[] {1, 1024, 14, 14}, new int[] {1024, 1024, 3, 3},
                f32)), "1024 x 1024 channels: U of 38M floats");
        assertFalse(Conv2dWinograd4x4.applies(Conv2d.builder().padding(1, 1, 1, 1).format(Format.NHWC).build()
                .problem(new int[] {8, 56, 56, 64}, new int[] {64, 3, 3, 64}, f32)), "NHWC");
        assertFalse(Conv2dWinograd4x4.applies(Conv2d.builder().padding(2, 2, 2, 2).dilation(2, 2).build()
                .problem(new int[] {8, 64, 56, 56}, new int[] {64, 64, 3, 3}, f32)), "dilated");
    }

    /**
     * The 3 × 3 stride-2 forward by the direct method (the tuner's {@code WINOGRAD = 1}; the default takes most of
     * these shapes by {@link Conv2dWinogradStride2}): rows long enough for the vector split into column phases, bands
     * of several rows with a shorter last one, A read in place in several row and depth blocks, and the Winograd
     * test's shapes.
     */
    @ParameterizedTest(name = "{0} N={1} C={2} {3}x{4} K={5} pad {10},{11},{12},{13} g={16} bias={17}")
    @CsvSource({
            "NCHW, 2, 3, 9, 45, 4, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1, 1, true",
            "NCHW, 1, 2, 7, 40, 3, 3, 3, 2, 2, 0, 0, 0, 0, 1, 1, 1, false",
            "NCHW, 1, 3, 120, 14, 4, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1, 1, false",
            "NCHW, 2, 8, 60, 36, 6, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1, 1, true",
            "NCHW, 1, 32, 9, 11, 100, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1, 1, true",
            "NCHW, 1, 100, 8, 9, 32, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1, 1, true",
            "NCHW, 2, 5, 31, 37, 7, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1, 1, true",
            "NCHW, 1, 3, 40, 71, 30, 3, 3, 2, 2, 0, 1, 2, 1, 1, 1, 1, false",
            "NCHW, 3, 8, 24, 24, 6, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1, 2, true",
            "NCHW, 1, 20, 17, 17, 50, 3, 3, 2, 2, 0, 0, 0, 0, 1, 1, 1, true",
            "NCHW, 1, 4, 12, 13, 3, 3, 3, 2, 2, 9, 10, 9, 10, 1, 1, 1, true",
            "NCHW, 3, 4, 57, 57, 5, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1, 1, true"})
    void strideTwoDirectMatchesFloat64(Format format, int n, int c, int h, int w, int k, int r, int s, int sh,
                                       int sw, int pt, int pl, int pb, int pr, int dh, int dw, int groups,
                                       boolean withBias) {
        try (var scope = org.kernels4j.tuning.Tuning.scoped("cpu.conv2d.forward",
                org.kernels4j.tuning.Parameters.of("WINOGRAD", 1))) {
            allPassesMatchFloat64(format, n, c, h, w, k, r, s, sh, sw, pt, pl, pb, pr, dh, dw, groups, withBias);
        }
    }

    @Test
    void largeEnoughToSplitEveryLoopOverThreads() {
        allPassesMatchFloat64(Format.NCHW, 2, 64, 23, 29, 72, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, true);
        allPassesMatchFloat64(Format.NHWC, 2, 64, 23, 29, 72, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, true);
        allPassesMatchFloat64(Format.NCHW, 2, 64, 30, 30, 64, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 64, true);
        allPassesMatchFloat64(Format.NHWC, 2, 64, 30, 30, 64, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 64, true);
    }

    /** The stride-2 Winograd forward takes NCHW 3 × 3 stride 2 where its tiles waste little and U stays bounded. */
    @Test
    void strideTwoWinogradWhereItSavesMultiplies() {
        Conv2d s2 = Conv2d.builder().stride(2, 2).padding(1, 1, 1, 1).build();
        org.kernels4j.DType f32 = org.kernels4j.DType.FLOAT32;
        assertTrue(Conv2dWinogradStride2.applies(s2.problem(new int[] {8, 64, 56, 56}, new int[] {128, 64, 3, 3}, f32)),
                "conv-s2");
        assertFalse(Conv2dWinogradStride2.applies(s2.problem(new int[] {1, 4, 9, 9}, new int[] {4, 4, 3, 3}, f32)),
                "5 x 5 outputs: 64 computed");
        assertFalse(Conv2dWinogradStride2.applies(s2.problem(new int[] {1, 512, 28, 28}, new int[] {512, 512, 3, 3},
                f32)), "512 x 512 channels: U of 26M floats");
        assertFalse(Conv2dWinogradStride2.applies(Conv2d.builder().stride(2, 2).padding(1, 1, 1, 1)
                .format(Format.NHWC).build().problem(new int[] {8, 56, 56, 64}, new int[] {128, 3, 3, 64}, f32)), "NHWC");
        assertFalse(Conv2dWinogradStride2.applies(Conv2d.builder().stride(2, 1).padding(1, 1, 1, 1).build()
                .problem(new int[] {8, 64, 56, 56}, new int[] {128, 64, 3, 3}, f32)), "stride 2 x 1");
    }

    /** Backward-data's task order visits every task once, block by block when the phases have as many tasks. */
    @Test
    void phaseMajorOrderIsAPermutation() {
        int[][] firsts = {{0, 3, 6}, {0, 3, 5}, {0, 0, 4}, {0, 2, 4, 6, 8}, {0, 5}};
        for (int[] first : firsts) {
            int phases = first.length - 1;
            boolean[] seen = new boolean[first[phases]];
            for (int order = 0; order < first[phases]; order++) {
                int task = Conv2dCpu.phaseMajor(order, first, phases);
                assertFalse(seen[task], () -> "task visited twice: " + task);
                seen[task] = true;
            }
        }
        assertArrayEquals(new int[] {0, 3, 1, 4, 2, 5},
                IntStream.range(0, 6).map(o -> Conv2dCpu.phaseMajor(o, firsts[0], 2)).toArray());
        assertArrayEquals(new int[] {0, 1, 2, 3, 4},
                IntStream.range(0, 5).map(o -> Conv2dCpu.phaseMajor(o, firsts[1], 2)).toArray());
    }

    /**
     * Blocks of flat positions cover them all, in order, each starting on a panel and at least one panel long, and
     * no block more than one panel longer than another (except the last, which ends where the positions end).
     */
    @Test
    void blocksShareThePanelsOutEvenly() {
        int nr = MicroKernel.NR;
        for (int total : new int[] {1, nr - 1, nr, nr + 1, 1568, 8 * 196 + 5, 100_003}) {
            for (int per = nr; per <= 8 * nr; per += nr) {
                int blocks = (total + per - 1) / per;
                assertEquals(0, Conv2dCpu.blockStart(total, blocks, 0));
                assertEquals(total, Conv2dCpu.blockStart(total, blocks, blocks));
                int shortest = Integer.MAX_VALUE;
                int longest = 0;
                for (int blk = 0; blk < blocks; blk++) {
                    int from = Conv2dCpu.blockStart(total, blocks, blk);
                    int to = Conv2dCpu.blockStart(total, blocks, blk + 1);
                    assertEquals(0, from % nr, "block start on a panel");
                    assertTrue(to > from, () -> "empty block of " + total + " in " + blocks);
                    if (blk < blocks - 1) {
                        shortest = Math.min(shortest, to - from);
                        longest = Math.max(longest, to - from);
                    }
                }
                assertTrue(blocks < 2 || longest - shortest <= nr, "blocks of " + shortest + " to " + longest);
            }
        }
    }

    /**
     * The split of an input row into its even and odd elements, for every length up to a few vectors (shorter than a
     * vector, one and a half, whole vectors: each of the vector path's ways) and at an odd offset: every element in
     * its place, nothing written outside the two runs.
     */
    @Test
    void deinterleaveSplitsEveryLength() {
        Random rnd = new Random(7);
        for (int len = 0; len <= 40; len++) {
            float[] src = new float[2 * len + 3];
            for (int i = 0; i < src.length; i++) {
                src[i] = rnd.nextFloat();
            }
            float[] dst = new float[2 * len + 10];
            java.util.Arrays.fill(dst, -1f);
            int toEven = 2;
            int toOdd = len + 5;
            MicroKernel.deinterleave(src, 3, dst, toEven, toOdd, len);
            float[] want = new float[dst.length];
            java.util.Arrays.fill(want, -1f);
            for (int e = 0; e < len; e++) {
                want[toEven + e] = src[3 + 2 * e];
                want[toOdd + e] = src[3 + 2 * e + 1];
            }
            assertArrayEquals(want, dst, "length " + len);
        }
    }

    /** Winograd backward-filter takes the 3 × 3 stride-1 problems whose partials and task scratch stay bounded. */
    @org.junit.jupiter.api.Test
    void winogradBackwardFilterOnlyWhereItsScratchIsBounded() {
        Conv2d c = Conv2d.builder().padding(1, 1, 1, 1).build();
        org.kernels4j.DType f32 = org.kernels4j.DType.FLOAT32;
        org.junit.jupiter.api.Assertions.assertTrue(Conv2dWinograd.appliesToFilter(
                c.problem(new int[] {8, 128, 28, 28}, new int[] {128, 128, 3, 3}, f32), 96), "conv-r28");
        org.junit.jupiter.api.Assertions.assertTrue(Conv2dWinograd.appliesToFilter(
                c.problem(new int[] {1, 512, 7, 7}, new int[] {512, 512, 3, 3}, f32), 96), "512 channels");
        org.junit.jupiter.api.Assertions.assertFalse(Conv2dWinograd.appliesToFilter(
                c.problem(new int[] {1, 1024, 7, 7}, new int[] {1024, 1024, 3, 3}, f32), 96), "1024 channels");
        org.junit.jupiter.api.Assertions.assertFalse(Conv2dWinograd.appliesToFilter(
                c.problem(new int[] {1, 256, 8, 20000}, new int[] {256, 256, 3, 3}, f32), 96), "rows of 20000");
        org.junit.jupiter.api.Assertions.assertFalse(Conv2dWinograd.appliesToFilter(
                Conv2d.builder().stride(2, 2).padding(1, 1, 1, 1).build()
                        .problem(new int[] {8, 64, 56, 56}, new int[] {128, 64, 3, 3}, f32), 96), "stride 2");
    }
}
