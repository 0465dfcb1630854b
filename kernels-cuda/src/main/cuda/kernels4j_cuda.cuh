// Shared device helpers for the CUDA-only kernels of kernels4j: storage types with fp32 math,
// 16-byte packs, warp and row-group reductions. Header only; every .cu in this folder may include it.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <stdint.h>

namespace k4j {

// fp32 math whatever the storage type; conversions round to nearest even, as HalfFloats does in Java.
__device__ __forceinline__ float to_f32(float v) { return v; }
__device__ __forceinline__ float to_f32(__half v) { return __half2float(v); }
__device__ __forceinline__ float to_f32(__nv_bfloat16 v) { return __bfloat162float(v); }

template <typename T> __device__ __forceinline__ T from_f32(float v);
template <> __device__ __forceinline__ float from_f32<float>(float v) { return v; }
template <> __device__ __forceinline__ __half from_f32<__half>(float v) { return __float2half_rn(v); }
template <> __device__ __forceinline__ __nv_bfloat16 from_f32<__nv_bfloat16>(float v) { return __float2bfloat16_rn(v); }

// 16 bytes of storage as four 32-bit words: 4 floats or 8 halves. Kept packed in registers (4
// registers whatever the type) and converted to fp32 where used, so a 16-bit row costs no more
// registers than an fp32 one. Elements are taken apart with shifts rather than through a pointer,
// so the pack never needs an address (which would put it in local memory).
template <typename T> struct Elem;
template <> struct Elem<float> {
    __device__ static __forceinline__ float get(const uint32_t (&w)[4], int i) { return __uint_as_float(w[i]); }
    __device__ static __forceinline__ void set(uint32_t (&w)[4], int i, float v) { w[i] = __float_as_uint(v); }
};
template <> struct Elem<__half> {
    __device__ static __forceinline__ float get(const uint32_t (&w)[4], int i) {
        return __half2float(__ushort_as_half((unsigned short)(w[i >> 1] >> ((i & 1) * 16))));
    }
    __device__ static __forceinline__ void set(uint32_t (&w)[4], int i, float v) {
        const uint32_t h = __half_as_ushort(__float2half_rn(v));
        w[i >> 1] = (i & 1) ? (w[i >> 1] & 0xffffu) | (h << 16) : (w[i >> 1] & 0xffff0000u) | h;
    }
};
template <> struct Elem<__nv_bfloat16> {
    __device__ static __forceinline__ float get(const uint32_t (&w)[4], int i) {
        return __uint_as_float((i & 1) ? (w[i >> 1] & 0xffff0000u) : (w[i >> 1] << 16));
    }
    __device__ static __forceinline__ void set(uint32_t (&w)[4], int i, float v) {
        const uint32_t h = __bfloat16_as_ushort(__float2bfloat16_rn(v));
        w[i >> 1] = (i & 1) ? (w[i >> 1] & 0xffffu) | (h << 16) : (w[i >> 1] & 0xffff0000u) | h;
    }
};

template <typename T>
struct Pack {
    static constexpr int N = 16 / sizeof(T);
    uint32_t w[4];

    __device__ __forceinline__ float get(int i) const { return Elem<T>::get(w, i); }
    __device__ __forceinline__ void set(int i, float v) { Elem<T>::set(w, i, v); }
    __device__ __forceinline__ void zero() { w[0] = w[1] = w[2] = w[3] = 0u; }
};

// Read-only loads go through the non-coherent path; every caller guarantees 16-byte alignment.
template <typename T>
__device__ __forceinline__ Pack<T> load_pack(const T* p) {
    const uint4 r = __ldg(reinterpret_cast<const uint4*>(p));
    Pack<T> v;
    v.w[0] = r.x;
    v.w[1] = r.y;
    v.w[2] = r.z;
    v.w[3] = r.w;
    return v;
}

template <typename T>
__device__ __forceinline__ void store_pack(T* p, const Pack<T>& v) {
    *reinterpret_cast<uint4*>(p) = make_uint4(v.w[0], v.w[1], v.w[2], v.w[3]);
}

__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
    for (int m = 16; m > 0; m >>= 1) v += __shfl_xor_sync(0xffffffffu, v, m);
    return v;
}

