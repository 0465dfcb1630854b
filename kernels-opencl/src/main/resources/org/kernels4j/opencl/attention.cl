/*
 * Scaled dot-product attention, forward and backward, FlashAttention-2 style (kernels4j dialect).
 * Layout [B, H, N, d], contiguous; key/value head of query head h is h / (Hq / Hkv).
 *
 * Forward (attn_forward): a workgroup owns ATT_BM query rows of one (batch, head); ATT_TN work items share a row.
 * The Q tile sits in local memory, pre-multiplied by scale*log2(e) so that softmax runs on exp2; K and V tiles
 * of ATT_BN keys stream through local memory. Work item t of a row computes the scores of keys t, t+TN, ... into
 * the score tile; after a barrier every work item of the row reads the whole row of the tile for the running
 * maximum (no cross-item reduction needed) and accumulates P*V for its columns t, t+TN, ... of O in registers,
 * with the online-softmax rescaling. O = acc / l and lse = ln2 * (m + log2 l) are written at the end; a row that
 * sees no key gets O = 0 and lse = -inf. Only tiles that some row of the block may see are visited (causal).
 *
 * Backward: attn_bwd_delta computes delta = rowsum(dO * O); attn_bwd_dkdv owns ATT_BWD_BN keys of one
 * (batch, kv-head) and loops over the query heads sharing it and over query tiles, recomputing
 * P = exp2(s*log2e - lse*log2e) and dS = P * (dP - delta) to accumulate dV += P^T dO and dK += dS^T Q in
 * registers; attn_bwd_dq owns ATT_BWD_BM query rows and loops over key tiles for dQ += dS K. No N x N matrix
 * leaves local memory, and no two workgroups write the same output element (no atomics).
 *
 * Head dimension: ATT_D is d rounded up to a multiple of 16; the padding columns are zero in local memory, so
 * loops run to the constant ATT_D, and only loads and stores look at the true d.
 */
#include "kernels4j.h"

#ifndef ATT_D
#define ATT_D 64
#endif
/* forward: query rows per workgroup, keys per tile, work items per query row (power of two dividing ATT_BN and ATT_D) */
#ifndef ATT_BM
#define ATT_BM 32
#endif
#ifndef ATT_BN
#define ATT_BN 32
#endif
#ifndef ATT_TN
#define ATT_TN 4
#endif
/* backward: query rows per tile, keys per tile, work items per row (of keys in dK/dV, of queries in dQ) */
#ifndef ATT_BWD_BM
#define ATT_BWD_BM 32
#endif
#ifndef ATT_BWD_BN
#define ATT_BWD_BN 32
#endif
#ifndef ATT_BWD_TN
#define ATT_BWD_TN 4
#endif

#define ATT_LOG2E 1.4426950408889634f
#define ATT_LN2 0.6931471805599453f

/* The end (exclusive) of the keys query row i sees. mask: 0 none, 1 causal with key j visible when j <= i + offset. */
inline int att_visible(int i, int nk, int mask, int offset) {
    return mask ? min(nk, max(0, i + 1 + offset)) : nk;
}

/* Copies rows [r0, r0 + rows_total) x [0, d) of a [n, d] matrix into a [rows][ATT_D + 1] tile, times `mul`; rows past n
   and columns past d become 0. */
inline void att_load_tile(K4J_LOCAL_PTR float* tile, __global const k4j_t* src, int r0, int rows_total, int n, int d,
                          float mul, int lid, int threads) {
    for (int e = lid; e < rows_total * ATT_D; e += threads) {
        const int r = e / ATT_D;
        const int c = e - r * ATT_D;
        const int row = r0 + r;
        tile[r * (ATT_D + 1) + c] = (row < n && c < d) ? k4j_load(src, (size_t) row * (size_t) d + c) * mul : 0.0f;
    }
}

