// Layer norm and RMS norm over the last dimension, forward and backward, fp32/fp16/bf16 storage with
// fp32 math. The launch side (kernel choice, grid, block) is LayerNormCuda.java.
//
// Layout of the work: a row-group of blockDim.x threads (a multiple of 32) owns one row; a block holds
// blockDim.y row-groups. Short rows get one warp (blockDim.x = 32, reductions are warp shuffles only),
// long rows several warps up to a whole block (the warps meet once in shared memory per reduction).
//
// Two families:
//   *_v<ITERS>  the fast path. Needs cols % (16 / sizeof(T)) == 0 and 16-byte aligned pointers (the
//               Java side checks). Each thread holds ITERS 16-byte packs of the row in registers, so x
//               is read from memory once; vector index c = threadIdx.x + i * blockDim.x, i < ITERS,
//               masked beyond the row. Statistics are exact two-pass (mean, then the sum of squared
//               deviations from it) over the registers.
//   *_any       any cols and alignment: scalar loads strided over the row, Welford statistics merged
//               with Chan's formula, x read twice (the second pass mostly from L2).
// Backward: dx from one pass over dy and x (plus gamma, mean, rstd); dgamma/dbeta as fp32 partial sums
// per block (per row-split for *_any), summed in a fixed order by ln_bwd_finalize: deterministic.
//
// Formulas (xhat = (x - mean) * rstd, mean = 0 for RMS norm, g = gamma or 1):
//   y  = xhat * g + beta
//   dx = rstd * (g*dy - mean_j(g*dy) - xhat * mean_j(g*dy*xhat))     (no mean_j(g*dy) term for RMS)
//   dgamma = sum_rows dy * xhat,  dbeta = sum_rows dy

#include "kernels4j_cuda.cuh"

