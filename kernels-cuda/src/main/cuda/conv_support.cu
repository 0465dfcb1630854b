// The small kernels around the convolutions: the fixed-order sum of split-K partials, the bias
// gradient, and the layout transposes that let NCHW fp16/bf16 tensors use the NHWC tensor-core kernels.
//
// Entry points:
//   conv_reduce_<f32|f16|bf16>(const float* partial, T* out, long long count, int splits)
//       out[i] = sum over s < splits of partial[s*count + i], summed in order s = 0, 1, ... (zero when
//       splits = 0); grid = min(ceil(count/256), 65535) (the kernel strides over the rest), block 256
//   conv_bias_grad_<f32|f16|bf16>(const T* dy, float* partial, int N, int K, int PQ, int splitLen, int nchw)
//       partial[split][k] = sum of dy over this split's pixels (of N*PQ) for channel k;
//       grid = (ceil(K/32), splits), block = (32, 8); conv_reduce_* then turns the partials into db
//   conv_transpose_<b16|b32>(const void* in, void* out, int batch, int rows, int cols)
//       out[b][c][r] = in[b][r][c] for elements of 2 or 4 bytes; grid = (ceil(cols/32), min(ceil(rows/32),
//       65535), min(batch, 65535)), block = (32, 8) (the kernel strides over rows and batches beyond the grid).
//       NCHW x [N][C][H*W] -> NHWC: batch N, rows C, cols H*W; back: batch N, rows H*W, cols C;
//       filter [K][Cg][R*S] -> [K][R*S][Cg]: batch K, rows Cg, cols R*S; back: batch K, rows R*S, cols Cg.
//
// Space-to-depth, for stride-2 convolutions over few channels (an RGB stem): the 16-byte loaders need 8
// channels per pixel, an RGB image has 3. Pixel (i, j) of x2 holds the 2x2 block of x at rows 2i, 2i+1 and
// columns 2j, 2j+1, channel ch = (a*2 + b)*C + c for row 2i+a, column 2j+b (zero past the image and for
// ch >= 4C, up to C2, a multiple of 8). The stride-2 R x S convolution of x is then a stride-1 R2 x S2
// convolution of x2 (same P x Q output) with filter w2[k][u][v][ch] = w[k][2u+a-offH][2v+b-offW][c] (zero
// outside the filter), padTop2 = ceil(padTop/2), offH = 2*padTop2 - padTop, likewise for columns: output p,
// tap u reads x2 row p + u - padTop2, which holds x rows 2p - padTop + (2u + a - offH). Each element of x
// and w appears once in x2 and w2, so dx and dw are gathered back from the stride-1 problem's dx2 and dw2.
//   conv_s2d_x_b16(const T* x, T* x2, int N, int H, int W, int C, int H2, int W2, int C2, int nchw)
//       x (NHWC, or NCHW when nchw) -> x2 [N][H2][W2][C2]; one thread per 8 channels of an x2 pixel;
//       grid = (ceil(N*H2*W2*C2/8 / 256), 1, 1) up to 2^31-1 blocks, block 256
//   conv_d2s_x_b16(const T* x2, T* x, int N, int H, int W, int C, int H2, int W2, int C2, int nchw)
//       the inverse gather (dx from dx2); one thread per element of x; grid = ceil(N*C*H*W / 256), block 256
//   conv_s2d_w_b16(const T* w, T* w2, int K, int R, int S, int C, int R2, int S2, int C2, int offH, int offW,
//                  int nchw)
//       w ([K][R][S][C], or [K][C][R][S] when nchw) -> w2 [K][R2][S2][C2]; one thread per element of w2
//   conv_d2s_w_b16(const T* w2, T* w, same ints)
//       the inverse gather (dw from dw2); one thread per element of w
#include "conv_common.cuh"

