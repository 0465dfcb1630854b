/*
 * 2-D convolution (cross-correlation), forward, backward-data and backward-filter, NCHW or NHWC (CONV_NHWC),
 * with stride, per-side padding, dilation and groups (kernels4j dialect).
 *
 * The three passes are implicit GEMMs over one tiled skeleton (conv_gemm_tile), each gathering its operands from
 * the tensors on the fly (no im2col buffer), per group g:
 *   forward         y[(img,op,oq), ko]  = sum_(ci,fr,fs)  x[img, ci, op*sh-pt+fr*dh, oq*sw-pl+fs*dw] * w[ko, ci, fr, fs]
 *   backward-data   dx[(img,ih,iw), ci] = sum_(ko,fr,fs)  dy[img, ko, (ih+pt-fr*dh)/sh, (iw+pl-fs*dw)/sw] * w[ko, ci, fr, fs]
 *                                          (terms whose division is not exact or falls outside dy are 0)
 *   backward-filter dw[ko, (ci,fr,fs)]  = sum_(img,op,oq) dy[img, ko, op, oq] * x[img, ci, ...]; split-K: the
 *                                          reduction is cut into `splits` ranges written to a float workspace
 *                                          and summed by conv_split_reduce (no atomics).
 * A workgroup computes a CONV_TM x CONV_TN tile of the GEMM; each work item a CONV_WM x CONV_WN block of it in
 * registers, from CONV_TK-deep slices of A and B staged in local memory. The reduction index runs in the order of
 * the filter's memory layout, and tile loads run along whichever GEMM dimension is contiguous in memory.
 * Depthwise convolutions (groups == C == K) use the direct kernels dw_*; the bias gradient is conv_bias_grad.
 */
#include "kernels4j.h"

#ifndef CONV_NHWC
#define CONV_NHWC 0
#endif
/* GEMM tile: rows (TM) x columns (TN) per workgroup, reduction slice TK, per-work-item block WM x WN. */
#ifndef CONV_TM
#define CONV_TM 64
#endif
#ifndef CONV_TN
#define CONV_TN 64
#endif
#ifndef CONV_TK
#define CONV_TK 16
#endif
#ifndef CONV_WM
#define CONV_WM 4
#endif
#ifndef CONV_WN
#define CONV_WN 4
#endif
/* Work items per workgroup of the reduction kernels (a power of two). */
#ifndef CONV_RED_WG
#define CONV_RED_WG 256
#endif

#define CONV_THREADS ((CONV_TM / CONV_WM) * (CONV_TN / CONV_WN))
#define CONV_FWD 0
#define CONV_DGRAD 1
#define CONV_WGRAD 2

typedef struct {
    int n, c, h, w, k, r, s, p, q, sh, sw, pt, pl, dh, dw, groups, cg, kg;
} conv_shape;

#define CONV_SHAPE_PARAMS int n, int c, int h, int w, int k, int r, int s, int p, int q, int sh, int sw, int pt, \
                          int pl, int dh, int dw, int groups

inline conv_shape conv_make_shape(CONV_SHAPE_PARAMS) {
    conv_shape z;
    z.n = n; z.c = c; z.h = h; z.w = w; z.k = k; z.r = r; z.s = s; z.p = p; z.q = q;
    z.sh = sh; z.sw = sw; z.pt = pt; z.pl = pl; z.dh = dh; z.dw = dw; z.groups = groups;
    z.cg = c / groups;
    z.kg = k / groups;
    return z;
}

/* Index of element (img, ch, y, x) of an activation tensor with `chans` channels of height hh and width ww. */
inline size_t conv_act(int img, int ch, int y, int x, int chans, int hh, int ww) {
#if CONV_NHWC
    return (((size_t) img * hh + y) * ww + x) * chans + ch;
#else
    return (((size_t) img * chans + ch) * hh + y) * ww + x;
#endif
}

