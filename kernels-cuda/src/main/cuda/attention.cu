// Scaled dot-product attention for fp16/bf16 storage on tensor cores (sm_80+), forward and backward,
// the FlashAttention-2 algorithm. The launch side (kernel choice, grid, workspaces) is AttentionCuda.java;
// the device check is bench/gpu/check_attention.py.
//
// Layout [B, H, N, d], contiguous; K/V head of query head h is h / (Hq / Hkv) (grouped-query). The mask
// is a runtime argument: causal = 0 lets every query see every key; causal = 1 lets query i see the
// keys j <= i + offset (offset 0: top-left, PyTorch's is_causal; offset Nk - Nq: bottom-right). Any
// sequence length: the last tiles are zero-filled on load and bounds-checked on store; a row that sees
// no key gets O = 0, lse = -inf and zero gradients. d may be any multiple of 8 up to the kernel's head
// dimension kD (a multiple of 32): columns d..kD-1 are zero-filled, so they add nothing to Q.K and give
// O columns that are never stored.
//
// Kernels (extern "C" names; each has a companion <name>_cfg[4] = {threads, dynamic smem bytes,
// rows per CTA, keys per CTA} so that launchers read the launch shape from the module itself):
//   k4j_attn_fwd_<dt>_d<kD>       grid (ceil(Nq/BM), Hq, B): O and the fp32 log-sum-exp (natural log).
//   k4j_attn_bwd_prep_<dt>        grid (ceil(B*Hq*Nq/8)), 256 threads: D = rowsum(dO * O) (fp32) and,
//                                 when dq_accum != null, zeroes the fp32 dQ accumulator.
//   k4j_attn_bwd_<dt>_d<kD>       grid (ceil(Nk/BN), Hkv, B): dK and dV held in registers while the CTA
//                                 walks every query block of every query head sharing its K/V head
//                                 (grouped-query sums need no workspace); when with_dq != 0 it also adds
//                                 dS.K into the fp32 dQ accumulator with atomics (the fast mode). Two
//                                 implementations with the same interface: attn_bwd (P and dS stay in
//                                 registers) and attn_bwd_tiled (P and dS through shared memory, a warp
//                                 layout per product; the sm_90 default for d64 and d128).
//   k4j_attn_dq_convert_<dt>      dQ = scale * accumulator, rounded to the storage type.
//   k4j_attn_copy_rows            grid-stride, 256 threads: rows of 16-bit elements to another row length,
//                                 zero-filled; the launcher pads Q, K, V, O, dO to a multiple of 8 columns
//                                 (and cuts the results back) when d is not one, so any d <= 256 runs.
//   k4j_attn_bwd_dq_<dt>_d<kD>    grid (ceil(Nq/BM), Hq, B): the deterministic mode's dQ, a query-block
//                                 kernel that recomputes P and dP per key block and writes dQ directly
//                                 (no atomics, O(N d) memory; the bwd kernel then runs with with_dq = 0).
//
// Tensor-core fragments (PTX ISA, mma.m16n8k16 with f16/bf16 operands, g = lane / 4, t = lane % 4):
//   A 16x16: reg0 (row g, cols 2t,2t+1), reg1 (row g+8, same), reg2 (row g, cols 2t+8,+9), reg3 (row g+8)
//   B 16x8:  reg0 (rows 2t,2t+1, col g), reg1 (rows 2t+8,+9, col g)
//   C 16x8:  c0,c1 (row g, cols 2t,2t+1), c2,c3 (row g+8, same)
// Two C tiles side by side hold exactly the A fragment of the next product (FlashAttention-2's trick),
// so P and dS never leave registers for the products that use them as the left operand.
// Shared tiles are row-major with rows padded by 16 bytes: a row is kD/8 + 1 (odd) 16-byte chunks, so
// the 8 row addresses of one ldmatrix phase fall in 8 different bank groups.
//
// Tunable parameters per kernel are the template arguments of the shape list at the end.
//
// Targets: sm_80 machine code also runs on sm_86/89 (and their shapes are the same), so this module ships
// cubins for sm_80 and sm_90 only, plus the compute_80 PTX: a smaller jar and half the build time.
// kernels4j-archs: sm_80 sm_90

#ifndef K4J_EMULATION
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <stdint.h>
#endif

namespace k4j_attn {

constexpr int F16 = 0;
constexpr int BF16 = 1;
constexpr float LOG2E = 1.4426950408889634f;
constexpr float LN2 = 0.6931471805599453f;

// ---------------------------------------------------------------------------------------------------
// Primitives. K4J_EMULATION builds this file as plain C++ with a CPU emulation of these (a test tool that
// runs the kernels warp-synchronously and checks shared-memory races); everything below the primitives
// is written against them only.

#ifndef K4J_EMULATION
__device__ __forceinline__ unsigned char* dyn_smem() {
    extern __shared__ __align__(16) unsigned char k4j_attn_smem[];
    return k4j_attn_smem;
}

__device__ __forceinline__ uint32_t smem_addr(const void* p) {
    return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}

// 16 bytes global -> shared, bypassing L1; zero-filled when !valid (src must still be a mapped address).
__device__ __forceinline__ void cp_async16(void* dst, const void* src, bool valid) {
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(smem_addr(dst)), "l"(src),
                 "r"(valid ? 16 : 0));
}

__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::); }

template <int N>
__device__ __forceinline__ void cp_async_wait() {
    asm volatile("cp.async.wait_group %0;\n" ::"n"(N));
}

__device__ __forceinline__ void ldsm_x4(uint32_t (&r)[4], const void* p) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(smem_addr(p)));
}

__device__ __forceinline__ void ldsm_x4_t(uint32_t (&r)[4], const void* p) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(smem_addr(p)));
}

