// Portable convolution: implicit GEMM on the fp32 cores, native NHWC and NCHW. The fp32 path of
// Conv2dCuda.java, and (instantiated for fp16/bf16 storage too) the plain twin that the tensor-core
// kernels of conv_igemm.cu are checked against.
//
// The GEMM views are conv_igemm.cu's (fprop M = N*P*Q x NG = Kg over KD = R*S*Cg; dgrad M = N*H*W x
// NG = Cg over KD = R*S*Kg with the guarded gather for strides; wgrad M = Kg x NG = R*S*Cg over
// KD = N*P*Q, split over gridDim.z into fp32 partials). For wgrad the column index ng runs in the
// filter's own order ((r*S + s)*Cg + c for NHWC, (c*R + r)*S + s for NCHW), so the partials have dw's
// layout.
//
// CTA tile 64 x 64 x 16, 256 threads, each a 4 x 4 block of outputs. Every element is gathered with
// its bounds check, so any shape, stride, padding, dilation and group count works. The next k-tile is
// loaded into registers while the current one is multiplied out of shared memory.
//
// Entry points conv_simt_<fprop|dgrad|wgrad>_<f32|f16|bf16>(
//    const T* a, const T* b, const T* bias, void* out,
//    int N, int H, int W, int C, int K, int R, int S, int P, int Q,
//    int strideH, int strideW, int padTop, int padLeft, int dilH, int dilW, int groups, int splitLen, int nchw)
//   operands as conv_igemm.cu (fprop a = x, b = w, out = y; dgrad a = dy, b = w, out = dx; wgrad a = dy,
//   b = x, out = fp32 partials [splits][K][R*S*Cg], splitLen a multiple of 16); nchw = 1 for NCHW
//   activations with [K][Cg][R][S] filters, 0 for NHWC with [K][R][S][Cg].
//   grid = (ceil(M/64) * ceil(NG/64), 1, groups * splits), block = 256, no dynamic shared memory.
#include "conv_common.cuh"

