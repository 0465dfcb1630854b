// kernels4j-archs: sm_80 sm_90
// (sm_86/sm_89 run the sm_80 cubin: same registers and shapes, and the planner keeps to their smaller shared
// memory; two fewer compilations of the largest module halve its build time)
// Convolution as an implicit GEMM on the tensor cores: NHWC, fp16/bf16 storage, fp32 accumulation.
// The launch side (kernel choice, grid, split-K, workspace) is Conv2dCuda.java; bench/gpu/check_conv.py
// launches the same entry points the same way.
//
// The three passes as C[M x NG] = A[M x KD] * B[KD x NG], per group g (Cg = C/groups, Kg = K/groups):
//   fprop  M = N*P*Q pixels   NG = Kg    KD = R*S*Cg    A = x gathered (k-contiguous), B = w[k][r][s][c]
//   dgrad  M = N*H*W pixels   NG = Cg    KD = R*S*Kg    A = dy gathered (k-contiguous),
//          B = w[k][r][s][c] read as [kd][c] (n-contiguous); an input pixel h takes tap r from output
//          row p = (h + padTop - r*dilH) / strideH when that divides exactly and 0 <= p < P.
//          With dilation 1 the launch covers one stride phase (phaseH, phaseW): the input rows h with
//          (h + padTop) % strideH == phaseH, which take exactly the taps r = phaseH + j*strideH, at
//          p = (h + padTop - r) / strideH; so M = N*Hphase*Wphase, KD = Rphase*Sphase*Kg and no tap is
//          wasted (a stride-1 convolution is the single phase (0, 0)). The host launches every phase
//          (one launch each, some may have no taps and then write zeros). phaseH = -1 instead gathers every
//          tap of every pixel and skips those that do not divide (any dilation).
//   wgrad  M = Kg             NG = R*S*Cg KD = N*P*Q    A = dy (m-contiguous), B = x gathered
//          (n-contiguous); KD is split over gridDim.z, each split writes fp32 partials that
//          conv_reduce_* (conv_support.cu) sums in a fixed order.
//
// CTA tile BM x BN x 32 over WARPS_M x WARPS_N warps, each warp (BM/WARPS_M) x (BN/WARPS_N) of
// m16n8k16 mma.sync. Shared-memory tiles are padded by 8 elements per row, which puts the eight 16-byte
// rows of every ldmatrix phase on distinct banks. Operands whose reduction index is contiguous in memory
// (k-major) are stored [rows][32] and read with ldmatrix; the others are stored [32][cols] and read with
// ldmatrix.trans, which yields the same fragments. A STAGES-deep cp.async pipeline feeds the tiles,
// one __syncthreads per k-tile.
//
// Loaders come in two kinds per operand: 'v' moves 16-byte chunks with cp.async (8 channels of one
// filter tap: needs the contiguous channel count of that operand to be a multiple of 8 and 16-byte
// aligned base pointers); 's' moves single elements with plain loads (any size, any 2-byte alignment).
// Either way out-of-range elements become zeros, so M, NG and KD need not be tile multiples.
//
// Entry points conv_<pass>_<f16|bf16>_<BM>x<BN>w<warps>_<A loader><B loader>, all with the same parameters:
//   (const T* a, const T* b, const T* bias, void* out,
//    int N, int H, int W, int C, int K, int R, int S, int P, int Q,
//    int strideH, int strideW, int padTop, int padLeft, int dilH, int dilW, int groups, int splitLen,
//    int phaseH, int phaseW)
//   fprop: a = x, b = w, bias = [K] or null, out = y (T)
//   dgrad: a = dy, b = w, bias unused (null), out = dx (T)
//   wgrad: a = dy, b = x, bias unused (null), out = fp32 partials [splits][K][R*S*Cg];
//          splitLen = reduction pixels per split, a multiple of 32 (fprop/dgrad ignore it)
//   phaseH, phaseW: dgrad's stride phase (0 <= phase < stride; dilation 1) or -1, -1; fprop/wgrad ignore them
//   grid = (ceil(M/BM) * ceil(NG/BN), 1, groups * splits), splits = 1 for fprop/dgrad, M of the phase,
//   block = threads, dynamic shared memory = smem bytes, where <entry>_cfg = {threads, smem, BM, BN}
//   is a __constant__ int[4] of the module (read it with cuModuleGetGlobal).
#include "conv_igemm.cuh"

// ---------------------------------------------------------------------------------------------------
// Entry points.

#define CONV_IGEMM_ENTRY(NAME, E, PASS, BM, BN, WM, WN, STAGES, VA, VB, MINB)                               \
    extern "C" {                                                                                           \
    __constant__ int NAME##_cfg[4] = {WM * WN * 32, conv::Plan<conv::PASS, BM, BN, STAGES, VA, VB>::SMEM_BYTES, \
                                      BM, BN};                                                             \
    }                                                                                                      \
    extern "C" __global__ void __launch_bounds__(WM * WN * 32, MINB)                                       \
        NAME(const uint16_t* __restrict__ a, const uint16_t* __restrict__ b, const uint16_t* __restrict__ bias, \
             void* __restrict__ out, int N, int H, int W, int C, int K, int R, int S, int P, int Q, int sh,      \
             int sw, int ph, int pw, int dh, int dw, int groups, int splitLen, int phaseH, int phaseW) {      \
        conv::igemm<conv::E, conv::PASS, BM, BN, WM, WN, STAGES, VA, VB>(                                    \
            a, b, bias, out, conv::make_geo(N, H, W, C, K, R, S, P, Q, sh, sw, ph, pw, dh, dw, groups), splitLen, \
            phaseH, phaseW);                                                                               \
    }

