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

// Writes one block's partial row part[blockIdx.x * cols + col] from the per-thread accumulators of
// ln_bwd_vec, first summing the block's row-groups in shared memory when there are several. Called
// by every thread of the block (it has barriers).
template <int V, int ITERS>
__device__ __forceinline__ void ln_write_partial(const float (&acc)[ITERS][V], float* __restrict__ part,
                                                 float* smem, int nvec, int cols) {
    const int tx = threadIdx.x;
    float* dst = blockDim.y == 1 ? part + (long long)blockIdx.x * cols : smem + threadIdx.y * cols;
#pragma unroll
    for (int i = 0; i < ITERS; ++i) {
        const int c = tx + i * blockDim.x;
        if (c < nvec) {
#pragma unroll
            for (int j = 0; j < V; j += 4)
                *reinterpret_cast<float4*>(dst + c * V + j) =
                    make_float4(acc[i][j], acc[i][j + 1], acc[i][j + 2], acc[i][j + 3]);
        }
    }
    if (blockDim.y == 1) return;
    __syncthreads();
    const int nthreads = blockDim.x * blockDim.y;
    for (int e = threadIdx.y * blockDim.x + tx; e < cols; e += nthreads) {
        float sum = 0.f;
        for (int r = 0; r < blockDim.y; ++r) sum += smem[r * cols + e];
        part[(long long)blockIdx.x * cols + e] = sum;
    }
    __syncthreads();
}

// Persistent grid: block b handles rows b*blockDim.y + ty, stepping by gridDim.x*blockDim.y, and keeps
// the dgamma/dbeta contributions of its columns in registers across those rows. At the end the
// row-groups of the block are summed in shared memory (dynamic: blockDim.y * cols floats, only when
// blockDim.y > 1) into one partial row per block: part[blockIdx.x * cols + col].
template <typename T, int ITERS>
__device__ __forceinline__ void ln_bwd_vec(const T* __restrict__ dy, const T* __restrict__ x,
                                           const T* __restrict__ gamma, const float* __restrict__ mean,
                                           const float* __restrict__ rstd, T* __restrict__ dx,
                                           float* __restrict__ dgamma_part, float* __restrict__ dbeta_part,
                                           int rows, int cols, int rms) {
    constexpr int V = Pack<T>::N;
    __shared__ float2 red[2][32];
    // float4 so that the dynamic region starts 16-byte aligned (ln_write_partial stores float4s)
    extern __shared__ float4 part_smem4[];
    float* part_smem = reinterpret_cast<float*>(part_smem4);
    const int tx = threadIdx.x;
    const int nvec = cols / V;
    const float inv_cols = 1.f / (float)cols;

    float dg[ITERS][V], db[ITERS][V];
#pragma unroll
    for (int i = 0; i < ITERS; ++i)
#pragma unroll
        for (int j = 0; j < V; ++j) dg[i][j] = db[i][j] = 0.f;

    int parity = 0;
    for (long long first = (long long)blockIdx.x * blockDim.y; first < rows;
         first += (long long)gridDim.x * blockDim.y, parity ^= 1) {
        const long long row = first + threadIdx.y;
        const bool active = row < rows;
        const long long base = (active ? row : 0) * (long long)cols;
        Pack<T> xv[ITERS], dyv[ITERS], gv[ITERS];
#pragma unroll
        for (int i = 0; i < ITERS; ++i) {
            const int c = tx + i * blockDim.x;
            if (active && c < nvec) {
                xv[i] = load_pack(x + base + (long long)c * V);
                dyv[i] = load_pack(dy + base + (long long)c * V);
                if (gamma != nullptr) gv[i] = load_pack(gamma + c * V);
            } else {
                xv[i].zero();
                dyv[i].zero();
            }
        }
        const float mu = (active && !rms) ? mean[row] : 0.f;
        const float rs = active ? rstd[row] : 0.f;

        float s1 = 0.f, s2 = 0.f;
#pragma unroll
        for (int i = 0; i < ITERS; ++i) {
            if (active && tx + i * blockDim.x < nvec) {
#pragma unroll
                for (int j = 0; j < V; ++j) {
                    const float d = dyv[i].get(j);
                    const float xh = (xv[i].get(j) - mu) * rs;
                    const float gdy = gamma != nullptr ? gv[i].get(j) * d : d;
                    s1 += gdy;
                    s2 = fmaf(gdy, xh, s2);
                    dg[i][j] = fmaf(d, xh, dg[i][j]);
                    db[i][j] += d;
                }
            }
        }
        const float2 s = rowgroup_sum(make_float2(s1, s2), red, parity);
        const float a = rms ? 0.f : s.x * inv_cols;
        const float b = s.y * inv_cols;
        if (active) {
#pragma unroll
            for (int i = 0; i < ITERS; ++i) {
                const int c = tx + i * blockDim.x;
                if (c < nvec) {
                    Pack<T> out;
#pragma unroll
                    for (int j = 0; j < V; ++j) {
                        const float d = dyv[i].get(j);
                        const float xh = (xv[i].get(j) - mu) * rs;
                        const float gdy = gamma != nullptr ? gv[i].get(j) * d : d;
                        out.set(j, rs * (gdy - a - xh * b));
                    }
                    store_pack(dx + base + (long long)c * V, out);
                }
            }
        }
    }

    if (dgamma_part != nullptr) ln_write_partial<V, ITERS>(dg, dgamma_part, part_smem, nvec, cols);
    if (dbeta_part != nullptr) ln_write_partial<V, ITERS>(db, dbeta_part, part_smem, nvec, cols);
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

// MIN_BLOCKS 2 caps registers at 64 (two 512-thread blocks per SM): enough for up to 8 columns per
// thread without spilling; 16 columns per thread need more (MIN_BLOCKS 1).
#define K4J_LN_BWD_VEC(T, SUFFIX, ITERS, MIN_BLOCKS)                                                  \
    extern "C" __global__ void __launch_bounds__(512, MIN_BLOCKS)                                     \
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
    K4J_LN_BWD_VEC(T, SUFFIX, 1, 2)                                                                   \
    K4J_LN_BWD_VEC(T, SUFFIX, 2, (sizeof(T) == 4 ? 2 : 1))                                            \
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
// fp32 only: 16 columns per thread. A 16-bit row with ITERS = 4 would hold 32 columns per thread, whose
// 64 fp32 dgamma/dbeta accumulators spill at 512 threads; such rows take ITERS <= 2 with more threads.
K4J_LN_BWD_VEC(float, f32, 4, 1)
K4J_LN_ALL(__half, f16)
K4J_LN_ALL(__nv_bfloat16, bf16)