namespace k4j {

template <typename T, int ITERS>
__device__ __forceinline__ void ln_fwd_vec(const T* __restrict__ x, const T* __restrict__ gamma,
                                           const T* __restrict__ beta, T* __restrict__ y,
                                           float* __restrict__ mean, float* __restrict__ rstd, int rows,
                                           int cols, float eps, int rms) {
    constexpr int V = Pack<T>::N;
    __shared__ float red[2][32];
    const int tx = threadIdx.x;
    const long long row = (long long)blockIdx.x * blockDim.y + threadIdx.y;
    const bool active = row < rows;
    const int nvec = cols / V;
    const long long base = (active ? row : 0) * (long long)cols;

    Pack<T> v[ITERS];
#pragma unroll
    for (int i = 0; i < ITERS; ++i) {
        const int c = tx + i * blockDim.x;
        if (active && c < nvec) v[i] = load_pack(x + base + (long long)c * V);
        else v[i].zero();
    }

    float mu = 0.f;
    if (!rms) {
        float s = 0.f;
#pragma unroll
        for (int i = 0; i < ITERS; ++i)
#pragma unroll
            for (int j = 0; j < V; ++j) s += v[i].get(j);
        mu = rowgroup_sum(s, red, 0) / (float)cols;
    }
    float sq = 0.f;
#pragma unroll
    for (int i = 0; i < ITERS; ++i) {
        if (tx + i * blockDim.x < nvec) {
#pragma unroll
            for (int j = 0; j < V; ++j) {
                const float d = v[i].get(j) - mu;
                sq += d * d;
            }
        }
    }
    const float var = rowgroup_sum(sq, red, 1) / (float)cols;
    const float rs = rsqrtf(var + eps);
    if (active && tx == 0) {
        if (mean != nullptr) mean[row] = mu;
        rstd[row] = rs;
    }
    if (!active) return;
#pragma unroll
    for (int i = 0; i < ITERS; ++i) {
        const int c = tx + i * blockDim.x;
        if (c < nvec) {
            Pack<T> g, b, out;
            if (gamma != nullptr) g = load_pack(gamma + c * V);
            if (beta != nullptr) b = load_pack(beta + c * V);
#pragma unroll
            for (int j = 0; j < V; ++j) {
                const float xh = (v[i].get(j) - mu) * rs;
                const float gj = gamma != nullptr ? g.get(j) : 1.f;
                const float bj = beta != nullptr ? b.get(j) : 0.f;
                out.set(j, fmaf(xh, gj, bj));
            }
            store_pack(y + base + (long long)c * V, out);
        }
    }
}

template <typename T>
__device__ __forceinline__ void ln_fwd_any(const T* __restrict__ x, const T* __restrict__ gamma,
                                           const T* __restrict__ beta, T* __restrict__ y,
                                           float* __restrict__ mean, float* __restrict__ rstd, int rows,
                                           int cols, float eps, int rms) {
    __shared__ Welford redw[2][32];
    __shared__ float red[2][32];
    const int tx = threadIdx.x;
    const long long row = (long long)blockIdx.x * blockDim.y + threadIdx.y;
    const bool active = row < rows;
    const T* xr = x + (active ? row : 0) * (long long)cols;

    float mu = 0.f, var;
    if (rms) {
        float s = 0.f;
        if (active)
            for (int c = tx; c < cols; c += blockDim.x) {
                const float v = to_f32(xr[c]);
                s += v * v;
            }
        var = rowgroup_sum(s, red, 0) / (float)cols;
    } else {
        Welford w = {0.f, 0.f, 0.f};
        if (active)
            for (int c = tx; c < cols; c += blockDim.x) w = welford_push(w, to_f32(xr[c]));
        w = rowgroup_welford(w, redw, 0);
        mu = w.mean;
        var = w.m2 / (float)cols;
    }
    const float rs = rsqrtf(var + eps);
    if (!active) return;
    if (tx == 0) {
        if (mean != nullptr) mean[row] = mu;
        rstd[row] = rs;
    }
    T* yr = y + row * (long long)cols;
    for (int c = tx; c < cols; c += blockDim.x) {
        const float xh = (to_f32(xr[c]) - mu) * rs;
        const float g = gamma != nullptr ? to_f32(gamma[c]) : 1.f;
        const float b = beta != nullptr ? to_f32(beta[c]) : 0.f;
        yr[c] = from_f32<T>(fmaf(xh, g, b));
    }
}

// Backward of the fast path. Persistent grid: block b handles rows b*blockDim.y + ty, stepping by
// gridDim.x*blockDim.y. Two things keep enough bytes in flight to run at copy speed:
//  - the next row's x, dy, mean and rstd are loaded before the current row is reduced and written, so a
//    thread always has a row's loads outstanding (without this the loads wait behind every reduction
//    barrier and dx store, and 16-bit rows ran at ~0.6 of the copy bandwidth);
//  - the dgamma/dbeta sums of a thread's columns live in shared memory, not registers: they are 2 fp32 per
//    column, which for 16-bit rows is 4x the registers of the row itself and capped the threads per SM.
// Each column of a row-group is owned by one thread, so its slots are private (no barrier, no atomics).
// Dynamic shared memory: blockDim.y row-groups x (dgamma, dbeta) x cols floats when a partial is asked
// for, none otherwise; element j of a thread's pack c sits at float4 ((j/4) * nvec + c), lane j % 4, so a
// warp's float4 accesses are contiguous. At the end the row-groups of the block are summed in a fixed
// order into one partial row per block, part[blockIdx.x * cols + col], which ln_bwd_finalize adds up.
template <typename T, int ITERS>
__device__ __forceinline__ void ln_bwd_vec(const T* __restrict__ dy, const T* __restrict__ x,
                                           const T* __restrict__ gamma, const float* __restrict__ mean,
                                           const float* __restrict__ rstd, T* __restrict__ dx,
                                           float* __restrict__ dgamma_part, float* __restrict__ dbeta_part,
                                           int rows, int cols, int rms) {
    constexpr int V = Pack<T>::N;
    constexpr int Q = V / 4;  // float4 slots per pack
    __shared__ float2 red[2][32];
    extern __shared__ float4 acc_smem[];
    const int tx = threadIdx.x;
    const int nvec = cols / V;
    const float inv_cols = 1.f / (float)cols;
    const bool want_g = dgamma_part != nullptr;
    const bool want_b = dbeta_part != nullptr;
    const bool want = want_g || want_b;
    float4* accg = acc_smem + threadIdx.y * 2 * (cols / 4);
    float4* accb = accg + cols / 4;

#pragma unroll
    for (int i = 0; i < ITERS; ++i) {
        const int c = tx + i * blockDim.x;
        if (want && c < nvec) {
#pragma unroll
            for (int q = 0; q < Q; ++q) {
                accg[q * nvec + c] = make_float4(0.f, 0.f, 0.f, 0.f);
                accb[q * nvec + c] = make_float4(0.f, 0.f, 0.f, 0.f);
            }
        }
    }

    const long long step = (long long)gridDim.x * blockDim.y;
    Pack<T> xv[ITERS], dyv[ITERS];
    float mu, rs;
    auto load_row = [&](long long row, Pack<T>(&xr)[ITERS], Pack<T>(&dyr)[ITERS], float& m, float& r) {
        const bool active = row < rows;
        const long long base = (active ? row : 0) * (long long)cols;
#pragma unroll
        for (int i = 0; i < ITERS; ++i) {
            const int c = tx + i * blockDim.x;
            if (active && c < nvec) {
                xr[i] = load_pack(x + base + (long long)c * V);
                dyr[i] = load_pack(dy + base + (long long)c * V);
            } else {
                xr[i].zero();
                dyr[i].zero();
            }
        }
        m = (active && !rms) ? __ldg(mean + row) : 0.f;
        r = active ? __ldg(rstd + row) : 0.f;
    };
    load_row((long long)blockIdx.x * blockDim.y + threadIdx.y, xv, dyv, mu, rs);

    int parity = 0;
    for (long long first = (long long)blockIdx.x * blockDim.y; first < rows; first += step, parity ^= 1) {
        const long long row = first + threadIdx.y;
        const bool active = row < rows;
        Pack<T> xn[ITERS], dyn[ITERS];
        float mun, rsn;
        load_row(row + step, xn, dyn, mun, rsn);

        float s1 = 0.f, s2 = 0.f;
#pragma unroll
        for (int i = 0; i < ITERS; ++i) {
            const int c = tx + i * blockDim.x;
            if (active && c < nvec) {
                // gamma is read again in each pass (from L1) rather than held: registers are what limits
                // the threads per SM here
                Pack<T> gv;
                if (gamma != nullptr) gv = load_pack(gamma + c * V);
                float dg[V];
#pragma unroll
                for (int j = 0; j < V; ++j) {
                    const float d = dyv[i].get(j);
                    const float xh = (xv[i].get(j) - mu) * rs;
                    const float gdy = gamma != nullptr ? gv.get(j) * d : d;
                    s1 += gdy;
                    s2 = fmaf(gdy, xh, s2);
                    dg[j] = d * xh;
                }
                if (want_g) {
#pragma unroll
                    for (int q = 0; q < Q; ++q) {
                        float4 a = accg[q * nvec + c];
                        a.x += dg[4 * q];
                        a.y += dg[4 * q + 1];
                        a.z += dg[4 * q + 2];
                        a.w += dg[4 * q + 3];
                        accg[q * nvec + c] = a;
                    }
                }
                if (want_b) {
#pragma unroll
                    for (int q = 0; q < Q; ++q) {
                        float4 a = accb[q * nvec + c];
                        a.x += dyv[i].get(4 * q);
                        a.y += dyv[i].get(4 * q + 1);
                        a.z += dyv[i].get(4 * q + 2);
                        a.w += dyv[i].get(4 * q + 3);
                        accb[q * nvec + c] = a;
                    }
                }
            }
        }
        const float2 s = rowgroup_sum(make_float2(s1, s2), red, parity);
        const float a = rms ? 0.f : s.x * inv_cols;
        const float b = s.y * inv_cols;
        if (active) {
            const long long base = row * (long long)cols;
#pragma unroll
            for (int i = 0; i < ITERS; ++i) {
                const int c = tx + i * blockDim.x;
                if (c < nvec) {
                    Pack<T> gv;
                    if (gamma != nullptr) gv = load_pack(gamma + c * V);
                    Pack<T> out;
#pragma unroll
                    for (int j = 0; j < V; ++j) {
                        const float d = dyv[i].get(j);
                        const float xh = (xv[i].get(j) - mu) * rs;
                        const float gdy = gamma != nullptr ? gv.get(j) * d : d;
                        out.set(j, rs * (gdy - a - xh * b));
                    }
                    store_pack(dx + base + (long long)c * V, out);
                }
            }
        }
#pragma unroll
        for (int i = 0; i < ITERS; ++i) {
            xv[i] = xn[i];
            dyv[i] = dyn[i];
        }
        mu = mun;
        rs = rsn;
    }

    if (!want) return;
    __syncthreads();
    const float* accf = reinterpret_cast<const float*>(acc_smem);
    const int nthreads = blockDim.x * blockDim.y;
    for (int e = threadIdx.y * blockDim.x + tx; e < cols; e += nthreads) {
        const int c = e / V;
        const int j = e - c * V;
        const int at = ((j >> 2) * nvec + c) * 4 + (j & 3);
        float g = 0.f, bsum = 0.f;
        for (int r = 0; r < (int)blockDim.y; ++r) {
            g += accf[r * 2 * cols + at];
            bsum += accf[r * 2 * cols + cols + at];
        }
        if (want_g) dgamma_part[(long long)blockIdx.x * cols + e] = g;
        if (want_b) dbeta_part[(long long)blockIdx.x * cols + e] = bsum;
    }
}

template <typename T>
__device__ __forceinline__ void ln_bwd_dx_any(const T* __restrict__ dy, const T* __restrict__ x,
                                              const T* __restrict__ gamma, const float* __restrict__ mean,
                                              const float* __restrict__ rstd, T* __restrict__ dx, int rows,
                                              int cols, int rms) {
    __shared__ float2 red[2][32];
    const int tx = threadIdx.x;
    const long long row = (long long)blockIdx.x * blockDim.y + threadIdx.y;
    const bool active = row < rows;
    const long long base = (active ? row : 0) * (long long)cols;
    const float mu = (active && !rms) ? mean[row] : 0.f;
    const float rs = active ? rstd[row] : 0.f;
    float s1 = 0.f, s2 = 0.f;
    if (active)
        for (int c = tx; c < cols; c += blockDim.x) {
            const float d = to_f32(dy[base + c]);
            const float gdy = gamma != nullptr ? to_f32(gamma[c]) * d : d;
            s1 += gdy;
            s2 = fmaf(gdy, (to_f32(x[base + c]) - mu) * rs, s2);
        }
    const float2 s = rowgroup_sum(make_float2(s1, s2), red, 0);
    if (!active) return;
    const float a = rms ? 0.f : s.x / (float)cols;
    const float b = s.y / (float)cols;
    for (int c = tx; c < cols; c += blockDim.x) {
        const float d = to_f32(dy[base + c]);
        const float gdy = gamma != nullptr ? to_f32(gamma[c]) * d : d;
        const float xh = (to_f32(x[base + c]) - mu) * rs;
        dx[base + c] = from_f32<T>(rs * (gdy - a - xh * b));
    }
}

// dgamma/dbeta partials for the *_any path: block (32, PARAM_ROWS) over 32 columns, gridDim.y row
// splits; part[blockIdx.y * cols + col].
constexpr int PARAM_ROWS = 8;

template <typename T>
__device__ __forceinline__ void ln_bwd_params_any(const T* __restrict__ dy, const T* __restrict__ x,
                                                  const float* __restrict__ mean, const float* __restrict__ rstd,
                                                  float* __restrict__ dgamma_part, float* __restrict__ dbeta_part,
                                                  int rows, int cols, int rms) {
    __shared__ float sg[PARAM_ROWS][33], sb[PARAM_ROWS][33];
    const int col = blockIdx.x * 32 + threadIdx.x;
    float g = 0.f, b = 0.f;
    if (col < cols)
        for (long long r = (long long)blockIdx.y * PARAM_ROWS + threadIdx.y; r < rows;
             r += (long long)gridDim.y * PARAM_ROWS) {
            const long long i = r * cols + col;
            const float d = to_f32(dy[i]);
            const float mu = rms ? 0.f : mean[r];
            g = fmaf(d, (to_f32(x[i]) - mu) * rstd[r], g);
            b += d;
        }
    sg[threadIdx.y][threadIdx.x] = g;
    sb[threadIdx.y][threadIdx.x] = b;
    __syncthreads();
    if (threadIdx.y == 0 && col < cols) {
        for (int r = 1; r < PARAM_ROWS; ++r) {
            g += sg[r][threadIdx.x];
            b += sb[r][threadIdx.x];
        }
        const long long o = (long long)blockIdx.y * cols + col;
        if (dgamma_part != nullptr) dgamma_part[o] = g;
        if (dbeta_part != nullptr) dbeta_part[o] = b;
    }
}

// Sums `parts` partial rows per column in a fixed order and rounds once to T. Block (32, FIN_ROWS).
constexpr int FIN_ROWS = 16;

template <typename T>
__device__ __forceinline__ void ln_bwd_finalize(const float* __restrict__ dgamma_part,
                                                const float* __restrict__ dbeta_part, T* __restrict__ dgamma,
                                                T* __restrict__ dbeta, int parts, int cols) {
    __shared__ float sg[FIN_ROWS][33], sb[FIN_ROWS][33];
    const int col = blockIdx.x * 32 + threadIdx.x;
    float g = 0.f, b = 0.f;
    if (col < cols)
        for (int p = threadIdx.y; p < parts; p += FIN_ROWS) {
            const long long i = (long long)p * cols + col;
            if (dgamma != nullptr) g += dgamma_part[i];
            if (dbeta != nullptr) b += dbeta_part[i];
        }
    sg[threadIdx.y][threadIdx.x] = g;
    sb[threadIdx.y][threadIdx.x] = b;
    __syncthreads();
    if (threadIdx.y == 0 && col < cols) {
        for (int r = 1; r < FIN_ROWS; ++r) {
            g += sg[r][threadIdx.x];
            b += sb[r][threadIdx.x];
        }
        if (dgamma != nullptr) dgamma[col] = from_f32<T>(g);
        if (dbeta != nullptr) dbeta[col] = from_f32<T>(b);
    }
}

}  // namespace k4j