template <int DT>
__device__ __forceinline__ void mma16816(float (&c)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
    if constexpr (DT == BF16) {
        asm volatile(
            "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
            "{%0, %1, %2, %3};\n"
            : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
            : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
    } else {
        asm volatile(
            "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
            "{%0, %1, %2, %3};\n"
            : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
            : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
    }
}

// 2^x; ex2.approx of -inf is +0, which the masking relies on.
__device__ __forceinline__ float ex2(float x) {
    float y;
    asm("ex2.approx.ftz.f32 %0, %1;\n" : "=f"(y) : "f"(x));
    return y;
}

__device__ __forceinline__ float shfl_xor(float v, int m) { return __shfl_xor_sync(0xffffffffu, v, m); }

// Two floats rounded to nearest even into one register, lo in the low half (the mma operand order).
template <int DT>
__device__ __forceinline__ uint32_t pack2(float lo, float hi) {
    uint32_t r;
    if constexpr (DT == BF16) {
        __nv_bfloat162 h = __floats2bfloat162_rn(lo, hi);
        r = *reinterpret_cast<uint32_t*>(&h);
    } else {
        __half2 h = __floats2half2_rn(lo, hi);
        r = *reinterpret_cast<uint32_t*>(&h);
    }
    return r;
}

template <int DT>
__device__ __forceinline__ float to_float(uint16_t bits) {
    if constexpr (DT == BF16) {
        return __uint_as_float(static_cast<uint32_t>(bits) << 16);
    } else {
        return __half2float(__ushort_as_half(bits));
    }
}

template <typename T>
__device__ __forceinline__ void sts(T* p, T v) { *p = v; }
template <typename T>
__device__ __forceinline__ T lds(const T* p) { return *p; }
template <typename T>
__device__ __forceinline__ T ldg(const T* p) { return __ldg(p); }
template <typename T>
__device__ __forceinline__ void stg(T* p, T v) { *p = v; }
// p[0] += a, p[1] += b in global memory (8-byte aligned p); one vector reduction on sm_90.
__device__ __forceinline__ void red_add2(float* p, float a, float b) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    asm volatile("red.global.add.v2.f32 [%0], {%1, %2};\n" ::"l"(p), "f"(a), "f"(b) : "memory");
#else
    atomicAdd(p, a);
    atomicAdd(p + 1, b);
#endif
}
#endif  // K4J_EMULATION

template <bool B>
struct Bool {
    static constexpr bool value = B;
};

__device__ __forceinline__ int imin(int a, int b) { return a < b ? a : b; }
__device__ __forceinline__ int imax(int a, int b) { return a > b ? a : b; }

// ---------------------------------------------------------------------------------------------------
// Tiles and fragments

__host__ __device__ constexpr int pow2_at_least(int x) { return x <= 1 ? 1 : 2 * pow2_at_least((x + 1) / 2); }

// Rows [row0, row0 + kRows) of a [nrows][d] matrix into s[kRows][kD + 8]; rows >= nrows and columns >= d
// are zero-filled, one 16-byte cp.async per chunk. Each thread keeps one chunk column and one source
// pointer stepped by whole rows, so the addressing costs a couple of registers across the main loops; a
// row of kD/8 chunks that does not divide the CTA is spread as if it had the next power of two of chunks
// (those threads idle).
template <int kRows, int kD, int kThreads>
__device__ __forceinline__ void load_tile(uint16_t* s, const uint16_t* g, int row0, int nrows, int d) {
    constexpr int CPR = kD / 8;
    constexpr int CPRP = kThreads % CPR == 0 ? CPR : pow2_at_least(CPR);
    static_assert(kThreads % CPRP == 0, "a pass covers whole rows");
    constexpr int RSTEP = kThreads / CPRP;
    constexpr int ITERS = (kRows + RSTEP - 1) / RSTEP;
    const int c = static_cast<int>(threadIdx.x) % CPRP;
    const int r0 = static_cast<int>(threadIdx.x) / CPRP;
    if (CPRP != CPR && c >= CPR) return;
    const bool cvalid = c * 8 < d;
    const uint16_t* src = g + static_cast<int64_t>(row0 + r0) * d + c * 8;
    uint16_t* dst = s + r0 * (kD + 8) + c * 8;
#pragma unroll
    for (int it = 0; it < ITERS; ++it) {
        if (kRows % RSTEP == 0 || r0 + it * RSTEP < kRows) {
            const bool valid = cvalid && row0 + r0 + it * RSTEP < nrows;
            cp_async16(dst + it * RSTEP * (kD + 8), valid ? src + static_cast<int64_t>(it * RSTEP) * d : g, valid);
        }
    }
}

// A operand, 16(m) x 16(k), stored [m][k] at p (row stride ld elements).
__device__ __forceinline__ void frag_a(uint32_t (&a)[4], const uint16_t* p, int ld, int lane) {
    ldsm_x4(a, p + (lane & 15) * ld + (lane >> 4) * 8);
}

// A operand, 16(m) x 16(k), stored transposed [k][m] at p.
__device__ __forceinline__ void frag_a_t(uint32_t (&a)[4], const uint16_t* p, int ld, int lane) {
    ldsm_x4_t(a, p + ((lane & 7) + (lane >> 4) * 8) * ld + ((lane >> 3) & 1) * 8);
}

// B operands of two adjacent n-tiles, 16(k) x 16(n), stored [n][k] at p: b[0], b[1] for n 0..7,
// b[2], b[3] for n 8..15.
__device__ __forceinline__ void frag_b_nk(uint32_t (&b)[4], const uint16_t* p, int ld, int lane) {
    ldsm_x4(b, p + ((lane & 7) + (lane >> 4) * 8) * ld + ((lane >> 3) & 1) * 8);
}

// B operands of two adjacent n-tiles, 16(k) x 16(n), stored [k][n] at p.
__device__ __forceinline__ void frag_b_kn(uint32_t (&b)[4], const uint16_t* p, int ld, int lane) {
    ldsm_x4_t(b, p + ((lane & 7) + ((lane >> 3) & 1) * 8) * ld + (lane >> 4) * 8);
}

// The A operand for k-step kk of a product whose left factor is held as C tiles c[2kk], c[2kk+1].
template <int DT>
__device__ __forceinline__ void frag_a_from_c(uint32_t (&a)[4], const float (&c0)[4], const float (&c1)[4]) {
    a[0] = pack2<DT>(c0[0], c0[1]);
    a[1] = pack2<DT>(c0[2], c0[3]);
    a[2] = pack2<DT>(c1[0], c1[1]);
    a[3] = pack2<DT>(c1[2], c1[3]);
}

// The last key (exclusive) query row `row` may see.
__device__ __forceinline__ int key_limit(int row, int nk, int causal, int offset) {
    return causal ? imin(nk, imax(0, row + offset + 1)) : nk;
}

// ---------------------------------------------------------------------------------------------------
// Forward. A CTA owns kBlockM query rows of one head; each warp owns MT 16-row tiles of them (its rows
// are read from sQ by that warp alone; with kQRegs the warp keeps them as A fragments in registers from the
// first key block on, which saves a fifth of the shared-memory reads at d = 64 for 32 registers). K and V tiles of kBlockN keys stream through one buffer each,
// from the last key block down (the blocks that need masking come first): the load of V_j overlaps
// S = Q K_j^T, the load of K_{j-1} overlaps the softmax and O += P V_j.

template <int kD, int kBlockM, int kBlockN, int kNWarps>
struct FwdShape {
    static constexpr int kThreads = kNWarps * 32;
    static constexpr int LD = kD + 8;
    static constexpr int MT = kBlockM / (16 * kNWarps);
    static constexpr int kSmem = (kBlockM + 2 * kBlockN) * LD * 2;
    static_assert(kD % 32 == 0 && kD >= 32 && kD <= 256, "head dimension tile");
    static_assert(MT >= 1 && kBlockM == MT * 16 * kNWarps, "kBlockM must be a multiple of 16 * warps");
    static_assert(kBlockN % 16 == 0, "kBlockN must be a multiple of 16");
};

template <int DT, int kD, int kBlockM, int kBlockN, int kNWarps, int kQRegs>
__device__ __forceinline__ void attn_fwd(const uint16_t* __restrict__ q, const uint16_t* __restrict__ k,
                                         const uint16_t* __restrict__ v, uint16_t* __restrict__ o,
                                         float* __restrict__ lse, int nq, int nk, int hq, int hkv, int d,
                                         float scale, int causal, int offset) {
    using S = FwdShape<kD, kBlockM, kBlockN, kNWarps>;
    constexpr int LD = S::LD;
    constexpr int MT = S::MT;
    constexpr int NTS = kBlockN / 8;
    constexpr int NTO = kD / 8;
    constexpr int CPR = kD / 8;

    uint16_t* sQ = reinterpret_cast<uint16_t*>(dyn_smem());
    uint16_t* sK = sQ + kBlockM * LD;
    uint16_t* sV = sK + kBlockN * LD;

    const int tid = threadIdx.x;
    const int warp = tid >> 5;
    const int lane = tid & 31;
    const int g = lane >> 2;
    const int t4 = lane & 3;
    // Heaviest (most keys under a causal mask) query blocks first.
    const int m_block = static_cast<int>(gridDim.x) - 1 - static_cast<int>(blockIdx.x);
    const int h = blockIdx.y;
    const int b = blockIdx.z;
    const int hk = h / (hq / hkv);
    const int64_t qhead = static_cast<int64_t>(b) * hq + h;
    const int64_t khead = static_cast<int64_t>(b) * hkv + hk;
    const uint16_t* qh = q + qhead * nq * d;
    const uint16_t* kh = k + khead * nk * d;
    const uint16_t* vh = v + khead * nk * d;

    const int m0 = m_block * kBlockM;
    const int wrow0 = warp * MT * 16;
    const int rows_end = imin(m0 + kBlockM, nq);
    const int n_end = causal ? key_limit(rows_end - 1, nk, causal, offset) : nk;
    const int n_blocks = (n_end + kBlockN - 1) / kBlockN;

    if (n_blocks <= 0) {
        // No row of this block sees a key.
        uint16_t* oh = o + qhead * nq * d;
        float* lseh = lse + qhead * nq;
        const uint4 zero = {0u, 0u, 0u, 0u};
        for (int i = tid; i < kBlockM * CPR; i += S::kThreads) {
            const int r = i / CPR;
            const int c = i - r * CPR;
            if (m0 + r < nq && c * 8 < d) stg(reinterpret_cast<uint4*>(oh + static_cast<int64_t>(m0 + r) * d + c * 8), zero);
        }
        for (int r = tid; r < kBlockM; r += S::kThreads) {
            if (m0 + r < nq) stg(lseh + m0 + r, -INFINITY);
        }
        return;
    }

    load_tile<kBlockM, kD, S::kThreads>(sQ, qh, m0, nq, d);
    load_tile<kBlockN, kD, S::kThreads>(sK, kh, (n_blocks - 1) * kBlockN, nk, d);
    cp_async_commit();

    // Q as A fragments for every k-step (used when kQRegs; otherwise the compiler drops the array).
    uint32_t qf[kQRegs ? MT : 1][kQRegs ? kD / 16 : 1][4];
    if constexpr (kQRegs != 0) {
        cp_async_wait<0>();
        __syncthreads();
#pragma unroll
        for (int mt = 0; mt < MT; ++mt) {
#pragma unroll
            for (int ks = 0; ks < kD / 16; ++ks) frag_a(qf[mt][ks], sQ + (wrow0 + mt * 16) * LD + ks * 16, LD, lane);
        }
    }

    // exp(scale*s - m) = 2^(s*c - m*c) with c = scale*log2(e): one FMA per score. A negative (or zero)
    // scale reverses the order of the scores, so then the scores are scaled first and c is 1.
    const float scale_log2 = scale * LOG2E;
    const bool pos_scale = scale_log2 > 0.f;
    const float c = pos_scale ? scale_log2 : 1.f;

    float acc_o[MT][NTO][4];
    float row_m[MT][2];
    float row_l[MT][2];
#pragma unroll
    for (int mt = 0; mt < MT; ++mt) {
#pragma unroll
        for (int nt = 0; nt < NTO; ++nt) {
#pragma unroll
            for (int e = 0; e < 4; ++e) acc_o[mt][nt][e] = 0.f;
        }
        row_m[mt][0] = row_m[mt][1] = -INFINITY;
        row_l[mt][0] = row_l[mt][1] = 0.f;
    }

    // One key block. The masked variant (the ragged last block and those crossing the diagonal) is a
    // separate instantiation so that the unmasked body carries none of the mask's registers.
    auto step = [&](int nb, auto masked) {
        cp_async_wait<0>();
        __syncthreads();  // K_nb (and Q) landed; every warp is done with V of the previous block
        load_tile<kBlockN, kD, S::kThreads>(sV, vh, nb * kBlockN, nk, d);
        cp_async_commit();

        float acc_s[MT][NTS][4];
#pragma unroll
        for (int mt = 0; mt < MT; ++mt) {
#pragma unroll
            for (int nt = 0; nt < NTS; ++nt) {
#pragma unroll
                for (int e = 0; e < 4; ++e) acc_s[mt][nt][e] = 0.f;
            }
        }
#pragma unroll
        for (int ks = 0; ks < kD / 16; ++ks) {
            uint32_t a[MT][4];
#pragma unroll
            for (int mt = 0; mt < MT; ++mt) {
                if constexpr (kQRegs != 0) {
#pragma unroll
                    for (int e = 0; e < 4; ++e) a[mt][e] = qf[mt][ks][e];
                } else {
                    frag_a(a[mt], sQ + (wrow0 + mt * 16) * LD + ks * 16, LD, lane);
                }
            }
#pragma unroll
            for (int np = 0; np < NTS / 2; ++np) {
                uint32_t bb[4];
                frag_b_nk(bb, sK + (np * 16) * LD + ks * 16, LD, lane);
#pragma unroll
                for (int mt = 0; mt < MT; ++mt) {
                    mma16816<DT>(acc_s[mt][2 * np], a[mt], bb[0], bb[1]);
                    mma16816<DT>(acc_s[mt][2 * np + 1], a[mt], bb[2], bb[3]);
                }
            }
        }

        const int n0 = nb * kBlockN;
        if (!pos_scale) {
#pragma unroll
            for (int mt = 0; mt < MT; ++mt) {
#pragma unroll
                for (int nt = 0; nt < NTS; ++nt) {
#pragma unroll
                    for (int e = 0; e < 4; ++e) acc_s[mt][nt][e] *= scale_log2;
                }
            }
        }
        if constexpr (decltype(masked)::value) {
#pragma unroll
            for (int mt = 0; mt < MT; ++mt) {
#pragma unroll
                for (int hf = 0; hf < 2; ++hf) {
                    // this thread's first key column is n0 + 2*t4
                    const int lim = key_limit(m0 + wrow0 + mt * 16 + g + hf * 8, nk, causal, offset) - n0 - 2 * t4;
#pragma unroll
                    for (int nt = 0; nt < NTS; ++nt) {
#pragma unroll
                        for (int e = 0; e < 2; ++e) {
                            if (nt * 8 + e >= lim) acc_s[mt][nt][hf * 2 + e] = -INFINITY;
                        }
                    }
                }
            }
        }

        // Online softmax. Each row's 8-key slices live in the 4 threads of a quad.
#pragma unroll
        for (int mt = 0; mt < MT; ++mt) {
#pragma unroll
            for (int hf = 0; hf < 2; ++hf) {
                float mx = row_m[mt][hf];
#pragma unroll
                for (int nt = 0; nt < NTS; ++nt) {
                    mx = fmaxf(mx, fmaxf(acc_s[mt][nt][hf * 2], acc_s[mt][nt][hf * 2 + 1]));
                }
                mx = fmaxf(mx, shfl_xor(mx, 1));
                mx = fmaxf(mx, shfl_xor(mx, 2));
                // A row that has seen no key yet keeps max -inf; base 0 keeps 2^(-inf - base) = 0, not NaN.
                const float base = mx == -INFINITY ? 0.f : mx * c;
                const float corr = ex2(row_m[mt][hf] * c - base);
                row_m[mt][hf] = mx;
                float sum = 0.f;
#pragma unroll
                for (int nt = 0; nt < NTS; ++nt) {
#pragma unroll
                    for (int e = 0; e < 2; ++e) {
                        const float p = ex2(fmaf(acc_s[mt][nt][hf * 2 + e], c, -base));
                        acc_s[mt][nt][hf * 2 + e] = p;
                        sum += p;
                    }
                }
                row_l[mt][hf] = row_l[mt][hf] * corr + sum;
#pragma unroll
                for (int nt = 0; nt < NTO; ++nt) {
                    acc_o[mt][nt][hf * 2] *= corr;
                    acc_o[mt][nt][hf * 2 + 1] *= corr;
                }
            }
        }

        cp_async_wait<0>();
        __syncthreads();  // V_nb landed; every warp is done with K_nb
        if (nb > 0) {
            load_tile<kBlockN, kD, S::kThreads>(sK, kh, (nb - 1) * kBlockN, nk, d);
            cp_async_commit();
        }

#pragma unroll
        for (int kk = 0; kk < kBlockN / 16; ++kk) {
            uint32_t a[MT][4];
#pragma unroll
            for (int mt = 0; mt < MT; ++mt) frag_a_from_c<DT>(a[mt], acc_s[mt][2 * kk], acc_s[mt][2 * kk + 1]);
#pragma unroll
            for (int np = 0; np < NTO / 2; ++np) {
                uint32_t bb[4];
                frag_b_kn(bb, sV + (kk * 16) * LD + np * 16, LD, lane);
#pragma unroll
                for (int mt = 0; mt < MT; ++mt) {
                    mma16816<DT>(acc_o[mt][2 * np], a[mt], bb[0], bb[1]);
                    mma16816<DT>(acc_o[mt][2 * np + 1], a[mt], bb[2], bb[3]);
                }
            }
        }
    };
    int nb = n_blocks - 1;
    for (; nb >= 0 && (nb * kBlockN + kBlockN > nk || (causal && nb * kBlockN + kBlockN - 1 > m0 + offset)); --nb) {
        step(nb, Bool<true>());
    }
    for (; nb >= 0; --nb) step(nb, Bool<false>());

    // Normalise once; stage the warp's rows in its own rows of sQ for 16-byte coalesced stores. (The output
    // addresses are formed only here: live across the key loop they would cost registers it needs.)
    uint16_t* oh = o + qhead * nq * d;
    float* lseh = lse + qhead * nq;
#pragma unroll
    for (int mt = 0; mt < MT; ++mt) {
#pragma unroll
        for (int hf = 0; hf < 2; ++hf) {
            float l = row_l[mt][hf];
            l += shfl_xor(l, 1);
            l += shfl_xor(l, 2);
            const float inv = l > 0.f ? 1.f / l : 0.f;
            const int r = wrow0 + mt * 16 + g + hf * 8;
            if (t4 == 0 && m0 + r < nq) {
                stg(lseh + m0 + r, l > 0.f ? (row_m[mt][hf] * c + log2f(l)) * LN2 : -INFINITY);
            }
#pragma unroll
            for (int nt = 0; nt < NTO; ++nt) {
                sts(reinterpret_cast<uint32_t*>(sQ + r * LD + nt * 8 + 2 * t4),
                    pack2<DT>(acc_o[mt][nt][hf * 2] * inv, acc_o[mt][nt][hf * 2 + 1] * inv));
            }
        }
    }
    __syncwarp();
    for (int i = lane; i < MT * 16 * CPR; i += 32) {
        const int r = i / CPR;
        const int cc = i - r * CPR;
        const int row = m0 + wrow0 + r;
        if (row < nq && cc * 8 < d) {
            stg(reinterpret_cast<uint4*>(oh + static_cast<int64_t>(row) * d + cc * 8),
                lds(reinterpret_cast<const uint4*>(sQ + (wrow0 + r) * LD + cc * 8)));
        }
    }
}

// ---------------------------------------------------------------------------------------------------
// Backward preprocessing: one warp per row. D = sum_j dO[j] * O[j] in fp32 from the stored values.

template <int DT>
__device__ __forceinline__ void attn_bwd_prep(const uint16_t* __restrict__ out, const uint16_t* __restrict__ dout,
                                              float* __restrict__ delta, float* __restrict__ dq_accum,
                                              int64_t rows, int d) {
    const int lane = threadIdx.x & 31;
    const int64_t row = static_cast<int64_t>(blockIdx.x) * (blockDim.x >> 5) + (threadIdx.x >> 5);
    if (row >= rows) return;
    const uint16_t* po = out + row * d;
    const uint16_t* pd = dout + row * d;
    float s = 0.f;
    for (int c = lane * 8; c < d; c += 32 * 8) {
        const uint4 a = ldg(reinterpret_cast<const uint4*>(po + c));
        const uint4 bq = ldg(reinterpret_cast<const uint4*>(pd + c));
        const uint32_t av[4] = {a.x, a.y, a.z, a.w};
        const uint32_t bv[4] = {bq.x, bq.y, bq.z, bq.w};
#pragma unroll
        for (int j = 0; j < 4; ++j) {
            s = fmaf(to_float<DT>(static_cast<uint16_t>(av[j] & 0xffffu)),
                     to_float<DT>(static_cast<uint16_t>(bv[j] & 0xffffu)), s);
            s = fmaf(to_float<DT>(static_cast<uint16_t>(av[j] >> 16)), to_float<DT>(static_cast<uint16_t>(bv[j] >> 16)), s);
        }
    }
#pragma unroll
    for (int m = 16; m > 0; m >>= 1) s += shfl_xor(s, m);
    if (lane == 0) stg(delta + row, s);
    if (dq_accum != nullptr) {
        const float4 zero = {0.f, 0.f, 0.f, 0.f};
        for (int c = lane * 4; c < d; c += 32 * 4) stg(reinterpret_cast<float4*>(dq_accum + row * d + c), zero);
    }
}

// dq = scale * dq_accum in the storage type; n is a multiple of 8.
template <int DT>
__device__ __forceinline__ void attn_dq_convert(const float* __restrict__ acc, uint16_t* __restrict__ dq, int64_t n,
                                                float scale) {
    const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x * 8;
    for (int64_t i = (static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x) * 8; i < n; i += stride) {
        const float4 x0 = ldg(reinterpret_cast<const float4*>(acc + i));
        const float4 x1 = ldg(reinterpret_cast<const float4*>(acc + i + 4));
        uint4 r;
        r.x = pack2<DT>(x0.x * scale, x0.y * scale);
        r.y = pack2<DT>(x0.z * scale, x0.w * scale);
        r.z = pack2<DT>(x1.x * scale, x1.y * scale);
        r.w = pack2<DT>(x1.z * scale, x1.w * scale);
        stg(reinterpret_cast<uint4*>(dq + i), r);
    }
}

// dst[r][c] = c < src_cols ? src[r][c] : 0 for c < dst_cols, 16-bit elements: pads rows whose length is not
// a multiple of 8 (the tiles need 16-byte rows) with zeros, and cuts the padding off again.
__device__ __forceinline__ void attn_copy_rows(const uint16_t* __restrict__ src, int src_cols, uint16_t* __restrict__ dst,
                                               int dst_cols, int64_t rows) {
    const int64_t n = rows * dst_cols;
    const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
    for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride) {
        const int64_t r = i / dst_cols;
        const int c = static_cast<int>(i - r * dst_cols);
        stg(dst + i, c < src_cols ? ldg(src + r * src_cols + c) : static_cast<uint16_t>(0));
    }
}

