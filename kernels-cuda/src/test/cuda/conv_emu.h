// Host emulation of the CUDA features the convolution kernels use, so that their sources
// (src/main/cuda/conv_*.cu) compile with g++ and run, unchanged, on a machine without a GPU.
//
// Every CUDA thread of a block is a fiber (ucontext) on one OS thread; fibers switch only at
// __syncthreads and at warp-collective instructions, in an order chosen by the test: round robin
// (warps in near lockstep) or greedy (always the first runnable thread of an ascending, descending
// or shuffled order, so one warp runs as far ahead of the others as the barriers allow), so an
// ordering bug shows up as a result that depends on the order.
//   * ldmatrix and mma.sync are warp collectives that follow the PTX ISA's fragment definitions
//     (m8n8 b16 matrices; m16n8k16 A row-major, B column-major, fp32 C/D).
//   * wgmma.mma_async is a warpgroup (128 threads) collective: shared-memory descriptors are decoded as
//     the no-swizzle canonical layouts (k-major ((8,m),2):((1,SBO),LBO), m/n-major ((1,m),(8,k)):((.,SBO),
//     (1,LBO)) in 16-byte units), accumulators as m16n8 fragments per warp; the operands are read at
//     wgmma.wait_group (or, in "early" mode, at issue), so with copies landing early a stage overwritten
//     while its MMAs are in flight shows in the result, and with copies landing late one read before it
//     was filled.
//   * cp.async copies are queued per thread and land at cp.async.wait_group (or, in "early" mode, at
//     issue): code that reads a stage before waiting reads poison.
//   * Dynamic shared memory is filled with 0xFF bytes (NaN in fp32, fp16 and bf16) before each block.
//   * Global buffers are placed against a PROT_NONE page (after the end, or before the start), so an
//     out-of-bounds access by a kernel faults at once.
// A deadlock (a barrier that not every thread reaches) aborts with a message.
#pragma once

#define CONV_HOST_EMULATION 1

#include <stdint.h>
#include <signal.h>
#include <sys/mman.h>
#include <ucontext.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <random>
#include <vector>

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __constant__
#define __launch_bounds__(...)
#define CONV_FN inline

struct dim3 {
    unsigned x = 1, y = 1, z = 1;
};
struct int4 {
    int x, y, z, w;
};
struct uint4 {
    unsigned x, y, z, w;
};
struct float2 {
    float x, y;
};
struct float4 {
    float x, y, z, w;
};
inline int4 make_int4(int x, int y, int z, int w) { return int4{x, y, z, w}; }
inline float2 make_float2(float x, float y) { return float2{x, y}; }
inline float4 make_float4(float x, float y, float z, float w) { return float4{x, y, z, w}; }