__device__ __forceinline__ float2 warp_sum(float2 v) {
#pragma unroll
    for (int m = 16; m > 0; m >>= 1) {
        v.x += __shfl_xor_sync(0xffffffffu, v.x, m);
        v.y += __shfl_xor_sync(0xffffffffu, v.y, m);
    }
    return v;
}

__device__ __forceinline__ float add(float a, float b) { return a + b; }
__device__ __forceinline__ float2 add(float2 a, float2 b) { return make_float2(a.x + b.x, a.y + b.y); }

// Sum over the threads of one row-group: blockDim.x threads (a multiple of 32, so no warp straddles
// two rows) share a row, blockDim.y row-groups share the block. Every thread of the row-group gets
// the same result. With more than one warp per row the warps meet in shared memory; `parity` picks
// one of two buffers so that consecutive reductions need one barrier each (a thread reads buffer p
// before it reaches the barrier of the next reduction, which writes buffer 1-p). Every thread of the
// block must call it the same number of times (inactive rows contribute zeros).
template <typename V>
__device__ __forceinline__ V rowgroup_sum(V v, V (*buffers)[32], int parity) {
    v = warp_sum(v);
    if (blockDim.x == 32) return v;
    const int warps_per_row = blockDim.x >> 5;
    const int first = threadIdx.y * warps_per_row;
    V* buf = buffers[parity];
    if ((threadIdx.x & 31) == 0) buf[first + (threadIdx.x >> 5)] = v;
    __syncthreads();
    V r = buf[first];
    for (int w = 1; w < warps_per_row; ++w) r = add(r, buf[first + w]);
    return r;
}

// Welford's running (count, mean, sum of squared deviations), merged with Chan's formula: the
// statistics of a row that is streamed rather than held in registers, without the cancellation of
// E[x^2] - E[x]^2.
struct Welford {
    float n, mean, m2;
};

__device__ __forceinline__ Welford welford_push(Welford a, float x) {
    a.n += 1.f;
    const float d = x - a.mean;
    a.mean += d / a.n;
    a.m2 += d * (x - a.mean);
    return a;
}

__device__ __forceinline__ Welford welford_merge(Welford a, Welford b) {
    const float n = a.n + b.n;
    if (n == 0.f) return a;
    const float d = b.mean - a.mean;
    const float fb = b.n / n;
    Welford r;
    r.n = n;
    r.mean = a.mean + d * fb;
    r.m2 = a.m2 + b.m2 + d * d * a.n * fb;
    return r;
}

__device__ __forceinline__ Welford warp_welford(Welford v) {
#pragma unroll
    for (int m = 16; m > 0; m >>= 1) {
        Welford o;
        o.n = __shfl_xor_sync(0xffffffffu, v.n, m);
        o.mean = __shfl_xor_sync(0xffffffffu, v.mean, m);
        o.m2 = __shfl_xor_sync(0xffffffffu, v.m2, m);
        v = welford_merge(v, o);
    }
    return v;
}

// As rowgroup_sum, for Welford statistics.
__device__ __forceinline__ Welford rowgroup_welford(Welford v, Welford (*buffers)[32], int parity) {
    v = warp_welford(v);
    if (blockDim.x == 32) return v;
    const int warps_per_row = blockDim.x >> 5;
    const int first = threadIdx.y * warps_per_row;
    Welford* buf = buffers[parity];
    if ((threadIdx.x & 31) == 0) buf[first + (threadIdx.x >> 5)] = v;
    __syncthreads();
    Welford r = buf[first];
    for (int w = 1; w < warps_per_row; ++w) r = welford_merge(r, buf[first + w]);
    return r;
}

}  // namespace k4j
