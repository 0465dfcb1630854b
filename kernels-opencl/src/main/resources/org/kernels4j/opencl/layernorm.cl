/*
 * Layer norm and RMS norm over the last dimension, forward and backward (kernels4j dialect).
 *
 * A "team" of `team` consecutive work items (a power of two dividing LN_WG) owns one row at a time; a workgroup
 * holds LN_WG / team teams, so short rows share a workgroup and long rows get all of it. Work item t of a team
 * owns the vectors t, t + team, t + 2*team, ... of its row (LN_VEC elements each, coalesced across the team).
 * Row sums go through k4j_segment_reduce_add (warp shuffles on CUDA, local memory elsewhere).
 *
 * Forward: mean, then the centred variance (two passes over the row, the second from cache), then y.
 * Backward: one pass for dx per row; dgamma/dbeta are accumulated per team into a private row of a partial
 * buffer [teams, cols] (no atomics), summed over teams by ln_reduce_partials.
 */
#include "kernels4j.h"

#if K4J_OPENCL
/*
 * No fusing of a product with a later add: in a row whose elements are all equal (a row of one element,
 * a constant row) dx = rstd * (g - mean(g) - ...) must cancel to exactly 0, and an fma of dy * gamma with
 * -mean(g) (which holds the rounded product) leaves the product's rounding error, times rstd = 1/sqrt(eps).
 * NVIDIA's compiler fuses across statements by default; explicit mad() calls are unaffected.
 */
#pragma OPENCL FP_CONTRACT OFF
#endif

/* Work items per workgroup; a power of two. */
#ifndef LN_WG
#define LN_WG 256
#endif
/* Elements per load: 4 (float4 loads; the host uses it when cols % 4 == 0) or 1. */
#ifndef LN_VEC
#define LN_VEC 1
#endif

#if LN_VEC == 4
typedef float4 ln_vec;
#define LN_LOAD(p, v) k4j_load4(p, v)
#define LN_STORE(p, v, val) k4j_store4(p, v, val)
#define LN_SUM(a) ((a).x + (a).y + (a).z + (a).w)
#define LN_PARTIAL_LOAD(p, v) vload4(v, p)
#define LN_PARTIAL_STORE(p, v, val) vstore4(val, v, p)
/* Element-wise OP of two vectors (LN_MAP) or of a vector and a scalar (LN_MAPS): the dialect has no vector
   operators, since CUDA's float4 has none. */
#define LN_MAP(a, b, OP) K4J_FLOAT4(OP((a).x, (b).x), OP((a).y, (b).y), OP((a).z, (b).z), OP((a).w, (b).w))
#define LN_MAPS(a, s, OP) K4J_FLOAT4(OP((a).x, s), OP((a).y, s), OP((a).z, s), OP((a).w, s))
#elif LN_VEC == 1
typedef float ln_vec;
#define LN_LOAD(p, v) k4j_load(p, v)
#define LN_STORE(p, v, val) k4j_store(p, v, val)
#define LN_SUM(a) (a)
#define LN_PARTIAL_LOAD(p, v) ((p)[v])
#define LN_PARTIAL_STORE(p, v, val) ((p)[v] = (val))
#define LN_MAP(a, b, OP) OP((a), (b))
#define LN_MAPS(a, s, OP) OP((a), s)
#else
#error "LN_VEC must be 1 or 4"
#endif

#define LN_SQ_DEV(e, m) (((e) - (m)) * ((e) - (m)))
#define LN_CENTER(e, m) ((e) - (m))
#define LN_MUL(a, b) ((a) * (b))
#define LN_ADD(a, b) ((a) + (b))
#define LN_SCALE(e, s) ((e) * (s))

__kernel void ln_forward(__global const k4j_t* restrict x, __global const k4j_t* restrict gamma,
                         __global const k4j_t* restrict beta, __global k4j_t* restrict y,
                         __global float* restrict mean_out, __global float* restrict rstd_out,
                         int rows, int cols, int team, float eps, int rms) {
    __local float scratch[K4J_REDUCE_SCRATCH(LN_WG)];
    const int lid = (int) get_local_id(0);
    const int row = (int) get_group_id(0) * (LN_WG / team) + lid / team;
    const int t = lid & (team - 1);
    // Work items past the last row still reach every barrier inside the reductions.
    const int active = row < rows;
    const int nvec = cols / LN_VEC;
    const size_t offset = (size_t) (active ? row : 0) * (size_t) cols;
    __global const k4j_t* xr = x + offset;

    float mean = 0.0f;
    if (!rms) {
        float s = 0.0f;
        if (active) {
            for (int v = t; v < nvec; v += team) {
                ln_vec e = LN_LOAD(xr, v);
                s += LN_SUM(e);
            }
        }
        mean = k4j_segment_reduce_add(s, scratch, (uint) team) / (float) cols;
    }
    float q = 0.0f;
    if (active) {
        for (int v = t; v < nvec; v += team) {
            ln_vec e = LN_LOAD(xr, v);
            ln_vec d = LN_MAPS(e, mean, LN_SQ_DEV);
            q += LN_SUM(d);
        }
    }
    const float rstd = rsqrt(k4j_segment_reduce_add(q, scratch, (uint) team) / (float) cols + eps);
    if (!active) {
        return;
    }
    __global k4j_t* yr = y + offset;
    for (int v = t; v < nvec; v += team) {
        ln_vec e = LN_LOAD(xr, v);
        ln_vec c = LN_MAPS(e, mean, LN_CENTER);
        ln_vec o = LN_MAPS(c, rstd, LN_SCALE);
        if (gamma) {
            ln_vec g = LN_LOAD(gamma, v);
            o = LN_MAP(o, g, LN_MUL);
        }
        if (beta) {
            ln_vec b = LN_LOAD(beta, v);
            o = LN_MAP(o, b, LN_ADD);
        }
        LN_STORE(yr, v, o);
    }
    if (t == 0) {
        if (!rms) {
            mean_out[row] = mean;
        }
        rstd_out[row] = rstd;
    }
}