// ---------------------------------------------------------------------------------------------------
// Backward, key-block kernel. kNWarps warps = kKG key groups x kDS dim slices; warp (kg, ds) owns keys
// kg*16..+15 of the block and, for dK/dV, head dims ds*kDV..+kDV (kDS = 2 halves the accumulators of
// the large head dims; the two slices of a key group then both compute that group's S and dP). Per query
// block, with P recomputed from the saved log-sum-exp:
//   S^T = K Q^T, P^T = 2^(S^T c - lse log2 e), dP^T = V dO^T, dS^T = P^T o (dP^T - D)
//   dV += P^T dO, dK += dS^T Q            (P^T, dS^T straight from the accumulators)
//   dQ += dS K                             (dS^T through shared memory; fp32 atomics), when with_dq
// Query rows beyond Nq have lse = +inf (P = 0) and D = 0, so they add nothing without a mask.

template <int kD, int kBlockM, int kNWarps, int kDS, int kStages>
struct BwdShape {
    static constexpr int kThreads = kNWarps * 32;
    static constexpr int KG = kNWarps / kDS;
    static constexpr int kBlockN = 16 * KG;
    static constexpr int kDV = kD / kDS;
    static constexpr int LD = kD + 8;
    static constexpr int LDS = kBlockM + 8;
    static constexpr int kSmem = 2 * (2 * kBlockN * LD + 2 * kStages * kBlockM * LD + kBlockN * LDS) +
                                 4 * 2 * kStages * kBlockM;
    static_assert(kD % 32 == 0 && kD >= 32 && kD <= 256, "head dimension tile");
    static_assert(kNWarps % kDS == 0 && kDV % 16 == 0, "dim slices");
    static_assert(kBlockM % 16 == 0, "kBlockM must be a multiple of 16");
    static_assert(kStages == 1 || kStages == 2, "one or two query-block stages");
};

