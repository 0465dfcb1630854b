// A small CPU emulator for the CUDA kernels of this module that use no inline PTX: every thread of a
// block is a fiber (ucontext) on one OS thread, so kernels run unchanged with real barriers, warp
// shuffles and shared memory (`__shared__` becomes `static`: one copy, shared by the fibers of the
// block that is running). Blocks run one after another.
//
// It is strict where the hardware is forgiving, to catch bugs before a GPU sees the code:
//   - a barrier that some thread of the block never reaches (it returned, or took another path) is a
//     deadlock and aborts the run with the block and thread named;
//   - a warp shuffle needs all 32 lanes of the warp, as the full mask the kernels pass promises.
// Only what the kernels use is provided; anything else fails to compile.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>
#include <ucontext.h>

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __shared__ static
#define __launch_bounds__(...)

struct uint3 { unsigned x, y, z; };
struct dim3 {
    unsigned x, y, z;
    dim3(unsigned a = 1, unsigned b = 1, unsigned c = 1) : x(a), y(b), z(c) {}
};
struct uint4 { uint32_t x, y, z, w; };
struct float2 { float x, y; };
struct float4 { float x, y, z, w; };
inline uint4 make_uint4(uint32_t a, uint32_t b, uint32_t c, uint32_t d) { return {a, b, c, d}; }
inline float2 make_float2(float a, float b) { return {a, b}; }
inline float4 make_float4(float a, float b, float c, float d) { return {a, b, c, d}; }

inline float __uint_as_float(uint32_t u) { float f; std::memcpy(&f, &u, 4); return f; }
inline uint32_t __float_as_uint(float f) { uint32_t u; std::memcpy(&u, &f, 4); return u; }
inline float rsqrtf(float v) { return 1.0f / std::sqrt(v); }
template <typename T> inline T __ldg(const T* p) { return *p; }

