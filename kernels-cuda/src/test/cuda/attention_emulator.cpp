// CPU emulation of kernels-cuda/src/main/cuda/attention.cu: runs the real kernel source, compiled as
// plain C++, on a warp-synchronous SIMT emulator, and checks the results against a float64 reference.
// A check that needs no GPU: the fragment layouts of mma.m16n8k16 and ldmatrix (as the PTX ISA defines
// them), the index math, the masks, the pipelining of cp.async and every barrier are exercised.
//
// How it emulates:
//   - every CUDA thread of a block is a coroutine (ucontext); a thread runs until it reaches a barrier
//     or a warp collective, so __syncthreads, __syncwarp, shuffles, ldmatrix and mma meet all the lanes
//     they need, and a divergent or missing barrier shows up as a deadlock;
//   - cp.async copies land when the issuing thread waits for their group (the latest a GPU may), and
//     any access to a destination still in flight is an error;
//   - shared memory has a shadow that records, per byte, the last writer and readers with the barrier
//     epoch (and the warp's __syncwarp epoch) of the access: an unordered read-after-write,
//     write-after-read or write-after-write between two threads is reported as a race, as is a read of
//     a byte nothing wrote;
//   - global accesses are checked against the buffers the test registered (no stray or misaligned
//     access); outputs are poisoned with NaN and must be fully written.
//
// Build and run (no GPU needed):
//   g++ -std=c++17 -O2 -o /tmp/attention_emulator kernels-cuda/src/test/cuda/attention_emulator.cpp
//   /tmp/attention_emulator [seed [quick]]
// With -DK4J_ATTN_HOPPER_SHAPES it runs the shapes the sm_90 cubin uses (and its alternative shapes) instead
// of the generic ones. "quick" runs one case of each kind (AttentionKernelEmulationTest does). Exit status 0
// when every case passes. `attention_emulator --replay <file>` runs one launch that AttentionCuda.java queued
// on a fake driver (AttentionCudaReplayTest; see replay() below).

#include <ucontext.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <functional>
#include <limits>
#include <random>
#include <string>
#include <vector>

// ---------------------------------------------------------------------------------------------------
// CUDA vocabulary as plain C++

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __launch_bounds__(...)

struct uint4 {
    uint32_t x, y, z, w;
};
struct float2 {
    float x, y;
};
struct float4 {
    float x, y, z, w;
};
struct Dim3 {
    unsigned x = 1, y = 1, z = 1;
};

