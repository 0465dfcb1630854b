/*
 * kernels4j.h -- the kernels4j portable kernel dialect (version 1).
 *
 * A kernel is written once in OpenCL C (1.2) and compiles
 *   - as OpenCL C for every OpenCL device (the OpenCL backend inlines this header before the source), and
 *   - as CUDA C++ with nvcc, through the same header, which maps the OpenCL constructs when __CUDACC__ is set:
 *       nvcc -x cu -I <dir of this header> -arch=sm_90 --ptx kernel.cl -o kernel.ptx
 *     (or `-include kernels4j.h` when the source does not #include it; add -DNAME=VALUE for tuned parameters).
 *
 * Rules of the dialect (what a source must follow so that both compilers accept it):
 *   - Qualifiers: __kernel, __global, __local, __constant (pointer parameters only), restrict. Use the underscored
 *     forms; `kernel`, `global`, `local` without underscores are not mapped.
 *   - Kernels take no by-value structs; parameters are pointers, int, long, float (and K4J_DYNAMIC_LOCAL).
 *   - Helper functions are declared `inline` (on CUDA `inline` becomes `__device__ inline`). Include any
 *     system header before this one; on CUDA a translation unit that includes it holds device code only.
 *   - Launch: the host rounds the global size up to a multiple of the workgroup size (kernels check bounds);
 *     a CUDA launcher uses grid = global / local and block = local per dimension (so gridDim.y/z <= 65535).
 *   - A helper that takes a pointer to local memory declares it `K4J_LOCAL_PTR float* p` (`__local` on OpenCL,
 *     a generic pointer on CUDA, where `__shared__` cannot qualify a parameter).
 *   - Static local arrays are declared at kernel scope: `__local float tile[TILE];`.
 *   - Barriers: barrier(CLK_LOCAL_MEM_FENCE) (or CLK_GLOBAL_MEM_FENCE), reached by all or none of a workgroup.
 *   - Work-item functions: get_global_id, get_local_id, get_group_id, get_local_size, get_num_groups,
 *     get_global_size (dimension 0..2; no global offset).
 *   - Math: the float overloads of exp2, log2, exp, log, sqrt, rsqrt, fmax, fmin, fabs, fma, pow, floor, ceil;
 *     mad; the native_* functions listed below; as_float, as_uint, as_int; INFINITY. Vectors: float2/float4 with
 *     .x .y .z .w only, built with K4J_FLOAT2/K4J_FLOAT4, loaded with vload4/vstore4 (on CUDA the address must
 *     be aligned to the vector size) -- no vector arithmetic operators (CUDA has none).
 *   - Atomics: atomic_add, atomic_sub, atomic_xchg, atomic_cmpxchg, atomic_min, atomic_max, atomic_inc on int
 *     and uint; k4j_atomic_add_float for float (native on CUDA, a compare-and-swap loop on OpenCL).
 *
 * Storage types: define K4J_DTYPE as K4J_FLOAT32 (default), K4J_FLOAT16 or K4J_BFLOAT16 and use `k4j_t` for
 * element pointers with k4j_load / k4j_store (and k4j_load4 / k4j_store4 for four consecutive elements); all
 * arithmetic stays in float. float16 uses vload_half/vstore_half_rte, which OpenCL offers without cl_khr_fp16.
 *
 * Dynamic local memory (sized per launch, org.kernels4j.LocalMemory on the host):
 *       __kernel void k(__global float* x, int n, K4J_DYNAMIC_LOCAL(float, tile)) {
 *           K4J_BIND_DYNAMIC_LOCAL(float, tile);   // first statement of the kernel body
 *           tile[get_local_id(0)] = ...;
 *   OpenCL: the parameter is `__local float* tile`; the host sets the argument's size and a null value.
 *   CUDA:   the parameter is `unsigned long long tile_k4j_offset`, a byte offset into the launch's dynamic shared
 *           memory, and the bind statement declares `float* tile` at that offset. A CUDA launcher lays the
 *           LocalMemory arguments out in argument order, each at an offset aligned to 16 bytes, passes each offset
 *           as a 64-bit parameter in the argument's position, and launches with sharedMemBytes = the end of the
 *           last one. Several dynamic buffers per kernel are allowed.
 *
 * Subgroups: K4J_SUBGROUPS is 1 where subgroup (warp) operations are available: always on CUDA (warps of 32), on
 * OpenCL where the device has cl_khr_subgroups or cl_intel_subgroups (the OpenCL backend passes
 * -DK4J_SUBGROUPS=0|1 from the device's extensions, verified by a probe kernel). The reductions below use them
 * when present and fall back to a local-memory tree otherwise; results are the same up to rounding order.
 *
 * Tuned parameters: each kernel source declares its launch parameters as
 *       #ifndef LN_WG
 *       #define LN_WG 256
 *       #endif
 * with a default that is correct on any device; the host overrides them with -DLN_WG=128.
 */
