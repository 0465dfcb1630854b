// Shared pieces of the convolution kernels (conv_igemm.cu, conv_simt.cu, conv_depthwise.cu,
// conv_support.cu): element types, the few hardware primitives, and the incremental index counters.
//
// Everything hardware-specific sits in the block below guarded by CONV_HOST_EMULATION. The host
// emulation test (kernels-cuda/src/test/cuda/conv_emulation.cpp) defines that macro and supplies the same
// names (threadIdx, __syncthreads, cp.async, ldmatrix, mma.sync) as plain C++ that follows the PTX
// ISA's definitions, and then compiles the kernel sources unchanged: the index math, the pipeline
// and the fragment bookkeeping that run on the GPU are the ones it checks.
#pragma once

#include <stdint.h>

#ifndef CONV_HOST_EMULATION
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#define CONV_FN __device__ __forceinline__

namespace conv {

// Element types: fp32 math whatever the storage; conversions round to nearest even.
struct F32 {
    using T = float;
    static CONV_FN float to_f(float v) { return v; }
    static CONV_FN float from_f(float v) { return v; }
};

struct F16 {
    using T = uint16_t;
    static CONV_FN float to_f(uint16_t v) { return __half2float(__ushort_as_half(v)); }
    static CONV_FN uint16_t from_f(float v) { return __half_as_ushort(__float2half_rn(v)); }
    // D = A * B + D, m16n8k16, A row-major (4 regs), B column-major (2 regs), fp32 accumulators.
    static CONV_FN void mma(float (&d)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
        asm volatile(
            "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
            "{%0,%1,%2,%3};\n"
            : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
            : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
    }
};

struct BF16 {
    using T = uint16_t;
    static CONV_FN float to_f(uint16_t v) { return __bfloat162float(__ushort_as_bfloat16(v)); }
    static CONV_FN uint16_t from_f(float v) { return __bfloat16_as_ushort(__float2bfloat16_rn(v)); }
    static CONV_FN void mma(float (&d)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
        asm volatile(
            "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
            "{%0,%1,%2,%3};\n"
            : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
            : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
    }
};

// The block's dynamic shared memory (16-byte aligned: cp.async and ldmatrix need it).
CONV_FN unsigned char* dyn_smem() {
    extern __shared__ __align__(16) unsigned char conv_smem[];
    return conv_smem;
}

// 16-byte global->shared copy that bypasses L1; when !valid nothing is read and 16 zero bytes are
// written (src-size 0), which is how padding and tile edges become zeros.
CONV_FN void cp_async16(void* smem_dst, const void* gmem_src, bool valid) {
    const unsigned dst = static_cast<unsigned>(__cvta_generic_to_shared(smem_dst));
    const int bytes = valid ? 16 : 0;
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(dst), "l"(gmem_src), "r"(bytes));
}

CONV_FN void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::); }

// Waits until at most N of this thread's committed copy groups are still in flight.
template <int N>
CONV_FN void cp_async_wait() {
    asm volatile("cp.async.wait_group %0;\n" ::"n"(N));
}

// Four 8x8 b16 matrices; lane l gives the row address of matrix l/8, row l%8. Register j of lane t
// holds matrix j's row t/4, columns 2(t%4) and 2(t%4)+1 (the _trans form: column t/4, rows
// 2(t%4) and 2(t%4)+1 of what was stored).
CONV_FN void ldsm_x4(uint32_t (&r)[4], const uint16_t* smem_row) {
    const unsigned a = static_cast<unsigned>(__cvta_generic_to_shared(smem_row));
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(a));
}

CONV_FN void ldsm_x4_trans(uint32_t (&r)[4], const uint16_t* smem_row) {
    const unsigned a = static_cast<unsigned>(__cvta_generic_to_shared(smem_row));
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(a));
}

}  // namespace conv
#endif  // CONV_HOST_EMULATION

namespace conv {

// Launch-time description of a convolution, as every conv kernel receives it (flat int arguments,
// gathered here). Output pixel (p, q) reads input row p*sh - ph + r*dh, column q*sw - pw + s*dw.
struct Geo {
    int N, H, W, C, K, R, S, P, Q, sh, sw, ph, pw, dh, dw, groups, Cg, Kg;
};

CONV_FN Geo make_geo(int N, int H, int W, int C, int K, int R, int S, int P, int Q, int sh, int sw, int ph,
                     int pw, int dh, int dw, int groups) {
    Geo g;
    g.N = N; g.H = H; g.W = W; g.C = C; g.K = K; g.R = R; g.S = S; g.P = P; g.Q = Q;
    g.sh = sh; g.sw = sw; g.ph = ph; g.pw = pw; g.dh = dh; g.dw = dw; g.groups = groups;
    g.Cg = C / groups;
    g.Kg = K / groups;
    return g;
}

// A mixed-radix counter, value = (hi * B + mid) * D + lo. Loaders advance it by a tile depth per
// step instead of dividing: a divide costs ~20 instructions, a step a compare and a subtract.
struct Counter3 {
    int hi, mid, lo;
    CONV_FN void init(int v, int D, int B) {
        const int t = v / D;
        lo = v - t * D;
        hi = t / B;
        mid = t - hi * B;
    }
    CONV_FN void step(int d, int D, int B) {
        lo += d;
        while (lo >= D) {
            lo -= D;
            if (++mid == B) {
                mid = 0;
                ++hi;
            }
        }
    }
};

// value = hi * D + lo
struct Counter2 {
    int hi, lo;
    CONV_FN void init(int v, int D) {
        hi = v / D;
        lo = v - hi * D;
    }
    CONV_FN void step(int d, int D) {
        lo += d;
        while (lo >= D) {
            lo -= D;
            ++hi;
        }
    }
};

}  // namespace conv