namespace emu {

[[noreturn]] inline void fail(const char* what) {
    std::fprintf(stderr, "EMULATION FAILURE: %s\n", what);
    std::fflush(stderr);
    std::abort();
}

enum class Order { ASCENDING, DESCENDING, SHUFFLED };

struct Schedule {
    Order order;
    bool greedy;        // restart from the first runnable thread after every switch
    bool early_copies;  // cp.async lands at issue instead of at the wait
    bool early_mma;     // wgmma reads its operands at issue instead of at the wait
};

struct Pending {
    void* dst;
    const void* src;
    bool valid;
    int group;
};

struct Fiber {
    ucontext_t ctx;
    std::vector<char> stack;
    dim3 tid;
    int linear = 0;
    bool done = false;
    const long* wait_on = nullptr;  // runnable when *wait_on != wait_value
    long wait_value = 0;
    std::vector<Pending> pending;
    int committed = 0;
    int wg_committed = 0;
};

using ToF = float (*)(uint16_t);

struct WgmmaOp {
    int n, ta, tb, group;
    uint64_t da, db;
    ToF to_f;
    float* d[128];
    bool done;
};

struct WarpgroupSlots {
    int arrived = 0;
    long gen = 0;
    float* d[128];
    uint64_t da[128], db[128];
    std::vector<WgmmaOp> ops;
};

struct WarpSlots {
    int arrived = 0;
    long gen = 0;
    const uint16_t* addr[32];
    uint32_t a[32][4];
    uint32_t b[32][2];
    float c[32][4];
};

// An mbarrier, kept beside the 8 bytes of shared memory that stand for it (keyed by their address):
// `pending` arrivals complete the current phase; `phases` counts completed ones (its parity is the
// hardware's phase bit); copies a thread tied to it with cp.async.mbarrier.arrive land when a waiter
// sees the phase complete (or at issue with early copies), so a consumer that reads a stage it did not
// wait for reads poison.
struct Mbarrier {
    int count = 0;
    int pending = 0;
    long phases = 0;
    std::vector<Pending> copies;
};

struct NamedBarrier {
    int arrived = 0;
    long gen = 0;
};

struct State {
    dim3 grid, block, blockIdx;
    std::vector<std::pair<const void*, Mbarrier>> mbarriers;
    NamedBarrier named[16];
    unsigned char* smem = nullptr;
    size_t smem_bytes = 0;
    std::vector<Fiber> fibers;
    std::vector<WarpSlots> warps;
    std::vector<WarpgroupSlots> warpgroups;
    int block_arrived = 0;
    long block_gen = 0;
    long progress = 0;
    Fiber* cur = nullptr;
    ucontext_t main_ctx;
    std::function<void()> body;
    Order order = Order::ASCENDING;
    bool greedy = false;
    bool early_copies = false;
    bool early_mma = false;
    std::mt19937 rng{12345};
    long launches = 0;
};

inline State& st() {
    static State s;
    return s;
}

inline Fiber* cur() { return st().cur; }

inline void yield_until_changed(const long* gen, long seen) {
    Fiber* f = cur();
    f->wait_on = gen;
    f->wait_value = seen;
    swapcontext(&f->ctx, &st().main_ctx);
}

inline int threads_per_block() { return (int)(st().block.x * st().block.y * st().block.z); }

inline void block_barrier() {
    State& s = st();
    const long seen = s.block_gen;
    ++s.progress;
    if (++s.block_arrived == threads_per_block()) {
        s.block_arrived = 0;
        ++s.block_gen;
        return;
    }
    yield_until_changed(&s.block_gen, seen);
}

inline WarpSlots& my_warp() { return st().warps[cur()->linear / 32]; }

inline void warp_barrier() {
    State& s = st();
    WarpSlots& w = my_warp();
    const int warp = cur()->linear / 32;
    const int members = std::min(32, threads_per_block() - warp * 32);
    if (members != 32) fail("warp collective in a partial warp");
    const long seen = w.gen;
    ++s.progress;
    if (++w.arrived == 32) {
        w.arrived = 0;
        ++w.gen;
        return;
    }
    yield_until_changed(&w.gen, seen);
}

inline WarpgroupSlots& my_warpgroup() { return st().warpgroups.at(cur()->linear / 128); }

inline void warpgroup_barrier() {
    State& s = st();
    if (threads_per_block() % 128 != 0) fail("warpgroup collective in a block that is not whole warpgroups");
    WarpgroupSlots& w = my_warpgroup();
    const long seen = w.gen;
    ++s.progress;
    if (++w.arrived == 128) {
        w.arrived = 0;
        ++w.gen;
        return;
    }
    yield_until_changed(&w.gen, seen);
}

inline void check_smem(const void* p, size_t bytes, const char* what) {
    State& s = st();
    const unsigned char* c = static_cast<const unsigned char*>(p);
    if (c < s.smem || c + bytes > s.smem + s.smem_bytes) {
        std::fprintf(stderr, "%s: shared address %p+%zu outside [%p, %p)\n", what, p, bytes, (void*)s.smem,
                     (void*)(s.smem + s.smem_bytes));
        fail("shared memory access out of range");
    }
    if (reinterpret_cast<uintptr_t>(p) % std::min<size_t>(bytes, 16) != 0) fail("misaligned shared access");
}

inline void complete(Pending& p) {
    check_smem(p.dst, 16, "cp.async");
    if (p.valid) std::memcpy(p.dst, p.src, 16);
    else std::memset(p.dst, 0, 16);
}

inline void cp_async16(void* dst, const void* src, bool valid) {
    if (reinterpret_cast<uintptr_t>(src) % 16 != 0 && valid) fail("cp.async from a misaligned global address");
    Pending p{dst, src, valid, cur()->committed};
    if (st().early_copies) complete(p);
    else cur()->pending.push_back(p);
}

inline void cp_async_commit() { ++cur()->committed; }

inline void cp_async_wait(int n) {
    Fiber* f = cur();
    std::vector<Pending> keep;
    for (Pending& p : f->pending) {
        if (p.group < f->committed - n) complete(p);
        else keep.push_back(p);
    }
    f->pending.swap(keep);
}

inline Mbarrier& mbarrier(const void* p) {
    check_smem(p, 8, "mbarrier");
    for (auto& m : st().mbarriers)
        if (m.first == p) return m.second;
    fail("mbarrier used before mbarrier.init");
}

inline void mbar_init(const void* p, int count) {
    check_smem(p, 8, "mbarrier.init");
    for (auto& m : st().mbarriers)
        if (m.first == p) {
            m.second = Mbarrier{count, count, 0, {}};
            return;
        }
    st().mbarriers.push_back({p, Mbarrier{count, count, 0, {}}});
}

inline void mbar_arrive(const void* p) {
    Mbarrier& m = mbarrier(p);
    ++st().progress;
    if (--m.pending == 0) {
        m.pending = m.count;
        ++m.phases;
    } else if (m.pending < 0) {
        fail("mbarrier: more arrivals than its count");
    }
}

// The arrival happens once this thread's earlier copies have landed; they are handed to the barrier and land
// when a waiter sees the phase complete.
inline void cp_async_mbar_arrive(const void* p) {
    Mbarrier& m = mbarrier(p);
    Fiber* f = cur();
    m.copies.insert(m.copies.end(), f->pending.begin(), f->pending.end());
    f->pending.clear();
    mbar_arrive(p);
}

inline void mbar_wait(const void* p, int parity) {
    for (;;) {
        Mbarrier& m = mbarrier(p);
        if ((m.phases & 1) != (parity & 1)) {
            for (Pending& c : m.copies) complete(c);
            m.copies.clear();
            return;
        }
        yield_until_changed(&m.phases, m.phases);
    }
}

inline void named_barrier_sync(int id, int threads) {
    State& s = st();
    if (id <= 0 || id >= 16 || threads % 32 != 0) fail("bar.sync: id 1..15 and whole warps");
    NamedBarrier& b = s.named[id];
    const long seen = b.gen;
    ++s.progress;
    if (++b.arrived == threads) {
        b.arrived = 0;
        ++b.gen;
        return;
    }
    yield_until_changed(&b.gen, seen);
}

// PTX: lane l gives the address of row l%8 of matrix l/8; lane t receives, per matrix j, row t/4
// elements 2(t%4), 2(t%4)+1 (with .trans: column t/4, rows 2(t%4), 2(t%4)+1).
inline void ldmatrix(uint32_t (&r)[4], const uint16_t* p, bool trans) {
    check_smem(p, 16, "ldmatrix");
    WarpSlots& w = my_warp();
    const int lane = cur()->linear % 32;
    w.addr[lane] = p;
    warp_barrier();
    for (int j = 0; j < 4; ++j) {
        const uint16_t* const* rows = &w.addr[8 * j];
        uint16_t lo, hi;
        if (!trans) {
            lo = rows[lane / 4][2 * (lane % 4)];
            hi = rows[lane / 4][2 * (lane % 4) + 1];
        } else {
            lo = rows[2 * (lane % 4)][lane / 4];
            hi = rows[2 * (lane % 4) + 1][lane / 4];
        }
        r[j] = (uint32_t)lo | ((uint32_t)hi << 16);
    }
    warp_barrier();
}

// PTX m16n8k16 (groupID g = lane/4, t = lane%4): A a0,a1 = (g, 2t..2t+1), a2,a3 = (g+8, 2t..),
// a4,a5 = (g, 2t+8..), a6,a7 = (g+8, 2t+8..); B b0,b1 = (k 2t..2t+1, n g), b2,b3 = (k 2t+8.., n g);
// C/D c0,c1 = (g, 2t..2t+1), c2,c3 = (g+8, 2t..2t+1).
template <class ToF>
inline void mma(float (&d)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1, ToF to_f) {
    WarpSlots& w = my_warp();
    const int lane = cur()->linear % 32;
    for (int i = 0; i < 4; ++i) w.a[lane][i] = a[i];
    w.b[lane][0] = b0;
    w.b[lane][1] = b1;
    for (int i = 0; i < 4; ++i) w.c[lane][i] = d[i];
    warp_barrier();
    float A[16][16], B[16][8], C[16][8];
    for (int t = 0; t < 32; ++t) {
        const int g = t / 4, q = t % 4;
        auto lo = [](uint32_t v) { return (uint16_t)(v & 0xffff); };
        auto hi = [](uint32_t v) { return (uint16_t)(v >> 16); };
        A[g][2 * q] = to_f(lo(w.a[t][0]));
        A[g][2 * q + 1] = to_f(hi(w.a[t][0]));
        A[g + 8][2 * q] = to_f(lo(w.a[t][1]));
        A[g + 8][2 * q + 1] = to_f(hi(w.a[t][1]));
        A[g][2 * q + 8] = to_f(lo(w.a[t][2]));
        A[g][2 * q + 9] = to_f(hi(w.a[t][2]));
        A[g + 8][2 * q + 8] = to_f(lo(w.a[t][3]));
        A[g + 8][2 * q + 9] = to_f(hi(w.a[t][3]));
        B[2 * q][g] = to_f(lo(w.b[t][0]));
        B[2 * q + 1][g] = to_f(hi(w.b[t][0]));
        B[2 * q + 8][g] = to_f(lo(w.b[t][1]));
        B[2 * q + 9][g] = to_f(hi(w.b[t][1]));
        C[g][2 * q] = w.c[t][0];
        C[g][2 * q + 1] = w.c[t][1];
        C[g + 8][2 * q] = w.c[t][2];
        C[g + 8][2 * q + 1] = w.c[t][3];
    }
    const int g = lane / 4, q = lane % 4;
    const int rows[4] = {g, g, g + 8, g + 8};
    const int cols[4] = {2 * q, 2 * q + 1, 2 * q, 2 * q + 1};
    for (int i = 0; i < 4; ++i) {
        float acc = C[rows[i]][cols[i]];
        for (int k = 0; k < 16; ++k) acc += A[rows[i]][k] * B[k][cols[i]];
        d[i] = acc;
    }
    warp_barrier();
}

// Element (row, k) of a 64 x 16 A or (k, col) of a 16 x N B, from a descriptor: start address >> 4 in bits
// 0-13, LBO (16-byte units, k direction) in 16-29, SBO (m/n direction) in 32-45, layout type in 62-63.
inline float wgmma_element(uint64_t desc, bool mn_major, int mn, int k, ToF to_f) {
    if ((desc >> 62) != 0 || ((desc >> 49) & 7) != 0) fail("wgmma descriptor: only no-swizzle layouts are emulated");
    const uint64_t start = (desc & 0x3FFF) << 4, lbo = (desc >> 16) & 0x3FFF, sbo = (desc >> 32) & 0x3FFF;
    const uint64_t unit = mn_major ? (uint64_t)(k & 7) + (uint64_t)(k >> 3) * lbo + (uint64_t)(mn >> 3) * sbo
                                   : (uint64_t)(mn & 7) + (uint64_t)(mn >> 3) * sbo + (uint64_t)(k >> 3) * lbo;
    const uint64_t byte = start + unit * 16 + 2 * (uint64_t)(mn_major ? (mn & 7) : (k & 7));
    const unsigned char* p = st().smem + byte;
    check_smem(p, 2, "wgmma operand");
    uint16_t v;
    std::memcpy(&v, p, 2);
    return to_f(v);
}

inline void wgmma_execute(WgmmaOp& op) {
    float A[64][16];
    std::vector<float> B((size_t)16 * op.n);
    for (int m = 0; m < 64; ++m)
        for (int k = 0; k < 16; ++k) A[m][k] = wgmma_element(op.da, op.ta != 0, m, k, op.to_f);
    for (int k = 0; k < 16; ++k)
        for (int c = 0; c < op.n; ++c) B[(size_t)k * op.n + c] = wgmma_element(op.db, op.tb != 0, c, k, op.to_f);
    for (int t = 0; t < 128; ++t) {
        const int warp = t / 32, lane = t % 32;
        for (int j = 0; j < op.n / 8; ++j)
            for (int e = 0; e < 4; ++e) {
                const int row = 16 * warp + lane / 4 + 8 * (e >> 1), col = 8 * j + 2 * (lane % 4) + (e & 1);
                float acc = op.d[t][4 * j + e];
                for (int k = 0; k < 16; ++k) acc += A[row][k] * B[(size_t)k * op.n + col];
                op.d[t][4 * j + e] = acc;
            }
    }
    op.done = true;
}

inline void wgmma(int n, int ta, int tb, float* d, uint64_t da, uint64_t db, ToF to_f) {
    WarpgroupSlots& w = my_warpgroup();
    const int t = cur()->linear % 128;
    w.d[t] = d;
    w.da[t] = da;
    w.db[t] = db;
    warpgroup_barrier();
    if (t == 0) {
        WgmmaOp op{n, ta, tb, cur()->wg_committed, da, db, to_f, {}, false};
        for (int i = 0; i < 128; ++i) {
            if (w.da[i] != da || w.db[i] != db) fail("wgmma: descriptors differ across the warpgroup");
            op.d[i] = w.d[i];
        }
        if (st().early_mma) wgmma_execute(op);
        else w.ops.push_back(op);
    }
    warpgroup_barrier();
}

inline void wgmma_commit() { ++cur()->wg_committed; }

inline void wgmma_wait(int n) {
    Fiber* f = cur();
    for (WgmmaOp& op : my_warpgroup().ops)
        if (!op.done && op.group < f->wg_committed - n) wgmma_execute(op);
}

inline void trampoline() {
    st().body();
    Fiber* f = cur();
    if (!f->pending.empty()) fail("thread exited with cp.async copies never waited for");
    f->done = true;
    swapcontext(&f->ctx, &st().main_ctx);
}

// A buffer against a PROT_NONE page: after its end (guard_after) or before its start. Global buffers and
// each block's dynamic shared memory live in one, so an access past either faults at once (SIGSEGV,
// reported by guard_fault) instead of corrupting a neighbour.
struct Buffer {
    unsigned char* map = nullptr;
    size_t map_bytes = 0;
    void* data = nullptr;
    size_t bytes = 0;