/* Splits a filter-side reduction index into (channel, fr, fs), in the filter's memory order. */
inline int conv_split_kk(int kk, int chans, int r, int s, int* fr, int* fs) {
#if CONV_NHWC
    const int rs = kk / chans;
    *fr = rs / s;
    *fs = rs - *fr * s;
    return kk - rs * chans;
#else
    const int ch = kk / (r * s);
    const int rs = kk - ch * r * s;
    *fr = rs / s;
    *fs = rs - *fr * s;
    return ch;
#endif
}

/*
 * Gathers without divisions in the inner loop: a tile load's GEMM row and column stay fixed for a work item's load
 * slot across reduction steps, so their decompositions ("slots") are computed once; the reduction index of
 * each step is decomposed once per workgroup into a small table in local memory ("tab": three ints per index),
 * double-buffered so that the next step's table is written while the current one is read.
 *
 *   pass      A slot (row)                B slot (column)            table entry (reduction index)
 *   forward   img, op*sh-pt, oq*sw-pl     output channel             ci, fr, fs
 *   bwd-data  img, ih, iw                 input channel              ko, fr, fs
 *   bwd-filt  output channel              ci, fr*dh, fs*dw           img, op, oq
 * A negative first component marks a slot or index outside the problem: its elements are 0.
 */
inline void conv_slot_a(const int pass, conv_shape z, int row, int rows, int* s0, int* s1, int* s2) {
    *s0 = -1;
    *s1 = 0;
    *s2 = 0;
    if (row < 0 || row >= rows) {
        return;
    }
    if (pass == CONV_FWD) {
        const int img = row / (z.p * z.q);
        const int rem = row - img * (z.p * z.q);
        const int op = rem / z.q;
        *s0 = img;
        *s1 = op * z.sh - z.pt;
        *s2 = (rem - op * z.q) * z.sw - z.pl;
    } else if (pass == CONV_DGRAD) {
        const int img = row / (z.h * z.w);
        const int rem = row - img * (z.h * z.w);
        const int ih = rem / z.w;
        *s0 = img;
        *s1 = ih;
        *s2 = rem - ih * z.w;
    } else {
        *s0 = row;
    }
}

inline void conv_slot_b(const int pass, conv_shape z, int col, int cols, int* s0, int* s1, int* s2) {
    *s0 = -1;
    *s1 = 0;
    *s2 = 0;
    if (col < 0 || col >= cols) {
        return;
    }
    if (pass == CONV_WGRAD) {
        int fr;
        int fs;
        *s0 = conv_split_kk(col, z.cg, z.r, z.s, &fr, &fs);
        *s1 = fr * z.dh;
        *s2 = fs * z.dw;
    } else {
        *s0 = col;
    }
}

inline void conv_table_entry(const int pass, conv_shape z, int idx, int end, K4J_LOCAL_PTR int* t) {
    if (idx >= end) {
        t[0] = -1;
        t[1] = 0;
        t[2] = 0;
    } else if (pass == CONV_WGRAD) {
        const int img = idx / (z.p * z.q);
        const int rem = idx - img * (z.p * z.q);
        const int op = rem / z.q;
        t[0] = img;
        t[1] = op;
        t[2] = rem - op * z.q;
    } else {
        int fr;
        int fs;
        t[0] = conv_split_kk(idx, pass == CONV_FWD ? z.cg : z.kg, z.r, z.s, &fr, &fs);
        t[1] = fr;
        t[2] = fs;
    }
}

/* x at input row ih, column iw of channel ch, 0 in the padding. */
inline float conv_x(__global const k4j_t* x, conv_shape z, int img, int ch, int ih, int iw) {
    return ih >= 0 && ih < z.h && iw >= 0 && iw < z.w ? k4j_load(x, conv_act(img, ch, ih, iw, z.c, z.h, z.w)) : 0.0f;
}