#ifndef KERNELS4J_DIALECT_H
#define KERNELS4J_DIALECT_H

#define K4J_DIALECT_VERSION 1

#define K4J_FLOAT32 0
#define K4J_FLOAT16 1
#define K4J_BFLOAT16 2

#ifndef K4J_DTYPE
#define K4J_DTYPE K4J_FLOAT32
#endif

#if defined(__CUDACC__)
/* ------------------------------------------------------------------ CUDA mapping */
#define K4J_CUDA 1
#define K4J_OPENCL 0

#include <cuda_fp16.h>

#define __kernel extern "C" __global__
#define __global
#define __local __shared__
#define __private
#define __constant const
#define restrict __restrict__
#define inline __device__ inline
#define K4J_LOCAL_PTR

#define CLK_LOCAL_MEM_FENCE 1
#define CLK_GLOBAL_MEM_FENCE 2
/* __syncthreads also orders global memory within the block, so both fences map to it. */
#define barrier(flags) __syncthreads()
#define mem_fence(flags) __threadfence_block()

inline size_t get_local_id(int d) { return d == 0 ? threadIdx.x : d == 1 ? threadIdx.y : threadIdx.z; }
inline size_t get_group_id(int d) { return d == 0 ? blockIdx.x : d == 1 ? blockIdx.y : blockIdx.z; }
inline size_t get_local_size(int d) { return d == 0 ? blockDim.x : d == 1 ? blockDim.y : blockDim.z; }
inline size_t get_num_groups(int d) { return d == 0 ? gridDim.x : d == 1 ? gridDim.y : gridDim.z; }
inline size_t get_global_id(int d) { return get_group_id(d) * get_local_size(d) + get_local_id(d); }
inline size_t get_global_size(int d) { return get_num_groups(d) * get_local_size(d); }

#define native_exp2(x) exp2f(x)
#define native_exp(x) __expf(x)
#define native_log(x) __logf(x)
#define native_log2(x) __log2f(x)
#define native_sqrt(x) sqrtf(x)
#define native_rsqrt(x) rsqrtf(x)
#define native_recip(x) __frcp_rn(x)
#define native_divide(a, b) __fdividef((a), (b))
#define native_powr(a, b) __powf((a), (b))
#define mad(a, b, c) fmaf((a), (b), (c))
#define as_float(x) __uint_as_float((unsigned int)(x))
#define as_uint(x) __float_as_uint(x)
#define as_int(x) __float_as_int(x)

#define K4J_FLOAT2(a, b) make_float2((a), (b))
#define K4J_FLOAT4(a, b, c, d) make_float4((a), (b), (c), (d))

inline float4 vload4(size_t i, const float* p) { return *reinterpret_cast<const float4*>(p + 4 * i); }
inline void vstore4(float4 v, size_t i, float* p) { *reinterpret_cast<float4*>(p + 4 * i) = v; }
inline float2 vload2(size_t i, const float* p) { return *reinterpret_cast<const float2*>(p + 2 * i); }
inline void vstore2(float2 v, size_t i, float* p) { *reinterpret_cast<float2*>(p + 2 * i) = v; }
inline float vload_half(size_t i, const half* p) { return __half2float(p[i]); }
inline void vstore_half_rte(float v, size_t i, half* p) { p[i] = __float2half_rn(v); }
inline float4 vload_half4(size_t i, const half* p) {
    const __half2* q = reinterpret_cast<const __half2*>(p + 4 * i);
    float2 a = __half22float2(q[0]);
    float2 b = __half22float2(q[1]);
    return make_float4(a.x, a.y, b.x, b.y);
}
inline void vstore_half4_rte(float4 v, size_t i, half* p) {
    __half2* q = reinterpret_cast<__half2*>(p + 4 * i);
    q[0] = __floats2half2_rn(v.x, v.y);
    q[1] = __floats2half2_rn(v.z, v.w);
}

#define atomic_add(p, v) atomicAdd((p), (v))
#define atomic_sub(p, v) atomicSub((p), (v))
#define atomic_xchg(p, v) atomicExch((p), (v))
#define atomic_cmpxchg(p, cmp, v) atomicCAS((p), (cmp), (v))
#define atomic_min(p, v) atomicMin((p), (v))
#define atomic_max(p, v) atomicMax((p), (v))
#define atomic_inc(p) atomicAdd((p), 1)
inline float k4j_atomic_add_float(float* p, float v) { return atomicAdd(p, v); }