namespace conv {
namespace simt {

enum Pass { FPROP = 0, DGRAD = 1, WGRAD = 2 };

constexpr int BM = 64, BN = 64, BK = 16, THREADS = 256;
constexpr int LOADS = BK * BM / THREADS;  // elements of A (and of B) per thread per k-tile
constexpr int INVALID = -(1 << 29);

struct Shape {
    Geo g;
    bool nchw;
    CONV_FN long long x(int n, int c, int h, int w) const {
        return nchw ? (((long long)n * g.C + c) * g.H + h) * g.W + w : (((long long)n * g.H + h) * g.W + w) * g.C + c;
    }
    CONV_FN long long y(int n, int k, int p, int q) const {
        return nchw ? (((long long)n * g.K + k) * g.P + p) * g.Q + q : (((long long)n * g.P + p) * g.Q + q) * g.K + k;
    }
    CONV_FN long long w(int k, int c, int r, int s) const {
        return nchw ? (((long long)k * g.Cg + c) * g.R + r) * g.S + s : (((long long)k * g.R + r) * g.S + s) * g.Cg + c;
    }
};

template <class E, int PASS>
CONV_FN void conv_simt(const typename E::T* a, const typename E::T* b, const typename E::T* bias, void* out,
                       const Geo& g, int splitLen, bool nchw) {
    using T = typename E::T;
    __shared__ __align__(16) float As[BK][BM + 4];
    __shared__ __align__(16) float Bs[BK][BN + 4];
    const Shape sh{g, nchw};
    const int tid = threadIdx.x;

    int M, NG, KD;
    if (PASS == FPROP) {
        M = g.N * g.P * g.Q; NG = g.Kg; KD = g.R * g.S * g.Cg;
    } else if (PASS == DGRAD) {
        M = g.N * g.H * g.W; NG = g.Cg; KD = g.R * g.S * g.Kg;
    } else {
        M = g.Kg; NG = g.R * g.S * g.Cg; KD = g.N * g.P * g.Q;
    }
    const int ntn = (NG + BN - 1) / BN;
    const int mt = blockIdx.x / ntn;
    const int m0 = mt * BM, n0 = (blockIdx.x - mt * ntn) * BN;
    const int grp = blockIdx.z % g.groups;
    const int split = blockIdx.z / g.groups;
    int kbegin = 0, kend = KD;
    if (PASS == WGRAD) {
        kbegin = split * splitLen;
        kend = KD - kbegin < splitLen ? KD : kbegin + splitLen;
    }
    const int numK = kend > kbegin ? (kend - kbegin + BK - 1) / BK : 0;

    // This thread loads column t%64 of the A and the B tile, at k-rows t/64 + 4j.
    const int lcol = tid % BM;
    const int krow0 = tid / BM;

    // m side of A (fprop/dgrad: a pixel; wgrad: an output channel)
    const int am = m0 + lcol;
    int an = 0, ah = INVALID, aw = INVALID;
    if (PASS == FPROP && am < M) {
        an = am / (g.P * g.Q);
        const int pq = am - an * g.P * g.Q;
        const int p = pq / g.Q;
        ah = p * g.sh - g.ph;
        aw = (pq - p * g.Q) * g.sw - g.pw;
    } else if (PASS == DGRAD && am < M) {
        an = am / (g.H * g.W);
        const int hw = am - an * g.H * g.W;
        const int h = hw / g.W;
        ah = h + g.ph;
        aw = hw - h * g.W + g.pw;
    }
    // n side of B (wgrad: the filter tap of column ng in the filter's own order)
    const int bng = n0 + lcol;
    int br = 0, bs = 0, bc = 0;
    if (PASS == WGRAD && bng < NG) {
        if (nchw) {
            const int cr = bng / g.S;
            bs = bng - cr * g.S;
            bc = cr / g.R;
            br = cr - bc * g.R;
        } else {
            const int rs = bng / g.Cg;
            bc = bng - rs * g.Cg;
            br = rs / g.S;
            bs = rs - br * g.S;
        }
    }

    // reduction index of each of this thread's k-rows: fprop (r, s, c), dgrad (r, s, k), wgrad (n, p, q)
    Counter3 kc[LOADS];
#pragma unroll
    for (int j = 0; j < LOADS; ++j) {
        const int kd = kbegin + krow0 + 4 * j;
        if (PASS == FPROP) kc[j].init(kd, g.Cg, g.S);
        else if (PASS == DGRAD) kc[j].init(kd, g.Kg, g.S);
        else kc[j].init(kd, g.Q, g.P);
    }

    float ra[LOADS], rb[LOADS];
    auto fetch = [&](int kt) {
#pragma unroll
        for (int j = 0; j < LOADS; ++j) {
            const int kd = kbegin + kt * BK + krow0 + 4 * j;
            const bool kin = kd < kend;
            const Counter3& k = kc[j];
            float va = 0.f, vb = 0.f;
            if (PASS == FPROP) {
                const int h = ah + k.hi * g.dh, w = aw + k.mid * g.dw;
                if (kin && am < M && (unsigned)h < (unsigned)g.H && (unsigned)w < (unsigned)g.W)
                    va = E::to_f(a[sh.x(an, grp * g.Cg + k.lo, h, w)]);
                if (kin && bng < NG) vb = E::to_f(b[sh.w(grp * g.Kg + bng, k.lo, k.hi, k.mid)]);
            } else if (PASS == DGRAD) {
                const int th = ah - k.hi * g.dh, tw = aw - k.mid * g.dw;
                if (kin && am < M && th >= 0 && tw >= 0) {
                    const int p = th / g.sh, q = tw / g.sw;
                    if (p * g.sh == th && q * g.sw == tw && p < g.P && q < g.Q)
                        va = E::to_f(a[sh.y(an, grp * g.Kg + k.lo, p, q)]);
                }
                if (kin && bng < NG) vb = E::to_f(b[sh.w(grp * g.Kg + k.lo, bng, k.hi, k.mid)]);
            } else {
                if (kin && am < M) va = E::to_f(a[sh.y(k.hi, grp * g.Kg + am, k.mid, k.lo)]);
                const int h = k.mid * g.sh - g.ph + br * g.dh, w = k.lo * g.sw - g.pw + bs * g.dw;
                if (kin && bng < NG && (unsigned)h < (unsigned)g.H && (unsigned)w < (unsigned)g.W)
                    vb = E::to_f(b[sh.x(k.hi, grp * g.Cg + bc, h, w)]);
            }
            ra[j] = va;
            rb[j] = vb;
        }
#pragma unroll
        for (int j = 0; j < LOADS; ++j) {
            if (PASS == FPROP) kc[j].step(BK, g.Cg, g.S);
            else if (PASS == DGRAD) kc[j].step(BK, g.Kg, g.S);
            else kc[j].step(BK, g.Q, g.P);
        }
    };

    const int tx = tid % 16, ty = tid / 16;
    float acc[4][4];
#pragma unroll
    for (int i = 0; i < 4; ++i)
#pragma unroll
        for (int j = 0; j < 4; ++j) acc[i][j] = 0.f;

    if (numK > 0) fetch(0);
    for (int kt = 0; kt < numK; ++kt) {
#pragma unroll
        for (int j = 0; j < LOADS; ++j) {
            As[krow0 + 4 * j][lcol] = ra[j];
            Bs[krow0 + 4 * j][lcol] = rb[j];
        }
        __syncthreads();
        if (kt + 1 < numK) fetch(kt + 1);
#pragma unroll
        for (int kk = 0; kk < BK; ++kk) {
            const float4 av = *reinterpret_cast<const float4*>(&As[kk][ty * 4]);
            const float4 bv = *reinterpret_cast<const float4*>(&Bs[kk][tx * 4]);
            const float am4[4] = {av.x, av.y, av.z, av.w};
            const float bn4[4] = {bv.x, bv.y, bv.z, bv.w};
#pragma unroll
            for (int i = 0; i < 4; ++i)
#pragma unroll
                for (int j = 0; j < 4; ++j) acc[i][j] += am4[i] * bn4[j];
        }
        __syncthreads();
    }

#pragma unroll
    for (int i = 0; i < 4; ++i) {
        const int m = m0 + ty * 4 + i;
        if (m >= M) continue;
        if (PASS == WGRAD) {
            float* o = reinterpret_cast<float*>(out) + ((long long)split * g.K + grp * g.Kg + m) * NG;
#pragma unroll
            for (int j = 0; j < 4; ++j) {
                const int col = n0 + tx * 4 + j;
                if (col < NG) o[col] = acc[i][j];
            }
            continue;
        }
        int n, u, v;  // the pixel of row m: (n, p, q) for fprop, (n, h, w) for dgrad
        const int plane = PASS == FPROP ? g.P * g.Q : g.H * g.W;
        const int width = PASS == FPROP ? g.Q : g.W;
        n = m / plane;
        u = (m - n * plane) / width;
        v = m - n * plane - u * width;
        T* o = reinterpret_cast<T*>(out);
#pragma unroll
        for (int j = 0; j < 4; ++j) {
            const int col = n0 + tx * 4 + j;
            if (col >= NG) continue;
            if (PASS == FPROP) {
                const int k = grp * g.Kg + col;
                const float bv = bias != nullptr ? E::to_f(bias[k]) : 0.f;
                o[sh.y(n, k, u, v)] = E::from_f(acc[i][j] + bv);
            } else {
                o[sh.x(n, grp * g.Cg + col, u, v)] = E::from_f(acc[i][j]);
            }
        }
    }
}

}  // namespace simt
}  // namespace conv