namespace conv {
namespace support {

template <class E>
CONV_FN void reduce(const float* partial, typename E::T* out, long long count, int splits) {
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < count;
         i += (long long)gridDim.x * blockDim.x) {
        float s = 0.f;
        for (int j = 0; j < splits; ++j) s += partial[(long long)j * count + i];
        out[i] = E::from_f(s);
    }
}

template <class E>
CONV_FN void bias_grad(const typename E::T* dy, float* partial, int N, int K, int PQ, int splitLen, bool nchw) {
    __shared__ float red[8][33];
    const int k = blockIdx.x * 32 + threadIdx.x;
    const int npq = N * PQ;
    const int begin = blockIdx.y * splitLen;
    const int end = npq - begin < splitLen ? npq : begin + splitLen;
    float acc = 0.f;
    if (k < K) {
        Counter2 pix;  // (n, pixel within the image) of this thread's row
        pix.init(begin + (int)threadIdx.y, PQ);
        for (int i = begin + threadIdx.y; i < end; i += 8) {
            const long long off = nchw ? ((long long)pix.hi * K + k) * PQ + pix.lo : (long long)i * K + k;
            acc += E::to_f(dy[off]);
            pix.step(8, PQ);
        }
    }
    red[threadIdx.y][threadIdx.x] = acc;
    __syncthreads();
    if (threadIdx.y == 0 && k < K) {
        float t = 0.f;
        for (int j = 0; j < 8; ++j) t += red[j][threadIdx.x];
        partial[(long long)blockIdx.y * K + k] = t;
    }
}

// 32 x 32 tiles through shared memory (one column of padding against bank conflicts), so that both the
// reads and the writes run along rows of their matrix.
template <class T>
CONV_FN void transpose(const T* in, T* out, int batch, int rows, int cols) {
    __shared__ T tile[32][33];
    const int c0 = blockIdx.x * 32;
    for (int b = blockIdx.z; b < batch; b += gridDim.z) {
        const T* src = in + (long long)b * rows * cols;
        T* dst = out + (long long)b * rows * cols;
        for (int r0 = blockIdx.y * 32; r0 < rows; r0 += gridDim.y * 32) {
            for (int i = threadIdx.y; i < 32; i += 8) {
                const int r = r0 + i, c = c0 + threadIdx.x;
                if (r < rows && c < cols) tile[i][threadIdx.x] = src[(long long)r * cols + c];
            }
            __syncthreads();
            for (int i = threadIdx.y; i < 32; i += 8) {
                const int c = c0 + i, r = r0 + threadIdx.x;
                if (r < rows && c < cols) dst[(long long)c * rows + r] = tile[threadIdx.x][i];
            }
            __syncthreads();
        }
    }
}

// Space-to-depth (see the header): x2 channel ch of pixel (i, j) <- x row 2i+a, column 2j+b, channel c.
struct S2d {
    int N, H, W, C, H2, W2, C2;
    bool nchw;
    CONV_FN long long x_index(int n, int h, int w, int c) const {
        return nchw ? (((long long)n * C + c) * H + h) * W + w : (((long long)n * H + h) * W + w) * C + c;
    }
};

CONV_FN void s2d_x(const uint16_t* x, uint16_t* x2, const S2d& g) {
    const int chunks = g.C2 / 8;
    const long long total = (long long)g.N * g.H2 * g.W2 * chunks;
    for (long long e = (long long)blockIdx.x * blockDim.x + threadIdx.x; e < total;
         e += (long long)gridDim.x * blockDim.x) {
        const long long pix = e / chunks;
        const int ch0 = (int)(e - pix * chunks) * 8;
        const int j = (int)(pix % g.W2);
        const long long t = pix / g.W2;
        const int i = (int)(t % g.H2);
        const int n = (int)(t / g.H2);
        uint16_t v[8];
#pragma unroll
        for (int k = 0; k < 8; ++k) {
            const int ch = ch0 + k;
            v[k] = 0;
            if (ch < 4 * g.C) {
                const int ab = ch / g.C, c = ch - ab * g.C;
                const int h = 2 * i + (ab >> 1), w = 2 * j + (ab & 1);
                if (h < g.H && w < g.W) v[k] = x[g.x_index(n, h, w, c)];
            }
        }
        uint4 packed;
        packed.x = v[0] | (uint32_t)v[1] << 16;
        packed.y = v[2] | (uint32_t)v[3] << 16;
        packed.z = v[4] | (uint32_t)v[5] << 16;
        packed.w = v[6] | (uint32_t)v[7] << 16;
        *reinterpret_cast<uint4*>(x2 + pix * g.C2 + ch0) = packed;
    }
}

CONV_FN void d2s_x(const uint16_t* x2, uint16_t* x, const S2d& g) {
    const long long total = (long long)g.N * g.H * g.W * g.C;
    for (long long e = (long long)blockIdx.x * blockDim.x + threadIdx.x; e < total;
         e += (long long)gridDim.x * blockDim.x) {
        int n, c, h, w;
        long long t = e;
        if (g.nchw) {
            w = (int)(t % g.W); t /= g.W;
            h = (int)(t % g.H); t /= g.H;
            c = (int)(t % g.C);
            n = (int)(t / g.C);
        } else {
            c = (int)(t % g.C); t /= g.C;
            w = (int)(t % g.W); t /= g.W;
            h = (int)(t % g.H);
            n = (int)(t / g.H);
        }
        const int ch = ((h & 1) * 2 + (w & 1)) * g.C + c;
        x[e] = x2[(((long long)n * g.H2 + (h >> 1)) * g.W2 + (w >> 1)) * g.C2 + ch];
    }
}

// Filter element w2[k][u][v][ch] <-> w[k][r][s][c], r = 2u + a - offH, s = 2v + b - offW.
struct S2dFilter {
    int K, R, S, C, R2, S2, C2, offH, offW;
    bool nchw;
    CONV_FN long long w_index(int k, int r, int s, int c) const {
        return nchw ? (((long long)k * C + c) * R + r) * S + s : (((long long)k * R + r) * S + s) * C + c;
    }
};

CONV_FN void s2d_w(const uint16_t* w, uint16_t* w2, const S2dFilter& g) {
    const long long total = (long long)g.K * g.R2 * g.S2 * g.C2;
    for (long long e = (long long)blockIdx.x * blockDim.x + threadIdx.x; e < total;
         e += (long long)gridDim.x * blockDim.x) {
        const int ch = (int)(e % g.C2);
        long long t = e / g.C2;
        const int v = (int)(t % g.S2); t /= g.S2;
        const int u = (int)(t % g.R2);
        const int k = (int)(t / g.R2);
        uint16_t val = 0;
        if (ch < 4 * g.C) {
            const int ab = ch / g.C, c = ch - ab * g.C;
            const int r = 2 * u + (ab >> 1) - g.offH, s = 2 * v + (ab & 1) - g.offW;
            if ((unsigned)r < (unsigned)g.R && (unsigned)s < (unsigned)g.S) val = w[g.w_index(k, r, s, c)];
        }
        w2[e] = val;
    }
}

CONV_FN void d2s_w(const uint16_t* w2, uint16_t* w, const S2dFilter& g) {
    const long long total = (long long)g.K * g.R * g.S * g.C;
    for (long long e = (long long)blockIdx.x * blockDim.x + threadIdx.x; e < total;
         e += (long long)gridDim.x * blockDim.x) {
        int k, r, s, c;
        long long t = e;
        if (g.nchw) {
            s = (int)(t % g.S); t /= g.S;
            r = (int)(t % g.R); t /= g.R;
            c = (int)(t % g.C);
            k = (int)(t / g.C);
        } else {
            c = (int)(t % g.C); t /= g.C;
            s = (int)(t % g.S); t /= g.S;
            r = (int)(t % g.R);
            k = (int)(t / g.R);
        }
        const int u = (r + g.offH) >> 1, a = (r + g.offH) & 1;
        const int v = (s + g.offW) >> 1, b = (s + g.offW) & 1;
        w[e] = w2[(((long long)k * g.R2 + u) * g.S2 + v) * g.C2 + (a * 2 + b) * g.C + c];
    }
}

}  // namespace support
}  // namespace conv

