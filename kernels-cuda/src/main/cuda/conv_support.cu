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