#define K4J_DYNAMIC_LOCAL(T, name) unsigned long long name##_k4j_offset
#define K4J_BIND_DYNAMIC_LOCAL(T, name) \
    extern __shared__ __align__(16) unsigned char k4j_dynamic_shared[]; \
    T* name = reinterpret_cast<T*>(k4j_dynamic_shared + name##_k4j_offset)

#ifndef K4J_SUBGROUPS
#define K4J_SUBGROUPS 1
#endif

#else
/* ------------------------------------------------------------------ OpenCL */
#define K4J_CUDA 0
#define K4J_OPENCL 1

#define K4J_LOCAL_PTR __local
#define K4J_FLOAT2(a, b) ((float2)((a), (b)))
#define K4J_FLOAT4(a, b, c, d) ((float4)((a), (b), (c), (d)))

#define K4J_DYNAMIC_LOCAL(T, name) __local T* name
#define K4J_BIND_DYNAMIC_LOCAL(T, name) (void) 0

#ifndef K4J_SUBGROUPS
#if defined(cl_khr_subgroups) || defined(cl_intel_subgroups) || defined(__opencl_c_subgroups)
#define K4J_SUBGROUPS 1
#else
#define K4J_SUBGROUPS 0
#endif
#endif

#if K4J_SUBGROUPS
#if defined(cl_khr_subgroups)
#pragma OPENCL EXTENSION cl_khr_subgroups : enable
#elif defined(cl_intel_subgroups)
#pragma OPENCL EXTENSION cl_intel_subgroups : enable
#endif
#endif

/* A float add on global memory without float atomics: retry a 32-bit compare-and-swap until no other
   work item changed the value in between. */
inline float k4j_atomic_add_float(volatile __global float* p, float v) {
    volatile __global uint* u = (volatile __global uint*) p;
    uint seen = *u;
    uint expected;
    do {
        expected = seen;
        seen = atomic_cmpxchg(u, expected, as_uint(as_float(expected) + v));
    } while (seen != expected);
    return as_float(seen);
}
#endif

/* ------------------------------------------------------------------ storage types */
#if K4J_DTYPE == K4J_FLOAT32
typedef float k4j_t;
#define k4j_load(p, i) ((p)[i])
#define k4j_store(p, i, v) ((p)[i] = (v))
#define k4j_load4(p, i) vload4((i), (p))
#define k4j_store4(p, i, v) vstore4((v), (i), (p))
#elif K4J_DTYPE == K4J_FLOAT16
typedef half k4j_t;
#define k4j_load(p, i) vload_half((i), (p))
#define k4j_store(p, i, v) vstore_half_rte((v), (i), (p))
#define k4j_load4(p, i) vload_half4((i), (p))
#define k4j_store4(p, i, v) vstore_half4_rte((v), (i), (p))
#elif K4J_DTYPE == K4J_BFLOAT16
typedef ushort k4j_t;
inline float k4j_bf16_to_float(ushort b) { return as_float(((uint) b) << 16); }
/* Round to nearest even; NaN stays a quiet NaN. */
inline ushort k4j_float_to_bf16(float f) {
    uint u = as_uint(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) {
        return (ushort) ((u >> 16) | 0x40u);
    }
    return (ushort) ((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}
#define k4j_load(p, i) k4j_bf16_to_float((p)[i])
#define k4j_store(p, i, v) ((p)[i] = k4j_float_to_bf16(v))
#define k4j_load4(p, i) K4J_FLOAT4(k4j_load(p, 4 * (i)), k4j_load(p, 4 * (i) + 1), \
                                   k4j_load(p, 4 * (i) + 2), k4j_load(p, 4 * (i) + 3))
#define k4j_store4(p, i, v) do { k4j_store(p, 4 * (i), (v).x); k4j_store(p, 4 * (i) + 1, (v).y); \
                                 k4j_store(p, 4 * (i) + 2, (v).z); k4j_store(p, 4 * (i) + 3, (v).w); } while (0)
#else
#error "K4J_DTYPE must be K4J_FLOAT32, K4J_FLOAT16 or K4J_BFLOAT16"
#endif

/* ------------------------------------------------------------------ workgroup reductions */

/* The work item's index within its workgroup, counting dimension 0 fastest. */
inline uint k4j_local_linear_id(void) {
    return (uint) (get_local_id(0) + get_local_size(0) * (get_local_id(1) + get_local_size(1) * get_local_id(2)));
}

inline uint k4j_local_linear_size(void) {
    return (uint) (get_local_size(0) * get_local_size(1) * get_local_size(2));
}

inline uint k4j_pow2_ceil(uint n) {
    uint p = 1;
    while (p < n) {
        p <<= 1;
    }
    return p;
}

inline float k4j_op_add(float a, float b) { return a + b; }
inline float k4j_op_max(float a, float b) { return fmax(a, b); }

/*
 * k4j_group_reduce_add(v, scratch) / k4j_group_reduce_max(v, scratch): the sum (maximum) of v over the whole
 * workgroup, returned to every work item. Every work item of the group must call it (it contains barriers).
 * scratch: __local float[workgroup size] (K4J_REDUCE_SCRATCH(n) floats); it may be reused after the call.
 *
 * CUDA: warp shuffles, then the warps' partials through scratch (workgroups that are a multiple of 32).
 * OpenCL with subgroups: sub_group_reduce_*, then the subgroups' partials through scratch.
 * Otherwise: a tree in scratch.
 */
#define K4J_REDUCE_SCRATCH(n) (n)

#if K4J_CUDA
#define K4J_GROUP_REDUCE_FAST(OP, SGOP)                                                   \
    if ((n & 31u) == 0u) {                                                                \
        for (int o = 16; o > 0; o >>= 1) {                                                \
            v = OP(v, __shfl_xor_sync(0xffffffffu, v, o));                                \
        }                                                                                 \
        if ((lid & 31u) == 0u) {                                                          \
            scratch[lid >> 5] = v;                                                        \
        }                                                                                 \
        __syncthreads();                                                                  \
        float r = scratch[0];                                                             \
        for (uint w = 1; w < (n >> 5); ++w) {                                             \
            r = OP(r, scratch[w]);                                                        \
        }                                                                                 \
        __syncthreads();                                                                  \
        return r;                                                                         \
    }
#elif K4J_SUBGROUPS
#define K4J_GROUP_REDUCE_FAST(OP, SGOP)                                                   \
    {                                                                                     \
        float sg = SGOP(v);                                                               \
        if (get_sub_group_local_id() == 0) {                                              \
            scratch[get_sub_group_id()] = sg;                                             \
        }                                                                                 \
        barrier(CLK_LOCAL_MEM_FENCE);                                                     \
        float r = scratch[0];                                                             \
        for (uint w = 1; w < get_num_sub_groups(); ++w) {                                 \
            r = OP(r, scratch[w]);                                                        \
        }                                                                                 \
        barrier(CLK_LOCAL_MEM_FENCE);                                                     \
        return r;                                                                         \
    }
#else
#define K4J_GROUP_REDUCE_FAST(OP, SGOP)
#endif

/* One definition per operation: the fast path where the hardware has one, then the portable tree. */
#define K4J_DEFINE_GROUP_REDUCE(NAME, OP, SGOP)                                           \
    inline float NAME(float v, K4J_LOCAL_PTR float* scratch) {                            \
        const uint lid = k4j_local_linear_id();                                           \
        const uint n = k4j_local_linear_size();                                           \
        K4J_GROUP_REDUCE_FAST(OP, SGOP)                                                   \
        scratch[lid] = v;                                                                 \
        barrier(CLK_LOCAL_MEM_FENCE);                                                     \
        for (uint s = k4j_pow2_ceil(n) >> 1; s > 0; s >>= 1) {                            \
            if (lid < s && lid + s < n) {                                                 \
                scratch[lid] = OP(scratch[lid], scratch[lid + s]);                        \
            }                                                                             \
            barrier(CLK_LOCAL_MEM_FENCE);                                                 \
        }                                                                                 \
        float r = scratch[0];                                                             \
        barrier(CLK_LOCAL_MEM_FENCE);                                                     \
        return r;                                                                         \
    }

K4J_DEFINE_GROUP_REDUCE(k4j_group_reduce_add, k4j_op_add, sub_group_reduce_add)
K4J_DEFINE_GROUP_REDUCE(k4j_group_reduce_max, k4j_op_max, sub_group_reduce_max)

/*
 * k4j_segment_reduce_add(v, scratch, seg): the sum of v over aligned segments of `seg` consecutive work items
 * (linear ids [i*seg, (i+1)*seg)), returned to every work item of the segment; several rows per workgroup use
 * it. seg is a power of two that divides the workgroup size; every work item must call it with the same seg.
 * scratch: __local float[workgroup size]. CUDA uses warp shuffles within segments of up to 32 lanes.
 */
inline float k4j_segment_reduce_add(float v, K4J_LOCAL_PTR float* scratch, uint seg) {
    const uint lid = k4j_local_linear_id();
#if K4J_CUDA
    const uint n = k4j_local_linear_size();
    if ((n & 31u) == 0u && seg <= 32u) {
        for (uint o = seg >> 1; o > 0; o >>= 1) {
            v += __shfl_xor_sync(0xffffffffu, v, (int) o);
        }
        return v;
    }
#endif
    const uint first = lid & ~(seg - 1u);
    scratch[lid] = v;
    barrier(CLK_LOCAL_MEM_FENCE);
    for (uint s = seg >> 1; s > 0; s >>= 1) {
        if (lid - first < s) {
            scratch[lid] += scratch[lid + s];
        }
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    float r = scratch[first];
    barrier(CLK_LOCAL_MEM_FENCE);
    return r;
}

#endif /* KERNELS4J_DIALECT_H */