#define CONV_SIMT_ENTRY(PASS, NAME, E)                                                                          \
    extern "C" __global__ void __launch_bounds__(conv::simt::THREADS)                                          \
        conv_simt_##NAME(const E::T* __restrict__ a, const E::T* __restrict__ b, const E::T* __restrict__ bias, \
                         void* __restrict__ out, int N, int H, int W, int C, int K, int R, int S, int P, int Q,   \
                         int sh, int sw, int ph, int pw, int dh, int dw, int groups, int splitLen, int nchw) {     \
        conv::simt::conv_simt<E, conv::simt::PASS>(                                                            \
            a, b, bias, out, conv::make_geo(N, H, W, C, K, R, S, P, Q, sh, sw, ph, pw, dh, dw, groups), splitLen, \
            nchw != 0);                                                                                        \
    }

#define CONV_SIMT_DTYPE(E, SUF)                \
    CONV_SIMT_ENTRY(FPROP, fprop_##SUF, conv::E) \
    CONV_SIMT_ENTRY(DGRAD, dgrad_##SUF, conv::E) \
    CONV_SIMT_ENTRY(WGRAD, wgrad_##SUF, conv::E)

CONV_SIMT_DTYPE(F32, f32)
CONV_SIMT_DTYPE(F16, f16)
CONV_SIMT_DTYPE(BF16, bf16)
