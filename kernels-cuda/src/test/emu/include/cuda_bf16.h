// Emulator stand-in for <cuda_bf16.h>.
#pragma once
#include "cuda_emu.h"

struct __nv_bfloat16 {
    unsigned short x;
};

inline float __bfloat162float(__nv_bfloat16 b) { return __uint_as_float((uint32_t)b.x << 16); }

inline __nv_bfloat16 __float2bfloat16_rn(float f) {
    const uint32_t x = __float_as_uint(f);
    __nv_bfloat16 b;
    if ((x & 0x7fffffffu) > 0x7f800000u) { b.x = (unsigned short)((x >> 16) | 0x40u); return b; }
    b.x = (unsigned short)((x + 0x7fffu + ((x >> 16) & 1u)) >> 16);
    return b;
}

inline unsigned short __bfloat16_as_ushort(__nv_bfloat16 b) { return b.x; }
inline __nv_bfloat16 __ushort_as_bfloat16(unsigned short u) { __nv_bfloat16 b; b.x = u; return b; }