__kernel void attn_forward(__global const k4j_t* restrict q, __global const k4j_t* restrict k,
                           __global const k4j_t* restrict v, __global k4j_t* restrict o, __global float* restrict lse,
                           int hq, int hkv, int nq, int nk, int d, float scale, int mask, int offset) {
    __local float qs[ATT_BM * (ATT_D + 1)];
    __local float ks[ATT_BN * (ATT_D + 1)];
    __local float vs[ATT_BN * (ATT_D + 1)];
    __local float ss[ATT_BM * (ATT_BN + 1)];
    const int threads = ATT_BM * ATT_TN;
    const int lid = (int) get_local_id(0);
    const int m = lid / ATT_TN;
    const int t = lid - m * ATT_TN;
    const int bh = (int) get_group_id(1);
    const int b = bh / hq;
    const int h = bh - b * hq;
    const int bhk = b * hkv + h / (hq / hkv);
    const int q0 = (int) get_group_id(0) * ATT_BM;
    __global const k4j_t* qh = q + (size_t) bh * (size_t) nq * (size_t) d;
    __global const k4j_t* kh = k + (size_t) bhk * (size_t) nk * (size_t) d;
    __global const k4j_t* vh = v + (size_t) bhk * (size_t) nk * (size_t) d;

    att_load_tile(qs, qh, q0, ATT_BM, nq, d, scale * ATT_LOG2E, lid, threads);
    const int row = q0 + m;
    const int vis = row < nq ? att_visible(row, nk, mask, offset) : 0;
    // causal visibility grows with the row, so the block's last row bounds the keys worth loading
    const int kend = att_visible(min(q0 + ATT_BM, nq) - 1, nk, mask, offset);

    float mi = -INFINITY;
    float li = 0.0f;
    float acc[ATT_D / ATT_TN];
    for (int i = 0; i < ATT_D / ATT_TN; ++i) {
        acc[i] = 0.0f;
    }
    for (int k0 = 0; k0 < kend; k0 += ATT_BN) {
        barrier(CLK_LOCAL_MEM_FENCE);
        att_load_tile(ks, kh, k0, ATT_BN, nk, d, 1.0f, lid, threads);
        att_load_tile(vs, vh, k0, ATT_BN, nk, d, 1.0f, lid, threads);
        barrier(CLK_LOCAL_MEM_FENCE);
        float sc[ATT_BN / ATT_TN];
        for (int j = 0; j < ATT_BN / ATT_TN; ++j) {
            sc[j] = 0.0f;
        }
        for (int c = 0; c < ATT_D; ++c) {
            const float qv = qs[m * (ATT_D + 1) + c];
            for (int j = 0; j < ATT_BN / ATT_TN; ++j) {
                sc[j] = mad(qv, ks[(t + j * ATT_TN) * (ATT_D + 1) + c], sc[j]);
            }
        }
        for (int j = 0; j < ATT_BN / ATT_TN; ++j) {
            const int n = t + j * ATT_TN;
            ss[m * (ATT_BN + 1) + n] = k0 + n < vis ? sc[j] : -INFINITY;
        }
        barrier(CLK_LOCAL_MEM_FENCE);
        float mt = -INFINITY;
        for (int n = 0; n < ATT_BN; ++n) {
            mt = fmax(mt, ss[m * (ATT_BN + 1) + n]);
        }
        const float mnew = fmax(mi, mt);
        // a row that has seen no key yet keeps m = -inf; exponents then use 0 so that they stay finite
        const float muse = mnew == -INFINITY ? 0.0f : mnew;
        const float alpha = native_exp2(mi - muse);
        li *= alpha;
        for (int i = 0; i < ATT_D / ATT_TN; ++i) {
            acc[i] *= alpha;
        }
        for (int n = 0; n < ATT_BN; ++n) {
            const float p = native_exp2(ss[m * (ATT_BN + 1) + n] - muse);
            li += p;
            for (int i = 0; i < ATT_D / ATT_TN; ++i) {
                acc[i] = mad(p, vs[n * (ATT_D + 1) + t + i * ATT_TN], acc[i]);
            }
        }
        mi = mnew;
    }
    if (row >= nq) {
        return;
    }
    const float inv = li > 0.0f ? 1.0f / li : 0.0f;
    __global k4j_t* orow = o + ((size_t) bh * (size_t) nq + row) * (size_t) d;
    for (int i = 0; i < ATT_D / ATT_TN; ++i) {
        const int c = t + i * ATT_TN;
        if (c < d) {
            k4j_store(orow, c, acc[i] * inv);
        }
    }
    if (t == 0) {
        lse[(size_t) bh * (size_t) nq + row] = li > 0.0f ? (mi + log2(li)) * ATT_LN2 : -INFINITY;
    }
}

