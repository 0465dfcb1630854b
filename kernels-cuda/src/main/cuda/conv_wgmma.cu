// kernels4j-archs: sm_90a
// The implicit-GEMM convolution of conv_igemm.cu on Hopper's warpgroup MMA (wgmma): the same GEMMs,
// loaders (16-byte ones only, 'vv'), stride phases, split-K and epilogue; the multiply is wgmma.m64nNk16
// from shared-memory descriptors instead of ldmatrix + mma.sync, so a warp's tensor-core work no longer
// needs its operands in registers. Shared-memory tiles use the core-matrix layout (conv_igemm.cuh's
// CoreLayout); one k-tile of MMAs stays in flight while the next is issued.
//
// Two designs: every warp loading and multiplying with a CTA barrier per k-tile (conv_igemm.cuh's igemm), and
// warp-specialized (igemm_ws: a producer warpgroup, mbarriers per stage, no CTA barrier in the main loop).
// Conv2dCuda.java launches them on compute capability 9.0 when asked (system property
// kernels4j.cuda.conv.engine=wgmma, or the tuned ENGINE parameter); otherwise the mma.sync kernels of
// conv_igemm.cu run. bench/gpu/check_conv.py checks and times every tile beside mma.sync and cuDNN, which is
// how the default is to be decided. Built for sm_90a only (the compute_80 PTX of this module holds kernels
// that trap; the planners never launch them elsewhere).
//
// Entry points conv_wg_<pass>_<f16|bf16>_<BM>x<BN>[ws<STAGES>]_vv with conv_igemm.cu's parameters and launch
// rules, <entry>_cfg = {threads, smem, BM, BN}; BM = 64 per consumer warpgroup of 128 threads (plus one
// producer warpgroup for ws). The plain tiles up to 128 columns keep within 128 registers (MINB 2): two CTAs
// share an SM, one's MMAs covering the other's barrier.
#include "conv_igemm.cuh"

#define CONV_WG_GEO conv::make_geo(N, H, W, C, K, R, S, P, Q, sh, sw, ph, pw, dh, dw, groups)
#if defined(CONV_HOST_EMULATION) || defined(__CUDA_ARCH_FEAT_SM90_ALL)
#define CONV_WG_BODY(E, PASS, BM, BN, NWG) \
    conv::igemm<conv::E, conv::PASS, BM, BN, 1, 1, 4, true, true, NWG>(a, b, bias, out, CONV_WG_GEO, splitLen, phaseH, phaseW);
#define CONV_WS_BODY(E, PASS, BM, BN, STAGES, NWG) \
    conv::igemm_ws<conv::E, conv::PASS, BM, BN, STAGES, NWG>(a, b, bias, out, CONV_WG_GEO, splitLen, phaseH, phaseW);
#elif defined(__CUDA_ARCH__)
#define CONV_WG_BODY(E, PASS, BM, BN, NWG) __trap();
#define CONV_WS_BODY(E, PASS, BM, BN, STAGES, NWG) __trap();
#else
#define CONV_WG_BODY(E, PASS, BM, BN, NWG)
#define CONV_WS_BODY(E, PASS, BM, BN, STAGES, NWG)
#endif

#define CONV_WG_PARAMS                                                                                          \
    const uint16_t *__restrict__ a, const uint16_t *__restrict__ b, const uint16_t *__restrict__ bias,          \
        void *__restrict__ out, int N, int H, int W, int C, int K, int R, int S, int P, int Q, int sh, int sw, \
        int ph, int pw, int dh, int dw, int groups, int splitLen, int phaseH, int phaseW

#define CONV_WG_ENTRY(NAME, E, PASS, BM, BN, NWG, MINB)                                                            \
    extern "C" {                                                                                           \
    __constant__ int NAME##_cfg[4] = {                                                                     \
        NWG * 128, conv::Plan<conv::PASS, BM, BN, 4, true, true, conv::CoreLayout>::SMEM_BYTES, BM, BN};   \
    }                                                                                                      \
    extern "C" __global__ void __launch_bounds__(NWG * 128, MINB) NAME(CONV_WG_PARAMS) {                   \
        CONV_WG_BODY(E, PASS, BM, BN, NWG)                                                                 \
    }

// Warp-specialized: one producer warpgroup and NWG consumer warpgroups, STAGES stages (named ..._ws<STAGES>).
#define CONV_WS_ENTRY(NAME, E, PASS, BM, BN, STAGES, NWG)                                                 \
    extern "C" {                                                                                          \
    __constant__ int NAME##_cfg[4] = {(NWG + 1) * 128, conv::WsPlan<conv::PASS, BM, BN, STAGES>::SMEM_BYTES, BM, BN}; \
    }                                                                                                     \
    extern "C" __global__ void __launch_bounds__((NWG + 1) * 128, 1) NAME(CONV_WG_PARAMS) {                \
        CONV_WS_BODY(E, PASS, BM, BN, STAGES, NWG)                                                        \
    }

#define CONV_WG_DTYPE(E, SUF)                                                  \
    CONV_WG_ENTRY(conv_wg_fprop_##SUF##_128x256_vv, E, FPROP, 128, 256, 2, 1)    \
    CONV_WG_ENTRY(conv_wg_fprop_##SUF##_128x128_vv, E, FPROP, 128, 128, 2, 2)    \
    CONV_WG_ENTRY(conv_wg_fprop_##SUF##_128x64_vv, E, FPROP, 128, 64, 2, 2)      \
    CONV_WG_ENTRY(conv_wg_dgrad_##SUF##_128x256_vv, E, DGRAD, 128, 256, 2, 1)    \
    CONV_WG_ENTRY(conv_wg_dgrad_##SUF##_128x128_vv, E, DGRAD, 128, 128, 2, 2)    \
    CONV_WG_ENTRY(conv_wg_dgrad_##SUF##_128x64_vv, E, DGRAD, 128, 64, 2, 2)      \
    CONV_WG_ENTRY(conv_wg_wgrad_##SUF##_128x256_vv, E, WGRAD, 128, 256, 2, 1)    \
    CONV_WG_ENTRY(conv_wg_wgrad_##SUF##_128x128_vv, E, WGRAD, 128, 128, 2, 2)    \
    CONV_WG_ENTRY(conv_wg_wgrad_##SUF##_64x256_vv, E, WGRAD, 64, 256, 1, 2)     \
    CONV_WS_ENTRY(conv_wg_fprop_##SUF##_128x256ws6_vv, E, FPROP, 128, 256, 6, 2) \
    CONV_WS_ENTRY(conv_wg_fprop_##SUF##_128x128ws8_vv, E, FPROP, 128, 128, 8, 2) \
    CONV_WS_ENTRY(conv_wg_dgrad_##SUF##_128x256ws6_vv, E, DGRAD, 128, 256, 6, 2) \
    CONV_WS_ENTRY(conv_wg_dgrad_##SUF##_128x128ws8_vv, E, DGRAD, 128, 128, 8, 2) \
    CONV_WS_ENTRY(conv_wg_wgrad_##SUF##_128x256ws6_vv, E, WGRAD, 128, 256, 6, 2) \
    CONV_WS_ENTRY(conv_wg_wgrad_##SUF##_128x128ws8_vv, E, WGRAD, 128, 128, 8, 2)

CONV_WG_DTYPE(F16, f16)
CONV_WG_DTYPE(BF16, bf16)
