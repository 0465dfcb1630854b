// Kernels of the GPU probe (bench/gpu/probe, issue 9). Built here by bench/gpu/prepare.sh into
// PTX (compute_80, JIT-compiled by the driver there) and an sm_90 cubin, and loaded on the GPU
// machine by the Java probe through JCuda and by ceilings.py through cupy: they prove that modules
// built on this machine run there, and give the copy-bandwidth ceiling with our own kernel.

// out = a*x + y with one rounding, so the host can recompute it bit-exactly with Math.fma.
extern "C" __global__ void axpy_fma(const float* __restrict__ x, const float* __restrict__ y,
                                    float* __restrict__ out, float a, int n)
{
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) out[i] = fmaf(a, x[i], y[i]);
}

// Random-looking values in [-1, 1) from a hash of index and seed: fills gigabytes of copy-test
// input without a host transfer, and never zeros (which can run faster than real data).
extern "C" __global__ void fill_hash(float* __restrict__ dst, unsigned long long n, unsigned int seed)
{
    unsigned long long stride = (unsigned long long)gridDim.x * blockDim.x;
    for (unsigned long long i = blockIdx.x * (unsigned long long)blockDim.x + threadIdx.x; i < n; i += stride) {
        unsigned int h = (unsigned int)i ^ ((unsigned int)(i >> 32) * 0x9E3779B9u) ^ seed;
        h ^= h >> 16; h *= 0x7FEB352Du; h ^= h >> 15; h *= 0x846CA68Bu; h ^= h >> 16;
        dst[i] = (float)(h >> 8) * (1.0f / 8388608.0f) - 1.0f;
    }
}

// dst[0..n) = src[0..n): 16-byte loads and stores over a grid-stride loop, UNROLL independent loads
// in flight per thread before the first store (memory-level parallelism is what a copy needs).
// The n % 4 trailing floats are copied by the first threads, so any n works.
template <int UNROLL>
__device__ __forceinline__ void copy_vec4(const float* __restrict__ src, float* __restrict__ dst,
                                          unsigned long long n)
{
    const float4* s = reinterpret_cast<const float4*>(src);
    float4* d = reinterpret_cast<float4*>(dst);
    unsigned long long n4 = n / 4;
    unsigned long long stride = (unsigned long long)gridDim.x * blockDim.x;
    unsigned long long i = blockIdx.x * (unsigned long long)blockDim.x + threadIdx.x;
    for (; i + (UNROLL - 1) * stride < n4; i += UNROLL * stride) {
        float4 v[UNROLL];
#pragma unroll
        for (int u = 0; u < UNROLL; ++u) v[u] = s[i + u * stride];
#pragma unroll
        for (int u = 0; u < UNROLL; ++u) d[i + u * stride] = v[u];
    }
    for (; i < n4; i += stride) d[i] = s[i];
    unsigned long long t = blockIdx.x * (unsigned long long)blockDim.x + threadIdx.x;
    if (t < n - n4 * 4) dst[n4 * 4 + t] = src[n4 * 4 + t];
}

extern "C" __global__ void copy_vec4_u1(const float* __restrict__ src, float* __restrict__ dst, unsigned long long n)
{
    copy_vec4<1>(src, dst, n);
}

extern "C" __global__ void copy_vec4_u4(const float* __restrict__ src, float* __restrict__ dst, unsigned long long n)
{
    copy_vec4<4>(src, dst, n);
}