/* delta[row] = sum_c dO[row, c] * O[row, c]; one work item per row of [B*Hq*Nq]. */
__kernel void attn_bwd_delta(__global const k4j_t* restrict o, __global const k4j_t* restrict dout,
                             __global float* restrict delta, int rows, int d) {
    const int r = (int) get_global_id(0);
    if (r >= rows) {
        return;
    }
    const size_t base = (size_t) r * (size_t) d;
    float s = 0.0f;
    for (int c = 0; c < d; ++c) {
        s = mad(k4j_load(dout, base + c), k4j_load(o, base + c), s);
    }
    delta[r] = s;
}

/* Keys per work item and key tile in attn_bwd_dq. */
#define ATT_BWD_J (ATT_BWD_BN / ATT_BWD_TN)

__kernel void attn_bwd_dkdv(__global const k4j_t* restrict q, __global const k4j_t* restrict k,
                            __global const k4j_t* restrict v, __global const k4j_t* restrict dout,
                            __global const float* restrict lse, __global const float* restrict delta,
                            __global k4j_t* restrict dk, __global k4j_t* restrict dv,
                            int hq, int hkv, int nq, int nk, int d, float scale, int mask, int offset) {
    __local float ks[ATT_BWD_BN * (ATT_D + 1)];
    __local float vs[ATT_BWD_BN * (ATT_D + 1)];
    __local float qs[ATT_BWD_BM * (ATT_D + 1)];
    __local float dos[ATT_BWD_BM * (ATT_D + 1)];
    __local float ps[ATT_BWD_BN * (ATT_BWD_BM + 1)];
    __local float dss[ATT_BWD_BN * (ATT_BWD_BM + 1)];
    __local float ls[ATT_BWD_BM];
    __local float ds[ATT_BWD_BM];
    const int threads = ATT_BWD_BN * ATT_BWD_TN;
    const int lid = (int) get_local_id(0);
    const int n = lid / ATT_BWD_TN;
    const int t = lid - n * ATT_BWD_TN;
    const int bhk = (int) get_group_id(1);
    const int b = bhk / hkv;
    const int hk = bhk - b * hkv;
    const int group = hq / hkv;
    const int k0 = (int) get_group_id(0) * ATT_BWD_BN;
    const int key = k0 + n;
    const float scale_log2 = scale * ATT_LOG2E;
    att_load_tile(ks, k + (size_t) bhk * (size_t) nk * (size_t) d, k0, ATT_BWD_BN, nk, d, 1.0f, lid, threads);
    att_load_tile(vs, v + (size_t) bhk * (size_t) nk * (size_t) d, k0, ATT_BWD_BN, nk, d, 1.0f, lid, threads);
    // the first query row that sees key k0 (key j is visible to row i when j <= i + offset)
    const int first = mask ? max(0, k0 - offset) : 0;
    const int qstart = (first / ATT_BWD_BM) * ATT_BWD_BM;

    float acc_k[ATT_D / ATT_BWD_TN];
    float acc_v[ATT_D / ATT_BWD_TN];
    for (int i = 0; i < ATT_D / ATT_BWD_TN; ++i) {
        acc_k[i] = 0.0f;
        acc_v[i] = 0.0f;
    }
    for (int g = 0; g < group; ++g) {
        const int bh = b * hq + hk * group + g;
        __global const k4j_t* qh = q + (size_t) bh * (size_t) nq * (size_t) d;
        __global const k4j_t* doh = dout + (size_t) bh * (size_t) nq * (size_t) d;
        for (int q0 = qstart; q0 < nq; q0 += ATT_BWD_BM) {
            barrier(CLK_LOCAL_MEM_FENCE);
            att_load_tile(qs, qh, q0, ATT_BWD_BM, nq, d, 1.0f, lid, threads);
            att_load_tile(dos, doh, q0, ATT_BWD_BM, nq, d, 1.0f, lid, threads);
            for (int r = lid; r < ATT_BWD_BM; r += threads) {
                const int row = q0 + r;
                ls[r] = row < nq ? lse[(size_t) bh * (size_t) nq + row] * ATT_LOG2E : INFINITY;
                ds[r] = row < nq ? delta[(size_t) bh * (size_t) nq + row] : 0.0f;
            }
            barrier(CLK_LOCAL_MEM_FENCE);
            for (int j = 0; j < ATT_BWD_BM / ATT_BWD_TN; ++j) {
                const int mm = t + j * ATT_BWD_TN;
                const int row = q0 + mm;
                float s = 0.0f;
                float dp = 0.0f;
                for (int c = 0; c < ATT_D; ++c) {
                    s = mad(qs[mm * (ATT_D + 1) + c], ks[n * (ATT_D + 1) + c], s);
                    dp = mad(dos[mm * (ATT_D + 1) + c], vs[n * (ATT_D + 1) + c], dp);
                }
                const int seen = row < nq && key < att_visible(row, nk, mask, offset) && ls[mm] != -INFINITY;
                const float p = seen ? native_exp2(s * scale_log2 - ls[mm]) : 0.0f;
                ps[n * (ATT_BWD_BM + 1) + mm] = p;
                dss[n * (ATT_BWD_BM + 1) + mm] = p * (dp - ds[mm]);
            }
            barrier(CLK_LOCAL_MEM_FENCE);
            for (int mm = 0; mm < ATT_BWD_BM; ++mm) {
                const float p = ps[n * (ATT_BWD_BM + 1) + mm];
                const float dsv = dss[n * (ATT_BWD_BM + 1) + mm];
                for (int i = 0; i < ATT_D / ATT_BWD_TN; ++i) {
                    const int c = t + i * ATT_BWD_TN;
                    acc_v[i] = mad(p, dos[mm * (ATT_D + 1) + c], acc_v[i]);
                    acc_k[i] = mad(dsv, qs[mm * (ATT_D + 1) + c], acc_k[i]);
                }
            }
        }
    }
    if (key >= nk) {
        return;
    }
    const size_t base = ((size_t) bhk * (size_t) nk + key) * (size_t) d;
    for (int i = 0; i < ATT_D / ATT_BWD_TN; ++i) {
        const int c = t + i * ATT_BWD_TN;
        if (c < d) {
            k4j_store(dk, base + c, acc_k[i] * scale);
            k4j_store(dv, base + c, acc_v[i]);
        }
    }
}