namespace emu {

[[noreturn]] void fail(const std::string& what) {
    std::fflush(stdout);
    std::fprintf(stderr, "EMULATION ERROR: %s\n", what.c_str());
    std::_Exit(2);  // from inside a coroutine: no unwinding, no static destructors
}

struct Copy {
    uint8_t* dst;
    uint8_t data[16];
};

struct Thread {
    ucontext_t ctx;
    std::vector<char> stack;
    int tid = 0, warp = 0, lane = 0;
    Dim3 idx;
    bool done = false;
    bool blocked = false;
    uint64_t collectives = 0;
    std::vector<Copy> open;
    std::deque<std::vector<Copy>> groups;
};

enum Op { OP_NONE, OP_SYNCWARP, OP_SHFL, OP_LDSM, OP_LDSM_T, OP_MMA_F16, OP_MMA_BF16 };

struct Slot {
    float f;
    int m;
    uint16_t row[8];  // ldmatrix: the 8 elements of the row this lane addresses
    uint32_t a[4];
    uint32_t b[2];
};

struct Warp {
    int arrived[2] = {0, 0};
    int op[2] = {OP_NONE, OP_NONE};
    Slot slot[2][32];
    uint32_t wepoch = 0;
};

// Per byte of shared memory: who wrote and read it last, in which epochs.
struct Shadow {
    int w_tid = -1;
    uint32_t w_epoch = 0, w_wepoch = 0;
    int r_tid = -1;   // -1 none, -2 several
    int r_warp = -1;  // -2 several warps
    uint32_t r_epoch = 0, r_wepoch = 0;
    uint16_t inflight = 0;
};

struct Block {
    Dim3 bidx;
    std::vector<uint8_t> smem;
    std::vector<Shadow> shadow;
    std::vector<Thread> threads;
    std::vector<Warp> warps;
    int bar_arrived = 0;
    uint32_t epoch = 1;
};

struct Buffer {
    const uint8_t* base;
    size_t size;
};

Block* B = nullptr;
Thread* cur = nullptr;
ucontext_t sched_ctx;
Dim3 grid_dim, block_dim;
std::function<void()> kernel_body;
std::vector<Buffer> buffers;
uint64_t switches = 0;

void yield() {
    ++switches;
    swapcontext(&cur->ctx, &sched_ctx);
}

void check_global(const void* p, size_t n) {
    auto a = reinterpret_cast<const uint8_t*>(p);
    if (reinterpret_cast<uintptr_t>(p) % n != 0) fail("misaligned global access of " + std::to_string(n) + " bytes");
    for (const Buffer& b : buffers) {
        if (a >= b.base && a + n <= b.base + b.size) return;
    }
    fail("global access outside every buffer");
}

size_t smem_offset(const void* p, size_t n) {
    auto a = reinterpret_cast<const uint8_t*>(p);
    if (a < B->smem.data() || a + n > B->smem.data() + B->smem.size()) fail("shared access outside the dynamic smem");
    if (reinterpret_cast<uintptr_t>(p) % n != 0 && n <= 16) fail("misaligned shared access");
    return static_cast<size_t>(a - B->smem.data());
}

bool ordered(int tid, uint32_t epoch, uint32_t wepoch, int warp_of_prev) {
    if (tid == cur->tid) return true;
    if (epoch < B->epoch) return true;
    return warp_of_prev == cur->warp && wepoch < B->warps[cur->warp].wepoch;
}

void note_read(size_t off, size_t n) {
    const uint32_t we = B->warps[cur->warp].wepoch;
    for (size_t i = off; i < off + n; ++i) {
        Shadow& s = B->shadow[i];
        if (s.inflight) fail("read of shared memory a cp.async has not delivered yet (offset " + std::to_string(i) + ")");
        if (s.w_tid == -1) fail("read of shared memory nothing wrote (offset " + std::to_string(i) + ")");
        if (!ordered(s.w_tid, s.w_epoch, s.w_wepoch, s.w_tid / 32)) {
            fail("race: thread " + std::to_string(cur->tid) + " reads offset " + std::to_string(i) + " written by thread " +
                 std::to_string(s.w_tid) + " without a barrier between");
        }
        if (s.r_epoch == B->epoch && s.r_tid != -1 && s.r_tid != cur->tid) {
            s.r_tid = -2;
            if (s.r_warp != cur->warp) s.r_warp = -2;
            s.r_wepoch = std::max(s.r_wepoch, we);
        } else if (!(s.r_epoch == B->epoch && s.r_tid == cur->tid)) {
            s.r_tid = cur->tid;
            s.r_warp = cur->warp;
            s.r_epoch = B->epoch;
            s.r_wepoch = we;
        }
    }
}

void check_write(size_t off, size_t n, bool async_issue) {
    for (size_t i = off; i < off + n; ++i) {
        Shadow& s = B->shadow[i];
        if (s.inflight && !async_issue) fail("write to shared memory a cp.async has not delivered yet");
        if (s.inflight && async_issue) fail("two cp.async in flight to the same shared bytes");
        if (s.w_tid != -1 && !ordered(s.w_tid, s.w_epoch, s.w_wepoch, s.w_tid / 32)) {
            fail("race: thread " + std::to_string(cur->tid) + " overwrites offset " + std::to_string(i) +
                 " written by thread " + std::to_string(s.w_tid) + " without a barrier between");
        }
        if (s.r_epoch == B->epoch && s.r_tid != -1 && s.r_tid != cur->tid) {
            const bool same_warp_synced = s.r_warp == cur->warp && s.r_wepoch < B->warps[cur->warp].wepoch;
            if (!same_warp_synced) {
                fail("race: thread " + std::to_string(cur->tid) + " overwrites offset " + std::to_string(i) +
                     " that another thread read without a barrier between");
            }
        }
    }
}

void note_write(size_t off, size_t n) {
    const uint32_t we = B->warps[cur->warp].wepoch;
    for (size_t i = off; i < off + n; ++i) {
        Shadow& s = B->shadow[i];
        s.w_tid = cur->tid;
        s.w_epoch = B->epoch;
        s.w_wepoch = we;
    }
}

void smem_read(const void* p, size_t n) { note_read(smem_offset(p, n), n); }

void smem_write(const void* p, size_t n) {
    const size_t off = smem_offset(p, n);
    check_write(off, n, false);
    note_write(off, n);
}

// ----- barriers and collectives

void syncthreads() {
    if (++B->bar_arrived == static_cast<int>(B->threads.size())) {
        B->bar_arrived = 0;
        ++B->epoch;
        for (Warp& w : B->warps) ++w.wepoch;
        for (Thread& t : B->threads) t.blocked = false;
        return;
    }
    cur->blocked = true;
    yield();
}

// Deposits this lane's input, waits for the warp, and returns the slot array of this collective.
Slot* collective(int op, const Slot& in) {
    Warp& W = B->warps[cur->warp];
    const int p = static_cast<int>(cur->collectives & 1);
    ++cur->collectives;
    if (W.arrived[p] == 0) {
        W.op[p] = op;
    } else if (W.op[p] != op) {
        fail("lanes of warp " + std::to_string(cur->warp) + " meet in different warp collectives (divergence)");
    }
    W.slot[p][cur->lane] = in;
    if (++W.arrived[p] == 32) {
        W.arrived[p] = 0;
        if (op == OP_SYNCWARP) ++W.wepoch;
        for (int l = 0; l < 32; ++l) B->threads[cur->warp * 32 + l].blocked = false;
    } else {
        cur->blocked = true;
        yield();
    }
    return W.slot[p];
}

void syncwarp() { collective(OP_SYNCWARP, Slot{}); }

float shfl_xor(float v, int m) {
    Slot in{};
    in.f = v;
    in.m = m;
    Slot* s = collective(OP_SHFL, in);
    return s[cur->lane ^ m].f;
}

void ldsm(uint32_t (&r)[4], const void* p, bool trans) {
    Slot in{};
    smem_read(p, 16);
    std::memcpy(in.row, p, 16);
    Slot* s = collective(trans ? OP_LDSM_T : OP_LDSM, in);
    const int lane = cur->lane;
    for (int i = 0; i < 4; ++i) {
        uint16_t e0, e1;
        if (!trans) {
            // row lane/4 of matrix i, columns 2*(lane%4), +1
            e0 = s[i * 8 + lane / 4].row[2 * (lane % 4)];
            e1 = s[i * 8 + lane / 4].row[2 * (lane % 4) + 1];
        } else {
            // the transposed matrix: stored rows 2*(lane%4), +1, stored column lane/4
            e0 = s[i * 8 + 2 * (lane % 4)].row[lane / 4];
            e1 = s[i * 8 + 2 * (lane % 4) + 1].row[lane / 4];
        }
        r[i] = static_cast<uint32_t>(e0) | (static_cast<uint32_t>(e1) << 16);
    }
}

float half_to_float(uint16_t h) {
    const int sign = h >> 15, exp = (h >> 10) & 31, man = h & 1023;
    float v;
    if (exp == 0) {
        v = std::ldexp(static_cast<float>(man), -24);
    } else if (exp == 31) {
        v = man ? std::numeric_limits<float>::quiet_NaN() : std::numeric_limits<float>::infinity();
    } else {
        v = std::ldexp(static_cast<float>(man + 1024), exp - 25);
    }
    return sign ? -v : v;
}

uint16_t float_to_half(float f) {
    uint32_t x;
    std::memcpy(&x, &f, 4);
    const uint32_t sign = (x >> 16) & 0x8000u;
    const uint32_t ax = x & 0x7fffffffu;
    if (ax > 0x7f800000u) return static_cast<uint16_t>(sign | 0x7e00u);
    if (ax >= 0x477ff000u) return static_cast<uint16_t>(sign | 0x7c00u);  // rounds to >= 65520: inf
    if (ax < 0x38800000u) {                                               // subnormal half (or zero)
        const float a = std::fabs(f);
        const float q = std::nearbyint(a * 16777216.0f);  // units of 2^-24, ties to even
        return static_cast<uint16_t>(sign | static_cast<uint32_t>(q));
    }
    uint32_t e = (ax >> 23) - 112;
    uint32_t m = ax & 0x7fffffu;
    uint32_t h = (e << 10) | (m >> 13);
    const uint32_t rest = m & 0x1fffu;
    if (rest > 0x1000u || (rest == 0x1000u && (h & 1u))) ++h;
    return static_cast<uint16_t>(sign | h);
}

float bf16_to_float(uint16_t b) {
    const uint32_t x = static_cast<uint32_t>(b) << 16;
    float f;
    std::memcpy(&f, &x, 4);
    return f;
}

uint16_t float_to_bf16(float f) {
    uint32_t x;
    std::memcpy(&x, &f, 4);
    if ((x & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((x >> 16) | 0x40u);
    x += 0x7fffu + ((x >> 16) & 1u);
    return static_cast<uint16_t>(x >> 16);
}

float from16(int dt, uint16_t v) { return dt == 1 ? bf16_to_float(v) : half_to_float(v); }
uint16_t to16(int dt, float v) { return dt == 1 ? float_to_bf16(v) : float_to_half(v); }

float elem(uint32_t reg, int half, int dt) { return from16(dt, static_cast<uint16_t>(half ? reg >> 16 : reg & 0xffffu)); }

// D = A B + C for one m16n8k16 tile, with the fragment layouts of the PTX ISA.
void mma(int dt, float (&c)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
    Slot in{};
    for (int i = 0; i < 4; ++i) in.a[i] = a[i];
    in.b[0] = b0;
    in.b[1] = b1;
    Slot* s = collective(dt == 1 ? OP_MMA_BF16 : OP_MMA_F16, in);
    const int g = cur->lane >> 2, t = cur->lane & 3;
    auto A = [&](int row, int k) {  // reg = (row >= 8) + 2 * (k >= 8), lane = (row % 8) * 4 + (k % 8) / 2
        const int lane = (row % 8) * 4 + (k % 8) / 2;
        const int reg = (row >= 8 ? 1 : 0) + (k >= 8 ? 2 : 0);
        return elem(s[lane].a[reg], k % 2, dt);
    };
    auto Bm = [&](int k, int n) {  // reg = (k >= 8), lane = n * 4 + (k % 8) / 2
        const int lane = n * 4 + (k % 8) / 2;
        return elem(s[lane].b[k >= 8 ? 1 : 0], k % 2, dt);
    };
    for (int i = 0; i < 4; ++i) {
        const int row = g + (i >= 2 ? 8 : 0);
        const int col = 2 * t + (i & 1);
        double acc = 0;
        for (int k = 0; k < 16; ++k) acc += static_cast<double>(A(row, k)) * Bm(k, col);
        c[i] = static_cast<float>(static_cast<double>(c[i]) + acc);
    }
}

// ----- cp.async

void cp_async16(void* dst, const void* src, bool valid) {
    const size_t off = smem_offset(dst, 16);
    Copy cp{};
    cp.dst = static_cast<uint8_t*>(dst);
    if (valid) {
        check_global(src, 16);
        std::memcpy(cp.data, src, 16);
    }
    check_write(off, 16, true);
    for (size_t i = off; i < off + 16; ++i) ++B->shadow[i].inflight;
    cur->open.push_back(cp);
}

void cp_commit() {
    cur->groups.push_back(std::move(cur->open));
    cur->open.clear();
}

void cp_wait(int n) {
    while (static_cast<int>(cur->groups.size()) > n) {
        for (const Copy& cp : cur->groups.front()) {
            const size_t off = static_cast<size_t>(cp.dst - B->smem.data());
            for (size_t i = off; i < off + 16; ++i) --B->shadow[i].inflight;
            check_write(off, 16, false);
            std::memcpy(cp.dst, cp.data, 16);
            note_write(off, 16);
        }
        cur->groups.pop_front();
    }
}

// ----- launching

void thread_entry() {
    kernel_body();
    if (!cur->open.empty() || !cur->groups.empty()) fail("thread exits with cp.async copies it never waited for");
    cur->done = true;
}

void run_block(Dim3 bidx, size_t smem_bytes) {
    static Block block;
    B = &block;
    block.bidx = bidx;
    block.smem.assign(smem_bytes + 16, 0xff);  // NaN bit patterns: an unwritten byte read poisons results
    block.shadow.assign(smem_bytes + 16, Shadow{});
    block.smem.resize(smem_bytes);
    block.shadow.resize(smem_bytes);
    const int n = static_cast<int>(block_dim.x * block_dim.y * block_dim.z);
    if (n % 32 != 0) fail("block size must be a multiple of 32 here");
    block.threads.resize(n);
    block.warps.assign(n / 32, Warp{});
    block.bar_arrived = 0;
    block.epoch = 1;
    for (int i = 0; i < n; ++i) {
        Thread& t = block.threads[i];
        t.tid = i;
        t.warp = i / 32;
        t.lane = i % 32;
        t.idx.x = i % block_dim.x;
        t.idx.y = (i / block_dim.x) % block_dim.y;
        t.idx.z = i / (block_dim.x * block_dim.y);
        t.done = t.blocked = false;
        t.collectives = 0;
        t.open.clear();
        t.groups.clear();
        if (t.stack.empty()) t.stack.resize(256 * 1024);
        getcontext(&t.ctx);
        t.ctx.uc_stack.ss_sp = t.stack.data();
        t.ctx.uc_stack.ss_size = t.stack.size();
        t.ctx.uc_link = &sched_ctx;
        makecontext(&t.ctx, thread_entry, 0);
    }
    for (;;) {
        int alive = 0;
        bool progress = false;
        for (Thread& t : block.threads) {
            if (t.done) continue;
            ++alive;
            if (t.blocked) continue;
            cur = &t;
            swapcontext(&sched_ctx, &t.ctx);
            progress = true;
        }
        if (alive == 0) break;
        if (!progress) {
            int waiting = 0;
            for (Thread& t : block.threads) waiting += !t.done;
            fail("deadlock: " + std::to_string(waiting) + " threads wait at a barrier or collective that the others never reach");
        }
    }
    cur = nullptr;
}

void launch(Dim3 grid, Dim3 block, size_t smem, std::function<void()> body) {
    grid_dim = grid;
    block_dim = block;
    kernel_body = std::move(body);
    for (unsigned z = 0; z < grid.z; ++z) {
        for (unsigned y = 0; y < grid.y; ++y) {
            for (unsigned x = 0; x < grid.x; ++x) {
                Dim3 b;
                b.x = x;
                b.y = y;
                b.z = z;
                run_block(b, smem);
            }
        }
    }
}

}  // namespace emu

#define threadIdx (emu::cur->idx)
#define blockIdx (emu::B->bidx)
#define blockDim (emu::block_dim)
#define gridDim (emu::grid_dim)

inline void __syncthreads() { emu::syncthreads(); }
inline void __syncwarp() { emu::syncwarp(); }

namespace k4j_attn {
inline unsigned char* dyn_smem() { return emu::B->smem.data(); }
inline void cp_async16(void* dst, const void* src, bool valid) { emu::cp_async16(dst, src, valid); }
inline void cp_async_commit() { emu::cp_commit(); }
template <int N>
inline void cp_async_wait() {
    emu::cp_wait(N);
}
inline void ldsm_x4(uint32_t (&r)[4], const void* p) { emu::ldsm(r, p, false); }
inline void ldsm_x4_t(uint32_t (&r)[4], const void* p) { emu::ldsm(r, p, true); }
template <int DT>
inline void mma16816(float (&c)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
    emu::mma(DT, c, a, b0, b1);
}
inline float ex2(float x) { return std::exp2(x); }
inline float shfl_xor(float v, int m) { return emu::shfl_xor(v, m); }
template <int DT>
inline uint32_t pack2(float lo, float hi) {
    return static_cast<uint32_t>(emu::to16(DT, lo)) | (static_cast<uint32_t>(emu::to16(DT, hi)) << 16);
}
template <int DT>
inline float to_float(uint16_t bits) {
    return emu::from16(DT, bits);
}
template <typename T>
inline void sts(T* p, T v) {
    emu::smem_write(p, sizeof(T));
    std::memcpy(p, &v, sizeof(T));
}
template <typename T>
inline T lds(const T* p) {
    emu::smem_read(p, sizeof(T));
    T v;
    std::memcpy(&v, p, sizeof(T));
    return v;
}
template <typename T>
inline T ldg(const T* p) {
    emu::check_global(p, sizeof(T));
    T v;
    std::memcpy(&v, p, sizeof(T));
    return v;
}
template <typename T>
inline void stg(T* p, T v) {
    emu::check_global(p, sizeof(T));
    std::memcpy(p, &v, sizeof(T));
}
inline void red_add2(float* p, float a, float b) {
    emu::check_global(p, 8);
    p[0] += a;
    p[1] += b;
}
}  // namespace k4j_attn

#define K4J_EMULATION 1
#include "../../main/cuda/attention.cu"

// ---------------------------------------------------------------------------------------------------
// The test: random problems, a float64 reference, the launch logic AttentionCuda.java implements.

namespace {

struct Cfg {
    int threads, smem, rows, keys;
};
Cfg cfg_of(const int (&c)[4]) { return Cfg{c[0], c[1], c[2], c[3]}; }

enum Mask { NONE = 0, TOP_LEFT = 1, BOTTOM_RIGHT = 2 };
const char* mask_name(int m) { return m == NONE ? "none" : m == TOP_LEFT ? "top-left" : "bottom-right"; }

struct Problem {
    int b, hq, hkv, nq, nk, d, mask, dt;
    float scale;
};

// A guarded device-like buffer: registered with the emulator, canaries on both sides.
struct Buf {
    std::vector<uint8_t> mem;
    size_t bytes;
    static constexpr size_t GUARD = 256;
    explicit Buf(size_t n) : mem(n + 2 * GUARD + 16), bytes(n) {
        std::fill(mem.begin(), mem.end(), 0xA5);
        if (n > 0) emu::buffers.push_back({data(), n});
    }
    uint8_t* data() {
        auto p = reinterpret_cast<uintptr_t>(mem.data() + GUARD);
        return reinterpret_cast<uint8_t*>((p + 15) & ~uintptr_t(15));
    }
    bool guards_intact() {
        const uint8_t* d = data();
        for (const uint8_t* p = mem.data(); p < d; ++p) {
            if (*p != 0xA5) return false;
        }
        for (const uint8_t* p = d + bytes; p < mem.data() + mem.size(); ++p) {
            if (*p != 0xA5) return false;
        }
        return true;
    }
    template <typename T>
    T* as() {
        return reinterpret_cast<T*>(data());
    }
};

using Tensor = std::vector<double>;

struct Reference {
    Tensor o, lse, dq, dk, dv;
};

int visible(const Problem& p, int i) {
    if (p.mask == NONE) return p.nk;
    long lim = p.mask == TOP_LEFT ? i + 1L : i + 1L + p.nk - p.nq;
    return static_cast<int>(std::max(0L, std::min<long>(p.nk, lim)));
}

Reference reference(const Problem& p, const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& dout) {
    Reference r;
    const int d = p.d, grp = p.hq / p.hkv;
    r.o.assign(static_cast<size_t>(p.b) * p.hq * p.nq * d, 0);
    r.lse.assign(static_cast<size_t>(p.b) * p.hq * p.nq, 0);
    r.dq.assign(r.o.size(), 0);
    r.dk.assign(static_cast<size_t>(p.b) * p.hkv * p.nk * d, 0);
    r.dv.assign(r.dk.size(), 0);
    std::vector<double> s(p.nk), pr(p.nk), dp(p.nk);
    for (int b = 0; b < p.b; ++b) {
        for (int h = 0; h < p.hq; ++h) {
            const int hk = h / grp;
            const size_t qb = (static_cast<size_t>(b) * p.hq + h) * p.nq * d;
            const size_t kb = (static_cast<size_t>(b) * p.hkv + hk) * p.nk * d;
            for (int i = 0; i < p.nq; ++i) {
                const int lim = visible(p, i);
                const size_t row = (static_cast<size_t>(b) * p.hq + h) * p.nq + i;
                if (lim == 0) {
                    r.lse[row] = -INFINITY;
                    continue;
                }
                double mx = -INFINITY;
                for (int j = 0; j < lim; ++j) {
                    double acc = 0;
                    for (int c = 0; c < d; ++c) acc += q[qb + i * d + c] * k[kb + j * d + c];
                    s[j] = acc * p.scale;
                    mx = std::max(mx, s[j]);
                }
                double sum = 0;
                for (int j = 0; j < lim; ++j) sum += std::exp(s[j] - mx);
                r.lse[row] = mx + std::log(sum);
                for (int j = 0; j < lim; ++j) pr[j] = std::exp(s[j] - r.lse[row]);
                for (int c = 0; c < d; ++c) {
                    double acc = 0;
                    for (int j = 0; j < lim; ++j) acc += pr[j] * v[kb + j * d + c];
                    r.o[qb + i * d + c] = acc;
                }
                double dsum = 0;
                for (int c = 0; c < d; ++c) dsum += dout[qb + i * d + c] * r.o[qb + i * d + c];
                for (int j = 0; j < lim; ++j) {
                    double acc = 0;
                    for (int c = 0; c < d; ++c) acc += dout[qb + i * d + c] * v[kb + j * d + c];
                    const double ds = pr[j] * (acc - dsum);
                    for (int c = 0; c < d; ++c) {
                        r.dq[qb + i * d + c] += p.scale * ds * k[kb + j * d + c];
                        r.dk[kb + j * d + c] += p.scale * ds * q[qb + i * d + c];
                        r.dv[kb + j * d + c] += pr[j] * dout[qb + i * d + c];
                    }
                }
            }
        }
    }
    return r;
}

struct Result {
    double err = 0;
    long unwritten = 0;
};

Result compare_lse(const float* x, const Tensor& ref) {
    Result res;
    double worst = 0;
    for (size_t i = 0; i < ref.size(); ++i) {
        if (std::isnan(x[i])) {
            ++res.unwritten;
            continue;
        }
        if (std::isinf(ref[i]) || std::isinf(x[i])) {
            if (x[i] != ref[i]) worst = INFINITY;
            continue;
        }
        worst = std::max(worst, std::fabs(x[i] - ref[i]));
    }
    res.err = worst;
    return res;
}

int padded_dim(int d) { return (d + 31) / 32 * 32; }

using FwdFn = void (*)(const uint16_t*, const uint16_t*, const uint16_t*, uint16_t*, float*, int, int, int, int, int,
                       float, int, int);
using BwdFn = void (*)(const uint16_t*, const uint16_t*, const uint16_t*, const uint16_t*, const float*, const float*,
                       float*, uint16_t*, uint16_t*, int, int, int, int, int, float, int, int, int);
using DqFn = void (*)(const uint16_t*, const uint16_t*, const uint16_t*, const uint16_t*, const float*, const float*,
                      uint16_t*, int, int, int, int, int, float, int, int);

struct Kernels {
    FwdFn fwd;
    Cfg fwd_cfg;
    BwdFn bwd;
    Cfg bwd_cfg;
    DqFn dq;
    Cfg dq_cfg;
};

#define K4J_KERNELS(dt, KD)                                                                                      \
    Kernels{k4j_attn_fwd_##dt##_d##KD, cfg_of(k4j_attn_fwd_##dt##_d##KD##_cfg), k4j_attn_bwd_##dt##_d##KD,       \
            cfg_of(k4j_attn_bwd_##dt##_d##KD##_cfg), k4j_attn_bwd_dq_##dt##_d##KD,                               \
            cfg_of(k4j_attn_bwd_dq_##dt##_d##KD##_cfg)}

Kernels kernels_for(int dt, int kd) {
    if (dt == 1) {
        switch (kd) {
            case 32: return K4J_KERNELS(bf16, 32);
            case 64: return K4J_KERNELS(bf16, 64);
            case 96: return K4J_KERNELS(bf16, 96);
            case 128: return K4J_KERNELS(bf16, 128);
            case 160: return K4J_KERNELS(bf16, 160);
            case 192: return K4J_KERNELS(bf16, 192);
            case 224: return K4J_KERNELS(bf16, 224);
            default: return K4J_KERNELS(bf16, 256);
        }
    }
    switch (kd) {
        case 32: return K4J_KERNELS(f16, 32);
        case 64: return K4J_KERNELS(f16, 64);
        case 96: return K4J_KERNELS(f16, 96);
        case 128: return K4J_KERNELS(f16, 128);
        case 160: return K4J_KERNELS(f16, 160);
        case 192: return K4J_KERNELS(f16, 192);
        case 224: return K4J_KERNELS(f16, 224);
        default: return K4J_KERNELS(f16, 256);
    }
}

Dim3 dim3(unsigned x, unsigned y = 1, unsigned z = 1) {
    Dim3 r;
    r.x = x;
    r.y = y;
    r.z = z;
    return r;
}

unsigned ceil_div(long a, long b) { return static_cast<unsigned>((a + b - 1) / b); }

float load_elem(Buf& b, size_t i, int dt) {
    return dt == 2 ? b.as<float>()[i] : emu::from16(dt, b.as<uint16_t>()[i]);
}

// rows x src_cols -> rows x dst_cols through k4j_attn_copy_rows (the launcher's padding of 16-bit rows)
void copy_rows(Buf& src, int src_cols, Buf& dst, int dst_cols, long rows) {
    if (rows * dst_cols == 0) return;
    emu::launch(dim3(std::min(ceil_div(rows * dst_cols, 256), 8u)), dim3(256), 0, [&] {
        k4j_attn_copy_rows(src.as<uint16_t>(), src_cols, dst.as<uint16_t>(), dst_cols, rows);
    });
}

// The launch sequence AttentionCuda.java implements, on emulated buffers. dt: 0 fp16, 1 bf16, 2 fp32.
bool run_case(const Problem& p, std::mt19937_64& rng, bool deterministic, const Kernels* chosen = nullptr,
              const char* label = "") {
    emu::buffers.clear();
    const int dt = p.dt, d = p.d;
    const size_t es = dt == 2 ? 4 : 2;
    const long qrows = static_cast<long>(p.b) * p.hq * p.nq;
    const long krows = static_cast<long>(p.b) * p.hkv * p.nk;
    const size_t nqe = static_cast<size_t>(qrows) * d;
    const size_t nke = static_cast<size_t>(krows) * d;
    std::normal_distribution<float> nd(0.f, 1.f);
    auto fill = [&](Buf& buf, size_t n, Tensor& rounded) {
        rounded.resize(n);
        for (size_t i = 0; i < n; ++i) {
            const float x = nd(rng);
            if (dt == 2) {
                buf.as<float>()[i] = x;
                rounded[i] = x;
            } else {
                const uint16_t hb = emu::to16(dt, x);
                buf.as<uint16_t>()[i] = hb;
                rounded[i] = emu::from16(dt, hb);
            }
        }
    };
    auto poison = [&](Buf& buf, size_t n) {
        if (dt == 2) {
            std::fill(buf.as<float>(), buf.as<float>() + n, std::numeric_limits<float>::quiet_NaN());
        } else {
            std::fill(buf.as<uint16_t>(), buf.as<uint16_t>() + n, uint16_t(0x7fff));
        }
    };
    auto poison32 = [&](Buf& buf, size_t n) {
        std::fill(buf.as<float>(), buf.as<float>() + n, std::numeric_limits<float>::quiet_NaN());
    };

    Buf q(nqe * es), k(nke * es), v(nke * es), o(nqe * es), lse(qrows * 4), dout(nqe * es), dq(nqe * es),
        dk(nke * es), dv(nke * es);
    Tensor rq, rk, rv, rdo;
    fill(q, nqe, rq);
    fill(k, nke, rk);
    fill(v, nke, rv);
    fill(dout, nqe, rdo);
    for (Buf* bf : {&o, &dout, &dq, &dk, &dv}) {
        if (bf != &dout) poison(*bf, bf == &o || bf == &dq ? nqe : nke);
    }
    poison32(lse, qrows);

    const int causal = p.mask != NONE;
    const int offset = p.mask == BOTTOM_RIGHT ? p.nk - p.nq : 0;
    // 16-bit rows are padded to a multiple of 8 columns (16-byte rows for the tiles); fp32 loads any d.
    const int dp = dt == 2 ? d : (d + 7) / 8 * 8;
    const bool padded = dp != d;
    const size_t nqp = static_cast<size_t>(qrows) * dp, nkp = static_cast<size_t>(krows) * dp;
    Buf qp(padded ? nqp * 2 : 0), kp(padded ? nkp * 2 : 0), vp(padded ? nkp * 2 : 0), op(padded ? nqp * 2 : 0),
        dop(padded ? nqp * 2 : 0), dqp(padded ? nqp * 2 : 0), dkp(padded ? nkp * 2 : 0), dvp(padded ? nkp * 2 : 0);
    Buf delta(qrows * 4), dqacc(nqp * 4);
    poison32(delta, qrows);
    poison32(dqacc, nqp);
    Buf& Q = padded ? qp : q;
    Buf& K = padded ? kp : k;
    Buf& V = padded ? vp : v;
    Buf& O = padded ? op : o;
    Buf& DO = padded ? dop : dout;
    Buf& DQ = padded ? dqp : dq;
    Buf& DK = padded ? dkp : dk;
    Buf& DV = padded ? dvp : dv;
    if (padded) {
        copy_rows(q, d, qp, dp, qrows);
        copy_rows(k, d, kp, dp, krows);
        copy_rows(v, d, vp, dp, krows);
        copy_rows(dout, d, dop, dp, qrows);
    }
    const int kd = padded_dim(dp);

    if (dt == 2) {
        Cfg fc, bc, qc;
        decltype(&k4j_attn_fwd_f32_d32) ffn;
        decltype(&k4j_attn_bwd_f32_d32) bfn;
        decltype(&k4j_attn_bwd_dq_f32_d32) qfn;
#define K4J_F32_PICK(KD)                                         \
    ffn = k4j_attn_fwd_f32_d##KD;                                \
    fc = cfg_of(k4j_attn_fwd_f32_d##KD##_cfg);                   \
    bfn = k4j_attn_bwd_f32_d##KD;                                \
    bc = cfg_of(k4j_attn_bwd_f32_d##KD##_cfg);                   \
    qfn = k4j_attn_bwd_dq_f32_d##KD;                             \
    qc = cfg_of(k4j_attn_bwd_dq_f32_d##KD##_cfg);
        if (kd <= 32) {
            K4J_F32_PICK(32)
        } else if (kd <= 64) {
            K4J_F32_PICK(64)
        } else if (kd <= 128) {
            K4J_F32_PICK(128)
        } else {
            K4J_F32_PICK(256)
        }
        if (qrows > 0) {
            emu::launch(dim3(ceil_div(p.nq, fc.rows), p.hq, p.b), dim3(fc.threads), fc.smem, [&] {
                ffn(q.as<float>(), k.as<float>(), v.as<float>(), o.as<float>(), lse.as<float>(), p.nq, p.nk, p.hq,
                    p.hkv, d, p.scale, causal, offset);
            });
            emu::launch(dim3(ceil_div(qrows, 8)), dim3(256), 0,
                        [&] { k4j_attn_bwd_prep_f32(o.as<float>(), dout.as<float>(), delta.as<float>(), qrows, d); });
        }
        if (krows > 0) {
            emu::launch(dim3(ceil_div(p.nk, bc.keys), p.hkv, p.b), dim3(bc.threads), bc.smem, [&] {
                bfn(q.as<float>(), k.as<float>(), v.as<float>(), dout.as<float>(), lse.as<float>(), delta.as<float>(),
                    dk.as<float>(), dv.as<float>(), p.nq, p.nk, p.hq, p.hkv, d, p.scale, causal, offset);
            });
        }
        if (qrows > 0) {
            emu::launch(dim3(ceil_div(p.nq, qc.rows), p.hq, p.b), dim3(qc.threads), qc.smem, [&] {
                qfn(q.as<float>(), k.as<float>(), v.as<float>(), dout.as<float>(), lse.as<float>(), delta.as<float>(),
                    dq.as<float>(), p.nq, p.nk, p.hq, p.hkv, d, p.scale, causal, offset);
            });
        }
    } else {
        const Kernels kn = chosen != nullptr ? *chosen : kernels_for(dt, kd);
        if (qrows > 0) {
            const Cfg c = kn.fwd_cfg;
            emu::launch(dim3(ceil_div(p.nq, c.rows), p.hq, p.b), dim3(c.threads), c.smem, [&] {
                kn.fwd(Q.as<uint16_t>(), K.as<uint16_t>(), V.as<uint16_t>(), O.as<uint16_t>(), lse.as<float>(), p.nq,
                       p.nk, p.hq, p.hkv, dp, p.scale, causal, offset);
            });
            if (padded) copy_rows(op, dp, o, d, qrows);
            auto prep = dt == 1 ? k4j_attn_bwd_prep_bf16 : k4j_attn_bwd_prep_f16;
            emu::launch(dim3(ceil_div(qrows, 8)), dim3(256), 0, [&] {
                prep(O.as<uint16_t>(), DO.as<uint16_t>(), delta.as<float>(), deterministic ? nullptr : dqacc.as<float>(),
                     qrows, dp);
            });
        }
        if (krows > 0) {
            const Cfg c = kn.bwd_cfg;
            emu::launch(dim3(ceil_div(p.nk, c.keys), p.hkv, p.b), dim3(c.threads), c.smem, [&] {
                kn.bwd(Q.as<uint16_t>(), K.as<uint16_t>(), V.as<uint16_t>(), DO.as<uint16_t>(), lse.as<float>(),
                       delta.as<float>(), dqacc.as<float>(), DK.as<uint16_t>(), DV.as<uint16_t>(), p.nq, p.nk, p.hq,
                       p.hkv, dp, p.scale, causal, offset, deterministic ? 0 : 1);
            });
        }
        if (qrows > 0) {
            if (deterministic) {
                const Cfg c = kn.dq_cfg;
                emu::launch(dim3(ceil_div(p.nq, c.rows), p.hq, p.b), dim3(c.threads), c.smem, [&] {
                    kn.dq(Q.as<uint16_t>(), K.as<uint16_t>(), V.as<uint16_t>(), DO.as<uint16_t>(), lse.as<float>(),
                          delta.as<float>(), DQ.as<uint16_t>(), p.nq, p.nk, p.hq, p.hkv, dp, p.scale, causal, offset);
                });
            } else {
                auto conv = dt == 1 ? k4j_attn_dq_convert_bf16 : k4j_attn_dq_convert_f16;
                emu::launch(dim3(std::min(ceil_div(static_cast<long>(nqp), 256 * 8), 4u)), dim3(256), 0, [&] {
                    conv(dqacc.as<float>(), DQ.as<uint16_t>(), static_cast<long long>(nqp), p.scale);
                });
            }
        }
        if (padded) {
            copy_rows(dqp, dp, dq, d, qrows);
            copy_rows(dkp, dp, dk, d, krows);
            copy_rows(dvp, dp, dv, d, krows);
        }
    }

    const Reference ref = reference(p, rq, rk, rv, rdo);
    // Tolerances: a few units of the storage type's rounding (P and dS are rounded to it before the products
    // that use them); an indexing or layout mistake gives errors of order 1. fp32: DESIGN.md's 1e-5.
    const double tol = dt == 2 ? 1e-5 : dt == 1 ? 2.5e-2 : 4e-3;
    const double gtol = dt == 2 ? 1e-5 : 2 * tol;
    auto compare = [&](Buf& x, const Tensor& r) {
        Result res;
        double num = 0, den = 0;
        for (size_t i = 0; i < r.size(); ++i) {
            const double val = load_elem(x, i, dt);
            if (std::isnan(val)) {
                ++res.unwritten;
                continue;
            }
            num += (val - r[i]) * (val - r[i]);
            den += r[i] * r[i];
        }
        res.err = den > 0 ? std::sqrt(num / den) : std::sqrt(num);
        return res;
    };
    const Result ro = compare(o, ref.o);
    const Result rl = compare_lse(lse.as<float>(), ref.lse);
    const Result rq2 = compare(dq, ref.dq);
    const Result rk2 = compare(dk, ref.dk);
    const Result rv2 = compare(dv, ref.dv);
    bool guards = true;
    for (Buf* bf : {&o, &lse, &delta, &dqacc, &dq, &dk, &dv, &qp, &kp, &vp, &op, &dop, &dqp, &dkp, &dvp}) {
        guards = guards && bf->guards_intact();
    }
    long bad_empty = 0;  // rows that see no key must give exactly O = 0
    for (int bb = 0; bb < p.b; ++bb) {
        for (int h = 0; h < p.hq; ++h) {
            for (int i = 0; i < p.nq; ++i) {
                if (visible(p, i) != 0) continue;
                const size_t at = ((static_cast<size_t>(bb) * p.hq + h) * p.nq + i) * d;
                for (int c = 0; c < d; ++c) bad_empty += load_elem(o, at + c, dt) != 0;
            }
        }
    }
    const long unwritten = ro.unwritten + rl.unwritten + rq2.unwritten + rk2.unwritten + rv2.unwritten;
    const bool ok = unwritten == 0 && ro.err <= tol && rl.err <= 2e-2 && rq2.err <= gtol && rk2.err <= gtol &&
                    rv2.err <= gtol && guards && bad_empty == 0;
    static const char* names[] = {"fp16", "bf16", "fp32"};
    std::printf("%-4s %-5s B=%d Hq=%d Hkv=%d Nq=%d Nk=%d d=%d %-12s scale=%.3f | O %.2e lse %.2e dQ %.2e dK %.2e dV %.2e%s%s%s%s\n",
                ok ? "ok" : "FAIL", names[dt], p.b, p.hq, p.hkv, p.nq, p.nk, p.d, mask_name(p.mask), p.scale, ro.err,
                rl.err, rq2.err, rk2.err, rv2.err, deterministic && dt != 2 ? " (deterministic dQ)" : "", label,
                guards ? "" : " GUARDS OVERWRITTEN", unwritten ? " UNWRITTEN/NaN" : "");
    std::fflush(stdout);
    return ok;
}

// ---------------------------------------------------------------------------------------------------
// Replay of one launch that the Java side queued (AttentionCudaReplayTest): the file holds every device
// allocation {address, size, bytes}, the kernel's name, grid, block, dynamic shared memory and arguments
// ('L' 64-bit, 'I' 32-bit, 'F' a float's bits; pointers as device addresses). Each allocation becomes a
// registered host buffer (aligned as its device address, so alignment checks mean the same), pointer
// arguments are translated into them (an address outside every allocation is an error), the block and
// shared memory are checked against the kernel's own _cfg record (the Java side read them from a cubin
// built from this source), the launch runs, and the allocations are written back over the file's bytes.

struct Region {
    uint64_t address, size;
    long file_offset;
    std::vector<uint8_t> mem;
    uint8_t* host;
};

struct ReplayArgs {
    std::vector<char> types;
    std::vector<uint64_t> values;
    std::vector<Region>* regions;

    void expect(int i, char t) const {
        if (i >= static_cast<int>(types.size()) || types[i] != t) {
            emu::fail("replay: argument " + std::to_string(i) + " is not of type " + std::string(1, t));
        }
    }
    template <typename T = void>
    T* ptr(int i) const {
        expect(i, 'L');
        const uint64_t v = values[i];
        if (v == 0) return nullptr;
        for (Region& r : *regions) {
            if (v >= r.address && v < r.address + r.size) return reinterpret_cast<T*>(r.host + (v - r.address));
        }
        emu::fail("replay: pointer argument " + std::to_string(i) + " is in no allocation");
    }
    int i32(int i) const {
        expect(i, 'I');
        return static_cast<int>(static_cast<uint32_t>(values[i]));
    }
    long long i64(int i) const {
        expect(i, 'L');
        return static_cast<long long>(values[i]);
    }
    float f32(int i) const {
        expect(i, 'F');
        const uint32_t bits = static_cast<uint32_t>(values[i]);
        float f;
        std::memcpy(&f, &bits, 4);
        return f;
    }
};

struct ReplayEntry {
    const char* name;
    const int* cfg;
    int nargs;
    std::function<void(const ReplayArgs&)> run;
};

#define K4J_REPLAY_FWD(name, T)                                                                                \
    ReplayEntry{#name, name##_cfg, 13, [](const ReplayArgs& a) {                                               \
                    name(a.ptr<const T>(0), a.ptr<const T>(1), a.ptr<const T>(2), a.ptr<T>(3), a.ptr<float>(4), \
                         a.i32(5), a.i32(6), a.i32(7), a.i32(8), a.i32(9), a.f32(10), a.i32(11), a.i32(12));   \
                }}
#define K4J_REPLAY_BWD(name)                                                                                    \
    ReplayEntry{#name, name##_cfg, 18, [](const ReplayArgs& a) {                                                \
                    name(a.ptr<const uint16_t>(0), a.ptr<const uint16_t>(1), a.ptr<const uint16_t>(2),          \
                         a.ptr<const uint16_t>(3), a.ptr<const float>(4), a.ptr<const float>(5), a.ptr<float>(6), \
                         a.ptr<uint16_t>(7), a.ptr<uint16_t>(8), a.i32(9), a.i32(10), a.i32(11), a.i32(12),     \
                         a.i32(13), a.f32(14), a.i32(15), a.i32(16), a.i32(17));                                \
                }}
#define K4J_REPLAY_DQ(name, T)                                                                                  \
    ReplayEntry{#name, name##_cfg, 15, [](const ReplayArgs& a) {                                                \
                    name(a.ptr<const T>(0), a.ptr<const T>(1), a.ptr<const T>(2), a.ptr<const T>(3),            \
                         a.ptr<const float>(4), a.ptr<const float>(5), a.ptr<T>(6), a.i32(7), a.i32(8),         \
                         a.i32(9), a.i32(10), a.i32(11), a.f32(12), a.i32(13), a.i32(14));                      \
                }}
#define K4J_REPLAY_BWD_F32(name)                                                                                \
    ReplayEntry{#name, name##_cfg, 16, [](const ReplayArgs& a) {                                                \
                    name(a.ptr<const float>(0), a.ptr<const float>(1), a.ptr<const float>(2),                 \
                         a.ptr<const float>(3), a.ptr<const float>(4), a.ptr<const float>(5), a.ptr<float>(6),  \
                         a.ptr<float>(7), a.i32(8), a.i32(9), a.i32(10), a.i32(11), a.i32(12), a.f32(13),       \
                         a.i32(14), a.i32(15));                                                                 \
                }}
#define K4J_REPLAY_DIM(dt, KD)                                                      \
    K4J_REPLAY_FWD(k4j_attn_fwd_##dt##_d##KD, uint16_t),                            \
    K4J_REPLAY_BWD(k4j_attn_bwd_##dt##_d##KD),                                      \
    K4J_REPLAY_DQ(k4j_attn_bwd_dq_##dt##_d##KD, uint16_t)
#define K4J_REPLAY_DT(dt)                                                                                        \
    ReplayEntry{"k4j_attn_bwd_prep_" #dt, k4j_attn_bwd_prep_##dt##_cfg, 6,                                      \
                [](const ReplayArgs& a) {                                                                        \
                    k4j_attn_bwd_prep_##dt(a.ptr<const uint16_t>(0), a.ptr<const uint16_t>(1), a.ptr<float>(2),  \
                                           a.ptr<float>(3), a.i64(4), a.i32(5));                                 \
                }},                                                                                              \
        ReplayEntry{"k4j_attn_dq_convert_" #dt, k4j_attn_dq_convert_##dt##_cfg, 4,                               \
                    [](const ReplayArgs& a) {                                                                    \
                        k4j_attn_dq_convert_##dt(a.ptr<const float>(0), a.ptr<uint16_t>(1), a.i64(2), a.f32(3)); \
                    }},                                                                                          \
        K4J_REPLAY_DIM(dt, 32), K4J_REPLAY_DIM(dt, 64), K4J_REPLAY_DIM(dt, 96), K4J_REPLAY_DIM(dt, 128),         \
        K4J_REPLAY_DIM(dt, 160), K4J_REPLAY_DIM(dt, 192), K4J_REPLAY_DIM(dt, 224), K4J_REPLAY_DIM(dt, 256)
#define K4J_REPLAY_F32(KD)                                   \
    K4J_REPLAY_FWD(k4j_attn_fwd_f32_d##KD, float),           \
    K4J_REPLAY_BWD_F32(k4j_attn_bwd_f32_d##KD),              \
    K4J_REPLAY_DQ(k4j_attn_bwd_dq_f32_d##KD, float)

const std::vector<ReplayEntry>& replay_table() {
    static const std::vector<ReplayEntry> table = {
        ReplayEntry{"k4j_attn_copy_rows", k4j_attn_copy_rows_cfg, 5,
                    [](const ReplayArgs& a) {
                        k4j_attn_copy_rows(a.ptr<const uint16_t>(0), a.i32(1), a.ptr<uint16_t>(2), a.i32(3), a.i64(4));
                    }},
        ReplayEntry{"k4j_attn_bwd_prep_f32", k4j_attn_bwd_prep_f32_cfg, 5,
                    [](const ReplayArgs& a) {
                        k4j_attn_bwd_prep_f32(a.ptr<const float>(0), a.ptr<const float>(1), a.ptr<float>(2), a.i64(3),
                                              a.i32(4));
                    }},
        K4J_REPLAY_DT(f16),
        K4J_REPLAY_DT(bf16),
        K4J_REPLAY_F32(32),
        K4J_REPLAY_F32(64),
        K4J_REPLAY_F32(128),
        K4J_REPLAY_F32(256),
    };
    return table;
}

int replay(const char* path) {
    FILE* f = std::fopen(path, "r+b");
    if (!f) emu::fail("replay: cannot open the launch file");
    auto rd = [&](void* p, size_t n) {
        if (std::fread(p, 1, n, f) != n) emu::fail("replay: truncated launch file");
    };
    auto u32 = [&] {
        uint32_t v;
        rd(&v, 4);
        return v;
    };
    auto u64 = [&] {
        uint64_t v;
        rd(&v, 8);
        return v;
    };
    char magic[8];
    rd(magic, 8);
    if (std::memcmp(magic, "K4JATTN1", 8) != 0) emu::fail("replay: not an attention launch file");
    std::vector<Region> regions(u32());
    for (Region& r : regions) {
        r.address = u64();
        r.size = u64();
        r.file_offset = std::ftell(f);
        r.mem.assign(r.size + 512, 0);
        const uintptr_t base = reinterpret_cast<uintptr_t>(r.mem.data());
        r.host = reinterpret_cast<uint8_t*>((base + 255) / 256 * 256 + r.address % 256);
        rd(r.host, r.size);
        if (r.size > 0) emu::buffers.push_back({r.host, r.size});
    }
    std::string name(u32(), '\0');
    rd(&name[0], name.size());
    const unsigned gx = u32(), gy = u32(), gz = u32(), bx = u32(), by = u32(), bz = u32();
    const uint32_t smem = u32();
    ReplayArgs args;
    args.regions = &regions;
    const uint32_t nargs = u32();
    for (uint32_t i = 0; i < nargs; ++i) {
        char t;
        rd(&t, 1);
        args.types.push_back(t);
        args.values.push_back(u64());
    }
    const ReplayEntry* e = nullptr;
    for (const ReplayEntry& r : replay_table()) {
        if (name == r.name) e = &r;
    }
    if (e == nullptr) emu::fail("replay: no kernel " + name + " in the emulation");
    if (static_cast<int>(nargs) != e->nargs) {
        emu::fail("replay: " + name + " takes " + std::to_string(e->nargs) + " arguments, got " + std::to_string(nargs));
    }
    if (by != 1 || bz != 1 || static_cast<int>(bx) != e->cfg[0] || static_cast<int>(smem) != e->cfg[1]) {
        emu::fail("replay: " + name + " launched with block " + std::to_string(bx) + "x" + std::to_string(by) + "x" +
                  std::to_string(bz) + " and " + std::to_string(smem) + " bytes of shared memory; its record says " +
                  std::to_string(e->cfg[0]) + " threads, " + std::to_string(e->cfg[1]) + " bytes");
    }
    emu::launch(dim3(gx, gy, gz), dim3(bx), smem, [&] { e->run(args); });
    for (const Region& r : regions) {
        std::fseek(f, r.file_offset, SEEK_SET);
        if (std::fwrite(r.host, 1, r.size, f) != r.size) emu::fail("replay: cannot write back");
    }
    std::fclose(f);
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    if (argc == 3 && std::string(argv[1]) == "--replay") return replay(argv[2]);
    std::random_device rd;
    const uint64_t seed = argc > 1 ? std::strtoull(argv[1], nullptr, 10) : (static_cast<uint64_t>(rd()) << 32 | rd());
    std::printf("seed %llu (pass it as the first argument to repeat)\n", static_cast<unsigned long long>(seed));
    std::mt19937_64 rng(seed);
    const bool quick = argc > 2 && std::string(argv[2]) == "quick";
    std::vector<Problem> cases = {
        // b hq hkv nq nk d mask dt scale(0 = 1/sqrt(d))
        {1, 2, 1, 17, 17, 64, NONE, 1, 0},
        {1, 2, 2, 65, 129, 32, TOP_LEFT, 0, 0},
        {1, 4, 2, 130, 70, 128, BOTTOM_RIGHT, 1, 0},
        {1, 2, 1, 70, 130, 128, TOP_LEFT, 0, 0},
        {2, 1, 1, 1, 1, 80, TOP_LEFT, 1, 0},
        {1, 1, 1, 63, 200, 160, NONE, 0, 0},
        {1, 2, 1, 40, 33, 192, BOTTOM_RIGHT, 1, 0},
        {1, 1, 1, 33, 40, 224, TOP_LEFT, 0, 0},
        {1, 2, 2, 45, 70, 256, NONE, 1, 0},
        {1, 1, 1, 5, 0, 64, NONE, 1, 0},
        {1, 2, 1, 129, 1, 96, BOTTOM_RIGHT, 0, 0},
        {1, 1, 1, 100, 100, 64, TOP_LEFT, 1, -0.3f},
        {1, 8, 2, 65, 63, 64, BOTTOM_RIGHT, 0, 0},
        // rows padded to a multiple of 8 columns by the launcher
        {1, 2, 1, 37, 41, 37, BOTTOM_RIGHT, 1, 0},
        {2, 2, 2, 9, 7, 1, NONE, 0, 0},
        {1, 1, 1, 20, 20, 250, TOP_LEFT, 1, 0},
        // fp32 (SIMT kernels, any d)
        {1, 2, 1, 17, 40, 64, NONE, 2, 0},
        {1, 4, 2, 70, 33, 37, BOTTOM_RIGHT, 2, 0},
        {2, 2, 2, 33, 70, 128, TOP_LEFT, 2, 0},
        {1, 2, 1, 20, 35, 256, BOTTOM_RIGHT, 2, 0},
        {1, 1, 1, 5, 0, 16, NONE, 2, 0},
    };
    if (quick) {
        // one case of each kind: fp16/bf16 tiles, both causal alignments with grouped-query heads, no keys,
        // padded rows, fp32
        cases = {cases[0], cases[1], cases[2], cases[9], cases[13], cases[17]};
    }
    int failed = 0;
    for (Problem p : cases) {
        if (p.scale == 0) p.scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(p.d)));
        for (int det = 0; det < (p.dt == 2 ? 1 : 2); ++det) failed += !run_case(p, rng, det == 1);
    }
#ifdef K4J_ATTN_HOPPER_SHAPES
    // The sm_90 cubin's alternative shapes (tuning candidates), each with the default of the other pass.
    struct Alternative {
        const char* name;
        int kd;
        Kernels kn;
    };
#define K4J_FWD_ALT(KD, tag)                                                                                  \
    Alternative{"fwd " #tag, KD, [] {                                                                        \
                    Kernels k = K4J_KERNELS(bf16, KD);                                                       \
                    k.fwd = k4j_attn_fwd_bf16_d##KD##_##tag;                                                 \
                    k.fwd_cfg = cfg_of(k4j_attn_fwd_bf16_d##KD##_##tag##_cfg);                               \
                    return k;                                                                                \
                }()}
#define K4J_BWD_ALT(KD, tag)                                                                                  \
    Alternative{"bwd " #tag, KD, [] {                                                                        \
                    Kernels k = K4J_KERNELS(bf16, KD);                                                       \
                    k.bwd = k4j_attn_bwd_bf16_d##KD##_##tag;                                                 \
                    k.bwd_cfg = cfg_of(k4j_attn_bwd_bf16_d##KD##_##tag##_cfg);                               \
                    return k;                                                                                \
                }()}
    const Alternative alternatives[] = {
        K4J_FWD_ALT(64, m128n64w4_qs),     K4J_FWD_ALT(64, m128n112w4), K4J_FWD_ALT(64, m128n96w4),
        K4J_FWD_ALT(64, m64n64w4),
        K4J_FWD_ALT(128, m128n32w4),       K4J_BWD_ALT(64, m64w8s1q2),  K4J_BWD_ALT(64, bwdt_m64n128),
        K4J_BWD_ALT(128, m64w8s1q2),
    };
    if (!quick) {
        for (const Alternative& a : alternatives) {
            Problem p{1, 2, 1, 150, 131, a.kd, BOTTOM_RIGHT, 1, 0};
            p.scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(p.d)));
            std::string label = std::string(" [") + a.name + "]";
            failed += !run_case(p, rng, false, &a.kn, label.c_str());
        }
    }
#endif
    std::printf("%s: %d failed; %llu context switches\n", failed ? "FAILED" : "all passed", failed,
                static_cast<unsigned long long>(emu::switches));
    return failed ? 1 : 0;
}
