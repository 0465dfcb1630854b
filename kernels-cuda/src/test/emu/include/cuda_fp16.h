// Emulator stand-in for <cuda_fp16.h>: the storage type and the conversions the kernels use,
// bit-exact with the device (round to nearest even; NaN stays NaN).
#pragma once
#include "cuda_emu.h"

struct __half {
    unsigned short x;
};

inline float __half2float(__half h) {
    const uint32_t s = (h.x & 0x8000u) << 16, e = (h.x >> 10) & 0x1fu, m = h.x & 0x3ffu;
    uint32_t bits;
    if (e == 0) {
        if (m == 0) {
            bits = s;
        } else {  // subnormal: normalise
            int shift = 0;
            uint32_t mm = m;
            while (!(mm & 0x400u)) { mm <<= 1; ++shift; }
            bits = s | ((uint32_t)(113 - shift) << 23) | ((mm & 0x3ffu) << 13);
        }
    } else if (e == 31) {
        bits = s | 0x7f800000u | (m << 13);
    } else {
        bits = s | ((e + 112) << 23) | (m << 13);
    }
    return __uint_as_float(bits);
}

inline __half __float2half_rn(float f) {
    const uint32_t x = __float_as_uint(f);
    const uint32_t s = (x >> 16) & 0x8000u;
    const uint32_t ax = x & 0x7fffffffu;
    __half h;
    if (ax > 0x7f800000u) { h.x = (unsigned short)(s | 0x7e00u); return h; }
    if (ax >= 0x477ff000u) { h.x = (unsigned short)(s | 0x7c00u); return h; }  // rounds to inf
    if (ax < 0x38800000u) {  // subnormal or zero in half
        const float a = __uint_as_float(ax);
        const float scaled = a * 16777216.0f;  // 2^24: the half subnormal unit
        h.x = (unsigned short)(s | (uint32_t)std::nearbyint(scaled));
        return h;
    }
    uint32_t r = ax + 0xfffu + ((ax >> 13) & 1u);
    h.x = (unsigned short)(s | (((r >> 13) - (112u << 10)) & 0x7fffu));
    return h;
}

inline unsigned short __half_as_ushort(__half h) { return h.x; }
inline __half __ushort_as_half(unsigned short u) { __half h; h.x = u; return h; }
