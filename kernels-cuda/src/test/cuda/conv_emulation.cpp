// Runs the convolution kernels of src/main/cuda on the host emulation (conv_emu.h) against a float64
// reference, on small odd shapes that still span several CTA tiles, k-tiles and pipeline wraps.
//
// Build and run (from kernels-cuda/):
//   g++ -std=c++17 -O1 -fno-strict-aliasing -Wno-unknown-pragmas -o /tmp/conv_emulation \
//       src/test/cuda/conv_emulation.cpp && /tmp/conv_emulation [filter]
// Exits non-zero when a check failed.
//
// Replay mode, `conv_emulation --replay <file>`, runs one kernel launch that Java recorded
// (Conv2dCudaReplayTest): the file holds every device allocation {address, size, bytes}, the kernel's
// name, grid, block, dynamic shared memory and arguments ('L' 64-bit or 'I' 32-bit values, pointers as
// device addresses); each allocation becomes a guarded host buffer, pointer arguments are translated into
// them (an address outside every allocation is an error), the launch runs, and the allocations' bytes are
// written back over the file's in the same order.
#include "conv_emu.h"

#include "../../main/cuda/conv_depthwise.cu"
#include "../../main/cuda/conv_igemm.cu"
#include "../../main/cuda/conv_simt.cu"
#include "../../main/cuda/conv_wgmma.cu"
#include "../../main/cuda/conv_support.cu"

#include <array>
#include <memory>
#include <string>