__kernel void attn_bwd_dq(__global const k4j_t* restrict q, __global const k4j_t* restrict k,
                          __global const k4j_t* restrict v, __global const k4j_t* restrict dout,
                          __global const float* restrict lse, __global const float* restrict delta,
                          __global k4j_t* restrict dq,
                          int hq, int hkv, int nq, int nk, int d, float scale, int mask, int offset) {
    __local float qs[ATT_BWD_BM * (ATT_D + 1)];
    __local float dos[ATT_BWD_BM * (ATT_D + 1)];
    __local float ks[ATT_BWD_BN * (ATT_D + 1)];
    __local float vs[ATT_BWD_BN * (ATT_D + 1)];
    __local float dss[ATT_BWD_BM * (ATT_BWD_BN + 1)];
    const int threads = ATT_BWD_BM * ATT_BWD_TN;
    const int lid = (int) get_local_id(0);
    const int m = lid / ATT_BWD_TN;
    const int t = lid - m * ATT_BWD_TN;
    const int bh = (int) get_group_id(1);
    const int b = bh / hq;
    const int h = bh - b * hq;
    const int bhk = b * hkv + h / (hq / hkv);
    const int q0 = (int) get_group_id(0) * ATT_BWD_BM;
    const int row = q0 + m;
    const float scale_log2 = scale * ATT_LOG2E;
    __global const k4j_t* kh = k + (size_t) bhk * (size_t) nk * (size_t) d;
    __global const k4j_t* vh = v + (size_t) bhk * (size_t) nk * (size_t) d;
    att_load_tile(qs, q + (size_t) bh * (size_t) nq * (size_t) d, q0, ATT_BWD_BM, nq, d, 1.0f, lid, threads);
    att_load_tile(dos, dout + (size_t) bh * (size_t) nq * (size_t) d, q0, ATT_BWD_BM, nq, d, 1.0f, lid, threads);
    const float l2 = row < nq ? lse[(size_t) bh * (size_t) nq + row] * ATT_LOG2E : -INFINITY;
    const float dl = row < nq ? delta[(size_t) bh * (size_t) nq + row] : 0.0f;
    const int vis = row < nq && l2 != -INFINITY ? att_visible(row, nk, mask, offset) : 0;
    const int kend = att_visible(min(q0 + ATT_BWD_BM, nq) - 1, nk, mask, offset);

    float acc[ATT_D / ATT_BWD_TN];
    for (int i = 0; i < ATT_D / ATT_BWD_TN; ++i) {
        acc[i] = 0.0f;
    }
    for (int k0 = 0; k0 < kend; k0 += ATT_BWD_BN) {
        barrier(CLK_LOCAL_MEM_FENCE);
        att_load_tile(ks, kh, k0, ATT_BWD_BN, nk, d, 1.0f, lid, threads);
        att_load_tile(vs, vh, k0, ATT_BWD_BN, nk, d, 1.0f, lid, threads);
        barrier(CLK_LOCAL_MEM_FENCE);
        float s[ATT_BWD_J];
        float dp[ATT_BWD_J];
        for (int j = 0; j < ATT_BWD_J; ++j) {
            s[j] = 0.0f;
            dp[j] = 0.0f;
        }
        for (int c = 0; c < ATT_D; ++c) {
            const float qv = qs[m * (ATT_D + 1) + c];
            const float dov = dos[m * (ATT_D + 1) + c];
            for (int j = 0; j < ATT_BWD_J; ++j) {
                const int nn = t + j * ATT_BWD_TN;
                s[j] = mad(qv, ks[nn * (ATT_D + 1) + c], s[j]);
                dp[j] = mad(dov, vs[nn * (ATT_D + 1) + c], dp[j]);
            }
        }
        for (int j = 0; j < ATT_BWD_J; ++j) {
            const int nn = t + j * ATT_BWD_TN;
            const float p = k0 + nn < vis ? native_exp2(s[j] * scale_log2 - l2) : 0.0f;
            dss[m * (ATT_BWD_BN + 1) + nn] = p * (dp[j] - dl);
        }
        barrier(CLK_LOCAL_MEM_FENCE);
        for (int nn = 0; nn < ATT_BWD_BN; ++nn) {
            const float dsv = dss[m * (ATT_BWD_BN + 1) + nn];
            for (int i = 0; i < ATT_D / ATT_BWD_TN; ++i) {
                acc[i] = mad(dsv, ks[nn * (ATT_D + 1) + t + i * ATT_BWD_TN], acc[i]);
            }
        }
    }
    if (row >= nq) {
        return;
    }
    __global k4j_t* out = dq + ((size_t) bh * (size_t) nq + row) * (size_t) d;
    for (int i = 0; i < ATT_D / ATT_BWD_TN; ++i) {
        const int c = t + i * ATT_BWD_TN;
        if (c < d) {
            k4j_store(out, c, acc[i] * scale);
        }
    }
}