/*
 * dx = rstd * (g - mean(g) - xhat * mean(g * xhat)) with g = dy * gamma and xhat = (x - mean) * rstd
 * (RMS norm: no mean(g) term, mean = 0). Team `team_id` handles rows team_id, team_id + teams, ... and adds
 * dy * xhat and dy to its own row of part_g / part_b (null when that gradient is not wanted); a team's first
 * row writes instead of adding, so the partials need no clearing. Teams numbered >= rows write nothing.
 */
__kernel void ln_backward(__global const k4j_t* restrict dy, __global const k4j_t* restrict x,
                          __global const k4j_t* restrict gamma, __global const float* restrict mean_in,
                          __global const float* restrict rstd_in, __global k4j_t* restrict dx,
                          __global float* restrict part_g, __global float* restrict part_b,
                          int rows, int cols, int team, int rms) {
    __local float scratch[K4J_REDUCE_SCRATCH(LN_WG)];
    const int lid = (int) get_local_id(0);
    const int teams_per_group = LN_WG / team;
    const int team_id = (int) get_group_id(0) * teams_per_group + lid / team;
    const int teams = (int) get_num_groups(0) * teams_per_group;
    const int t = lid & (team - 1);
    const int nvec = cols / LN_VEC;
    const float inv_cols = 1.0f / (float) cols;
    __global float* pg = part_g ? part_g + (size_t) team_id * (size_t) cols : part_g;
    __global float* pb = part_b ? part_b + (size_t) team_id * (size_t) cols : part_b;
    // Every team runs the same number of iterations, so all work items reach the reductions' barriers.
    const int iterations = (rows + teams - 1) / teams;
    for (int it = 0; it < iterations; ++it) {
        const int row = it * teams + team_id;
        const int active = row < rows;
        const size_t offset = (size_t) (active ? row : 0) * (size_t) cols;
        const float mu = (active && !rms) ? mean_in[row] : 0.0f;
        const float rs = active ? rstd_in[row] : 0.0f;
        __global const k4j_t* xr = x + offset;
        __global const k4j_t* dyr = dy + offset;
        float sum_g = 0.0f;
        float sum_gx = 0.0f;
        if (active) {
            for (int v = t; v < nvec; v += team) {
                ln_vec xv = LN_LOAD(xr, v);
                ln_vec xc = LN_MAPS(xv, mu, LN_CENTER);
            ln_vec xh = LN_MAPS(xc, rs, LN_SCALE);
                ln_vec g = LN_LOAD(dyr, v);
                if (gamma) {
                    ln_vec gm = LN_LOAD(gamma, v);
                    g = LN_MAP(g, gm, LN_MUL);
                }
                sum_g += LN_SUM(g);
                ln_vec gx = LN_MAP(g, xh, LN_MUL);
                sum_gx += LN_SUM(gx);
            }
        }
        sum_g = k4j_segment_reduce_add(sum_g, scratch, (uint) team);
        sum_gx = k4j_segment_reduce_add(sum_gx, scratch, (uint) team);
        if (!active) {
            continue;
        }
        const float mean_g = rms ? 0.0f : sum_g * inv_cols;
        const float mean_gx = sum_gx * inv_cols;
        __global k4j_t* dxr = dx + offset;
        for (int v = t; v < nvec; v += team) {
            ln_vec xv = LN_LOAD(xr, v);
            ln_vec xc = LN_MAPS(xv, mu, LN_CENTER);
            ln_vec xh = LN_MAPS(xc, rs, LN_SCALE);
            ln_vec d = LN_LOAD(dyr, v);
            ln_vec g = d;
            if (gamma) {
                ln_vec gm = LN_LOAD(gamma, v);
                g = LN_MAP(g, gm, LN_MUL);
            }
#define LN_DX(gv, xv) (rs * ((gv) - mean_g - (xv) * mean_gx))
            ln_vec out = LN_MAP(g, xh, LN_DX);
            LN_STORE(dxr, v, out);
#undef LN_DX
            if (pg) {
                ln_vec add = LN_MAP(d, xh, LN_MUL);
                if (it > 0) {
                    ln_vec before = LN_PARTIAL_LOAD(pg, v);
                    add = LN_MAP(add, before, LN_ADD);
                }
                LN_PARTIAL_STORE(pg, v, add);
            }
            if (pb) {
                ln_vec add = d;
                if (it > 0) {
                    ln_vec before = LN_PARTIAL_LOAD(pb, v);
                    add = LN_MAP(add, before, LN_ADD);
                }
                LN_PARTIAL_STORE(pb, v, add);
            }
        }
    }
}

/* out[c] = sum over the first `parts` rows of part[parts][cols]; one work item per column. */
__kernel void ln_reduce_partials(__global const float* restrict part, int parts, int cols,
                                 __global k4j_t* restrict out) {
    const int c = (int) get_global_id(0);
    if (c >= cols) {
        return;
    }
    float s = 0.0f;
    for (int p = 0; p < parts; ++p) {
        s += part[(size_t) p * (size_t) cols + c];
    }
    k4j_store(out, c, s);
}