// Entry points: extern "C" names <kernel>_<dtype>, listed with their parameters in the manifest.
#define K4J_LN_FWD_VEC(T, SUFFIX, ITERS)                                                              \
    extern "C" __global__ void __launch_bounds__(1024, 1)                                             \
        ln_fwd_v##ITERS##_##SUFFIX(const T* x, const T* gamma, const T* beta, T* y, float* mean,     \
                                   float* rstd, int rows, int cols, float eps, int rms) {             \
        k4j::ln_fwd_vec<T, ITERS>(x, gamma, beta, y, mean, rstd, rows, cols, eps, rms);               \
    }

// MAX_THREADS is the largest block the launcher gives the kernel (LayerNormCuda.backwardMaxThreads).
// 64 registers hold one 16-byte pack of x and dy per thread plus the next row's, and two fp32 packs: those
// kernels are bounded so (MAX_THREADS * MIN_BLOCKS = 1024), so that an SM holds 1024 threads. Two 16-bit
// packs and four packs of any type need up to 128 (an SM then holds 512 threads of twice the bytes).
#define K4J_LN_BWD_VEC(T, SUFFIX, ITERS, MAX_THREADS, MIN_BLOCKS)                                     \
    extern "C" __global__ void __launch_bounds__(MAX_THREADS, MIN_BLOCKS)                             \
        ln_bwd_v##ITERS##_##SUFFIX(const T* dy, const T* x, const T* gamma, const float* mean,        \
                                   const float* rstd, T* dx, float* dgamma_part, float* dbeta_part,   \
                                   int rows, int cols, int rms) {                                     \
        k4j::ln_bwd_vec<T, ITERS>(dy, x, gamma, mean, rstd, dx, dgamma_part, dbeta_part, rows, cols,  \
                                  rms);                                                               \
    }