#define CONV_SUPPORT_DTYPE(E, SUF)                                                                              \
    extern "C" __global__ void __launch_bounds__(256) conv_reduce_##SUF(                                        \
        const float* __restrict__ partial, conv::E::T* __restrict__ out, long long count, int splits) {          \
        conv::support::reduce<conv::E>(partial, out, count, splits);                                            \
    }                                                                                                           \
    extern "C" __global__ void __launch_bounds__(256) conv_bias_grad_##SUF(                                     \
        const conv::E::T* __restrict__ dy, float* __restrict__ partial, int N, int K, int PQ, int splitLen,      \
        int nchw) {                                                                                             \
        conv::support::bias_grad<conv::E>(dy, partial, N, K, PQ, splitLen, nchw != 0);                          \
    }

CONV_SUPPORT_DTYPE(F32, f32)
CONV_SUPPORT_DTYPE(F16, f16)
CONV_SUPPORT_DTYPE(BF16, bf16)

extern "C" __global__ void __launch_bounds__(256)
    conv_transpose_b16(const uint16_t* __restrict__ in, uint16_t* __restrict__ out, int batch, int rows, int cols) {
    conv::support::transpose<uint16_t>(in, out, batch, rows, cols);
}

extern "C" __global__ void __launch_bounds__(256)
    conv_transpose_b32(const uint32_t* __restrict__ in, uint32_t* __restrict__ out, int batch, int rows, int cols) {
    conv::support::transpose<uint32_t>(in, out, batch, rows, cols);
}

extern "C" __global__ void __launch_bounds__(256)
    conv_s2d_x_b16(const uint16_t* __restrict__ x, uint16_t* __restrict__ x2, int N, int H, int W, int C, int H2, int W2,
                   int C2, int nchw) {
    conv::support::s2d_x(x, x2, conv::support::S2d{N, H, W, C, H2, W2, C2, nchw != 0});
}

extern "C" __global__ void __launch_bounds__(256)
    conv_d2s_x_b16(const uint16_t* __restrict__ x2, uint16_t* __restrict__ x, int N, int H, int W, int C, int H2, int W2,
                   int C2, int nchw) {
    conv::support::d2s_x(x2, x, conv::support::S2d{N, H, W, C, H2, W2, C2, nchw != 0});
}

extern "C" __global__ void __launch_bounds__(256)
    conv_s2d_w_b16(const uint16_t* __restrict__ w, uint16_t* __restrict__ w2, int K, int R, int S, int C, int R2, int S2,
                   int C2, int offH, int offW, int nchw) {
    conv::support::s2d_w(w, w2, conv::support::S2dFilter{K, R, S, C, R2, S2, C2, offH, offW, nchw != 0});
}

extern "C" __global__ void __launch_bounds__(256)
    conv_d2s_w_b16(const uint16_t* __restrict__ w2, uint16_t* __restrict__ w, int K, int R, int S, int C, int R2, int S2,
                   int C2, int offH, int offW, int nchw) {
    conv::support::d2s_w(w2, w, conv::support::S2dFilter{K, R, S, C, R2, S2, C2, offH, offW, nchw != 0});
}