/* Element of A for slot (s0, s1, s2) and table entry (t0, t1, t2). */
inline float conv_elem_a(const int pass, __global const k4j_t* src, conv_shape z, int g,
                         int s0, int s1, int s2, int t0, int t1, int t2) {
    if (s0 < 0 || t0 < 0) {
        return 0.0f;
    }
    if (pass == CONV_FWD) {
        return conv_x(src, z, s0, g * z.cg + t0, s1 + t1 * z.dh, s2 + t2 * z.dw);
    } else if (pass == CONV_DGRAD) {
        // output row op reads input row ih through tap fr when op * sh = ih + pt - fr * dh
        int op = s1 + z.pt - t1 * z.dh;
        int oq = s2 + z.pl - t2 * z.dw;
        if (op < 0 || oq < 0) {
            return 0.0f;
        }
        if (z.sh > 1) {
            if (op % z.sh != 0) {
                return 0.0f;
            }
            op /= z.sh;
        }
        if (z.sw > 1) {
            if (oq % z.sw != 0) {
                return 0.0f;
            }
            oq /= z.sw;
        }
        if (op >= z.p || oq >= z.q) {
            return 0.0f;
        }
        return k4j_load(src, conv_act(s0, g * z.kg + t0, op, oq, z.k, z.p, z.q));
    } else {
        return k4j_load(src, conv_act(t0, g * z.kg + s0, t1, t2, z.k, z.p, z.q));
    }
}

/* Element of B for slot (s0, s1, s2), table entry (t0, t1, t2) and reduction index kk. */
inline float conv_elem_b(const int pass, __global const k4j_t* src, conv_shape z, int g,
                         int s0, int s1, int s2, int t0, int t1, int t2, int kk) {
    if (s0 < 0 || t0 < 0) {
        return 0.0f;
    }
    if (pass == CONV_FWD) {
        return k4j_load(src, (size_t) (g * z.kg + s0) * (size_t) (z.cg * z.r * z.s) + kk);
    } else if (pass == CONV_DGRAD) {
#if CONV_NHWC
        return k4j_load(src, (((size_t) (g * z.kg + t0) * z.r + t1) * z.s + t2) * z.cg + s0);
#else
        return k4j_load(src, (((size_t) (g * z.kg + t0) * z.cg + s0) * z.r + t1) * z.s + t2);
#endif
    } else {
        return conv_x(src, z, t0, g * z.cg + s0, t1 * z.sh - z.pt + s1, t2 * z.sw - z.pl + s2);
    }
}

/* Tile loads per work item. */
#define CONV_LA ((CONV_TM * CONV_TK + CONV_THREADS - 1) / CONV_THREADS)
#define CONV_LB ((CONV_TN * CONV_TK + CONV_THREADS - 1) / CONV_THREADS)

/*
 * acc += A[m0 .. m0+TM, red0 .. red1) * B[red0 .. red1, n0 .. n0+TN) for this work item's block, in `steps` slices
 * of CONV_TK from red0 (steps * CONV_TK >= red1 - red0; indices from red1 on count as 0). a_kfast / b_kfast choose
 * which index of a tile load runs across neighbouring work items (the one contiguous in memory).
 * tab: 2 * 3 * CONV_TK ints of local memory.
 *
 * The loop holds barriers, so its trip count must be the same for every work item; it is also kept a function
 * of kernel arguments only (`steps`): with the loop running from red0 to red1, and red0 the split index
 * (get_group_id(2) modulo the kernel argument `splits`) times the chunk, PoCL 5.0 (LLVM 16) let no work item
 * past the loop, and backward-filter wrote nothing (red0 from the group id without the division was fine).
 */