namespace emu {

struct Fiber {
    ucontext_t ctx;
    uint3 tid;
    int linear = 0;
    bool done = false;
    bool waiting = false;
    int wait_kind = 0;         // 1 block barrier, 2 warp barrier
};

struct State {
    std::vector<Fiber> fibers;
    std::vector<std::vector<char>> stacks;
    ucontext_t scheduler;
    Fiber* current = nullptr;
    uint3 block_idx{0, 0, 0};
    dim3 block_dim, grid_dim;
    // block barrier
    int arrived = 0;
    unsigned gen = 0;
    // warp barriers and shuffle slots, per warp
    std::vector<int> warp_arrived;
    std::vector<unsigned> warp_gen;
    std::vector<uint32_t> slots;
    std::vector<char> dynamic_smem;
    // arrivals at barriers and finished threads; a scheduling round that changes neither is a deadlock
    unsigned long long events = 0;
};

inline State& state() {
    static State s;
    return s;
}

inline void fail(const char* what) {
    State& s = state();
    std::fprintf(stderr, "emulator: %s (block %u,%u,%u thread %u,%u,%u)\n", what, s.block_idx.x, s.block_idx.y,
                 s.block_idx.z, s.current ? s.current->tid.x : 0, s.current ? s.current->tid.y : 0,
                 s.current ? s.current->tid.z : 0);
    std::exit(3);
}

inline void yield_to_scheduler() {
    State& s = state();
    swapcontext(&s.current->ctx, &s.scheduler);
}

inline void block_barrier() {
    State& s = state();
    Fiber* f = s.current;
    const unsigned g = s.gen;
    ++s.events;
    if (++s.arrived == (int)s.fibers.size()) {
        s.arrived = 0;
        ++s.gen;
        return;
    }
    f->waiting = true;
    f->wait_kind = 1;
    while (s.gen == g) yield_to_scheduler();
    f->waiting = false;
}

inline void warp_barrier(int warp) {
    State& s = state();
    Fiber* f = s.current;
    const unsigned g = s.warp_gen[warp];
    const int lanes = std::min<int>(32, (int)s.fibers.size() - warp * 32);
    if (lanes != 32) fail("warp shuffle in a partial warp (block size not a multiple of 32)");
    ++s.events;
    if (++s.warp_arrived[warp] == lanes) {
        s.warp_arrived[warp] = 0;
        ++s.warp_gen[warp];
        return;
    }
    f->waiting = true;
    f->wait_kind = 2;
    while (s.warp_gen[warp] == g) yield_to_scheduler();
    f->waiting = false;
}

inline uint32_t shfl_xor_bits(uint32_t v, int mask) {
    State& s = state();
    const int lin = s.current->linear, warp = lin / 32, lane = lin % 32;
    s.slots[lin] = v;
    warp_barrier(warp);
    const uint32_t r = s.slots[warp * 32 + (lane ^ mask)];
    warp_barrier(warp);
    return r;
}

// Runs fn over the grid. `dynamic_smem` bytes are what `extern __shared__` arrays get.
template <typename F>
void launch(dim3 grid, dim3 block, size_t dynamic_smem, F&& body) {
    State& s = state();
    const int n = (int)(block.x * block.y * block.z);
    if (n < 1 || n > 1024) fail("block size out of range");
    s.block_dim = block;
    s.grid_dim = grid;
    s.fibers.assign(n, Fiber{});
    if ((int)s.stacks.size() < n) s.stacks.resize(n);
    for (auto& st : s.stacks) st.resize(256 * 1024);
    s.warp_arrived.assign((n + 31) / 32, 0);
    s.warp_gen.assign((n + 31) / 32, 0);
    s.slots.assign(n, 0);
    s.dynamic_smem.assign(dynamic_smem + 16, 0x7f);
    static F* body_ptr;
    body_ptr = &body;
    for (unsigned bz = 0; bz < grid.z; ++bz)
        for (unsigned by = 0; by < grid.y; ++by)
            for (unsigned bx = 0; bx < grid.x; ++bx) {
                s.block_idx = {bx, by, bz};
                s.arrived = 0;
                for (int i = 0; i < n; ++i) {
                    Fiber& f = s.fibers[i];
                    f = Fiber{};
                    f.linear = i;
                    f.tid = {(unsigned)(i % block.x), (unsigned)((i / block.x) % block.y),
                             (unsigned)(i / (block.x * block.y))};
                    getcontext(&f.ctx);
                    f.ctx.uc_stack.ss_sp = s.stacks[i].data();
                    f.ctx.uc_stack.ss_size = s.stacks[i].size();
                    f.ctx.uc_link = &s.scheduler;
                    makecontext(&f.ctx, (void (*)())+[] {
                        (*body_ptr)();
                        state().current->done = true;
                        ++state().events;
                    }, 0);
                }
                int live = n;
                while (live > 0) {
                    const unsigned long long events_before = s.events;
                    live = 0;
                    for (int i = 0; i < n; ++i) {
                        Fiber& f = s.fibers[i];
                        if (f.done) continue;
                        s.current = &f;
                        swapcontext(&s.scheduler, &f.ctx);
                        s.current = nullptr;
                        if (!f.done) ++live;
                    }
                    if (live > 0 && s.events == events_before) {
                        int done = 0, at_block = 0;
                        for (auto& f : s.fibers) { done += f.done; at_block += f.waiting && f.wait_kind == 1; }
                        std::fprintf(stderr,
                                     "emulator: deadlock in block %u,%u,%u: %d threads returned, %d wait at "
                                     "__syncthreads, %d elsewhere\n",
                                     bx, by, bz, done, at_block, n - done - at_block);
                        std::exit(3);
                    }
                }
            }
}

inline void* dynamic_smem() { return state().dynamic_smem.data(); }

}  // namespace emu

#define threadIdx (emu::state().current->tid)
#define blockIdx (emu::state().block_idx)
#define blockDim (emu::state().block_dim)
#define gridDim (emu::state().grid_dim)

inline void __syncthreads() { emu::block_barrier(); }

inline float __shfl_xor_sync(unsigned mask, float v, int m) {
    if (mask != 0xffffffffu) emu::fail("partial shuffle mask");
    return __uint_as_float(emu::shfl_xor_bits(__float_as_uint(v), m));
}