#define K4J_LN_ALL(T, SUFFIX)                                                                         \
    K4J_LN_FWD_VEC(T, SUFFIX, 1)                                                                      \
    K4J_LN_FWD_VEC(T, SUFFIX, 2)                                                                      \
    K4J_LN_FWD_VEC(T, SUFFIX, 4)                                                                      \
    K4J_LN_FWD_VEC(T, SUFFIX, 8)                                                                      \
    K4J_LN_BWD_VEC(T, SUFFIX, 1, 1024, 1)                                                             \
    K4J_LN_BWD_VEC(T, SUFFIX, 2, 512, (sizeof(T) == 4 ? 2 : 1))                                       \
    K4J_LN_BWD_VEC(T, SUFFIX, 4, 512, 1)                                                              \
    extern "C" __global__ void __launch_bounds__(1024, 1)                                             \
        ln_fwd_any_##SUFFIX(const T* x, const T* gamma, const T* beta, T* y, float* mean, float* rstd, \
                            int rows, int cols, float eps, int rms) {                                 \
        k4j::ln_fwd_any<T>(x, gamma, beta, y, mean, rstd, rows, cols, eps, rms);                      \
    }                                                                                                 \
    extern "C" __global__ void __launch_bounds__(1024, 1)                                             \
        ln_bwd_dx_any_##SUFFIX(const T* dy, const T* x, const T* gamma, const float* mean,            \
                               const float* rstd, T* dx, int rows, int cols, int rms) {               \
        k4j::ln_bwd_dx_any<T>(dy, x, gamma, mean, rstd, dx, rows, cols, rms);                         \
    }                                                                                                 \
    extern "C" __global__ void __launch_bounds__(32 * k4j::PARAM_ROWS, 1)                             \
        ln_bwd_params_any_##SUFFIX(const T* dy, const T* x, const float* mean, const float* rstd,     \
                                   float* dgamma_part, float* dbeta_part, int rows, int cols,         \
                                   int rms) {                                                         \
        k4j::ln_bwd_params_any<T>(dy, x, mean, rstd, dgamma_part, dbeta_part, rows, cols, rms);       \
    }                                                                                                 \
    extern "C" __global__ void __launch_bounds__(32 * k4j::FIN_ROWS, 1)                               \
        ln_bwd_finalize_##SUFFIX(const float* dgamma_part, const float* dbeta_part, T* dgamma,        \
                                 T* dbeta, int parts, int cols) {                                     \
        k4j::ln_bwd_finalize<T>(dgamma_part, dbeta_part, dgamma, dbeta, parts, cols);                 \
    }

K4J_LN_ALL(float, f32)
K4J_LN_ALL(__half, f16)
K4J_LN_ALL(__nv_bfloat16, bf16)