inline void conv_gemm_tile(const int pass, const int a_kfast, const int b_kfast,
                           __global const k4j_t* a_src, __global const k4j_t* b_src, conv_shape z, int g,
                           int m0, int n0, int rows, int cols, int red0, int red1, int steps,
                           K4J_LOCAL_PTR float* as, K4J_LOCAL_PTR float* bs, K4J_LOCAL_PTR int* tab,
                           float acc[CONV_WM][CONV_WN]) {
    const int lid = (int) get_local_id(0);
    const int tm = lid % (CONV_TM / CONV_WM);
    const int tn = lid / (CONV_TM / CONV_WM);
    int a_at[CONV_LA];
    int a_kk[CONV_LA];
    int a0[CONV_LA];
    int a1[CONV_LA];
    int a2[CONV_LA];
    for (int i = 0; i < CONV_LA; ++i) {
        const int e = lid + i * CONV_THREADS;
        const int kk = a_kfast ? e % CONV_TK : e / CONV_TM;
        const int mm = a_kfast ? e / CONV_TK : e % CONV_TM;
        a_kk[i] = e < CONV_TM * CONV_TK ? kk : -1;
        a_at[i] = kk * (CONV_TM + 1) + mm;
        conv_slot_a(pass, z, m0 + mm, rows, &a0[i], &a1[i], &a2[i]);
    }
    int b_at[CONV_LB];
    int b_kk[CONV_LB];
    int b0[CONV_LB];
    int b1[CONV_LB];
    int b2[CONV_LB];
    for (int i = 0; i < CONV_LB; ++i) {
        const int e = lid + i * CONV_THREADS;
        const int kk = b_kfast ? e % CONV_TK : e / CONV_TN;
        const int nn = b_kfast ? e / CONV_TK : e % CONV_TN;
        b_kk[i] = e < CONV_TN * CONV_TK ? kk : -1;
        b_at[i] = kk * (CONV_TN + 1) + nn;
        conv_slot_b(pass, z, n0 + nn, cols, &b0[i], &b1[i], &b2[i]);
    }
    // a strided loop: a tuned or fitted tile can have fewer work items than CONV_TK table entries
    for (int i = lid; i < CONV_TK; i += CONV_THREADS) {
        conv_table_entry(pass, z, red0 + i, red1, tab + 3 * i);
    }
    barrier(CLK_LOCAL_MEM_FENCE);
    int buf = 0;
    for (int step = 0; step < steps; ++step) {
        const int k0 = red0 + step * CONV_TK;
        K4J_LOCAL_PTR const int* t = tab + buf * 3 * CONV_TK;
        for (int i = 0; i < CONV_LA; ++i) {
            const int kk = a_kk[i];
            if (kk >= 0) {
                as[a_at[i]] = conv_elem_a(pass, a_src, z, g, a0[i], a1[i], a2[i], t[3 * kk], t[3 * kk + 1], t[3 * kk + 2]);
            }
        }
        for (int i = 0; i < CONV_LB; ++i) {
            const int kk = b_kk[i];
            if (kk >= 0) {
                bs[b_at[i]] = conv_elem_b(pass, b_src, z, g, b0[i], b1[i], b2[i], t[3 * kk], t[3 * kk + 1],
                                          t[3 * kk + 2], k0 + kk);
            }
        }
        for (int i = lid; i < CONV_TK; i += CONV_THREADS) {
            conv_table_entry(pass, z, k0 + CONV_TK + i, red1, tab + (buf ^ 1) * 3 * CONV_TK + 3 * i);
        }
        buf ^= 1;
        barrier(CLK_LOCAL_MEM_FENCE);
        for (int kk = 0; kk < CONV_TK; ++kk) {
            float a[CONV_WM];
            float b[CONV_WN];
            for (int i = 0; i < CONV_WM; ++i) {
                a[i] = as[kk * (CONV_TM + 1) + tm + i * (CONV_TM / CONV_WM)];
            }
            for (int j = 0; j < CONV_WN; ++j) {
                b[j] = bs[kk * (CONV_TN + 1) + tn + j * (CONV_TN / CONV_WN)];
            }
            for (int i = 0; i < CONV_WM; ++i) {
                for (int j = 0; j < CONV_WN; ++j) {
                    acc[i][j] = mad(a[i], b[j], acc[i][j]);
                }
            }
        }
        barrier(CLK_LOCAL_MEM_FENCE);
    }
}

#define CONV_ZERO_ACC(acc)                             \
    float acc[CONV_WM][CONV_WN];                       \
    for (int i_ = 0; i_ < CONV_WM; ++i_) {             \
        for (int j_ = 0; j_ < CONV_WN; ++j_) {         \
            acc[i_][j_] = 0.0f;                        \
        }                                              \
    }

