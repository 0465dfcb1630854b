// Depthwise convolution (groups = C: one input channel per group, Kg = K/C output channels each),
// forward, backward-data and backward-filter, NHWC or NCHW, fp32/fp16/bf16 storage with fp32 math.
// There is no reduction over channels, so a GEMM would be all padding: these are direct loops,
// one output element per thread for fprop and dgrad (consecutive threads take consecutive elements of
// an image's output in memory, so loads and stores coalesce along the innermost dimension; blockIdx.y
// is the image, which keeps the index arithmetic in 32 bits), and for wgrad a
// 32-channel x 8-row block per (channel block, pixel split) writing fp32 partials.
//
// Entry points conv_dw_<fprop|dgrad|wgrad>_<f32|f16|bf16>(
//    const T* a, const T* b, const T* bias, void* out,
//    int N, int H, int W, int C, int K, int R, int S, int P, int Q,
//    int strideH, int strideW, int padTop, int padLeft, int dilH, int dilW, int groups, int splitLen, int nchw)
//   fprop: a = x, b = w ([K][R][S], the same bytes in either layout), bias [K] or null, out = y (T);
//          grid = (ceil(K*P*Q / 256), min(N, 65535)), block 256 (the kernel strides over images beyond the grid)
//   dgrad: a = dy, b = w, out = dx (T); grid = (ceil(C*H*W / 256), min(N, 65535)), block 256
//   wgrad: a = dy, b = x, out = fp32 partials [splits][K][R*S]; splitLen = pixels (of N*P*Q) per split;
//          grid = (ceil(K/32), splits), block = (32, 8)
#include "conv_common.cuh"

namespace conv {
namespace dw {

CONV_FN long long x_off(const Geo& g, bool nchw, int n, int c, int h, int w) {
    return nchw ? (((long long)n * g.C + c) * g.H + h) * g.W + w : (((long long)n * g.H + h) * g.W + w) * g.C + c;
}
CONV_FN long long y_off(const Geo& g, bool nchw, int n, int k, int p, int q) {
    return nchw ? (((long long)n * g.K + k) * g.P + p) * g.Q + q : (((long long)n * g.P + p) * g.Q + q) * g.K + k;
}

// Splits an index within one image, in the layout's memory order, into (channel, row, column).
CONV_FN void decode(int i, bool nchw, int Cn, int Hn, int Wn, int& c, int& h, int& w) {
    if (nchw) {
        w = i % Wn; i /= Wn;
        h = i % Hn;
        c = i / Hn;
    } else {
        c = i % Cn; i /= Cn;
        w = i % Wn;
        h = i / Wn;
    }
}

template <class E>
CONV_FN void fprop(const typename E::T* x, const typename E::T* wt, const typename E::T* bias, typename E::T* y,
                   const Geo& g, bool nchw) {
    const int per_image = g.K * g.P * g.Q;
    for (int n = blockIdx.y; n < g.N; n += gridDim.y)
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < per_image; i += gridDim.x * blockDim.x) {
        int k, p, q;
        decode(i, nchw, g.K, g.P, g.Q, k, p, q);
        const int c = k / g.Kg;
        float acc = bias != nullptr ? E::to_f(bias[k]) : 0.f;
        const typename E::T* wk = wt + (long long)k * g.R * g.S;
        for (int r = 0; r < g.R; ++r) {
            const int h = p * g.sh - g.ph + r * g.dh;
            if ((unsigned)h >= (unsigned)g.H) continue;
            for (int s = 0; s < g.S; ++s) {
                const int w = q * g.sw - g.pw + s * g.dw;
                if ((unsigned)w >= (unsigned)g.W) continue;
                acc += E::to_f(x[x_off(g, nchw, n, c, h, w)]) * E::to_f(wk[r * g.S + s]);
            }
        }
        y[(long long)n * per_image + i] = E::from_f(acc);
    }
}

// Output row p = (h + padTop - r*dilH) / strideH feeds dx row h when the division is exact; the quotient
// and remainder are stepped with r (and likewise for columns), so the tap loops divide nothing.
struct Taps {
    int p, rem;  // quotient and remainder of (start - tap*dil) by stride
    CONV_FN void init(int start, int stride) {
        p = start / stride;
        rem = start - p * stride;
    }
    CONV_FN void step(int dq, int dr, int stride) {
        p -= dq;
        rem -= dr;
        if (rem < 0) {
            rem += stride;
            --p;
        }
    }
};

template <class E>
CONV_FN void dgrad(const typename E::T* dy, const typename E::T* wt, typename E::T* dx, const Geo& g, bool nchw) {
    const int per_image = g.C * g.H * g.W;
    const int dqh = g.dh / g.sh, drh = g.dh - dqh * g.sh;
    const int dqw = g.dw / g.sw, drw = g.dw - dqw * g.sw;
    for (int n = blockIdx.y; n < g.N; n += gridDim.y)
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < per_image; i += gridDim.x * blockDim.x) {
        int c, h, w;
        decode(i, nchw, g.C, g.H, g.W, c, h, w);
        Taps th0, tw0;
        th0.init(h + g.ph, g.sh);
        tw0.init(w + g.pw, g.sw);
        float acc = 0.f;
        for (int j = 0; j < g.Kg; ++j) {
            const int k = c * g.Kg + j;
            const typename E::T* wk = wt + (long long)k * g.R * g.S;
            Taps th = th0;
            for (int r = 0; r < g.R; ++r, th.step(dqh, drh, g.sh)) {
                if (th.p < 0 || th.rem != 0 || th.p >= g.P) continue;
                Taps tw = tw0;
                for (int s = 0; s < g.S; ++s, tw.step(dqw, drw, g.sw)) {
                    if (tw.p < 0 || tw.rem != 0 || tw.p >= g.Q) continue;
                    acc += E::to_f(dy[y_off(g, nchw, n, k, th.p, tw.p)]) * E::to_f(wk[r * g.S + s]);
                }
            }
        }
        dx[(long long)n * per_image + i] = E::from_f(acc);
    }
}