namespace {

enum DT { DT_F32 = 0, DT_F16 = 1, DT_BF16 = 2 };
enum Layout { NHWC = 0, NCHW = 1 };

struct Problem {
    int N, C, H, W, K, R, S, sh, sw, pt, pl, pb, pr, dh, dw, groups;
    int P() const { return (H + pt + pb - dh * (R - 1) - 1) / sh + 1; }
    int Q() const { return (W + pl + pr - dw * (S - 1) - 1) / sw + 1; }
    int Cg() const { return C / groups; }
    int Kg() const { return K / groups; }
    std::string str() const {
        char b[256];
        std::snprintf(b, sizeof b, "N%d C%d H%d W%d K%d R%d S%d str%dx%d pad%d,%d,%d,%d dil%dx%d g%d", N, C, H, W, K, R,
                      S, sh, sw, pt, pl, pb, pr, dh, dw, groups);
        return b;
    }
};

// Element offsets in either layout; filters are [K][R][S][Cg] (NHWC) or [K][Cg][R][S] (NCHW).
struct Index {
    const Problem& p;
    Layout l;
    long x(int n, int c, int h, int w) const {
        return l == NHWC ? (((long)n * p.H + h) * p.W + w) * p.C + c : (((long)n * p.C + c) * p.H + h) * p.W + w;
    }
    long y(int n, int k, int a, int b) const {
        return l == NHWC ? (((long)n * p.P() + a) * p.Q() + b) * p.K + k
                         : (((long)n * p.K + k) * p.P() + a) * p.Q() + b;
    }
    long w(int k, int c, int r, int s) const {
        return l == NHWC ? (((long)k * p.R + r) * p.S + s) * p.Cg() + c : (((long)k * p.Cg() + c) * p.R + r) * p.S + s;
    }
};

struct Reference {
    std::vector<double> y, yabs, dx, dxabs, dw, dwabs, db;
};

// The three passes from one loop nest over every (n, k, p, q, c, r, s) that reads inside the input.
Reference reference(const Problem& p, Layout l, const std::vector<double>& x, const std::vector<double>& w,
                    const std::vector<double>& bias, const std::vector<double>& dy) {
    Index ix{p, l};
    Reference ref;
    const int P = p.P(), Q = p.Q();
    ref.y.assign((size_t)p.N * p.K * P * Q, 0.0);
    ref.yabs.assign(ref.y.size(), 0.0);
    ref.dx.assign(x.size(), 0.0);
    ref.dxabs.assign(x.size(), 0.0);
    ref.dw.assign(w.size(), 0.0);
    ref.dwabs.assign(w.size(), 0.0);
    ref.db.assign(p.K, 0.0);
    for (int n = 0; n < p.N; ++n)
        for (int k = 0; k < p.K; ++k) {
            const int g = k / p.Kg();
            for (int a = 0; a < P; ++a)
                for (int b = 0; b < Q; ++b) {
                    const long yi = ix.y(n, k, a, b);
                    double acc = bias.empty() ? 0.0 : bias[k];
                    double abs = bias.empty() ? 0.0 : std::fabs(bias[k]);
                    ref.db[k] += dy[yi];
                    for (int c = 0; c < p.Cg(); ++c)
                        for (int r = 0; r < p.R; ++r)
                            for (int s = 0; s < p.S; ++s) {
                                const int h = a * p.sh - p.pt + r * p.dh;
                                const int ww = b * p.sw - p.pl + s * p.dw;
                                if (h < 0 || h >= p.H || ww < 0 || ww >= p.W) continue;
                                const long xi = ix.x(n, g * p.Cg() + c, h, ww);
                                const long wi = ix.w(k, c, r, s);
                                acc += x[xi] * w[wi];
                                abs += std::fabs(x[xi] * w[wi]);
                                ref.dx[xi] += dy[yi] * w[wi];
                                ref.dxabs[xi] += std::fabs(dy[yi] * w[wi]);
                                ref.dw[wi] += dy[yi] * x[xi];
                                ref.dwabs[wi] += std::fabs(dy[yi] * x[xi]);
                            }
                    ref.y[yi] = acc;
                    ref.yabs[yi] = abs;
                }
        }
    return ref;
}

double round_to(DT dt, double v) {
    if (dt == DT_F32) return (float)v;
    if (dt == DT_F16) return conv::f16_to_f(conv::f_to_f16((float)v));
    return conv::bf16_to_f(conv::f_to_bf16((float)v));
}

std::vector<double> random_values(size_t n, DT dt, std::mt19937& rng) {
    std::normal_distribution<double> nd(0.0, 1.0);
    std::vector<double> v(n);
    for (auto& e : v) e = round_to(dt, nd(rng));
    return v;
}

void store(DT dt, void* dst, const std::vector<double>& v) {
    for (size_t i = 0; i < v.size(); ++i) {
        if (dt == DT_F32) static_cast<float*>(dst)[i] = (float)v[i];
        else if (dt == DT_F16) static_cast<uint16_t*>(dst)[i] = conv::f_to_f16((float)v[i]);
        else static_cast<uint16_t*>(dst)[i] = conv::f_to_bf16((float)v[i]);
    }
}

double load(DT dt, const void* src, size_t i) {
    if (dt == DT_F32) return static_cast<const float*>(src)[i];
    if (dt == DT_F16) return conv::f16_to_f(static_cast<const uint16_t*>(src)[i]);
    return conv::bf16_to_f(static_cast<const uint16_t*>(src)[i]);
}

std::string describe(const emu::Schedule& s) {
    return std::string(s.order == emu::Order::ASCENDING ? " asc" : s.order == emu::Order::DESCENDING ? " desc" : " shuf") +
           (s.greedy ? "-greedy" : "-rr") + (s.early_copies ? " early" : " late") + (s.early_mma ? "/early-mma" : "");
}

// Schedules a case runs under: greedy with copies landing at issue (and wgmma reading late) exposes
// write-after-read hazards (a warp refilling a stage another warp, or the warpgroup's MMAs in flight,
// still read); late copies (with wgmma reading at issue) and round robin expose read-before-wait.
const emu::Schedule SCHEDULES[] = {
    {emu::Order::ASCENDING, true, true, false},
    {emu::Order::DESCENDING, true, false, true},
    {emu::Order::SHUFFLED, false, false, false},
    {emu::Order::DESCENDING, true, true, false},
    {emu::Order::ASCENDING, false, false, true},
    {emu::Order::SHUFFLED, true, true, true},
};

int failures = 0;
int checks = 0;

// |out - ref| <= (rounding of the output dtype) * |ref| + (fp32 accumulation) * sum|terms|
bool compare(const std::string& what, const std::vector<double>& out, const std::vector<double>& ref,
             const std::vector<double>& abs, DT out_dt) {
    const double eps = out_dt == DT_F32 ? 0.0 : out_dt == DT_F16 ? std::ldexp(1.0, -11) : std::ldexp(1.0, -8);
    double worst = 0;
    long bad = 0, first = -1;
    for (size_t i = 0; i < out.size(); ++i) {
        const double tol = eps * std::fabs(ref[i]) + 2e-5 * abs[i] + 1e-30;
        const double err = std::fabs(out[i] - ref[i]);
        if (!(err <= tol)) {
            if (first < 0) first = (long)i;
            ++bad;
        }
        if (std::isfinite(err) && abs[i] > 0) worst = std::max(worst, err / (abs[i] + std::fabs(ref[i])));
    }
    ++checks;
    if (bad) {
        ++failures;
        std::printf("FAIL %s: %ld of %zu elements wrong, first at %ld: got %.6g expected %.6g\n", what.c_str(), bad,
                    out.size(), first, out[first], ref[first]);
        return false;
    }
    std::printf("ok   %s (%zu elements, worst err/scale %.2e)\n", what.c_str(), out.size(), worst);
    return true;
}

// ------------------------------------------------------------------------------------------------
// Tensor-core implicit GEMM entries.

using IgemmFn = void (*)(const uint16_t*, const uint16_t*, const uint16_t*, void*, int, int, int, int, int, int, int,
                         int, int, int, int, int, int, int, int, int, int, int, int);

struct IgemmEntry {
    const char* name;
    IgemmFn fn;
    const int* cfg;
    int pass;
    DT dt;
    bool va, vb;
};

#define IG(NAME, PASS, DTYPE, VA, VB) IgemmEntry{#NAME, NAME, NAME##_cfg, conv::PASS, DTYPE, VA, VB}
#define IG_DTYPE(SUF, DTYPE)                                                                                  \
    IG(conv_fprop_##SUF##_128x256w8_vv, FPROP, DTYPE, true, true), IG(conv_fprop_##SUF##_128x128w8_vv, FPROP, DTYPE, true, true), \
        IG(conv_fprop_##SUF##_128x128w4_vv, FPROP, DTYPE, true, true), IG(conv_fprop_##SUF##_256x64w4_vv, FPROP, DTYPE, true, true), \
        IG(conv_fprop_##SUF##_128x64w4_vv, FPROP, DTYPE, true, true), IG(conv_fprop_##SUF##_64x64w4_vv, FPROP, DTYPE, true, true), \
        IG(conv_fprop_##SUF##_128x64w4_ss, FPROP, DTYPE, false, false),                                        \
        IG(conv_dgrad_##SUF##_128x256w8_vv, DGRAD, DTYPE, true, true), IG(conv_dgrad_##SUF##_128x128w8_vv, DGRAD, DTYPE, true, true), \
        IG(conv_dgrad_##SUF##_128x128w4_vv, DGRAD, DTYPE, true, true), IG(conv_dgrad_##SUF##_256x64w4_vv, DGRAD, DTYPE, true, true), \
        IG(conv_dgrad_##SUF##_128x64w4_vv, DGRAD, DTYPE, true, true), IG(conv_dgrad_##SUF##_64x64w4_vv, DGRAD, DTYPE, true, true), \
        IG(conv_dgrad_##SUF##_128x32w4_vs, DGRAD, DTYPE, true, false), IG(conv_dgrad_##SUF##_128x32w4_ss, DGRAD, DTYPE, false, false), \
        IG(conv_dgrad_##SUF##_128x16w4_vs, DGRAD, DTYPE, true, false), IG(conv_dgrad_##SUF##_128x16w4_ss, DGRAD, DTYPE, false, false), \
        IG(conv_wgrad_##SUF##_128x256w8_vv, WGRAD, DTYPE, true, true), IG(conv_wgrad_##SUF##_128x128w8_vv, WGRAD, DTYPE, true, true), \
        IG(conv_wgrad_##SUF##_128x128w4_vv, WGRAD, DTYPE, true, true), IG(conv_wgrad_##SUF##_64x256w4_vv, WGRAD, DTYPE, true, true), \
        IG(conv_wgrad_##SUF##_64x128w4_vv, WGRAD, DTYPE, true, true), IG(conv_wgrad_##SUF##_64x64w4_vv, WGRAD, DTYPE, true, true), \
        IG(conv_wgrad_##SUF##_64x64w4_vs, WGRAD, DTYPE, true, false), IG(conv_wgrad_##SUF##_64x64w4_ss, WGRAD, DTYPE, false, false)

const IgemmEntry IGEMM[] = {IG_DTYPE(f16, DT_F16), IG_DTYPE(bf16, DT_BF16)};

// The experimental wgmma kernels (conv_wgmma.cu): same parameters and launch rules.
#define WG_DTYPE(SUF, DTYPE)                                                                                \
    IG(conv_wg_fprop_##SUF##_128x256_vv, FPROP, DTYPE, true, true), IG(conv_wg_fprop_##SUF##_128x128_vv, FPROP, DTYPE, true, true), \
        IG(conv_wg_fprop_##SUF##_128x64_vv, FPROP, DTYPE, true, true),                                      \
        IG(conv_wg_dgrad_##SUF##_128x256_vv, DGRAD, DTYPE, true, true), IG(conv_wg_dgrad_##SUF##_128x128_vv, DGRAD, DTYPE, true, true), \
        IG(conv_wg_dgrad_##SUF##_128x64_vv, DGRAD, DTYPE, true, true),                                      \
        IG(conv_wg_wgrad_##SUF##_128x256_vv, WGRAD, DTYPE, true, true), IG(conv_wg_wgrad_##SUF##_128x128_vv, WGRAD, DTYPE, true, true), \
        IG(conv_wg_wgrad_##SUF##_64x256_vv, WGRAD, DTYPE, true, true),                                      \
        IG(conv_wg_fprop_##SUF##_128x256ws6_vv, FPROP, DTYPE, true, true), IG(conv_wg_fprop_##SUF##_128x128ws8_vv, FPROP, DTYPE, true, true), \
        IG(conv_wg_dgrad_##SUF##_128x256ws6_vv, DGRAD, DTYPE, true, true), IG(conv_wg_dgrad_##SUF##_128x128ws8_vv, DGRAD, DTYPE, true, true), \
        IG(conv_wg_wgrad_##SUF##_128x256ws6_vv, WGRAD, DTYPE, true, true), IG(conv_wg_wgrad_##SUF##_128x128ws8_vv, WGRAD, DTYPE, true, true)

const IgemmEntry WGEMM[] = {WG_DTYPE(f16, DT_F16), WG_DTYPE(bf16, DT_BF16)};

// Whether the entry's loaders accept the problem (the rule Conv2dCuda.java applies).
bool accepts(const IgemmEntry& e, const Problem& p) {
    const bool cg8 = p.Cg() % 8 == 0, kg8 = p.Kg() % 8 == 0;
    if (e.pass == conv::FPROP) return !e.va || (cg8);
    // dgrad and wgrad: A is dy (contiguous over Kg), B is w or x (contiguous over Cg)
    return (!e.va || kg8) && (!e.vb || cg8);
}

// dgrad's launches: one per stride phase {phaseH, phaseW, rows, columns} with dilation 1 (phases without
// pixels are not launched), else one gathering every tap {-1, -1, H, W} (conv_igemm.cu's header).
std::vector<std::array<int, 4>> dgrad_phases(const Problem& p) {
    std::vector<std::array<int, 4>> out;
    if (p.dh != 1 || p.dw != 1) {
        out.push_back({-1, -1, p.H, p.W});
        return out;
    }
    for (int a = 0; a < p.sh; ++a)
        for (int b = 0; b < p.sw; ++b) {
            const int h0 = ((a - p.pt) % p.sh + p.sh) % p.sh, w0 = ((b - p.pl) % p.sw + p.sw) % p.sw;
            const int hl = h0 < p.H ? (p.H - h0 + p.sh - 1) / p.sh : 0, wl = w0 < p.W ? (p.W - w0 + p.sw - 1) / p.sw : 0;
            if (hl > 0 && wl > 0) out.push_back({a, b, hl, wl});
        }
    return out;
}

void run_igemm(const IgemmEntry& e, const Problem& p, int splitLen, emu::Schedule sched, bool bias,
               std::mt19937& rng) {
    const DT dt = e.dt;
    const int P = p.P(), Q = p.Q();
    const size_t nx = (size_t)p.N * p.H * p.W * p.C, nw = (size_t)p.K * p.R * p.S * p.Cg(),
                 ny = (size_t)p.N * P * Q * p.K;
    auto x = random_values(nx, dt, rng), w = random_values(nw, dt, rng), dy = random_values(ny, dt, rng);
    std::vector<double> b;
    if (bias && e.pass == conv::FPROP) b = random_values(p.K, dt, rng);
    Reference ref = reference(p, NHWC, x, w, b, dy);

    const bool after = (rng() & 1) != 0;  // which side of each buffer the guard page sits
    emu::Buffer bx(nx * 2, after), bw(nw * 2, after), bdy(ny * 2, after), bb(std::max<size_t>(1, p.K) * 2, after);
    store(dt, bx.data, x);
    store(dt, bw.data, w);
    store(dt, bdy.data, dy);
    if (!b.empty()) store(dt, bb.data, b);

    int M, NG, KD;
    if (e.pass == conv::FPROP) { M = p.N * P * Q; NG = p.Kg(); KD = p.R * p.S * p.Cg(); }
    else if (e.pass == conv::DGRAD) { M = p.N * p.H * p.W; NG = p.Cg(); KD = p.R * p.S * p.Kg(); }
    else { M = p.Kg(); NG = p.R * p.S * p.Cg(); KD = p.N * P * Q; }
    const int BM = e.cfg[2], BN = e.cfg[3];
    const int splits = e.pass == conv::WGRAD ? (KD + splitLen - 1) / splitLen : 1;
    const size_t nout = e.pass == conv::FPROP ? ny : e.pass == conv::DGRAD ? nx : (size_t)splits * p.K * NG;
    emu::Buffer bo(nout * (e.pass == conv::WGRAD ? 4 : 2), after);

    const uint16_t* a = e.pass == conv::FPROP ? bx.as<uint16_t>() : bdy.as<uint16_t>();
    const uint16_t* bm = e.pass == conv::WGRAD ? bx.as<uint16_t>() : bw.as<uint16_t>();
    const uint16_t* bp = b.empty() ? nullptr : bb.as<uint16_t>();
    dim3 block{(unsigned)e.cfg[0], 1u, 1u};
    void* o = bo.data;
    std::vector<std::array<int, 4>> launches = {{-1, -1, 0, 0}};
    if (e.pass == conv::DGRAD) launches = dgrad_phases(p);
    for (const auto& ph : launches) {
        const int m = e.pass == conv::DGRAD ? p.N * ph[2] * ph[3] : M;
        dim3 grid{(unsigned)(((m + BM - 1) / BM) * ((NG + BN - 1) / BN)), 1u, (unsigned)(p.groups * splits)};
        emu::launch(grid, block, e.cfg[1], sched, [&] {
            e.fn(a, bm, bp, o, p.N, p.H, p.W, p.C, p.K, p.R, p.S, P, Q, p.sh, p.sw, p.pt, p.pl, p.dh, p.dw, p.groups,
                 splitLen, ph[0], ph[1]);
        });
    }

    std::string what = std::string(e.name) + " " + p.str() +
                       (e.pass == conv::WGRAD ? " split " + std::to_string(splitLen) : "") + describe(sched);
    if (e.pass == conv::WGRAD) {
        std::vector<double> dw(nw, 0.0);
        for (int s = 0; s < splits; ++s)
            for (int k = 0; k < p.K; ++k)
                for (int j = 0; j < NG; ++j) dw[(size_t)k * NG + j] += bo.as<float>()[((size_t)s * p.K + k) * NG + j];
        compare(what, dw, ref.dw, ref.dwabs, DT_F32);
    } else {
        std::vector<double> out(nout);
        for (size_t i = 0; i < nout; ++i) out[i] = load(dt, bo.data, i);
        compare(what, out, e.pass == conv::FPROP ? ref.y : ref.dx, e.pass == conv::FPROP ? ref.yabs : ref.dxabs, dt);
    }
}

// ------------------------------------------------------------------------------------------------
// Portable kernels: SIMT implicit GEMM and depthwise (any layout), with wgrad partials summed by
// conv_reduce_* and the bias gradient by conv_bias_grad_* + conv_reduce_*.

using PortableFn = void (*)(const void*, const void*, const void*, void*, int, int, int, int, int, int, int, int, int,
                            int, int, int, int, int, int, int, int, int);
using ReduceFn = void (*)(const float*, void*, long long, int);
using BiasGradFn = void (*)(const void*, float*, int, int, int, int, int);

struct PortableEntry {
    const char* name;
    PortableFn fn;
    int pass;
    DT dt;
    bool depthwise;
};

#define PE(NAME, PASS, DTYPE, DW) PortableEntry{#NAME, reinterpret_cast<PortableFn>(NAME), PASS, DTYPE, DW}
#define PE_DTYPE(SUF, DTYPE)                                                                                     \
    PE(conv_simt_fprop_##SUF, 0, DTYPE, false), PE(conv_simt_dgrad_##SUF, 1, DTYPE, false),                       \
        PE(conv_simt_wgrad_##SUF, 2, DTYPE, false), PE(conv_dw_fprop_##SUF, 0, DTYPE, true),                      \
        PE(conv_dw_dgrad_##SUF, 1, DTYPE, true), PE(conv_dw_wgrad_##SUF, 2, DTYPE, true)

const PortableEntry PORTABLE[] = {PE_DTYPE(f32, DT_F32), PE_DTYPE(f16, DT_F16), PE_DTYPE(bf16, DT_BF16)};

ReduceFn reducer(DT dt) {
    return dt == DT_F32 ? reinterpret_cast<ReduceFn>(conv_reduce_f32)
                        : dt == DT_F16 ? reinterpret_cast<ReduceFn>(conv_reduce_f16) : reinterpret_cast<ReduceFn>(conv_reduce_bf16);
}

BiasGradFn bias_grader(DT dt) {
    return dt == DT_F32 ? reinterpret_cast<BiasGradFn>(conv_bias_grad_f32)
                        : dt == DT_F16 ? reinterpret_cast<BiasGradFn>(conv_bias_grad_f16)
                                       : reinterpret_cast<BiasGradFn>(conv_bias_grad_bf16);
}

size_t dt_bytes(DT dt) { return dt == DT_F32 ? 4 : 2; }

// Sums fp32 partials [splits][count] into a T output with conv_reduce_* and returns it as doubles.
std::vector<double> reduce_partials(DT dt, const float* partial, long long count, int splits, emu::Schedule sched,
                                    bool after) {
    emu::Buffer out((size_t)count * dt_bytes(dt), after);
    const unsigned blocks = (unsigned)std::min<long long>((count + 255) / 256, 65535);
    ReduceFn fn = reducer(dt);
    void* o = out.data;
    emu::launch(dim3{std::max(1u, blocks), 1u, 1u}, dim3{256u, 1u, 1u}, 0, sched, [&] { fn(partial, o, count, splits); });
    std::vector<double> v((size_t)count);
    for (long long i = 0; i < count; ++i) v[(size_t)i] = load(dt, out.data, (size_t)i);
    return v;
}

void run_portable(const PortableEntry& e, const Problem& p, Layout l, int splitLen, emu::Schedule sched, bool bias,
                  std::mt19937& rng) {
    const DT dt = e.dt;
    const size_t es = dt_bytes(dt);
    const int P = p.P(), Q = p.Q();
    const size_t nx = (size_t)p.N * p.H * p.W * p.C, nw = (size_t)p.K * p.R * p.S * p.Cg(),
                 ny = (size_t)p.N * P * Q * p.K;
    auto x = random_values(nx, dt, rng), w = random_values(nw, dt, rng), dy = random_values(ny, dt, rng);
    std::vector<double> b;
    if (bias && e.pass == 0) b = random_values(p.K, dt, rng);
    Reference ref = reference(p, l, x, w, b, dy);
    const bool after = (rng() & 1) != 0;
    emu::Buffer bx(nx * es, after), bw(nw * es, after), bdy(ny * es, after), bb(std::max<size_t>(1, p.K) * es, after);
    store(dt, bx.data, x);
    store(dt, bw.data, w);
    store(dt, bdy.data, dy);
    if (!b.empty()) store(dt, bb.data, b);
    const void* a = e.pass == 0 ? bx.data : bdy.data;
    const void* bm = e.pass == 2 ? bx.data : bw.data;
    const void* bp = b.empty() ? nullptr : bb.data;

    int splits = 1;
    dim3 grid, block;
    size_t nout;
    if (e.depthwise) {
        if (e.pass == 2) {
            splits = (p.N * P * Q + splitLen - 1) / splitLen;
            grid = dim3{(unsigned)((p.K + 31) / 32), (unsigned)splits, 1u};
            block = dim3{32u, 8u, 1u};
            nout = (size_t)splits * nw;
        } else {
            const long per_image = e.pass == 0 ? (long)p.K * P * Q : (long)p.C * p.H * p.W;
            grid = dim3{(unsigned)((per_image + 255) / 256), (unsigned)p.N, 1u};
            block = dim3{256u, 1u, 1u};
            nout = e.pass == 0 ? ny : nx;
        }
    } else {
        int M, NG, KD;
        if (e.pass == 0) { M = p.N * P * Q; NG = p.Kg(); KD = p.R * p.S * p.Cg(); }
        else if (e.pass == 1) { M = p.N * p.H * p.W; NG = p.Cg(); KD = p.R * p.S * p.Kg(); }
        else { M = p.Kg(); NG = p.R * p.S * p.Cg(); KD = p.N * P * Q; }
        if (e.pass == 2) splits = (KD + splitLen - 1) / splitLen;
        grid = dim3{(unsigned)(((M + 63) / 64) * ((NG + 63) / 64)), 1u, (unsigned)(p.groups * splits)};
        block = dim3{256u, 1u, 1u};
        nout = e.pass == 0 ? ny : e.pass == 1 ? nx : (size_t)splits * nw;
    }
    emu::Buffer bo(nout * (e.pass == 2 ? 4 : es), after);
    void* o = bo.data;
    emu::launch(grid, block, 0, sched, [&] {
        e.fn(a, bm, bp, o, p.N, p.H, p.W, p.C, p.K, p.R, p.S, P, Q, p.sh, p.sw, p.pt, p.pl, p.dh, p.dw, p.groups,
             splitLen, l == NCHW ? 1 : 0);
    });
    const std::string what = std::string(e.name) + (l == NCHW ? " NCHW " : " NHWC ") + p.str() +
                             (e.pass == 2 ? " split " + std::to_string(splitLen) : "") + describe(sched);
    if (e.pass == 2) {
        compare(what + " +reduce", reduce_partials(dt, bo.as<float>(), (long long)nw, splits, sched, after), ref.dw,
                ref.dwabs, dt);
        return;
    }
    std::vector<double> out(nout);
    for (size_t i = 0; i < nout; ++i) out[i] = load(dt, bo.data, i);
    compare(what, out, e.pass == 0 ? ref.y : ref.dx, e.pass == 0 ? ref.yabs : ref.dxabs, dt);

    if (e.pass == 0) {  // the bias gradient of the same problem, from dy
        const int pq = P * Q, bsplits = (p.N * pq + splitLen - 1) / splitLen;
        emu::Buffer part((size_t)bsplits * p.K * 4, after);
        BiasGradFn fn = bias_grader(dt);
        const void* d = bdy.data;
        float* pp = part.as<float>();
        emu::launch(dim3{(unsigned)((p.K + 31) / 32), (unsigned)bsplits, 1u}, dim3{32u, 8u, 1u}, 0, sched,
                    [&] { fn(d, pp, p.N, p.K, pq, splitLen, l == NCHW ? 1 : 0); });
        std::vector<double> dbabs(p.K, 0.0);
        for (int n = 0; n < p.N; ++n)
            for (int k = 0; k < p.K; ++k)
                for (int j = 0; j < pq; ++j) dbabs[k] += std::fabs(dy[Index{p, l}.y(n, k, j / Q, j % Q)]);
        compare(std::string("conv_bias_grad ") + (l == NCHW ? "NCHW " : "NHWC ") + p.str() + " split " +
                    std::to_string(splitLen) + describe(sched) + " +reduce",
                reduce_partials(dt, pp, p.K, bsplits, sched, after), ref.db, dbabs, dt);
    }
}

void run_transpose(bool wide, int batch, int rows, int cols, emu::Schedule sched, std::mt19937& rng) {
    const size_t n = (size_t)batch * rows * cols, es = wide ? 4 : 2;
    const bool after = (rng() & 1) != 0;
    emu::Buffer in(n * es, after), out(n * es, after);
    std::vector<uint32_t> v(n);
    for (auto& e : v) e = (uint32_t)rng() & (wide ? 0x7fffffffu : 0x7fffu);
    for (size_t i = 0; i < n; ++i) {
        if (wide) in.as<uint32_t>()[i] = v[i];
        else in.as<uint16_t>()[i] = (uint16_t)v[i];
    }
    const dim3 grid{(unsigned)((cols + 31) / 32), (unsigned)std::min((rows + 31) / 32, 2), (unsigned)std::min(batch, 2)};
    const void* ip = in.data;
    void* op = out.data;
    emu::launch(grid, dim3{32u, 8u, 1u}, 0, sched, [&] {
        if (wide) conv_transpose_b32(static_cast<const uint32_t*>(ip), static_cast<uint32_t*>(op), batch, rows, cols);
        else conv_transpose_b16(static_cast<const uint16_t*>(ip), static_cast<uint16_t*>(op), batch, rows, cols);
    });
    long bad = 0;
    for (int b = 0; b < batch; ++b)
        for (int r = 0; r < rows; ++r)
            for (int c = 0; c < cols; ++c) {
                const size_t src = ((size_t)b * rows + r) * cols + c, dst = ((size_t)b * cols + c) * rows + r;
                const uint32_t got = wide ? out.as<uint32_t>()[dst] : out.as<uint16_t>()[dst];
                if (got != v[src]) ++bad;
            }
    ++checks;
    char what[128];
    std::snprintf(what, sizeof what, "conv_transpose_%s batch %d rows %d cols %d (grid strides)", wide ? "b32" : "b16",
                  batch, rows, cols);
    if (bad) {
        ++failures;
        std::printf("FAIL %s: %ld elements wrong\n", what, bad);
    } else {
        std::printf("ok   %s\n", what);
    }
}

// ------------------------------------------------------------------------------------------------
// Replay of one launch recorded by the Java side.

struct Region {
    uint64_t address, size;
    long file_offset;
    emu::Buffer* host;
};

struct ReplayArgs {
    std::vector<char> types;
    std::vector<uint64_t> values;
    const std::vector<Region>* regions;

    void* ptr(int i) const {
        if (types.at(i) != 'L') emu::fail("replay: a pointer argument is not 64-bit");
        const uint64_t v = values[i];
        if (v == 0) return nullptr;
        for (const Region& r : *regions)
            if (v >= r.address && v < r.address + r.size) return static_cast<unsigned char*>(r.host->data) + (v - r.address);
        std::fprintf(stderr, "replay: argument %d = 0x%llx is in no allocation\n", i, (unsigned long long)v);
        emu::fail("replay: pointer outside device memory");
    }
    int i32(int i) const {
        if (types.at(i) != 'I') emu::fail("replay: an int argument is not 32-bit");
        return (int)(uint32_t)values[i];
    }
    long long i64(int i) const {
        if (types.at(i) != 'L') emu::fail("replay: a long argument is not 64-bit");
        return (long long)values[i];
    }
};

using Invoke = std::function<void(const ReplayArgs&)>;

std::vector<std::pair<std::string, Invoke>> replay_table() {
    std::vector<std::pair<std::string, Invoke>> t;
    std::vector<IgemmEntry> tensor_core(std::begin(IGEMM), std::end(IGEMM));
    tensor_core.insert(tensor_core.end(), std::begin(WGEMM), std::end(WGEMM));
    for (const IgemmEntry& e : tensor_core) {
        IgemmFn fn = e.fn;
        t.push_back({e.name, [fn](const ReplayArgs& a) {
                         fn((const uint16_t*)a.ptr(0), (const uint16_t*)a.ptr(1), (const uint16_t*)a.ptr(2), a.ptr(3),
                            a.i32(4), a.i32(5), a.i32(6), a.i32(7), a.i32(8), a.i32(9), a.i32(10), a.i32(11), a.i32(12),
                            a.i32(13), a.i32(14), a.i32(15), a.i32(16), a.i32(17), a.i32(18), a.i32(19), a.i32(20),
                            a.i32(21), a.i32(22));
                     }});
    }
    for (const PortableEntry& e : PORTABLE) {
        PortableFn fn = e.fn;
        t.push_back({e.name, [fn](const ReplayArgs& a) {
                         fn(a.ptr(0), a.ptr(1), a.ptr(2), a.ptr(3), a.i32(4), a.i32(5), a.i32(6), a.i32(7), a.i32(8),
                            a.i32(9), a.i32(10), a.i32(11), a.i32(12), a.i32(13), a.i32(14), a.i32(15), a.i32(16),
                            a.i32(17), a.i32(18), a.i32(19), a.i32(20), a.i32(21));
                     }});
    }
    for (DT dt : {DT_F32, DT_F16, DT_BF16}) {
        const std::string suf = dt == DT_F32 ? "f32" : dt == DT_F16 ? "f16" : "bf16";
        ReduceFn r = reducer(dt);
        BiasGradFn b = bias_grader(dt);
        t.push_back({"conv_reduce_" + suf,
                     [r](const ReplayArgs& a) { r((const float*)a.ptr(0), a.ptr(1), a.i64(2), a.i32(3)); }});
        t.push_back({"conv_bias_grad_" + suf, [b](const ReplayArgs& a) {
                         b(a.ptr(0), (float*)a.ptr(1), a.i32(2), a.i32(3), a.i32(4), a.i32(5), a.i32(6));
                     }});
    }
    t.push_back({"conv_transpose_b16", [](const ReplayArgs& a) {
                     conv_transpose_b16((const uint16_t*)a.ptr(0), (uint16_t*)a.ptr(1), a.i32(2), a.i32(3), a.i32(4));
                 }});
    t.push_back({"conv_s2d_x_b16", [](const ReplayArgs& a) {
                     conv_s2d_x_b16((const uint16_t*)a.ptr(0), (uint16_t*)a.ptr(1), a.i32(2), a.i32(3), a.i32(4),
                                    a.i32(5), a.i32(6), a.i32(7), a.i32(8), a.i32(9));
                 }});
    t.push_back({"conv_d2s_x_b16", [](const ReplayArgs& a) {
                     conv_d2s_x_b16((const uint16_t*)a.ptr(0), (uint16_t*)a.ptr(1), a.i32(2), a.i32(3), a.i32(4),
                                    a.i32(5), a.i32(6), a.i32(7), a.i32(8), a.i32(9));
                 }});
    t.push_back({"conv_s2d_w_b16", [](const ReplayArgs& a) {
                     conv_s2d_w_b16((const uint16_t*)a.ptr(0), (uint16_t*)a.ptr(1), a.i32(2), a.i32(3), a.i32(4),
                                    a.i32(5), a.i32(6), a.i32(7), a.i32(8), a.i32(9), a.i32(10), a.i32(11));
                 }});
    t.push_back({"conv_d2s_w_b16", [](const ReplayArgs& a) {
                     conv_d2s_w_b16((const uint16_t*)a.ptr(0), (uint16_t*)a.ptr(1), a.i32(2), a.i32(3), a.i32(4),
                                    a.i32(5), a.i32(6), a.i32(7), a.i32(8), a.i32(9), a.i32(10), a.i32(11));
                 }});
    t.push_back({"conv_transpose_b32", [](const ReplayArgs& a) {
                     conv_transpose_b32((const uint32_t*)a.ptr(0), (uint32_t*)a.ptr(1), a.i32(2), a.i32(3), a.i32(4));
                 }});
    return t;
}

int replay(const char* path) {
    FILE* f = std::fopen(path, "r+b");
    if (!f) emu::fail("replay: cannot open the launch file");
    auto rd = [&](void* p, size_t n) {
        if (std::fread(p, 1, n, f) != n) emu::fail("replay: truncated launch file");
    };
    auto u32 = [&] { uint32_t v; rd(&v, 4); return v; };
    auto u64 = [&] { uint64_t v; rd(&v, 8); return v; };
    char magic[8];
    rd(magic, 8);
    if (std::memcmp(magic, "K4JCONV1", 8) != 0) emu::fail("replay: not a launch file");
    const uint32_t nalloc = u32();
    std::vector<Region> regions;
    std::vector<std::unique_ptr<emu::Buffer>> buffers;
    for (uint32_t i = 0; i < nalloc; ++i) {
        Region r;
        r.address = u64();
        r.size = u64();
        r.file_offset = std::ftell(f);
        buffers.emplace_back(new emu::Buffer((size_t)r.size, true));
        r.host = buffers.back().get();
        rd(r.host->data, (size_t)r.size);
        regions.push_back(r);
    }
    std::string name(u32(), '\0');
    rd(&name[0], name.size());
    dim3 grid{u32(), u32(), u32()}, block{u32(), u32(), u32()};
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
    Invoke run;
    for (auto& e : replay_table())
        if (e.first == name) run = e.second;
    if (!run) {
        std::fprintf(stderr, "replay: no kernel %s in the emulation\n", name.c_str());
        return 2;
    }
    emu::launch(grid, block, smem, SCHEDULES[3], [&] { run(args); });
    for (const Region& r : regions) {
        std::fseek(f, r.file_offset, SEEK_SET);
        if (std::fwrite(r.host->data, 1, (size_t)r.size, f) != r.size) emu::fail("replay: cannot write back");
    }
    std::fclose(f);
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    emu::install_guard_handler();
    if (argc == 3 && std::string(argv[1]) == "--replay") return replay(argv[2]);
    const std::string filter = argc > 1 ? argv[1] : "";
    std::mt19937 rng(20251126);

    // Vector-path shapes (Cg, Kg multiples of 8) and any-shape ones; each spans several tiles or k-tiles.
    const Problem vec[] = {
        {2, 32, 7, 9, 40, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1},      // 3x3 pad 1: KD = 288 (9 k-tiles)
        {3, 16, 10, 6, 48, 3, 2, 2, 1, 1, 0, 2, 1, 1, 2, 2},     // groups 2, stride 2x1, asymmetric pad, dil 1x2
        {2, 64, 5, 5, 136, 1, 1, 1, 1, 0, 0, 0, 0, 1, 1, 1},     // 1x1, NG 136 spans two 128-wide tiles
        {1, 24, 13, 11, 8, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1, 1},     // stride 2 (dgrad: four phases), K=8
        {2, 16, 10, 8, 16, 2, 2, 3, 3, 0, 1, 0, 0, 1, 1, 1},     // stride 3 > kernel 2: phases without taps
        {4, 16, 13, 11, 24, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1},    // wgrad KD = 572: 18 k-tiles, every pipeline wraps
    };
    const Problem any[] = {
        {2, 3, 11, 13, 20, 5, 4, 2, 2, 2, 1, 2, 2, 1, 1, 1},     // stem-like: C=3, 5x4 stride 2
        {2, 6, 9, 7, 9, 3, 3, 1, 2, 1, 1, 0, 1, 2, 1, 3},        // groups 3: Cg=2, Kg=3, dilation 2x1
        {1, 10, 6, 6, 12, 2, 2, 1, 1, 0, 0, 0, 0, 1, 1, 1},      // K=12: Kg not a multiple of 8
    };

    int variant = 0;
    const int nsched = sizeof SCHEDULES / sizeof SCHEDULES[0];
    std::vector<IgemmEntry> tensor_core(std::begin(IGEMM), std::end(IGEMM));
    tensor_core.insert(tensor_core.end(), std::begin(WGEMM), std::end(WGEMM));
    for (const IgemmEntry& e : tensor_core) {
        if (!filter.empty() && std::string(e.name).find(filter) == std::string::npos) continue;
        auto run_set = [&](const Problem* ps, size_t n) {
            for (size_t i = 0; i < n; ++i) {
                if (!accepts(e, ps[i])) continue;
                const emu::Schedule s1 = SCHEDULES[variant % nsched], s2 = SCHEDULES[(variant + 1) % nsched];
                variant += 2;
                if (e.pass == conv::WGRAD) {
                    run_igemm(e, ps[i], 64, s1, false, rng);       // several splits, the last one short
                    run_igemm(e, ps[i], 1 << 20, s2, false, rng);  // one split
                } else {
                    run_igemm(e, ps[i], 0, s1, true, rng);
                    run_igemm(e, ps[i], 0, s2, false, rng);
                }
            }
        };
        run_set(vec, sizeof vec / sizeof vec[0]);
        run_set(any, sizeof any / sizeof any[0]);
    }
    const Problem portable[] = {
        {2, 6, 7, 9, 10, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1},       // 3x3 pad 1
        {3, 6, 10, 6, 9, 3, 2, 2, 1, 1, 0, 2, 1, 1, 2, 3},       // groups 3, stride 2x1, asymmetric pad, dil 1x2
        {2, 3, 11, 13, 70, 5, 4, 2, 2, 2, 1, 2, 2, 1, 1, 1},     // C=3, NG=70 spans two tiles
        {1, 20, 5, 5, 17, 1, 1, 1, 1, 0, 0, 0, 0, 1, 1, 1},      // 1x1
    };
    const Problem depthwise[] = {
        {2, 5, 9, 7, 5, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 5},        // groups = C = K
        {3, 4, 10, 8, 8, 3, 2, 2, 1, 2, 0, 1, 1, 2, 2, 4},       // channel multiplier 2, stride 2x1, dilation 2
        {1, 40, 6, 5, 40, 5, 5, 2, 2, 2, 2, 2, 2, 1, 1, 40},     // 40 channels: two 32-channel blocks in wgrad
    };
    for (const PortableEntry& e : PORTABLE) {
        if (!filter.empty() && std::string(e.name).find(filter) == std::string::npos) continue;
        const Problem* ps = e.depthwise ? depthwise : portable;
        const size_t n = e.depthwise ? sizeof depthwise / sizeof depthwise[0] : sizeof portable / sizeof portable[0];
        for (size_t i = 0; i < n; ++i)
            for (Layout l : {NHWC, NCHW}) {
                const emu::Schedule s = SCHEDULES[variant++ % nsched];
                run_portable(e, ps[i], l, 48, s, true, rng);
                if (e.pass == 2 || (e.pass == 0 && i == 0)) run_portable(e, ps[i], l, 1 << 20, s, false, rng);
            }
    }
    if (filter.empty() || std::string("conv_transpose").find(filter) != std::string::npos) {
        for (bool wide : {false, true}) {
            run_transpose(wide, 3, 37, 70, SCHEDULES[variant++ % nsched], rng);
            run_transpose(wide, 1, 100, 9, SCHEDULES[variant++ % nsched], rng);
        }
    }
    std::printf("%d checks, %d failures (%ld launches)\n", checks, failures, emu::st().launches);
    return failures == 0 && checks > 0 ? 0 : 1;
}