/* Forward: rows = output pixels N*P*Q, columns = output channels of group get_group_id(2). */
__kernel void conv_fwd(__global const k4j_t* restrict x, __global const k4j_t* restrict wt,
                       __global const k4j_t* restrict bias, __global k4j_t* restrict y, CONV_SHAPE_PARAMS) {
    __local float as[CONV_TK * (CONV_TM + 1)];
    __local float bs[CONV_TK * (CONV_TN + 1)];
    __local int tab[2 * 3 * CONV_TK];
    const conv_shape z = conv_make_shape(n, c, h, w, k, r, s, p, q, sh, sw, pt, pl, dh, dw, groups);
    const int g = (int) get_group_id(2);
    const int rows = n * p * q;
    const int m0 = (int) get_group_id(0) * CONV_TM;
    const int n0 = (int) get_group_id(1) * CONV_TN;
    CONV_ZERO_ACC(acc)
    const int red = z.cg * r * s;
    conv_gemm_tile(CONV_FWD, CONV_NHWC, 1, x, wt, z, g, m0, n0, rows, z.kg, 0, red, (red + CONV_TK - 1) / CONV_TK,
                   as, bs, tab, acc);
    const int lid = (int) get_local_id(0);
    const int tm = lid % (CONV_TM / CONV_WM);
    const int tn = lid / (CONV_TM / CONV_WM);
    for (int i = 0; i < CONV_WM; ++i) {
        const int row = m0 + tm + i * (CONV_TM / CONV_WM);
        if (row >= rows) {
            continue;
        }
        const int img = row / (p * q);
        const int rem = row - img * (p * q);
        const int op = rem / q;
        const int oq = rem - op * q;
        for (int j = 0; j < CONV_WN; ++j) {
            const int col = n0 + tn + j * (CONV_TN / CONV_WN);
            if (col < z.kg) {
                const int ko = g * z.kg + col;
                k4j_store(y, conv_act(img, ko, op, oq, k, p, q), acc[i][j] + (bias ? k4j_load(bias, ko) : 0.0f));
            }
        }
    }
}

/* Backward-data: rows = input pixels N*H*W, columns = input channels of group get_group_id(2). */
__kernel void conv_dgrad(__global const k4j_t* restrict dy, __global const k4j_t* restrict wt,
                         __global k4j_t* restrict dx, CONV_SHAPE_PARAMS) {
    __local float as[CONV_TK * (CONV_TM + 1)];
    __local float bs[CONV_TK * (CONV_TN + 1)];
    __local int tab[2 * 3 * CONV_TK];
    const conv_shape z = conv_make_shape(n, c, h, w, k, r, s, p, q, sh, sw, pt, pl, dh, dw, groups);
    const int g = (int) get_group_id(2);
    const int rows = n * h * w;
    const int m0 = (int) get_group_id(0) * CONV_TM;
    const int n0 = (int) get_group_id(1) * CONV_TN;
    CONV_ZERO_ACC(acc)
    const int red = z.kg * r * s;
    conv_gemm_tile(CONV_DGRAD, CONV_NHWC, CONV_NHWC ? 0 : 1, dy, wt, z, g, m0, n0, rows, z.cg, 0, red,
                   (red + CONV_TK - 1) / CONV_TK,
                   as, bs, tab, acc);
    const int lid = (int) get_local_id(0);
    const int tm = lid % (CONV_TM / CONV_WM);
    const int tn = lid / (CONV_TM / CONV_WM);
    for (int i = 0; i < CONV_WM; ++i) {
        const int row = m0 + tm + i * (CONV_TM / CONV_WM);
        if (row >= rows) {
            continue;
        }
        const int img = row / (h * w);
        const int rem = row - img * (h * w);
        const int ih = rem / w;
        const int iw = rem - ih * w;
        for (int j = 0; j < CONV_WN; ++j) {
            const int col = n0 + tn + j * (CONV_TN / CONV_WN);
            if (col < z.cg) {
                k4j_store(dx, conv_act(img, g * z.cg + col, ih, iw, c, h, w), acc[i][j]);
            }
        }
    }
}