// partial[split][k][r*S + s] = sum over this split's pixels of dy(pixel, k) * x(pixel shifted by tap, k/Kg)
template <class E>
CONV_FN void wgrad(const typename E::T* dy, const typename E::T* x, float* partial, const Geo& g, int splitLen,
                   bool nchw) {
    __shared__ float red[8][33];
    const int k = blockIdx.x * 32 + threadIdx.x;
    const int split = blockIdx.y;
    const int npq = g.N * g.P * g.Q;
    const int begin = split * splitLen;
    const int end = npq - begin < splitLen ? npq : begin + splitLen;
    const int c = k / g.Kg;
    for (int rs = 0; rs < g.R * g.S; ++rs) {
        const int r = rs / g.S, s = rs - r * g.S;
        float acc = 0.f;
        if (k < g.K) {
            Counter3 pix;  // (n, p, q) of this thread's pixel
            pix.init(begin + (int)threadIdx.y, g.Q, g.P);
            for (int i = begin + threadIdx.y; i < end; i += 8) {
                const int h = pix.mid * g.sh - g.ph + r * g.dh;
                const int w = pix.lo * g.sw - g.pw + s * g.dw;
                if ((unsigned)h < (unsigned)g.H && (unsigned)w < (unsigned)g.W)
                    acc += E::to_f(dy[y_off(g, nchw, pix.hi, k, pix.mid, pix.lo)]) *
                           E::to_f(x[x_off(g, nchw, pix.hi, c, h, w)]);
                pix.step(8, g.Q, g.P);
            }
        }
        red[threadIdx.y][threadIdx.x] = acc;
        __syncthreads();
        if (threadIdx.y == 0 && k < g.K) {
            float t = 0.f;
            for (int j = 0; j < 8; ++j) t += red[j][threadIdx.x];
            partial[((long long)split * g.K + k) * (g.R * g.S) + rs] = t;
        }
        __syncthreads();
    }
}

}  // namespace dw
}  // namespace conv

#define CONV_DW_DTYPE(E, SUF)                                                                                   \
    extern "C" __global__ void __launch_bounds__(256)                                                           \
        conv_dw_fprop_##SUF(const conv::E::T* __restrict__ a, const conv::E::T* __restrict__ b,                 \
                            const conv::E::T* __restrict__ bias, void* __restrict__ out, int N, int H, int W,    \
                            int C, int K, int R, int S, int P, int Q, int sh, int sw, int ph, int pw, int dh,     \
                            int dw, int groups, int splitLen, int nchw) {                                        \
        conv::dw::fprop<conv::E>(a, b, bias, reinterpret_cast<conv::E::T*>(out),                                \
                                 conv::make_geo(N, H, W, C, K, R, S, P, Q, sh, sw, ph, pw, dh, dw, groups),       \
                                 nchw != 0);                                                                     \
    }                                                                                                           \
    extern "C" __global__ void __launch_bounds__(256)                                                           \
        conv_dw_dgrad_##SUF(const conv::E::T* __restrict__ a, const conv::E::T* __restrict__ b,                 \
                            const conv::E::T* __restrict__ bias, void* __restrict__ out, int N, int H, int W,    \
                            int C, int K, int R, int S, int P, int Q, int sh, int sw, int ph, int pw, int dh,     \
                            int dw, int groups, int splitLen, int nchw) {                                        \
        conv::dw::dgrad<conv::E>(a, b, reinterpret_cast<conv::E::T*>(out),                                      \
                                 conv::make_geo(N, H, W, C, K, R, S, P, Q, sh, sw, ph, pw, dh, dw, groups),       \
                                 nchw != 0);                                                                     \
    }                                                                                                           \
    extern "C" __global__ void __launch_bounds__(256)                                                           \
        conv_dw_wgrad_##SUF(const conv::E::T* __restrict__ a, const conv::E::T* __restrict__ b,                 \
                            const conv::E::T* __restrict__ bias, void* __restrict__ out, int N, int H, int W,    \
                            int C, int K, int R, int S, int P, int Q, int sh, int sw, int ph, int pw, int dh,     \
                            int dw, int groups, int splitLen, int nchw) {                                        \
        conv::dw::wgrad<conv::E>(a, b, reinterpret_cast<float*>(out),                                           \
                                 conv::make_geo(N, H, W, C, K, R, S, P, Q, sh, sw, ph, pw, dh, dw, groups),       \
                                 splitLen, nchw != 0);                                                           \
    }

CONV_DW_DTYPE(F32, f32)
CONV_DW_DTYPE(F16, f16)
CONV_DW_DTYPE(BF16, bf16)