// Tiles <BM>x<BN>w<warps>. Warp tiles of 64x64 (w4 on 128x128, 256x64, 64x256; w8 on 128x256) read 128
// bytes of shared memory per mma, 64x32 ones (w8 on 128x128) 192: the larger warp tiles are the ones to
// beat shared-memory bandwidth, the smaller ones fill the GPU on small problems. One CTA of 256 threads
// with 64x64 warp tiles needs up to 255 registers per thread, hence min blocks 1 there.
#define CONV_IGEMM_DTYPE(E, SUF)                                                                        \
    CONV_IGEMM_ENTRY(conv_fprop_##SUF##_128x256w8_vv, E, FPROP, 128, 256, 2, 4, 4, true, true, 1)     \
    CONV_IGEMM_ENTRY(conv_fprop_##SUF##_128x128w8_vv, E, FPROP, 128, 128, 2, 4, 4, true, true, 2)     \
    CONV_IGEMM_ENTRY(conv_fprop_##SUF##_128x128w4_vv, E, FPROP, 128, 128, 2, 2, 4, true, true, 2)     \
    CONV_IGEMM_ENTRY(conv_fprop_##SUF##_256x64w4_vv, E, FPROP, 256, 64, 4, 1, 4, true, true, 2)       \
    CONV_IGEMM_ENTRY(conv_fprop_##SUF##_128x64w4_vv, E, FPROP, 128, 64, 2, 2, 4, true, true, 2)       \
    CONV_IGEMM_ENTRY(conv_fprop_##SUF##_64x64w4_vv, E, FPROP, 64, 64, 2, 2, 4, true, true, 2)         \
    CONV_IGEMM_ENTRY(conv_fprop_##SUF##_128x64w4_ss, E, FPROP, 128, 64, 2, 2, 4, false, false, 2)     \
    CONV_IGEMM_ENTRY(conv_dgrad_##SUF##_128x256w8_vv, E, DGRAD, 128, 256, 2, 4, 4, true, true, 1)     \
    CONV_IGEMM_ENTRY(conv_dgrad_##SUF##_128x128w8_vv, E, DGRAD, 128, 128, 2, 4, 4, true, true, 2)     \
    CONV_IGEMM_ENTRY(conv_dgrad_##SUF##_128x128w4_vv, E, DGRAD, 128, 128, 2, 2, 4, true, true, 2)     \
    CONV_IGEMM_ENTRY(conv_dgrad_##SUF##_256x64w4_vv, E, DGRAD, 256, 64, 4, 1, 4, true, true, 2)       \
    CONV_IGEMM_ENTRY(conv_dgrad_##SUF##_128x64w4_vv, E, DGRAD, 128, 64, 2, 2, 4, true, true, 2)       \
    CONV_IGEMM_ENTRY(conv_dgrad_##SUF##_64x64w4_vv, E, DGRAD, 64, 64, 2, 2, 4, true, true, 2)         \
    CONV_IGEMM_ENTRY(conv_dgrad_##SUF##_128x32w4_vs, E, DGRAD, 128, 32, 4, 1, 4, true, false, 2)      \
    CONV_IGEMM_ENTRY(conv_dgrad_##SUF##_128x32w4_ss, E, DGRAD, 128, 32, 4, 1, 4, false, false, 2)     \
    CONV_IGEMM_ENTRY(conv_dgrad_##SUF##_128x16w4_vs, E, DGRAD, 128, 16, 4, 1, 4, true, false, 2)      \
    CONV_IGEMM_ENTRY(conv_dgrad_##SUF##_128x16w4_ss, E, DGRAD, 128, 16, 4, 1, 4, false, false, 2)     \
    CONV_IGEMM_ENTRY(conv_wgrad_##SUF##_128x256w8_vv, E, WGRAD, 128, 256, 2, 4, 4, true, true, 1)     \
    CONV_IGEMM_ENTRY(conv_wgrad_##SUF##_128x128w8_vv, E, WGRAD, 128, 128, 2, 4, 4, true, true, 2)     \
    CONV_IGEMM_ENTRY(conv_wgrad_##SUF##_128x128w4_vv, E, WGRAD, 128, 128, 2, 2, 4, true, true, 2)     \
    CONV_IGEMM_ENTRY(conv_wgrad_##SUF##_64x256w4_vv, E, WGRAD, 64, 256, 1, 4, 4, true, true, 2)       \
    CONV_IGEMM_ENTRY(conv_wgrad_##SUF##_64x128w4_vv, E, WGRAD, 64, 128, 2, 2, 4, true, true, 2)       \
    CONV_IGEMM_ENTRY(conv_wgrad_##SUF##_64x64w4_vv, E, WGRAD, 64, 64, 2, 2, 4, true, true, 2)         \
    CONV_IGEMM_ENTRY(conv_wgrad_##SUF##_64x64w4_vs, E, WGRAD, 64, 64, 2, 2, 4, true, false, 2)        \
    CONV_IGEMM_ENTRY(conv_wgrad_##SUF##_64x64w4_ss, E, WGRAD, 64, 64, 2, 2, 4, false, false, 2)

CONV_IGEMM_DTYPE(F16, f16)
CONV_IGEMM_DTYPE(BF16, bf16)