/*
 * Backward-filter, split-K: rows = output channels of group g, columns = filter taps (C/groups)*R*S, reduction over
 * N*P*Q cut into `splits` ranges of `chunk` (a multiple of CONV_TK); get_group_id(2) = g * splits + split.
 * Writes float partials ws[split][K][taps].
 */
__kernel void conv_wgrad(__global const k4j_t* restrict dy, __global const k4j_t* restrict x,
                         __global float* restrict ws, int splits, int chunk, CONV_SHAPE_PARAMS) {
    __local float as[CONV_TK * (CONV_TM + 1)];
    __local float bs[CONV_TK * (CONV_TN + 1)];
    __local int tab[2 * 3 * CONV_TK];
    const conv_shape z = conv_make_shape(n, c, h, w, k, r, s, p, q, sh, sw, pt, pl, dh, dw, groups);
    const int g = (int) get_group_id(2) / splits;
    const int split = (int) get_group_id(2) - g * splits;
    const int taps = z.cg * r * s;
    const int red = n * p * q;
    const int red0 = split * chunk;
    const int red1 = min(red, red0 + chunk);
    const int m0 = (int) get_group_id(0) * CONV_TM;
    const int n0 = (int) get_group_id(1) * CONV_TN;
    CONV_ZERO_ACC(acc)
    // every split runs chunk / CONV_TK steps (the last one's tail reads zeros): see conv_gemm_tile
    conv_gemm_tile(CONV_WGRAD, CONV_NHWC ? 0 : 1, CONV_NHWC ? 0 : 1, dy, x, z, g, m0, n0, z.kg, taps, red0, red1,
                   chunk / CONV_TK,
                   as, bs, tab, acc);
    const int lid = (int) get_local_id(0);
    const int tm = lid % (CONV_TM / CONV_WM);
    const int tn = lid / (CONV_TM / CONV_WM);
    for (int i = 0; i < CONV_WM; ++i) {
        const int row = m0 + tm + i * (CONV_TM / CONV_WM);
        for (int j = 0; j < CONV_WN; ++j) {
            const int col = n0 + tn + j * (CONV_TN / CONV_WN);
            if (row < z.kg && col < taps) {
                ws[((size_t) split * k + g * z.kg + row) * (size_t) taps + col] = acc[i][j];
            }
        }
    }
}

/* out[i] = sum over s < splits of ws[s * total + i]; one work item per element of dw. */
__kernel void conv_split_reduce(__global const float* restrict ws, int splits, int total, __global k4j_t* restrict out) {
    const int i = (int) get_global_id(0);
    if (i >= total) {
        return;
    }
    float sum = 0.0f;
    for (int sp = 0; sp < splits; ++sp) {
        sum += ws[(size_t) sp * (size_t) total + i];
    }
    k4j_store(out, i, sum);
}

/* db[ko] = sum of dy over images and pixels; one workgroup of CONV_RED_WG work items per output channel. */
__kernel void conv_bias_grad(__global const k4j_t* restrict dy, __global k4j_t* restrict db, int n, int k, int p, int q) {
    __local float scratch[K4J_REDUCE_SCRATCH(CONV_RED_WG)];
    const int ko = (int) get_group_id(0);
    const int lid = (int) get_local_id(0);
    const int count = n * p * q;
    float sum = 0.0f;
    for (int e = lid; e < count; e += CONV_RED_WG) {
        const int img = e / (p * q);
        const int rem = e - img * (p * q);
        const int op = rem / q;
        sum += k4j_load(dy, conv_act(img, ko, op, rem - op * q, k, p, q));
    }
    sum = k4j_group_reduce_add(sum, scratch);
    if (lid == 0) {
        k4j_store(db, ko, sum);
    }
}