    Buffer() = default;
    Buffer(size_t n, bool guard_after) { allocate(n, guard_after); }
    Buffer(const Buffer&) = delete;
    Buffer& operator=(const Buffer&) = delete;
    ~Buffer() {
        if (map) munmap(map, map_bytes);
    }

    void allocate(size_t n, bool guard_after) {
        const size_t page = (size_t)sysconf(_SC_PAGESIZE);
        bytes = n;
        const size_t body = (n + page - 1) / page * page + page;
        map_bytes = body + 2 * page;
        map = static_cast<unsigned char*>(mmap(nullptr, map_bytes, PROT_READ | PROT_WRITE,
                                               MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
        if (map == MAP_FAILED) fail("mmap");
        mprotect(map, page, PROT_NONE);
        mprotect(map + page + body, page, PROT_NONE);
        unsigned char* lo = map + page;
        unsigned char* hi = map + page + body;
        // 16-byte aligned, as cudaMalloc memory is; at most 15 bytes of slack before the end guard
        data = guard_after ? reinterpret_cast<void*>(reinterpret_cast<uintptr_t>(hi - n) & ~uintptr_t(15)) : lo;
        std::memset(data, 0xff, n);
    }
    template <class T>
    T* as() {
        return static_cast<T*>(data);
    }
};

// SIGSEGV handler: an access that hit a guard page is a kernel's out-of-bounds access; say so and which
// address, then exit (the buffers' placement makes the fault immediate, not a corruption found later).
inline void guard_fault(int, siginfo_t* info, void*) {
    char msg[160];
    const int n = std::snprintf(msg, sizeof msg,
                                "EMULATION FAILURE: out-of-bounds access at %p (a guard page of a global buffer or of "
                                "shared memory)\n", info->si_addr);
    if (write(2, msg, n > 0 ? (size_t)n : 0) < 0) _exit(4);
    _exit(3);
}

inline void install_guard_handler() {
    struct sigaction sa {};
    sa.sa_sigaction = guard_fault;
    sa.sa_flags = SA_SIGINFO;
    sigaction(SIGSEGV, &sa, nullptr);
}

// Runs body() as every thread of every block of the grid.
inline void launch(dim3 grid, dim3 block, size_t smem_bytes, Schedule sched, std::function<void()> body) {
    State& s = st();
    s.order = sched.order;
    s.greedy = sched.greedy;
    s.early_copies = sched.early_copies;
    s.early_mma = sched.early_mma;
    s.grid = grid;
    s.block = block;
    s.body = std::move(body);
    ++s.launches;
    const int nthreads = threads_per_block();
    Buffer smem(smem_bytes, true);
    s.smem = smem.as<unsigned char>();
    s.smem_bytes = smem_bytes;
    for (unsigned bz = 0; bz < grid.z; ++bz)
        for (unsigned by = 0; by < grid.y; ++by)
            for (unsigned bx = 0; bx < grid.x; ++bx) {
                s.blockIdx = dim3{bx, by, bz};
                std::memset(s.smem, 0xff, smem_bytes);
                s.fibers.assign(nthreads, Fiber());
                s.warps.assign((nthreads + 31) / 32, WarpSlots());
                s.warpgroups.assign((nthreads + 127) / 128, WarpgroupSlots());
                s.block_arrived = 0;
                s.mbarriers.clear();
                for (NamedBarrier& b : s.named) b = NamedBarrier{};
                for (int i = 0; i < nthreads; ++i) {
                    Fiber& f = s.fibers[i];
                    f.linear = i;
                    f.tid = dim3{(unsigned)(i % block.x), (unsigned)((i / block.x) % block.y),
                                 (unsigned)(i / (block.x * block.y))};
                    f.stack.resize(256 * 1024);
                    getcontext(&f.ctx);
                    f.ctx.uc_stack.ss_sp = f.stack.data();
                    f.ctx.uc_stack.ss_size = f.stack.size();
                    f.ctx.uc_link = nullptr;
                    makecontext(&f.ctx, trampoline, 0);
                }
                std::vector<int> seq(nthreads);
                for (int i = 0; i < nthreads; ++i) seq[i] = i;
                if (s.order == Order::DESCENDING) std::reverse(seq.begin(), seq.end());
                int live = nthreads;
                while (live > 0) {
                    if (s.order == Order::SHUFFLED) std::shuffle(seq.begin(), seq.end(), s.rng);
                    const long before = s.progress;
                    int ran = 0;
                    for (int i : seq) {
                        Fiber& f = s.fibers[i];
                        if (f.done) continue;
                        if (f.wait_on != nullptr && *f.wait_on == f.wait_value) continue;
                        f.wait_on = nullptr;
                        s.cur = &f;
                        swapcontext(&s.main_ctx, &f.ctx);
                        s.cur = nullptr;
                        ++ran;
                        if (f.done) {
                            --live;
                            ++s.progress;
                        }
                        if (s.greedy) break;
                    }
                    if (ran == 0 && s.progress == before) fail("deadlock: a barrier that not every thread reaches");
                }
                for (const WarpgroupSlots& w : s.warpgroups)
                    for (const WgmmaOp& op : w.ops)
                        if (!op.done) fail("a wgmma was never waited for");
                s.fibers.clear();
            }
    s.smem = nullptr;
}

}  // namespace emu

#define threadIdx (emu::cur()->tid)
#define blockIdx (emu::st().blockIdx)
#define blockDim (emu::st().block)
#define gridDim (emu::st().grid)
#define __shared__ static
#define __align__(n) __attribute__((aligned(n)))

inline void __syncthreads() { emu::block_barrier(); }

namespace conv {

inline float f16_to_f(uint16_t v) {
    _Float16 h;
    std::memcpy(&h, &v, 2);
    return (float)h;
}
inline uint16_t f_to_f16(float f) {
    _Float16 h = (_Float16)f;
    uint16_t v;
    std::memcpy(&v, &h, 2);
    return v;
}
inline float bf16_to_f(uint16_t v) {
    uint32_t b = (uint32_t)v << 16;
    float f;
    std::memcpy(&f, &b, 4);
    return f;
}
inline uint16_t f_to_bf16(float f) {
    uint32_t b;
    std::memcpy(&b, &f, 4);
    if ((b & 0x7fffffffu) > 0x7f800000u) return 0x7fc0;
    b += 0x7fffu + ((b >> 16) & 1u);
    return (uint16_t)(b >> 16);
}

struct F32 {
    using T = float;
    static float to_f(float v) { return v; }
    static float from_f(float v) { return v; }
};
struct F16 {
    using T = uint16_t;
    static float to_f(uint16_t v) { return f16_to_f(v); }
    static uint16_t from_f(float v) { return f_to_f16(v); }
    static void mma(float (&d)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
        emu::mma(d, a, b0, b1, f16_to_f);
    }
    template <int N, int TA, int TB>
    static void wgmma(float* d, uint64_t da, uint64_t db) {
        emu::wgmma(N, TA, TB, d, da, db, f16_to_f);
    }
};
struct BF16 {
    using T = uint16_t;
    static float to_f(uint16_t v) { return bf16_to_f(v); }
    static uint16_t from_f(float v) { return f_to_bf16(v); }
    static void mma(float (&d)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
        emu::mma(d, a, b0, b1, bf16_to_f);
    }
    template <int N, int TA, int TB>
    static void wgmma(float* d, uint64_t da, uint64_t db) {
        emu::wgmma(N, TA, TB, d, da, db, bf16_to_f);
    }
};

inline unsigned char* dyn_smem() { return emu::st().smem; }
inline void cp_async16(void* dst, const void* src, bool valid) { emu::cp_async16(dst, src, valid); }
inline void cp_async_commit() { emu::cp_async_commit(); }
template <int N>
inline void cp_async_wait() {
    emu::cp_async_wait(N);
}
inline void ldsm_x4(uint32_t (&r)[4], const uint16_t* p) { emu::ldmatrix(r, p, false); }
inline void ldsm_x4_trans(uint32_t (&r)[4], const uint16_t* p) { emu::ldmatrix(r, p, true); }
inline uint32_t smem_u32(const void* p) {
    return (uint32_t)(static_cast<const unsigned char*>(p) - emu::st().smem);
}
inline void fence_proxy_async() {}
inline void mbar_init(uint64_t* bar, int count) { emu::mbar_init(bar, count); }
inline void mbar_arrive(uint64_t* bar) { emu::mbar_arrive(bar); }
inline void mbar_wait(uint64_t* bar, int parity) { emu::mbar_wait(bar, parity); }
inline void cp_async_mbar_arrive(uint64_t* bar) { emu::cp_async_mbar_arrive(bar); }
inline void named_barrier_sync(int id, int threads) { emu::named_barrier_sync(id, threads); }
inline void wgmma_fence() {}
inline void wgmma_commit() { emu::wgmma_commit(); }
template <int N>
inline void wgmma_wait() {
    emu::wgmma_wait(N);
}
inline void reg_fence(float&) {}

}  // namespace conv