template <int DT, int kD, int kBlockM, int kNWarps, int kDS, int kStages>
__device__ __forceinline__ void attn_bwd(const uint16_t* __restrict__ q, const uint16_t* __restrict__ k,
                                         const uint16_t* __restrict__ v, const uint16_t* __restrict__ dout,
                                         const float* __restrict__ lse, const float* __restrict__ delta,
                                         float* __restrict__ dq_accum, uint16_t* __restrict__ dk,
                                         uint16_t* __restrict__ dv, int nq, int nk, int hq, int hkv, int d,
                                         float scale, int causal, int offset, int with_dq) {
    using S = BwdShape<kD, kBlockM, kNWarps, kDS, kStages>;
    constexpr int LD = S::LD;
    constexpr int LDS = S::LDS;
    constexpr int kBlockN = S::kBlockN;
    constexpr int kDV = S::kDV;
    constexpr int NTQ = kBlockM / 8;
    constexpr int NTD = kDV / 8;

    uint16_t* sK = reinterpret_cast<uint16_t*>(dyn_smem());
    uint16_t* sV = sK + kBlockN * LD;
    uint16_t* sQ = sV + kBlockN * LD;              // [kStages][kBlockM][LD]
    uint16_t* sdO = sQ + kStages * kBlockM * LD;   // [kStages][kBlockM][LD]
    uint16_t* sdS = sdO + kStages * kBlockM * LD;  // [kBlockN][LDS]
    float* sLse = reinterpret_cast<float*>(sdS + kBlockN * LDS);  // [kStages][kBlockM], times log2(e)
    float* sDel = sLse + kStages * kBlockM;                       // [kStages][kBlockM]

    const int tid = threadIdx.x;
    const int warp = tid >> 5;
    const int lane = tid & 31;
    const int g = lane >> 2;
    const int t4 = lane & 3;
    const int kg = warp % S::KG;
    const int ds = warp / S::KG;
    const int n_block = blockIdx.x;
    const int hk = blockIdx.y;
    const int b = blockIdx.z;
    const int group = hq / hkv;
    const int n0 = n_block * kBlockN;
    const int64_t khead = static_cast<int64_t>(b) * hkv + hk;
    const uint16_t* kh = k + khead * nk * d;
    const uint16_t* vh = v + khead * nk * d;

    // Query blocks that see at least one key of this block: rows i >= n0 - offset under a causal mask.
    const int m_first = causal ? imax(0, n0 - offset) / kBlockM : 0;
    const int m_count = imax(0, (nq + kBlockM - 1) / kBlockM - m_first);
    const int total = group * m_count;

    auto load_q_block = [&](int it, int buf) {
        const int h = hk * group + it / m_count;
        const int m0 = (m_first + it % m_count) * kBlockM;
        const int64_t qhead = static_cast<int64_t>(b) * hq + h;
        load_tile<kBlockM, kD, S::kThreads>(sQ + buf * kBlockM * LD, q + qhead * nq * d, m0, nq, d);
        load_tile<kBlockM, kD, S::kThreads>(sdO + buf * kBlockM * LD, dout + qhead * nq * d, m0, nq, d);
        for (int r = tid; r < kBlockM; r += S::kThreads) {
            float l2 = INFINITY;  // P = 0 for rows beyond Nq and rows that see no key (lse = -inf)
            float dd = 0.f;
            if (m0 + r < nq) {
                const float l = ldg(lse + qhead * nq + m0 + r);
                if (l != -INFINITY) l2 = l * LOG2E;
                dd = ldg(delta + qhead * nq + m0 + r);
            }
            sts(sLse + buf * kBlockM + r, l2);
            sts(sDel + buf * kBlockM + r, dd);
        }
    };

    if (total > 0) {
        load_tile<kBlockN, kD, S::kThreads>(sK, kh, n0, nk, d);
        load_tile<kBlockN, kD, S::kThreads>(sV, vh, n0, nk, d);
        load_q_block(0, 0);
        cp_async_commit();
    }

    const float scale_log2 = scale * LOG2E;
    float acc_dk[NTD][4];
    float acc_dv[NTD][4];
#pragma unroll
    for (int nt = 0; nt < NTD; ++nt) {
#pragma unroll
        for (int e = 0; e < 4; ++e) acc_dk[nt][e] = acc_dv[nt][e] = 0.f;
    }

    for (int it = 0; it < total; ++it) {
        cp_async_wait<0>();
        __syncthreads();  // this query block landed; every warp is done with the previous one and with sdS
        if (kStages == 2 && it + 1 < total) {
            load_q_block(it + 1, (it + 1) & 1);
            cp_async_commit();
        }
        const int buf = kStages == 2 ? (it & 1) : 0;
        const int h = hk * group + it / m_count;
        const int m0 = (m_first + it % m_count) * kBlockM;
        const uint16_t* sQb = sQ + buf * kBlockM * LD;
        const uint16_t* sdOb = sdO + buf * kBlockM * LD;
        const float* sLseb = sLse + buf * kBlockM;
        const float* sDelb = sDel + buf * kBlockM;

        float acc_s[NTQ][4];
        float acc_dp[NTQ][4];
#pragma unroll
        for (int nt = 0; nt < NTQ; ++nt) {
#pragma unroll
            for (int e = 0; e < 4; ++e) acc_s[nt][e] = acc_dp[nt][e] = 0.f;
        }
#pragma unroll
        for (int ks = 0; ks < kD / 16; ++ks) {
            uint32_t a[4];
            frag_a(a, sK + (kg * 16) * LD + ks * 16, LD, lane);
#pragma unroll
            for (int np = 0; np < NTQ / 2; ++np) {
                uint32_t bb[4];
                frag_b_nk(bb, sQb + (np * 16) * LD + ks * 16, LD, lane);
                mma16816<DT>(acc_s[2 * np], a, bb[0], bb[1]);
                mma16816<DT>(acc_s[2 * np + 1], a, bb[2], bb[3]);
            }
        }
#pragma unroll
        for (int ks = 0; ks < kD / 16; ++ks) {
            uint32_t a[4];
            frag_a(a, sV + (kg * 16) * LD + ks * 16, LD, lane);
#pragma unroll
            for (int np = 0; np < NTQ / 2; ++np) {
                uint32_t bb[4];
                frag_b_nk(bb, sdOb + (np * 16) * LD + ks * 16, LD, lane);
                mma16816<DT>(acc_dp[2 * np], a, bb[0], bb[1]);
                mma16816<DT>(acc_dp[2 * np + 1], a, bb[2], bb[3]);
            }
        }

        // P^T and dS^T in place: acc_s becomes P^T, acc_dp becomes dS^T.
        const bool need_mask = n0 + kBlockN > nk || (causal && n0 + kBlockN - 1 > m0 + offset);
#pragma unroll
        for (int nt = 0; nt < NTQ; ++nt) {
            const int ql = nt * 8 + 2 * t4;
            const float2 l2 = lds(reinterpret_cast<const float2*>(sLseb + ql));
            const float2 dd = lds(reinterpret_cast<const float2*>(sDelb + ql));
#pragma unroll
            for (int e = 0; e < 4; ++e) {
                float p = ex2(fmaf(acc_s[nt][e], scale_log2, -((e & 1) ? l2.y : l2.x)));
                if (need_mask) {
                    const int key = n0 + kg * 16 + g + (e >> 1) * 8;
                    if (key >= key_limit(m0 + ql + (e & 1), nk, causal, offset)) p = 0.f;
                }
                acc_s[nt][e] = p;
                acc_dp[nt][e] = p * (acc_dp[nt][e] - ((e & 1) ? dd.y : dd.x));
            }
        }

        // dV += P^T dO and dK += dS^T Q over this warp's dim slice.
#pragma unroll
        for (int kk = 0; kk < kBlockM / 16; ++kk) {
            uint32_t ap[4];
            uint32_t as[4];
            frag_a_from_c<DT>(ap, acc_s[2 * kk], acc_s[2 * kk + 1]);
            frag_a_from_c<DT>(as, acc_dp[2 * kk], acc_dp[2 * kk + 1]);
#pragma unroll
            for (int np = 0; np < NTD / 2; ++np) {
                uint32_t bb[4];
                frag_b_kn(bb, sdOb + (kk * 16) * LD + ds * kDV + np * 16, LD, lane);
                mma16816<DT>(acc_dv[2 * np], ap, bb[0], bb[1]);
                mma16816<DT>(acc_dv[2 * np + 1], ap, bb[2], bb[3]);
                frag_b_kn(bb, sQb + (kk * 16) * LD + ds * kDV + np * 16, LD, lane);
                mma16816<DT>(acc_dk[2 * np], as, bb[0], bb[1]);
                mma16816<DT>(acc_dk[2 * np + 1], as, bb[2], bb[3]);
            }
        }

        if (with_dq) {
            if (ds == 0) {
#pragma unroll
                for (int nt = 0; nt < NTQ; ++nt) {
#pragma unroll
                    for (int hf = 0; hf < 2; ++hf) {
                        sts(reinterpret_cast<uint32_t*>(sdS + (kg * 16 + g + hf * 8) * LDS + nt * 8 + 2 * t4),
                            pack2<DT>(acc_dp[nt][hf * 2], acc_dp[nt][hf * 2 + 1]));
                    }
                }
            }
        }
        if (kStages == 1 || with_dq) __syncthreads();  // dS^T complete; every warp is done with sQ/sdO
        if (kStages == 1 && it + 1 < total) {
            load_q_block(it + 1, 0);
            cp_async_commit();
        }
        if (with_dq) {
            // dQ[m0.., :] += dS K, as (16-row tile, 32-dim chunk) pieces spread over the warps.
            constexpr int MTQ = kBlockM / 16;
            constexpr int PIECES = MTQ * (kD / 32);
            float* dqh = dq_accum + (static_cast<int64_t>(b) * hq + h) * nq * d;
            for (int piece = warp; piece < PIECES; piece += kNWarps) {
                const int mt = piece % MTQ;
                const int dc = piece / MTQ;
                if (dc * 32 >= d) continue;
                float acc[4][4];
#pragma unroll
                for (int nt = 0; nt < 4; ++nt) {
#pragma unroll
                    for (int e = 0; e < 4; ++e) acc[nt][e] = 0.f;
                }
#pragma unroll
                for (int kk = 0; kk < kBlockN / 16; ++kk) {
                    uint32_t a[4];
                    frag_a_t(a, sdS + (kk * 16) * LDS + mt * 16, LDS, lane);
#pragma unroll
                    for (int np = 0; np < 2; ++np) {
                        uint32_t bb[4];
                        frag_b_kn(bb, sK + (kk * 16) * LD + dc * 32 + np * 16, LD, lane);
                        mma16816<DT>(acc[2 * np], a, bb[0], bb[1]);
                        mma16816<DT>(acc[2 * np + 1], a, bb[2], bb[3]);
                    }
                }
                // this thread's pairs: rows r0 and r0 + 8, columns c0 + 8 nt (even; d is a multiple of 8)
                const int r0 = m0 + mt * 16 + g;
                const int c0 = dc * 32 + 2 * t4;
                float* p0 = dqh + static_cast<int64_t>(r0) * d + c0;
#pragma unroll
                for (int nt = 0; nt < 4; ++nt) {
                    if (c0 + nt * 8 < d) {
                        if (r0 < nq) red_add2(p0 + nt * 8, acc[nt][0], acc[nt][1]);
                        if (r0 + 8 < nq) red_add2(p0 + 8 * d + nt * 8, acc[nt][2], acc[nt][3]);
                    }
                }
            }
        }
    }

    uint16_t* dkh = dk + khead * nk * d;
    uint16_t* dvh = dv + khead * nk * d;
#pragma unroll
    for (int nt = 0; nt < NTD; ++nt) {
#pragma unroll
        for (int hf = 0; hf < 2; ++hf) {
            const int key = n0 + kg * 16 + g + hf * 8;
            const int col = ds * kDV + nt * 8 + 2 * t4;
            if (key < nk && col < d) {
                const int64_t at = static_cast<int64_t>(key) * d + col;
                stg(reinterpret_cast<uint32_t*>(dkh + at),
                    pack2<DT>(acc_dk[nt][hf * 2] * scale, acc_dk[nt][hf * 2 + 1] * scale));
                stg(reinterpret_cast<uint32_t*>(dvh + at), pack2<DT>(acc_dv[nt][hf * 2], acc_dv[nt][hf * 2 + 1]));
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------------
// Backward, key-block kernel with a warp layout per product (FlashAttention-2's): the same work as attn_bwd
// (same arguments, grid and launch record), but P and dS go through shared memory so that each product gets
// warp tiles of 32 or more rows and columns. attn_bwd keeps P^T and dS^T in registers, which ties every warp
// to 16 keys of every product: it reads its B operands (Q, dO) from shared memory once per 2 MMAs, and on
// sm_90 the shared-memory bandwidth, not the tensor cores, bounds it. Here, per query block (rows m0..):
//   S = Q K^T, dP = dO V^T           kWmS x (kNWarps / kWmS) warps, SM x SN each
//   P = 2^(S c - lse log2 e), dS = P o (dP - D) -> sP, sdS ([query][key], 16-bit)
//   dV += P^T dO, dK += dS^T Q       kWnKV x (kNWarps / kWnKV) warps over keys x head dims, in registers
//   dQ += dS K                       kWmQ x (kNWarps / kWmQ) warps over queries x head dims, fp32 atomics
// Per 128 x 128 tile at d = 64 that is 144 ldmatrix.x4 + 64 KiB of P/dS stores per warp against attn_bwd's
// 192 + 16 KiB (at d = 128, 64 x 128 tiles: 144 against 192): about 20% fewer shared-memory bytes per MMA.
// Two barriers per query block, as attn_bwd: one before the products (this block's Q/dO landed, the last
// block's P/dS are read), one after P/dS are stored.

template <int kD, int kBlockM, int kBlockN, int kNWarps, int kWmS, int kWnKV, int kWmQ, int kStages>
struct BwdTiledShape {
    static constexpr int kThreads = kNWarps * 32;
    static constexpr int LD = kD + 8;
    static constexpr int LDP = kBlockN + 8;
    static constexpr int SM = kBlockM / kWmS;
    static constexpr int SN = kBlockN / (kNWarps / kWmS);
    static constexpr int VN = kBlockN / kWnKV;
    static constexpr int VD = kD / (kNWarps / kWnKV);
    static constexpr int QM = kBlockM / kWmQ;
    static constexpr int QD = kD / (kNWarps / kWmQ);
    static constexpr int kSmem =
        2 * (2 * kBlockN * LD + 2 * kStages * kBlockM * LD + 2 * kBlockM * LDP) + 4 * 2 * kStages * kBlockM;
    static_assert(kD % 32 == 0 && kD >= 32 && kD <= 256, "head dimension tile");
    static_assert(kNWarps % kWmS == 0 && kNWarps % kWnKV == 0 && kNWarps % kWmQ == 0, "warp layouts");
    static_assert(SM % 16 == 0 && SN % 16 == 0, "S/dP warp tiles of whole 16 x 16 fragments");
    static_assert(VN % 16 == 0 && VD % 16 == 0, "dK/dV warp tiles of whole 16 x 16 fragments");
    static_assert(QM % 16 == 0 && QD % 16 == 0, "dQ warp tiles of whole 16 x 16 fragments");
    static_assert(kStages == 1 || kStages == 2, "one or two query-block stages");
};

template <int DT, int kD, int kBlockM, int kBlockN, int kNWarps, int kWmS, int kWnKV, int kWmQ, int kStages>
__device__ __forceinline__ void attn_bwd_tiled(const uint16_t* __restrict__ q, const uint16_t* __restrict__ k,
                                               const uint16_t* __restrict__ v, const uint16_t* __restrict__ dout,
                                               const float* __restrict__ lse, const float* __restrict__ delta,
                                               float* __restrict__ dq_accum, uint16_t* __restrict__ dk,
                                               uint16_t* __restrict__ dv, int nq, int nk, int hq, int hkv, int d,
                                               float scale, int causal, int offset, int with_dq) {
    using S = BwdTiledShape<kD, kBlockM, kBlockN, kNWarps, kWmS, kWnKV, kWmQ, kStages>;
    constexpr int LD = S::LD;
    constexpr int LDP = S::LDP;
    constexpr int MTS = S::SM / 16;
    constexpr int NTS = S::SN / 8;
    constexpr int MTV = S::VN / 16;
    constexpr int NTV = S::VD / 8;
    constexpr int MTQ = S::QM / 16;
    constexpr int NTQ = S::QD / 8;

    uint16_t* sK = reinterpret_cast<uint16_t*>(dyn_smem());
    uint16_t* sV = sK + kBlockN * LD;
    uint16_t* sQ = sV + kBlockN * LD;              // [kStages][kBlockM][LD]
    uint16_t* sdO = sQ + kStages * kBlockM * LD;   // [kStages][kBlockM][LD]
    uint16_t* sP = sdO + kStages * kBlockM * LD;   // [kBlockM][LDP]
    uint16_t* sdS = sP + kBlockM * LDP;            // [kBlockM][LDP]
    float* sLse = reinterpret_cast<float*>(sdS + kBlockM * LDP);  // [kStages][kBlockM], times log2(e)
    float* sDel = sLse + kStages * kBlockM;                       // [kStages][kBlockM]

    const int tid = threadIdx.x;
    const int warp = tid >> 5;
    const int lane = tid & 31;
    const int g = lane >> 2;
    const int t4 = lane & 3;
    // this warp's tile of each product
    const int s_row = (warp / (kNWarps / kWmS)) * S::SM;
    const int s_col = (warp % (kNWarps / kWmS)) * S::SN;
    const int v_key = (warp % kWnKV) * S::VN;
    const int v_dim = (warp / kWnKV) * S::VD;
    const int q_row = (warp % kWmQ) * S::QM;
    const int q_dim = (warp / kWmQ) * S::QD;

    const int n_block = blockIdx.x;
    const int hk = blockIdx.y;
    const int b = blockIdx.z;
    const int group = hq / hkv;
    const int n0 = n_block * kBlockN;
    const int64_t khead = static_cast<int64_t>(b) * hkv + hk;
    const uint16_t* kh = k + khead * nk * d;
    const uint16_t* vh = v + khead * nk * d;

    // Query blocks that see at least one key of this block: rows i >= n0 - offset under a causal mask.
    const int m_first = causal ? imax(0, n0 - offset) / kBlockM : 0;
    const int m_count = imax(0, (nq + kBlockM - 1) / kBlockM - m_first);
    const int total = group * m_count;

    auto load_q_block = [&](int it, int buf) {
        const int h = hk * group + it / m_count;
        const int m0 = (m_first + it % m_count) * kBlockM;
        const int64_t qhead = static_cast<int64_t>(b) * hq + h;
        load_tile<kBlockM, kD, S::kThreads>(sQ + buf * kBlockM * LD, q + qhead * nq * d, m0, nq, d);
        load_tile<kBlockM, kD, S::kThreads>(sdO + buf * kBlockM * LD, dout + qhead * nq * d, m0, nq, d);
        for (int r = tid; r < kBlockM; r += S::kThreads) {
            float l2 = INFINITY;  // P = 0 for rows beyond Nq and rows that see no key (lse = -inf)
            float dd = 0.f;
            if (m0 + r < nq) {
                const float l = ldg(lse + qhead * nq + m0 + r);
                if (l != -INFINITY) l2 = l * LOG2E;
                dd = ldg(delta + qhead * nq + m0 + r);
            }
            sts(sLse + buf * kBlockM + r, l2);
            sts(sDel + buf * kBlockM + r, dd);
        }
    };

    if (total > 0) {
        load_tile<kBlockN, kD, S::kThreads>(sK, kh, n0, nk, d);
        load_tile<kBlockN, kD, S::kThreads>(sV, vh, n0, nk, d);
        load_q_block(0, 0);
        cp_async_commit();
    }

    const float scale_log2 = scale * LOG2E;
    float acc_dk[MTV][NTV][4];
    float acc_dv[MTV][NTV][4];
#pragma unroll
    for (int mt = 0; mt < MTV; ++mt) {
#pragma unroll
        for (int nt = 0; nt < NTV; ++nt) {
#pragma unroll
            for (int e = 0; e < 4; ++e) acc_dk[mt][nt][e] = acc_dv[mt][nt][e] = 0.f;
        }
    }

    for (int it = 0; it < total; ++it) {
        cp_async_wait<0>();
        __syncthreads();  // this query block landed; every warp is done with the previous one and with sP/sdS
        if (kStages == 2 && it + 1 < total) {
            load_q_block(it + 1, (it + 1) & 1);
            cp_async_commit();
        }
        const int buf = kStages == 2 ? (it & 1) : 0;
        const int h = hk * group + it / m_count;
        const int m0 = (m_first + it % m_count) * kBlockM;
        const uint16_t* sQb = sQ + buf * kBlockM * LD;
        const uint16_t* sdOb = sdO + buf * kBlockM * LD;
        const float* sLseb = sLse + buf * kBlockM;
        const float* sDelb = sDel + buf * kBlockM;

        {
            float acc_s[MTS][NTS][4];
            float acc_dp[MTS][NTS][4];
#pragma unroll
            for (int mt = 0; mt < MTS; ++mt) {
#pragma unroll
                for (int nt = 0; nt < NTS; ++nt) {
#pragma unroll
                    for (int e = 0; e < 4; ++e) acc_s[mt][nt][e] = acc_dp[mt][nt][e] = 0.f;
                }
            }
#pragma unroll
            for (int ks = 0; ks < kD / 16; ++ks) {
                uint32_t a[MTS][4];
#pragma unroll
                for (int mt = 0; mt < MTS; ++mt) frag_a(a[mt], sQb + (s_row + mt * 16) * LD + ks * 16, LD, lane);
#pragma unroll
                for (int np = 0; np < NTS / 2; ++np) {
                    uint32_t bb[4];
                    frag_b_nk(bb, sK + (s_col + np * 16) * LD + ks * 16, LD, lane);
#pragma unroll
                    for (int mt = 0; mt < MTS; ++mt) {
                        mma16816<DT>(acc_s[mt][2 * np], a[mt], bb[0], bb[1]);
                        mma16816<DT>(acc_s[mt][2 * np + 1], a[mt], bb[2], bb[3]);
                    }
                }
            }
#pragma unroll
            for (int ks = 0; ks < kD / 16; ++ks) {
                uint32_t a[MTS][4];
#pragma unroll
                for (int mt = 0; mt < MTS; ++mt) frag_a(a[mt], sdOb + (s_row + mt * 16) * LD + ks * 16, LD, lane);
#pragma unroll
                for (int np = 0; np < NTS / 2; ++np) {
                    uint32_t bb[4];
                    frag_b_nk(bb, sV + (s_col + np * 16) * LD + ks * 16, LD, lane);
#pragma unroll
                    for (int mt = 0; mt < MTS; ++mt) {
                        mma16816<DT>(acc_dp[mt][2 * np], a[mt], bb[0], bb[1]);
                        mma16816<DT>(acc_dp[mt][2 * np + 1], a[mt], bb[2], bb[3]);
                    }
                }
            }

            // P and dS, rounded to the storage type once, into sP/sdS.
            const bool need_mask = n0 + kBlockN > nk || (causal && n0 + kBlockN - 1 > m0 + offset);
#pragma unroll
            for (int mt = 0; mt < MTS; ++mt) {
#pragma unroll
                for (int hf = 0; hf < 2; ++hf) {
                    const int r = s_row + mt * 16 + g + hf * 8;
                    const float l2 = lds(sLseb + r);
                    const float dd = lds(sDelb + r);
                    // this thread's first key column of n-tile nt is n0 + s_col + nt * 8 + 2 * t4
                    const int lim = need_mask ? key_limit(m0 + r, nk, causal, offset) - (n0 + s_col + 2 * t4) : 0;
#pragma unroll
                    for (int nt = 0; nt < NTS; ++nt) {
                        float pv[2], dsv[2];
#pragma unroll
                        for (int e = 0; e < 2; ++e) {
                            float pe = ex2(fmaf(acc_s[mt][nt][hf * 2 + e], scale_log2, -l2));
                            if (need_mask && nt * 8 + e >= lim) pe = 0.f;
                            pv[e] = pe;
                            dsv[e] = pe * (acc_dp[mt][nt][hf * 2 + e] - dd);
                        }
                        const int at = r * LDP + s_col + nt * 8 + 2 * t4;
                        sts(reinterpret_cast<uint32_t*>(sP + at), pack2<DT>(pv[0], pv[1]));
                        sts(reinterpret_cast<uint32_t*>(sdS + at), pack2<DT>(dsv[0], dsv[1]));
                    }
                }
            }
        }
        __syncthreads();  // sP and sdS complete

        // dV += P^T dO and dK += dS^T Q over this warp's keys and head dims.
#pragma unroll
        for (int kk = 0; kk < kBlockM / 16; ++kk) {
            uint32_t ap[MTV][4];
            uint32_t as[MTV][4];
#pragma unroll
            for (int mt = 0; mt < MTV; ++mt) {
                frag_a_t(ap[mt], sP + (kk * 16) * LDP + v_key + mt * 16, LDP, lane);
                frag_a_t(as[mt], sdS + (kk * 16) * LDP + v_key + mt * 16, LDP, lane);
            }
#pragma unroll
            for (int np = 0; np < NTV / 2; ++np) {
                uint32_t bb[4];
                frag_b_kn(bb, sdOb + (kk * 16) * LD + v_dim + np * 16, LD, lane);
#pragma unroll
                for (int mt = 0; mt < MTV; ++mt) {
                    mma16816<DT>(acc_dv[mt][2 * np], ap[mt], bb[0], bb[1]);
                    mma16816<DT>(acc_dv[mt][2 * np + 1], ap[mt], bb[2], bb[3]);
                }
                frag_b_kn(bb, sQb + (kk * 16) * LD + v_dim + np * 16, LD, lane);
#pragma unroll
                for (int mt = 0; mt < MTV; ++mt) {
                    mma16816<DT>(acc_dk[mt][2 * np], as[mt], bb[0], bb[1]);
                    mma16816<DT>(acc_dk[mt][2 * np + 1], as[mt], bb[2], bb[3]);
                }
            }
        }

        if (with_dq && q_dim < d) {
            // dQ[m0.., :] += dS K over this warp's queries and head dims
            float acc[MTQ][NTQ][4];
#pragma unroll
            for (int mt = 0; mt < MTQ; ++mt) {
#pragma unroll
                for (int nt = 0; nt < NTQ; ++nt) {
#pragma unroll
                    for (int e = 0; e < 4; ++e) acc[mt][nt][e] = 0.f;
                }
            }
#pragma unroll
            for (int kk = 0; kk < kBlockN / 16; ++kk) {
                uint32_t a[MTQ][4];
#pragma unroll
                for (int mt = 0; mt < MTQ; ++mt) frag_a(a[mt], sdS + (q_row + mt * 16) * LDP + kk * 16, LDP, lane);
#pragma unroll
                for (int np = 0; np < NTQ / 2; ++np) {
                    uint32_t bb[4];
                    frag_b_kn(bb, sK + (kk * 16) * LD + q_dim + np * 16, LD, lane);
#pragma unroll
                    for (int mt = 0; mt < MTQ; ++mt) {
                        mma16816<DT>(acc[mt][2 * np], a[mt], bb[0], bb[1]);
                        mma16816<DT>(acc[mt][2 * np + 1], a[mt], bb[2], bb[3]);
                    }
                }
            }
            float* dqh = dq_accum + (static_cast<int64_t>(b) * hq + h) * nq * d;
#pragma unroll
            for (int mt = 0; mt < MTQ; ++mt) {
                // this thread's pairs: rows r0 and r0 + 8, columns c0 + 8 nt (even; d is a multiple of 8)
                const int r0 = m0 + q_row + mt * 16 + g;
                const int c0 = q_dim + 2 * t4;
                float* p0 = dqh + static_cast<int64_t>(r0) * d + c0;
#pragma unroll
                for (int nt = 0; nt < NTQ; ++nt) {
                    if (c0 + nt * 8 < d) {
                        if (r0 < nq) red_add2(p0 + nt * 8, acc[mt][nt][0], acc[mt][nt][1]);
                        if (r0 + 8 < nq) red_add2(p0 + 8 * d + nt * 8, acc[mt][nt][2], acc[mt][nt][3]);
                    }
                }
            }
        }
        if (kStages == 1 && it + 1 < total) {
            __syncthreads();  // every warp is done with sQ/sdO
            load_q_block(it + 1, 0);
            cp_async_commit();
        }
    }

    uint16_t* dkh = dk + khead * nk * d;
    uint16_t* dvh = dv + khead * nk * d;
#pragma unroll
    for (int mt = 0; mt < MTV; ++mt) {
#pragma unroll
        for (int nt = 0; nt < NTV; ++nt) {
#pragma unroll
            for (int hf = 0; hf < 2; ++hf) {
                const int key = n0 + v_key + mt * 16 + g + hf * 8;
                const int col = v_dim + nt * 8 + 2 * t4;
                if (key < nk && col < d) {
                    const int64_t at = static_cast<int64_t>(key) * d + col;
                    stg(reinterpret_cast<uint32_t*>(dkh + at),
                        pack2<DT>(acc_dk[mt][nt][hf * 2] * scale, acc_dk[mt][nt][hf * 2 + 1] * scale));
                    stg(reinterpret_cast<uint32_t*>(dvh + at), pack2<DT>(acc_dv[mt][nt][hf * 2], acc_dv[mt][nt][hf * 2 + 1]));
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------------
// Backward, deterministic dQ: a CTA owns kBlockM query rows (each warp MT 16-row tiles) and walks the
// key blocks it sees: dP = dO V^T, S = Q K^T, dS = P o (dP - D), dQ += dS K (dS from the accumulators).
// The load of V_{j-1} overlaps the softmax and dS K_j; the load of K_{j-1} waits for dS K_j.

template <int kD, int kBlockM, int kBlockN, int kNWarps>
struct DqShape {
    static constexpr int kThreads = kNWarps * 32;
    static constexpr int LD = kD + 8;
    static constexpr int MT = kBlockM / (16 * kNWarps);
    static constexpr int kSmem = (2 * kBlockM + 2 * kBlockN) * LD * 2;
    static_assert(kD % 32 == 0 && kD >= 32 && kD <= 256, "head dimension tile");
    static_assert(MT >= 1 && kBlockM == MT * 16 * kNWarps, "kBlockM must be a multiple of 16 * warps");
    static_assert(kBlockN % 16 == 0, "kBlockN must be a multiple of 16");
};

template <int DT, int kD, int kBlockM, int kBlockN, int kNWarps>
__device__ __forceinline__ void attn_bwd_dq(const uint16_t* __restrict__ q, const uint16_t* __restrict__ k,
                                            const uint16_t* __restrict__ v, const uint16_t* __restrict__ dout,
                                            const float* __restrict__ lse, const float* __restrict__ delta,
                                            uint16_t* __restrict__ dq, int nq, int nk, int hq, int hkv, int d,
                                            float scale, int causal, int offset) {
    using S = DqShape<kD, kBlockM, kBlockN, kNWarps>;
    constexpr int LD = S::LD;
    constexpr int MT = S::MT;
    constexpr int NTS = kBlockN / 8;
    constexpr int NTO = kD / 8;
    constexpr int CPR = kD / 8;

    uint16_t* sQ = reinterpret_cast<uint16_t*>(dyn_smem());
    uint16_t* sdO = sQ + kBlockM * LD;
    uint16_t* sK = sdO + kBlockM * LD;
    uint16_t* sV = sK + kBlockN * LD;

    const int tid = threadIdx.x;
    const int warp = tid >> 5;
    const int lane = tid & 31;
    const int g = lane >> 2;
    const int t4 = lane & 3;
    const int m_block = static_cast<int>(gridDim.x) - 1 - static_cast<int>(blockIdx.x);
    const int h = blockIdx.y;
    const int b = blockIdx.z;
    const int hk = h / (hq / hkv);
    const int64_t qhead = static_cast<int64_t>(b) * hq + h;
    const int64_t khead = static_cast<int64_t>(b) * hkv + hk;
    const uint16_t* qh = q + qhead * nq * d;
    const uint16_t* doh = dout + qhead * nq * d;
    uint16_t* dqh = dq + qhead * nq * d;
    const uint16_t* kh = k + khead * nk * d;
    const uint16_t* vh = v + khead * nk * d;

    const int m0 = m_block * kBlockM;
    const int wrow0 = warp * MT * 16;
    const int rows_end = imin(m0 + kBlockM, nq);
    const int n_end = causal ? key_limit(rows_end - 1, nk, causal, offset) : nk;
    const int n_blocks = (n_end + kBlockN - 1) / kBlockN;

    if (n_blocks <= 0) {
        const uint4 zero = {0u, 0u, 0u, 0u};
        for (int i = tid; i < kBlockM * CPR; i += S::kThreads) {
            const int r = i / CPR;
            const int c = i - r * CPR;
            if (m0 + r < nq && c * 8 < d) stg(reinterpret_cast<uint4*>(dqh + static_cast<int64_t>(m0 + r) * d + c * 8), zero);
        }
        return;
    }

    load_tile<kBlockM, kD, S::kThreads>(sQ, qh, m0, nq, d);
    load_tile<kBlockM, kD, S::kThreads>(sdO, doh, m0, nq, d);
    load_tile<kBlockN, kD, S::kThreads>(sK, kh, (n_blocks - 1) * kBlockN, nk, d);
    load_tile<kBlockN, kD, S::kThreads>(sV, vh, (n_blocks - 1) * kBlockN, nk, d);
    cp_async_commit();

    const float scale_log2 = scale * LOG2E;
    float row_l2[MT][2];
    float row_d[MT][2];
#pragma unroll
    for (int mt = 0; mt < MT; ++mt) {
#pragma unroll
        for (int hf = 0; hf < 2; ++hf) {
            const int row = m0 + wrow0 + mt * 16 + g + hf * 8;
            row_l2[mt][hf] = INFINITY;
            row_d[mt][hf] = 0.f;
            if (row < nq) {
                const float l = ldg(lse + qhead * nq + row);
                if (l != -INFINITY) row_l2[mt][hf] = l * LOG2E;
                row_d[mt][hf] = ldg(delta + qhead * nq + row);
            }
        }
    }

    float acc_dq[MT][NTO][4];
#pragma unroll
    for (int mt = 0; mt < MT; ++mt) {
#pragma unroll
        for (int nt = 0; nt < NTO; ++nt) {
#pragma unroll
            for (int e = 0; e < 4; ++e) acc_dq[mt][nt][e] = 0.f;
        }
    }

    for (int nb = n_blocks - 1; nb >= 0; --nb) {
        cp_async_wait<0>();
        __syncthreads();  // K_nb, V_nb landed; every warp is done with the previous K

        float acc_s[MT][NTS][4];
        float acc_dp[MT][NTS][4];
#pragma unroll
        for (int mt = 0; mt < MT; ++mt) {
#pragma unroll
            for (int nt = 0; nt < NTS; ++nt) {
#pragma unroll
                for (int e = 0; e < 4; ++e) acc_s[mt][nt][e] = acc_dp[mt][nt][e] = 0.f;
            }
        }
#pragma unroll
        for (int ks = 0; ks < kD / 16; ++ks) {
            uint32_t a[MT][4];
#pragma unroll
            for (int mt = 0; mt < MT; ++mt) frag_a(a[mt], sdO + (wrow0 + mt * 16) * LD + ks * 16, LD, lane);
#pragma unroll
            for (int np = 0; np < NTS / 2; ++np) {
                uint32_t bb[4];
                frag_b_nk(bb, sV + (np * 16) * LD + ks * 16, LD, lane);
#pragma unroll
                for (int mt = 0; mt < MT; ++mt) {
                    mma16816<DT>(acc_dp[mt][2 * np], a[mt], bb[0], bb[1]);
                    mma16816<DT>(acc_dp[mt][2 * np + 1], a[mt], bb[2], bb[3]);
                }
            }
        }
#pragma unroll
        for (int ks = 0; ks < kD / 16; ++ks) {
            uint32_t a[MT][4];
#pragma unroll
            for (int mt = 0; mt < MT; ++mt) frag_a(a[mt], sQ + (wrow0 + mt * 16) * LD + ks * 16, LD, lane);
#pragma unroll
            for (int np = 0; np < NTS / 2; ++np) {
                uint32_t bb[4];
                frag_b_nk(bb, sK + (np * 16) * LD + ks * 16, LD, lane);
#pragma unroll
                for (int mt = 0; mt < MT; ++mt) {
                    mma16816<DT>(acc_s[mt][2 * np], a[mt], bb[0], bb[1]);
                    mma16816<DT>(acc_s[mt][2 * np + 1], a[mt], bb[2], bb[3]);
                }
            }
        }
        __syncthreads();  // every warp is done with V_nb
        if (nb > 0) {
            load_tile<kBlockN, kD, S::kThreads>(sV, vh, (nb - 1) * kBlockN, nk, d);
            cp_async_commit();
        }

        const int n0 = nb * kBlockN;
        const bool need_mask = n0 + kBlockN > nk || (causal && n0 + kBlockN - 1 > m0 + offset);
#pragma unroll
        for (int mt = 0; mt < MT; ++mt) {
#pragma unroll
            for (int hf = 0; hf < 2; ++hf) {
                const int lim = key_limit(m0 + wrow0 + mt * 16 + g + hf * 8, nk, causal, offset);
#pragma unroll
                for (int nt = 0; nt < NTS; ++nt) {
#pragma unroll
                    for (int e = 0; e < 2; ++e) {
                        float p = ex2(fmaf(acc_s[mt][nt][hf * 2 + e], scale_log2, -row_l2[mt][hf]));
                        if (need_mask && n0 + nt * 8 + 2 * t4 + e >= lim) p = 0.f;
                        acc_s[mt][nt][hf * 2 + e] = p * (acc_dp[mt][nt][hf * 2 + e] - row_d[mt][hf]);
                    }
                }
            }
        }

#pragma unroll
        for (int kk = 0; kk < kBlockN / 16; ++kk) {
            uint32_t a[MT][4];
#pragma unroll
            for (int mt = 0; mt < MT; ++mt) frag_a_from_c<DT>(a[mt], acc_s[mt][2 * kk], acc_s[mt][2 * kk + 1]);
#pragma unroll
            for (int np = 0; np < NTO / 2; ++np) {
                uint32_t bb[4];
                frag_b_kn(bb, sK + (kk * 16) * LD + np * 16, LD, lane);
#pragma unroll
                for (int mt = 0; mt < MT; ++mt) {
                    mma16816<DT>(acc_dq[mt][2 * np], a[mt], bb[0], bb[1]);
                    mma16816<DT>(acc_dq[mt][2 * np + 1], a[mt], bb[2], bb[3]);
                }
            }
        }
        __syncthreads();  // every warp is done with K_nb
        if (nb > 0) {
            load_tile<kBlockN, kD, S::kThreads>(sK, kh, (nb - 1) * kBlockN, nk, d);
            cp_async_commit();
        }
    }

    // Stage the warp's rows in its own rows of sQ (no other warp reads them) for 16-byte stores.
#pragma unroll
    for (int mt = 0; mt < MT; ++mt) {
#pragma unroll
        for (int hf = 0; hf < 2; ++hf) {
            const int r = wrow0 + mt * 16 + g + hf * 8;
#pragma unroll
            for (int nt = 0; nt < NTO; ++nt) {
                sts(reinterpret_cast<uint32_t*>(sQ + r * LD + nt * 8 + 2 * t4),
                    pack2<DT>(acc_dq[mt][nt][hf * 2] * scale, acc_dq[mt][nt][hf * 2 + 1] * scale));
            }
        }
    }
    __syncwarp();
    for (int i = lane; i < MT * 16 * CPR; i += 32) {
        const int r = i / CPR;
        const int cc = i - r * CPR;
        const int row = m0 + wrow0 + r;
        if (row < nq && cc * 8 < d) {
            stg(reinterpret_cast<uint4*>(dqh + static_cast<int64_t>(row) * d + cc * 8),
                lds(reinterpret_cast<const uint4*>(sQ + (wrow0 + r) * LD + cc * 8)));
        }
    }
}

// ---------------------------------------------------------------------------------------------------
// fp32 storage: the same algorithm on CUDA cores (the tensor cores take no fp32 operands at full
// precision), for correctness where fp32 is asked for rather than speed. Deterministic, no atomics, any d
// and any alignment (scalar loads). A warp owns 4 rows (queries, or keys in the dK/dV kernel); the other
// side comes in tiles of 32, one per lane for the dot products, while the products with V, dO, Q or K give
// each lane the head-dim columns lane, lane + 32, ... Shared tiles the lanes index by row carry one float
// of padding per row, so 32 lanes reading one column of 32 rows hit 32 banks.

constexpr int F32_ROWS = 4;

template <int kD, int kWarps>
struct F32Shape {
    static constexpr int kThreads = kWarps * 32;
    static constexpr int BM = kWarps * F32_ROWS;  // rows per CTA
    static constexpr int LDP = kD + 1;
    static constexpr int CPL = kD / 32;  // columns per lane
    static constexpr int kSmemFwd = 4 * (BM * kD + 32 * LDP + 32 * kD + BM * 32);
    static constexpr int kSmemDkdv = 4 * (2 * BM * kD + 2 * 32 * LDP + 2 * 32 + 2 * BM * 32);
    static constexpr int kSmemDq = 4 * (2 * BM * kD + 2 * 32 * LDP + BM * 32);
    static_assert(kD % 32 == 0 && kD >= 32 && kD <= 256, "head dimension tile");
};

// Rows [row0, row0 + kRows) of a [n][d] fp32 matrix into s[kRows][ld], zero-filled beyond n and d.
template <int kRows, int kD, int kThreads>
__device__ __forceinline__ void load_tile_f32(float* s, int ld, const float* g, int row0, int n, int d) {
    for (int i = threadIdx.x; i < kRows * kD; i += kThreads) {
        const int r = i / kD;
        const int c = i - r * kD;
        float x = 0.f;
        if (row0 + r < n && c < d) x = ldg(g + static_cast<int64_t>(row0 + r) * d + c);
        sts(s + r * ld + c, x);
    }
}

__device__ __forceinline__ float warp_max(float v) {
#pragma unroll
    for (int m = 16; m > 0; m >>= 1) v = fmaxf(v, shfl_xor(v, m));
    return v;
}

__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
    for (int m = 16; m > 0; m >>= 1) v += shfl_xor(v, m);
    return v;
}

template <int kD, int kWarps>
__device__ __forceinline__ void attn_fwd_f32(const float* __restrict__ q, const float* __restrict__ k,
                                             const float* __restrict__ v, float* __restrict__ o,
                                             float* __restrict__ lse, int nq, int nk, int hq, int hkv, int d,
                                             float scale, int causal, int offset) {
    using S = F32Shape<kD, kWarps>;
    constexpr int R = F32_ROWS;
    float* sQ = reinterpret_cast<float*>(dyn_smem());  // [BM][kD]
    float* sK = sQ + S::BM * kD;                        // [32][LDP]
    float* sV = sK + 32 * S::LDP;                       // [32][kD]
    float* sP = sV + 32 * kD;                           // [BM][32]

    const int warp = threadIdx.x >> 5;
    const int lane = threadIdx.x & 31;
    const int m_block = static_cast<int>(gridDim.x) - 1 - static_cast<int>(blockIdx.x);
    const int h = blockIdx.y;
    const int b = blockIdx.z;
    const int hk = h / (hq / hkv);
    const int64_t qhead = static_cast<int64_t>(b) * hq + h;
    const int64_t khead = static_cast<int64_t>(b) * hkv + hk;
    const float* qh = q + qhead * nq * d;
    float* oh = o + qhead * nq * d;
    float* lseh = lse + qhead * nq;
    const float* kh = k + khead * nk * d;
    const float* vh = v + khead * nk * d;
    const int m0 = m_block * S::BM;
    const int rows_end = imin(m0 + S::BM, nq);
    const int n_end = causal ? key_limit(rows_end - 1, nk, causal, offset) : nk;
    const int n_blocks = (n_end + 31) / 32;
    const int wr = warp * R;  // the warp's first row in the block

    const float scale_log2 = scale * LOG2E;
    const bool pos_scale = scale_log2 > 0.f;
    const float c = pos_scale ? scale_log2 : 1.f;
    float acc[R][S::CPL];
    float row_m[R];
    float row_l[R];  // this lane's share: the keys it held
#pragma unroll
    for (int r = 0; r < R; ++r) {
        row_m[r] = -INFINITY;
        row_l[r] = 0.f;
#pragma unroll
        for (int t = 0; t < S::CPL; ++t) acc[r][t] = 0.f;
    }
    load_tile_f32<S::BM, kD, S::kThreads>(sQ, kD, qh, m0, nq, d);
    for (int nb = n_blocks - 1; nb >= 0; --nb) {
        __syncthreads();  // every warp is done with the previous K, V and P
        load_tile_f32<32, kD, S::kThreads>(sK, S::LDP, kh, nb * 32, nk, d);
        load_tile_f32<32, kD, S::kThreads>(sV, kD, vh, nb * 32, nk, d);
        __syncthreads();
        const int key = nb * 32 + lane;
#pragma unroll
        for (int r = 0; r < R; ++r) {
            float s = 0.f;
#pragma unroll 8
            for (int cc = 0; cc < kD; ++cc) s = fmaf(lds(sQ + (wr + r) * kD + cc), lds(sK + lane * S::LDP + cc), s);
            if (!pos_scale) s *= scale_log2;
            if (key >= key_limit(m0 + wr + r, nk, causal, offset)) s = -INFINITY;
            const float mx = fmaxf(row_m[r], warp_max(s));
            const float base = mx == -INFINITY ? 0.f : mx * c;
            const float corr = exp2f(row_m[r] * c - base);
            const float p = exp2f(fmaf(s, c, -base));
            row_m[r] = mx;
            row_l[r] = row_l[r] * corr + p;
#pragma unroll
            for (int t = 0; t < S::CPL; ++t) acc[r][t] *= corr;
            sts(sP + (wr + r) * 32 + lane, p);
        }
        __syncwarp();
        for (int j = 0; j < 32; ++j) {
            float vv[S::CPL];
#pragma unroll
            for (int t = 0; t < S::CPL; ++t) vv[t] = lds(sV + j * kD + lane + 32 * t);
#pragma unroll
            for (int r = 0; r < R; ++r) {
                const float p = lds(sP + (wr + r) * 32 + j);
#pragma unroll
                for (int t = 0; t < S::CPL; ++t) acc[r][t] = fmaf(p, vv[t], acc[r][t]);
            }
        }
    }
#pragma unroll
    for (int r = 0; r < R; ++r) {
        const int row = m0 + wr + r;
        const float l = warp_sum(row_l[r]);
        const float inv = l > 0.f ? 1.f / l : 0.f;
        if (row < nq) {
            if (lane == 0) stg(lseh + row, l > 0.f ? (row_m[r] * c + log2f(l)) * LN2 : -INFINITY);
#pragma unroll
            for (int t = 0; t < S::CPL; ++t) {
                const int col = lane + 32 * t;
                if (col < d) stg(oh + static_cast<int64_t>(row) * d + col, acc[r][t] * inv);
            }
        }
    }
}

__device__ __forceinline__ void attn_bwd_prep_f32(const float* __restrict__ out, const float* __restrict__ dout,
                                                  float* __restrict__ delta, int64_t rows, int d) {
    const int lane = threadIdx.x & 31;
    const int64_t row = static_cast<int64_t>(blockIdx.x) * (blockDim.x >> 5) + (threadIdx.x >> 5);
    if (row >= rows) return;
    float s = 0.f;
    for (int cc = lane; cc < d; cc += 32) s = fmaf(ldg(out + row * d + cc), ldg(dout + row * d + cc), s);
    s = warp_sum(s);
    if (lane == 0) stg(delta + row, s);
}

// dK and dV of 4 keys per warp, over every query head of the group and every query tile that sees them.
template <int kD, int kWarps>
__device__ __forceinline__ void attn_bwd_dkdv_f32(const float* __restrict__ q, const float* __restrict__ k,
                                                  const float* __restrict__ v, const float* __restrict__ dout,
                                                  const float* __restrict__ lse, const float* __restrict__ delta,
                                                  float* __restrict__ dk, float* __restrict__ dv, int nq, int nk,
                                                  int hq, int hkv, int d, float scale, int causal, int offset) {
    using S = F32Shape<kD, kWarps>;
    constexpr int R = F32_ROWS;
    float* sK = reinterpret_cast<float*>(dyn_smem());  // [BM][kD]
    float* sV = sK + S::BM * kD;                        // [BM][kD]
    float* sQ = sV + S::BM * kD;                        // [32][LDP]
    float* sdO = sQ + 32 * S::LDP;                      // [32][LDP]
    float* sL = sdO + 32 * S::LDP;                      // [32], lse * log2(e)
    float* sD = sL + 32;                                // [32]
    float* sP = sD + 32;                                // [BM][32]
    float* sS = sP + S::BM * 32;                        // [BM][32]

    const int warp = threadIdx.x >> 5;
    const int lane = threadIdx.x & 31;
    const int hk = blockIdx.y;
    const int b = blockIdx.z;
    const int group = hq / hkv;
    const int n0 = blockIdx.x * S::BM;
    const int wr = warp * R;
    const int64_t khead = static_cast<int64_t>(b) * hkv + hk;
    const float* kh = k + khead * nk * d;
    const float* vh = v + khead * nk * d;
    const int m_first = causal ? imax(0, n0 - offset) / 32 : 0;
    const int m_count = imax(0, (nq + 31) / 32 - m_first);
    const int total = group * m_count;
    const float scale_log2 = scale * LOG2E;

    float acc_dk[R][S::CPL];
    float acc_dv[R][S::CPL];
#pragma unroll
    for (int r = 0; r < R; ++r) {
#pragma unroll
        for (int t = 0; t < S::CPL; ++t) acc_dk[r][t] = acc_dv[r][t] = 0.f;
    }
    load_tile_f32<S::BM, kD, S::kThreads>(sK, kD, kh, n0, nk, d);
    load_tile_f32<S::BM, kD, S::kThreads>(sV, kD, vh, n0, nk, d);
    for (int it = 0; it < total; ++it) {
        const int h = hk * group + it / m_count;
        const int m0 = (m_first + it % m_count) * 32;
        const int64_t qhead = static_cast<int64_t>(b) * hq + h;
        __syncthreads();  // every warp is done with the previous query tile
        load_tile_f32<32, kD, S::kThreads>(sQ, S::LDP, q + qhead * nq * d, m0, nq, d);
        load_tile_f32<32, kD, S::kThreads>(sdO, S::LDP, dout + qhead * nq * d, m0, nq, d);
        if (threadIdx.x < 32) {
            float l2 = INFINITY;  // P = 0 beyond Nq and for rows that see no key
            float dd = 0.f;
            if (m0 + lane < nq) {
                const float l = ldg(lse + qhead * nq + m0 + lane);
                if (l != -INFINITY) l2 = l * LOG2E;
                dd = ldg(delta + qhead * nq + m0 + lane);
            }
            sts(sL + lane, l2);
            sts(sD + lane, dd);
        }
        __syncthreads();
        const int qrow = m0 + lane;
        const float l2 = lds(sL + lane);
        const float dd = lds(sD + lane);
#pragma unroll
        for (int r = 0; r < R; ++r) {
            const int key = n0 + wr + r;
            float s = 0.f;
            float dp = 0.f;
#pragma unroll 8
            for (int cc = 0; cc < kD; ++cc) {
                s = fmaf(lds(sK + (wr + r) * kD + cc), lds(sQ + lane * S::LDP + cc), s);
                dp = fmaf(lds(sV + (wr + r) * kD + cc), lds(sdO + lane * S::LDP + cc), dp);
            }
            float p = exp2f(fmaf(s, scale_log2, -l2));
            if (key >= key_limit(qrow, nk, causal, offset)) p = 0.f;
            sts(sP + (wr + r) * 32 + lane, p);
            sts(sS + (wr + r) * 32 + lane, p * (dp - dd));
        }
        __syncwarp();
        for (int j = 0; j < 32; ++j) {
            float qq[S::CPL];
            float gg[S::CPL];
#pragma unroll
            for (int t = 0; t < S::CPL; ++t) {
                qq[t] = lds(sQ + j * S::LDP + lane + 32 * t);
                gg[t] = lds(sdO + j * S::LDP + lane + 32 * t);
            }
#pragma unroll
            for (int r = 0; r < R; ++r) {
                const float p = lds(sP + (wr + r) * 32 + j);
                const float ds = lds(sS + (wr + r) * 32 + j);
#pragma unroll
                for (int t = 0; t < S::CPL; ++t) {
                    acc_dv[r][t] = fmaf(p, gg[t], acc_dv[r][t]);
                    acc_dk[r][t] = fmaf(ds, qq[t], acc_dk[r][t]);
                }
            }
        }
    }
    float* dkh = dk + khead * nk * d;
    float* dvh = dv + khead * nk * d;
#pragma unroll
    for (int r = 0; r < R; ++r) {
        const int key = n0 + wr + r;
        if (key >= nk) continue;
#pragma unroll
        for (int t = 0; t < S::CPL; ++t) {
            const int col = lane + 32 * t;
            if (col < d) {
                stg(dkh + static_cast<int64_t>(key) * d + col, acc_dk[r][t] * scale);
                stg(dvh + static_cast<int64_t>(key) * d + col, acc_dv[r][t]);
            }
        }
    }
}

// dQ of 4 query rows per warp over the key tiles they see.
template <int kD, int kWarps>
__device__ __forceinline__ void attn_bwd_dq_f32(const float* __restrict__ q, const float* __restrict__ k,
                                                const float* __restrict__ v, const float* __restrict__ dout,
                                                const float* __restrict__ lse, const float* __restrict__ delta,
                                                float* __restrict__ dq, int nq, int nk, int hq, int hkv, int d,
                                                float scale, int causal, int offset) {
    using S = F32Shape<kD, kWarps>;
    constexpr int R = F32_ROWS;
    float* sQ = reinterpret_cast<float*>(dyn_smem());  // [BM][kD]
    float* sdO = sQ + S::BM * kD;                       // [BM][kD]
    float* sK = sdO + S::BM * kD;                       // [32][LDP]
    float* sV = sK + 32 * S::LDP;                       // [32][LDP]
    float* sS = sV + 32 * S::LDP;                       // [BM][32]

    const int warp = threadIdx.x >> 5;
    const int lane = threadIdx.x & 31;
    const int m_block = static_cast<int>(gridDim.x) - 1 - static_cast<int>(blockIdx.x);
    const int h = blockIdx.y;
    const int b = blockIdx.z;
    const int hk = h / (hq / hkv);
    const int64_t qhead = static_cast<int64_t>(b) * hq + h;
    const int64_t khead = static_cast<int64_t>(b) * hkv + hk;
    const float* kh = k + khead * nk * d;
    const float* vh = v + khead * nk * d;
    const int m0 = m_block * S::BM;
    const int wr = warp * R;
    const int rows_end = imin(m0 + S::BM, nq);
    const int n_end = causal ? key_limit(rows_end - 1, nk, causal, offset) : nk;
    const int n_blocks = (n_end + 31) / 32;
    const float scale_log2 = scale * LOG2E;

    float row_l2[R];
    float row_d[R];
    float acc[R][S::CPL];
#pragma unroll
    for (int r = 0; r < R; ++r) {
        const int row = m0 + wr + r;
        row_l2[r] = INFINITY;
        row_d[r] = 0.f;
        if (row < nq) {
            const float l = ldg(lse + qhead * nq + row);
            if (l != -INFINITY) row_l2[r] = l * LOG2E;
            row_d[r] = ldg(delta + qhead * nq + row);
        }
#pragma unroll
        for (int t = 0; t < S::CPL; ++t) acc[r][t] = 0.f;
    }
    load_tile_f32<S::BM, kD, S::kThreads>(sQ, kD, q + qhead * nq * d, m0, nq, d);
    load_tile_f32<S::BM, kD, S::kThreads>(sdO, kD, dout + qhead * nq * d, m0, nq, d);
    for (int nb = n_blocks - 1; nb >= 0; --nb) {
        __syncthreads();  // every warp is done with the previous K, V and dS
        load_tile_f32<32, kD, S::kThreads>(sK, S::LDP, kh, nb * 32, nk, d);
        load_tile_f32<32, kD, S::kThreads>(sV, S::LDP, vh, nb * 32, nk, d);
        __syncthreads();
        const int key = nb * 32 + lane;
#pragma unroll
        for (int r = 0; r < R; ++r) {
            float s = 0.f;
            float dp = 0.f;
#pragma unroll 8
            for (int cc = 0; cc < kD; ++cc) {
                s = fmaf(lds(sQ + (wr + r) * kD + cc), lds(sK + lane * S::LDP + cc), s);
                dp = fmaf(lds(sdO + (wr + r) * kD + cc), lds(sV + lane * S::LDP + cc), dp);
            }
            float p = exp2f(fmaf(s, scale_log2, -row_l2[r]));
            if (key >= key_limit(m0 + wr + r, nk, causal, offset)) p = 0.f;
            sts(sS + (wr + r) * 32 + lane, p * (dp - row_d[r]));
        }
        __syncwarp();
        for (int j = 0; j < 32; ++j) {
            float kk[S::CPL];
#pragma unroll
            for (int t = 0; t < S::CPL; ++t) kk[t] = lds(sK + j * S::LDP + lane + 32 * t);
#pragma unroll
            for (int r = 0; r < R; ++r) {
                const float ds = lds(sS + (wr + r) * 32 + j);
#pragma unroll
                for (int t = 0; t < S::CPL; ++t) acc[r][t] = fmaf(ds, kk[t], acc[r][t]);
            }
        }
    }
    float* dqh = dq + qhead * nq * d;
#pragma unroll
    for (int r = 0; r < R; ++r) {
        const int row = m0 + wr + r;
        if (row >= nq) continue;
#pragma unroll
        for (int t = 0; t < S::CPL; ++t) {
            const int col = lane + 32 * t;
            if (col < d) stg(dqh + static_cast<int64_t>(row) * d + col, acc[r][t] * scale);
        }
    }
}

}  // namespace k4j_attn

// ---------------------------------------------------------------------------------------------------
// Instantiations. Changing a shape here changes its _cfg record, which the launchers read, so nothing
// else needs to follow.

// Launchers look these records up by name (the symbol in the loaded image).
#define K4J_ATTN_CFG(name, threads, smem, rows, keys) \
    extern "C" {                                      \
    __device__ int name##_cfg[4] = {threads, smem, rows, keys}; \
    }

// QR: 1 keeps the warp's Q rows in registers (attn_fwd's kQRegs).
#define K4J_ATTN_FWD(name, DT, KD, BM, BN, NW, QR)                                                            \
    K4J_ATTN_CFG(name, NW * 32, (k4j_attn::FwdShape<KD, BM, BN, NW>::kSmem), BM, BN)                           \
    extern "C" __global__ void __launch_bounds__(NW * 32)                                                      \
        name(const uint16_t* q, const uint16_t* k, const uint16_t* v, uint16_t* o, float* lse, int nq, int nk, \
             int hq, int hkv, int d, float scale, int causal, int offset) {                                    \
        k4j_attn::attn_fwd<DT, KD, BM, BN, NW, QR>(q, k, v, o, lse, nq, nk, hq, hkv, d, scale, causal, offset); \
    }

#define K4J_ATTN_BWD(name, DT, KD, BM, NW, DS, ST)                                                           \
    K4J_ATTN_CFG(name, NW * 32, (k4j_attn::BwdShape<KD, BM, NW, DS, ST>::kSmem), BM,                         \
                 (k4j_attn::BwdShape<KD, BM, NW, DS, ST>::kBlockN))                                          \
    extern "C" __global__ void __launch_bounds__(NW * 32)                                                    \
        name(const uint16_t* q, const uint16_t* k, const uint16_t* v, const uint16_t* dout, const float* lse, \
             const float* delta, float* dq_accum, uint16_t* dk, uint16_t* dv, int nq, int nk, int hq, int hkv, \
             int d, float scale, int causal, int offset, int with_dq) {                                      \
        k4j_attn::attn_bwd<DT, KD, BM, NW, DS, ST>(q, k, v, dout, lse, delta, dq_accum, dk, dv, nq, nk, hq,  \
                                                   hkv, d, scale, causal, offset, with_dq);                  \
    }

// The tiled backward (attn_bwd_tiled): query rows per step, keys per CTA, warps, the warps along the rows of
// S/dP, along the keys of dK/dV and along the rows of dQ, query-block stages. Same arguments as K4J_ATTN_BWD.
#define K4J_ATTN_BWDT(name, DT, KD, BM, BN, NW, WMS, WNKV, WMQ, ST)                                         \
    K4J_ATTN_CFG(name, NW * 32, (k4j_attn::BwdTiledShape<KD, BM, BN, NW, WMS, WNKV, WMQ, ST>::kSmem), BM, BN) \
    extern "C" __global__ void __launch_bounds__(NW * 32)                                                    \
        name(const uint16_t* q, const uint16_t* k, const uint16_t* v, const uint16_t* dout, const float* lse, \
             const float* delta, float* dq_accum, uint16_t* dk, uint16_t* dv, int nq, int nk, int hq, int hkv, \
             int d, float scale, int causal, int offset, int with_dq) {                                      \
        k4j_attn::attn_bwd_tiled<DT, KD, BM, BN, NW, WMS, WNKV, WMQ, ST>(q, k, v, dout, lse, delta, dq_accum, \
                                                                        dk, dv, nq, nk, hq, hkv, d, scale,     \
                                                                        causal, offset, with_dq);              \
    }

#define K4J_ATTN_DQ(name, DT, KD, BM, BN, NW)                                                                  \
    K4J_ATTN_CFG(name, NW * 32, (k4j_attn::DqShape<KD, BM, BN, NW>::kSmem), BM, BN)                            \
    extern "C" __global__ void __launch_bounds__(NW * 32)                                                      \
        name(const uint16_t* q, const uint16_t* k, const uint16_t* v, const uint16_t* dout, const float* lse,  \
             const float* delta, uint16_t* dq, int nq, int nk, int hq, int hkv, int d, float scale, int causal, \
             int offset) {                                                                                     \
        k4j_attn::attn_bwd_dq<DT, KD, BM, BN, NW>(q, k, v, dout, lse, delta, dq, nq, nk, hq, hkv, d, scale,     \
                                                  causal, offset);                                             \
    }

K4J_ATTN_CFG(k4j_attn_copy_rows, 256, 0, 0, 0)
extern "C" __global__ void __launch_bounds__(256)
    k4j_attn_copy_rows(const uint16_t* src, int src_cols, uint16_t* dst, int dst_cols, long long rows) {
    k4j_attn::attn_copy_rows(src, src_cols, dst, dst_cols, rows);
}

#define K4J_ATTN_SMALL(dtname, DT)                                                                            \
    K4J_ATTN_CFG(k4j_attn_bwd_prep_##dtname, 256, 0, 8, 0)                                                    \
    extern "C" __global__ void __launch_bounds__(256)                                                         \
        k4j_attn_bwd_prep_##dtname(const uint16_t* out, const uint16_t* dout, float* delta, float* dq_accum,  \
                                   long long rows, int d) {                                                   \
        k4j_attn::attn_bwd_prep<DT>(out, dout, delta, dq_accum, rows, d);                                     \
    }                                                                                                         \
    K4J_ATTN_CFG(k4j_attn_dq_convert_##dtname, 256, 0, 0, 0)                                                  \
    extern "C" __global__ void __launch_bounds__(256)                                                         \
        k4j_attn_dq_convert_##dtname(const float* acc, uint16_t* dq, long long n, float scale) {              \
        k4j_attn::attn_dq_convert<DT>(acc, dq, n, scale);                                                     \
    }

// Shapes. The sm_90 cubin (H100/H200: 227 KiB of shared memory per block) gets its own; everything else,
// the PTX included (which the driver may compile for any later GPU), gets shapes that fit the 99 KiB of
// an sm_86/89 block and compile without spills for sm_80/86/89. Forward and deterministic dQ:
// (BM query rows, BN keys per step, warps); backward: the kernel (K4J_ATTN_BWD: BM query rows per step,
// warps, dim slices, query-block stages, keys per CTA 16 * warps / slices; K4J_ATTN_BWDT: see there).
// K4J_ATTN_HOPPER_SHAPES selects the sm_90 shapes where __CUDA_ARCH__ does not (the CPU emulation).
//
// sm_90 defaults for the benchmark head dims, from the first H200 run (bench/results/h200/
// 2026-11-26-first-contact, bf16, vs FlashAttention-2): the forward defaults were 0.89-0.97x FA2 and every
// alternative was slower; d64 now keeps Q in registers (m128n64w4_qs is the previous kernel). The backward at 0.71-0.86x FA2 was bound by shared-memory reads (attn_bwd: 192
// ldmatrix.x4 per warp per 64 x 128 tile), so d64 and d128 take the tiled backward with FA2's tiles (128 x
// 128 and 64 x 128, 8 warps); the previous defaults stay as alternatives.
#if (defined(__CUDA_ARCH__) && __CUDA_ARCH__ == 900) || defined(K4J_ATTN_HOPPER_SHAPES)
#define K4J_FWD_D64 128, 64, 4, 1
#define K4J_FWD_D128 128, 64, 4, 0
#define K4J_BWD_D64 K4J_ATTN_BWDT, 128, 128, 8, 2, 4, 4, 2
#define K4J_BWD_D128 K4J_ATTN_BWDT, 64, 128, 8, 2, 4, 2, 2
#else
#define K4J_FWD_D64 128, 64, 4, 0
#define K4J_FWD_D128 128, 32, 4, 0
#define K4J_BWD_D64 K4J_ATTN_BWD, 64, 8, 1, 2
#define K4J_BWD_D128 K4J_ATTN_BWD, 32, 4, 1, 2
#endif
#define K4J_FWD_D32 128, 64, 4, 0
#define K4J_FWD_D96 128, 64, 4, 0
#define K4J_FWD_D160 128, 64, 8, 0
#define K4J_FWD_D192 64, 64, 4, 0
#define K4J_FWD_D224 64, 64, 4, 0
#define K4J_FWD_D256 64, 32, 4, 0
#define K4J_BWD_D32 K4J_ATTN_BWD, 64, 8, 1, 2
#define K4J_BWD_D96 K4J_ATTN_BWD, 64, 4, 1, 2
#define K4J_BWD_D160 K4J_ATTN_BWD, 64, 8, 2, 1
#define K4J_BWD_D192 K4J_ATTN_BWD, 32, 8, 2, 1
#define K4J_BWD_D224 K4J_ATTN_BWD, 32, 8, 2, 1
#define K4J_BWD_D256 K4J_ATTN_BWD, 32, 4, 2, 1
#define K4J_DQ_D32 64, 64, 4
#define K4J_DQ_D64 64, 64, 4
#define K4J_DQ_D96 64, 64, 4
#define K4J_DQ_D128 64, 64, 4
#define K4J_DQ_D160 64, 32, 4
#define K4J_DQ_D192 64, 32, 4
#define K4J_DQ_D224 64, 32, 4
#define K4J_DQ_D256 64, 32, 4

// The indirections expand the shape macros into separate arguments; a backward shape starts with its kernel.
#define K4J_ATTN_FWD_(...) K4J_ATTN_FWD(__VA_ARGS__)
#define K4J_ATTN_BWD_SEL(name, DT, KD, KERNEL, ...) KERNEL(name, DT, KD, __VA_ARGS__)
#define K4J_ATTN_BWD_(...) K4J_ATTN_BWD_SEL(__VA_ARGS__)
#define K4J_ATTN_DQ_(...) K4J_ATTN_DQ(__VA_ARGS__)
#define K4J_ATTN_DIM(dtname, DT, KD)                                                \
    K4J_ATTN_FWD_(k4j_attn_fwd_##dtname##_d##KD, DT, KD, K4J_FWD_D##KD)             \
    K4J_ATTN_BWD_(k4j_attn_bwd_##dtname##_d##KD, DT, KD, K4J_BWD_D##KD)             \
    K4J_ATTN_DQ_(k4j_attn_bwd_dq_##dtname##_d##KD, DT, KD, K4J_DQ_D##KD)

// Alternative shapes for the tuned head dims, in the sm_90 cubin only (where each compiles without
// spills): the autotuner's candidates beside the defaults, named after their shape (bwdt: the tiled
// backward, m<rows>n<keys>). The first run's alternatives that lost to the defaults by more than 5% are gone.
// Forward d64 with more keys per step (fewer barriers and rescales of O per key): 128 x 128 (FA2's d64
// tile) spills at 255 registers here, 112 and 96 keys do not.
#if (defined(__CUDA_ARCH__) && __CUDA_ARCH__ == 900) || defined(K4J_ATTN_HOPPER_SHAPES)
#define K4J_ATTN_ALTERNATIVES(dtname, DT)                                                     \
    K4J_ATTN_FWD(k4j_attn_fwd_##dtname##_d64_m128n64w4_qs, DT, 64, 128, 64, 4, 0)             \
    K4J_ATTN_FWD(k4j_attn_fwd_##dtname##_d64_m128n112w4, DT, 64, 128, 112, 4, 0)              \
    K4J_ATTN_FWD(k4j_attn_fwd_##dtname##_d64_m128n96w4, DT, 64, 128, 96, 4, 0)                \
    K4J_ATTN_FWD(k4j_attn_fwd_##dtname##_d64_m64n64w4, DT, 64, 64, 64, 4, 0)                  \
    K4J_ATTN_FWD(k4j_attn_fwd_##dtname##_d128_m128n32w4, DT, 128, 128, 32, 4, 0)              \
    K4J_ATTN_BWD(k4j_attn_bwd_##dtname##_d64_m64w8s1q2, DT, 64, 64, 8, 1, 2)                  \
    K4J_ATTN_BWDT(k4j_attn_bwd_##dtname##_d64_bwdt_m64n128, DT, 64, 64, 128, 8, 2, 4, 2, 2)   \
    K4J_ATTN_BWD(k4j_attn_bwd_##dtname##_d128_m64w8s1q2, DT, 128, 64, 8, 1, 2)
#else
#define K4J_ATTN_ALTERNATIVES(dtname, DT)
#endif

#define K4J_ATTN_ALL(dtname, DT)        \
    K4J_ATTN_SMALL(dtname, DT)          \
    K4J_ATTN_DIM(dtname, DT, 32)        \
    K4J_ATTN_DIM(dtname, DT, 64)        \
    K4J_ATTN_DIM(dtname, DT, 96)        \
    K4J_ATTN_DIM(dtname, DT, 128)       \
    K4J_ATTN_DIM(dtname, DT, 160)       \
    K4J_ATTN_DIM(dtname, DT, 192)       \
    K4J_ATTN_DIM(dtname, DT, 224)       \
    K4J_ATTN_DIM(dtname, DT, 256)       \
    K4J_ATTN_ALTERNATIVES(dtname, DT)

K4J_ATTN_ALL(f16, k4j_attn::F16)
K4J_ATTN_ALL(bf16, k4j_attn::BF16)

// fp32: (kD, warps); rows per CTA = 4 * warps, key/query tiles of 32. The minimum of one block per SM in the
// launch bounds keeps ptxas from trading registers for occupancy with small spills.
#define K4J_ATTN_F32(KD, NW)                                                                                       \
    K4J_ATTN_CFG(k4j_attn_fwd_f32_d##KD, NW * 32, (k4j_attn::F32Shape<KD, NW>::kSmemFwd), NW * 4, 32)               \
    extern "C" __global__ void __launch_bounds__(NW * 32, 1)                                                       \
        k4j_attn_fwd_f32_d##KD(const float* q, const float* k, const float* v, float* o, float* lse, int nq, int nk, \
                               int hq, int hkv, int d, float scale, int causal, int offset) {                      \
        k4j_attn::attn_fwd_f32<KD, NW>(q, k, v, o, lse, nq, nk, hq, hkv, d, scale, causal, offset);                 \
    }                                                                                                              \
    K4J_ATTN_CFG(k4j_attn_bwd_f32_d##KD, NW * 32, (k4j_attn::F32Shape<KD, NW>::kSmemDkdv), 32, NW * 4)              \
    extern "C" __global__ void __launch_bounds__(NW * 32, 1)                                                       \
        k4j_attn_bwd_f32_d##KD(const float* q, const float* k, const float* v, const float* dout, const float* lse,  \
                               const float* delta, float* dk, float* dv, int nq, int nk, int hq, int hkv, int d,     \
                               float scale, int causal, int offset) {                                              \
        k4j_attn::attn_bwd_dkdv_f32<KD, NW>(q, k, v, dout, lse, delta, dk, dv, nq, nk, hq, hkv, d, scale, causal,   \
                                            offset);                                                               \
    }                                                                                                              \
    K4J_ATTN_CFG(k4j_attn_bwd_dq_f32_d##KD, NW * 32, (k4j_attn::F32Shape<KD, NW>::kSmemDq), NW * 4, 32)             \
    extern "C" __global__ void __launch_bounds__(NW * 32, 1)                                                       \
        k4j_attn_bwd_dq_f32_d##KD(const float* q, const float* k, const float* v, const float* dout,               \
                                  const float* lse, const float* delta, float* dq, int nq, int nk, int hq, int hkv, \
                                  int d, float scale, int causal, int offset) {                                    \
        k4j_attn::attn_bwd_dq_f32<KD, NW>(q, k, v, dout, lse, delta, dq, nq, nk, hq, hkv, d, scale, causal, offset);  \
    }

K4J_ATTN_CFG(k4j_attn_bwd_prep_f32, 256, 0, 8, 0)
extern "C" __global__ void __launch_bounds__(256)
    k4j_attn_bwd_prep_f32(const float* out, const float* dout, float* delta, long long rows, int d) {
    k4j_attn::attn_bwd_prep_f32(out, dout, delta, rows, d);
}
K4J_ATTN_F32(32, 4)
K4J_ATTN_F32(64, 4)
K4J_ATTN_F32(128, 4)
K4J_ATTN_F32(256, 2)