/* Depthwise (groups == C == K) forward: one work item per element of y, in y's memory order. */
__kernel void dw_fwd(__global const k4j_t* restrict x, __global const k4j_t* restrict wt,
                     __global const k4j_t* restrict bias, __global k4j_t* restrict y, CONV_SHAPE_PARAMS) {
    const size_t e = get_global_id(0);
    if (e >= (size_t) n * k * p * q) {
        return;
    }
#if CONV_NHWC
    const int ch = (int) (e % k);
    const size_t pix = e / k;
    const int oq = (int) (pix % q);
    const int op = (int) ((pix / q) % p);
    const int img = (int) (pix / ((size_t) q * p));
#else
    const int oq = (int) (e % q);
    const int op = (int) ((e / q) % p);
    const int ch = (int) ((e / ((size_t) q * p)) % k);
    const int img = (int) (e / ((size_t) q * p * k));
#endif
    float sum = bias ? k4j_load(bias, ch) : 0.0f;
    for (int fr = 0; fr < r; ++fr) {
        const int ih = op * sh - pt + fr * dh;
        if (ih < 0 || ih >= h) {
            continue;
        }
        for (int fs = 0; fs < s; ++fs) {
            const int iw = oq * sw - pl + fs * dw;
            if (iw >= 0 && iw < w) {
                sum = mad(k4j_load(x, conv_act(img, ch, ih, iw, c, h, w)), k4j_load(wt, (ch * r + fr) * s + fs), sum);
            }
        }
    }
    k4j_store(y, e, sum);
}

/* Depthwise backward-data: one work item per element of dx. */
__kernel void dw_dgrad(__global const k4j_t* restrict dy, __global const k4j_t* restrict wt, __global k4j_t* restrict dx,
                       CONV_SHAPE_PARAMS) {
    const size_t e = get_global_id(0);
    if (e >= (size_t) n * c * h * w) {
        return;
    }
#if CONV_NHWC
    const int ch = (int) (e % c);
    const size_t pix = e / c;
    const int iw = (int) (pix % w);
    const int ih = (int) ((pix / w) % h);
    const int img = (int) (pix / ((size_t) w * h));
#else
    const int iw = (int) (e % w);
    const int ih = (int) ((e / w) % h);
    const int ch = (int) ((e / ((size_t) w * h)) % c);
    const int img = (int) (e / ((size_t) w * h * c));
#endif
    float sum = 0.0f;
    for (int fr = 0; fr < r; ++fr) {
        const int th = ih + pt - fr * dh;
        const int op = th / sh;
        if (th < 0 || op * sh != th || op >= p) {
            continue;
        }
        for (int fs = 0; fs < s; ++fs) {
            const int tw = iw + pl - fs * dw;
            const int oq = tw / sw;
            if (tw >= 0 && oq * sw == tw && oq < q) {
                sum = mad(k4j_load(dy, conv_act(img, ch, op, oq, k, p, q)), k4j_load(wt, (ch * r + fr) * s + fs), sum);
            }
        }
    }
    k4j_store(dx, e, sum);
}

/* Depthwise backward-filter: one workgroup of CONV_RED_WG work items per filter tap (ch, fr, fs). */
__kernel void dw_wgrad(__global const k4j_t* restrict dy, __global const k4j_t* restrict x, __global k4j_t* restrict dwt,
                       CONV_SHAPE_PARAMS) {
    __local float scratch[K4J_REDUCE_SCRATCH(CONV_RED_WG)];
    const int tap = (int) get_group_id(0);
    const int ch = tap / (r * s);
    const int fr = (tap - ch * r * s) / s;
    const int fs = tap - ch * r * s - fr * s;
    const int lid = (int) get_local_id(0);
    const int count = n * p * q;
    float sum = 0.0f;
    for (int e = lid; e < count; e += CONV_RED_WG) {
        const int img = e / (p * q);
        const int rem = e - img * (p * q);
        const int op = rem / q;
        const int oq = rem - op * q;
        const int ih = op * sh - pt + fr * dh;
        const int iw = oq * sw - pl + fs * dw;
        if (ih >= 0 && ih < h && iw >= 0 && iw < w) {
            sum = mad(k4j_load(dy, conv_act(img, ch, op, oq, k, p, q)), k4j_load(x, conv_act(img, ch, ih, iw, c, h, w)), sum);
        }
    }
    sum = k4j_group_reduce_add(sum, scratch);
    if (lid == 0) {
        k4j_store(dwt, tap, sum);
    }
}
