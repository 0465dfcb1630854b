// Runs the kernels of layernorm.cu on the CPU emulator (cuda_emu.h) against a float64 reference, over
// odd shapes and every launch shape the Java side may choose: threads per row (multiples of 32),
// rows per block, vectors per thread, the fast and the any-shape path, with and without gamma/beta,
// layer norm and RMS norm, fp32/fp16/bf16. Outputs are poisoned (NaN) before each run, so an
// unwritten element fails. Prints one line per failure and a summary; exit status 1 on any failure.
#include "cuda_emu.h"

#include <cstdio>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "layernorm_emu.cu"

namespace {

template <typename T> float host_f32(T v);
template <> float host_f32<float>(float v) { return v; }
template <> float host_f32<__half>(__half v) { return __half2float(v); }
template <> float host_f32<__nv_bfloat16>(__nv_bfloat16 v) { return __bfloat162float(v); }
template <typename T> T host_from(float v);
template <> float host_from<float>(float v) { return v; }
template <> __half host_from<__half>(float v) { return __float2half_rn(v); }
template <> __nv_bfloat16 host_from<__nv_bfloat16>(float v) { return __float2bfloat16_rn(v); }

template <typename T> const char* name();
template <> const char* name<float>() { return "f32"; }
template <> const char* name<__half>() { return "f16"; }
template <> const char* name<__nv_bfloat16>() { return "bf16"; }

// Relative error ||out - ref|| / ||ref||; infinite when out holds NaN (unwritten or wrong).
// ||out - ref|| / ||scale||, for results that are differences of larger terms of size `scale`.
template <typename T>
double scaled_error(const std::vector<T>& out, const std::vector<double>& ref, const std::vector<double>& scale) {
    double num = 0, den = 0;
    for (size_t i = 0; i < ref.size(); ++i) {
        const double o = host_f32(out[i]);
        if (!std::isfinite(o)) return INFINITY;
        num += (o - ref[i]) * (o - ref[i]);
        den += scale[i] * scale[i];
    }
    return den > 0 ? std::sqrt(num / den) : std::sqrt(num);
}

template <typename T>
double rel_error(const std::vector<T>& out, const std::vector<double>& ref) {
    double num = 0, den = 0;
    for (size_t i = 0; i < ref.size(); ++i) {
        const double o = host_f32(out[i]);
        if (!std::isfinite(o)) return INFINITY;
        num += (o - ref[i]) * (o - ref[i]);
        den += ref[i] * ref[i];
    }
    return den > 0 ? std::sqrt(num / den) : std::sqrt(num);
}

// Output rounding alone gives ~0.3 ulp of relative error; a few ulps covers fp32 math on top of it.
template <typename T> double tolerance();
template <> double tolerance<float>() { return 1e-5; }
template <> double tolerance<__half>() { return 2e-3; }
template <> double tolerance<__nv_bfloat16>() { return 1e-2; }

int failures = 0, passes = 0;
std::mt19937_64 rng(std::random_device{}());

void report(bool ok, const std::string& what, double err, double tol) {
    if (ok) {
        ++passes;
        return;
    }
    ++failures;
    std::printf("FAIL %s: rel error %.3e > %.1e\n", what.c_str(), err, tol);
}

template <typename T>
std::vector<T> random_vec(size_t n, double scale, double offset) {
    std::normal_distribution<float> d(0.f, 1.f);
    std::vector<T> v(n);
    for (auto& e : v) e = host_from<T>((float)(offset + scale * d(rng)));
    return v;
}

template <typename T> std::vector<T> poisoned(size_t n) { return std::vector<T>(n, host_from<T>(NAN)); }

struct Problem {
    int rows, cols;
    bool rms, gamma, beta;
    float eps;
};

template <typename T>
struct Data {
    std::vector<T> x, g, b, dy;
    std::vector<double> mean, rstd;  // reference statistics
};

template <typename T>
Data<T> make_data(const Problem& p) {
    Data<T> d;
    // an offset tests that the variance does not cancel (E[x^2] - E[x]^2 would at offset 8)
    d.x = random_vec<T>((size_t)p.rows * p.cols, 1.0, 8.0);
    d.g = random_vec<T>(p.cols, 0.5, 1.0);
    d.b = random_vec<T>(p.cols, 0.5, 0.0);
    d.dy = random_vec<T>((size_t)p.rows * p.cols, 1.0, 0.0);
    d.mean.assign(p.rows, 0);
    d.rstd.assign(p.rows, 0);
    for (int r = 0; r < p.rows; ++r) {
        double s = 0;
        for (int c = 0; c < p.cols; ++c) s += host_f32(d.x[(size_t)r * p.cols + c]);
        const double mu = p.rms ? 0 : s / p.cols;
        double q = 0;
        for (int c = 0; c < p.cols; ++c) {
            const double v = host_f32(d.x[(size_t)r * p.cols + c]) - mu;
            q += v * v;
        }
        d.mean[r] = mu;
        d.rstd[r] = 1.0 / std::sqrt(q / p.cols + p.eps);
    }
    return d;
}

std::string describe(const char* kernel, const Problem& p, dim3 block, int grid) {
    char buf[256];
    std::snprintf(buf, sizeof buf, "%s rows=%d cols=%d %s%s%s block=(%u,%u) grid=%d", kernel, p.rows, p.cols,
                  p.rms ? "rms" : "ln", p.gamma ? " gamma" : "", p.beta ? " beta" : "", block.x, block.y, grid);
    return buf;
}

using FwdFn = void (*)(const void*, const void*, const void*, void*, float*, float*, int, int, float, int);

template <typename T>
void check_forward(const char* kernel, void (*fn)(const T*, const T*, const T*, T*, float*, float*, int, int, float, int),
                   const Problem& p, const Data<T>& d, dim3 block) {
    const int grid = (p.rows + block.y - 1) / block.y;
    auto y = poisoned<T>((size_t)p.rows * p.cols);
    std::vector<float> mean(p.rows, NAN), rstd(p.rows, NAN);
    const T* gp = p.gamma ? d.g.data() : nullptr;
    const T* bp = p.beta ? d.b.data() : nullptr;
    float* mp = p.rms ? nullptr : mean.data();
    emu::launch(dim3(grid), block, 0, [&] {
        fn(d.x.data(), gp, bp, y.data(), mp, rstd.data(), p.rows, p.cols, p.eps, p.rms ? 1 : 0);
    });
    std::vector<double> ref((size_t)p.rows * p.cols);
    for (int r = 0; r < p.rows; ++r)
        for (int c = 0; c < p.cols; ++c) {
            const size_t i = (size_t)r * p.cols + c;
            const double xh = (host_f32(d.x[i]) - d.mean[r]) * d.rstd[r];
            ref[i] = xh * (p.gamma ? host_f32(d.g[c]) : 1.0) + (p.beta ? host_f32(d.b[c]) : 0.0);
        }
    const std::string what = std::string(name<T>()) + " " + describe(kernel, p, block, grid);
    double e = rel_error(y, ref);
    report(e <= tolerance<T>(), what + " y", e, tolerance<T>());
    e = rel_error(rstd, d.rstd);
    report(e <= 1e-5, what + " rstd", e, 1e-5);
    if (!p.rms) {
        e = rel_error(mean, d.mean);
        report(e <= 1e-5, what + " mean", e, 1e-5);
    }
}

// Backward reference from the same fp32 statistics the kernels get. `dx_scale` is the size of the terms
// dx is the difference of, rstd * (|g*dy| + |mean(g*dy)| + |xhat * mean(g*dy*xhat)|): where they cancel
// (RMS norm of one column gives dx ~ eps), fp32 arithmetic can only be judged against them.
template <typename T>
void backward_reference(const Problem& p, const Data<T>& d, const std::vector<float>& mean,
                        const std::vector<float>& rstd, std::vector<double>& dx, std::vector<double>& dx_scale,
                        std::vector<double>& dg, std::vector<double>& db) {
    dx.assign((size_t)p.rows * p.cols, 0);
    dx_scale.assign((size_t)p.rows * p.cols, 0);
    dg.assign(p.cols, 0);
    db.assign(p.cols, 0);
    for (int r = 0; r < p.rows; ++r) {
        double a = 0, b = 0;
        const double mu = p.rms ? 0 : mean[r], rs = rstd[r];
        for (int c = 0; c < p.cols; ++c) {
            const size_t i = (size_t)r * p.cols + c;
            const double xh = (host_f32(d.x[i]) - mu) * rs;
            const double gdy = (p.gamma ? host_f32(d.g[c]) : 1.0) * host_f32(d.dy[i]);
            a += gdy;
            b += gdy * xh;
            dg[c] += host_f32(d.dy[i]) * xh;
            db[c] += host_f32(d.dy[i]);
        }
        a = p.rms ? 0 : a / p.cols;
        b /= p.cols;
        for (int c = 0; c < p.cols; ++c) {
            const size_t i = (size_t)r * p.cols + c;
            const double xh = (host_f32(d.x[i]) - mu) * rs;
            const double gdy = (p.gamma ? host_f32(d.g[c]) : 1.0) * host_f32(d.dy[i]);
            dx[i] = rs * (gdy - a - xh * b);
            dx_scale[i] = rs * (std::fabs(gdy) + std::fabs(a) + std::fabs(xh * b));
        }
    }
}

template <typename T>
struct Kernels {
    void (*fwd_v[4])(const T*, const T*, const T*, T*, float*, float*, int, int, float, int);
    void (*fwd_any)(const T*, const T*, const T*, T*, float*, float*, int, int, float, int);
    void (*bwd_v[3])(const T*, const T*, const T*, const float*, const float*, T*, float*, float*, int, int, int);
    void (*dx_any)(const T*, const T*, const T*, const float*, const float*, T*, int, int, int);
    void (*params_any)(const T*, const T*, const float*, const float*, float*, float*, int, int, int);
    void (*finalize)(const float*, const float*, T*, T*, int, int);
};

const Kernels<float> K32 = {{ln_fwd_v1_f32, ln_fwd_v2_f32, ln_fwd_v4_f32, ln_fwd_v8_f32}, ln_fwd_any_f32,
                            {ln_bwd_v1_f32, ln_bwd_v2_f32, ln_bwd_v4_f32}, ln_bwd_dx_any_f32,
                            ln_bwd_params_any_f32, ln_bwd_finalize_f32};
const Kernels<__half> K16 = {{ln_fwd_v1_f16, ln_fwd_v2_f16, ln_fwd_v4_f16, ln_fwd_v8_f16}, ln_fwd_any_f16,
                             {ln_bwd_v1_f16, ln_bwd_v2_f16, ln_bwd_v4_f16}, ln_bwd_dx_any_f16,
                             ln_bwd_params_any_f16, ln_bwd_finalize_f16};
const Kernels<__nv_bfloat16> KB16 = {{ln_fwd_v1_bf16, ln_fwd_v2_bf16, ln_fwd_v4_bf16, ln_fwd_v8_bf16},
                                     ln_fwd_any_bf16, {ln_bwd_v1_bf16, ln_bwd_v2_bf16, ln_bwd_v4_bf16},
                                     ln_bwd_dx_any_bf16, ln_bwd_params_any_bf16, ln_bwd_finalize_bf16};

template <typename T>
void check_backward_vec(const char* kernel,
                        void (*fn)(const T*, const T*, const T*, const float*, const float*, T*, float*, float*, int,
                                   int, int),
                        const Kernels<T>& k, const Problem& p, const Data<T>& d, dim3 block, int grid,
                        bool want_dg, bool want_db) {
    std::vector<float> mean(d.mean.begin(), d.mean.end()), rstd(d.rstd.begin(), d.rstd.end());
    auto dx = poisoned<T>((size_t)p.rows * p.cols);
    std::vector<float> pg((size_t)grid * p.cols, NAN), pb((size_t)grid * p.cols, NAN);
    auto dg = poisoned<T>(p.cols), db = poisoned<T>(p.cols);
    // the dgamma and dbeta sums of every row-group, as LayerNormCuda sizes it
    const size_t smem = want_dg || want_db ? 2 * (size_t)block.y * p.cols * sizeof(float) : 0;
    const T* gp = p.gamma ? d.g.data() : nullptr;
    emu::launch(dim3(grid), block, smem, [&] {
        fn(d.dy.data(), d.x.data(), gp, p.rms ? nullptr : mean.data(), rstd.data(), dx.data(),
           want_dg ? pg.data() : nullptr, want_db ? pb.data() : nullptr, p.rows, p.cols, p.rms ? 1 : 0);
    });
    if (want_dg || want_db)
        emu::launch(dim3((p.cols + 31) / 32), dim3(32, k4j::FIN_ROWS), 0, [&] {
            k.finalize(pg.data(), pb.data(), want_dg ? dg.data() : nullptr, want_db ? db.data() : nullptr, grid,
                       p.cols);
        });
    std::vector<double> rdx, sdx, rdg, rdb;
    backward_reference(p, d, mean, rstd, rdx, sdx, rdg, rdb);
    const std::string what = std::string(name<T>()) + " " + describe(kernel, p, block, grid);
    double e = scaled_error(dx, rdx, sdx);
    report(e <= tolerance<T>(), what + " dx", e, tolerance<T>());
    if (want_dg) {
        e = rel_error(dg, rdg);
        report(e <= tolerance<T>(), what + " dgamma", e, tolerance<T>());
    }
    if (want_db) {
        e = rel_error(db, rdb);
        report(e <= tolerance<T>(), what + " dbeta", e, tolerance<T>());
    }
}

template <typename T>
void check_backward_any(const Kernels<T>& k, const Problem& p, const Data<T>& d, dim3 block, int splits) {
    std::vector<float> mean(d.mean.begin(), d.mean.end()), rstd(d.rstd.begin(), d.rstd.end());
    auto dx = poisoned<T>((size_t)p.rows * p.cols);
    std::vector<float> pg((size_t)splits * p.cols, NAN), pb((size_t)splits * p.cols, NAN);
    auto dg = poisoned<T>(p.cols), db = poisoned<T>(p.cols);
    const T* gp = p.gamma ? d.g.data() : nullptr;
    const float* mp = p.rms ? nullptr : mean.data();
    const int grid = (p.rows + block.y - 1) / block.y;
    emu::launch(dim3(grid), block, 0, [&] {
        k.dx_any(d.dy.data(), d.x.data(), gp, mp, rstd.data(), dx.data(), p.rows, p.cols, p.rms ? 1 : 0);
    });
    emu::launch(dim3((p.cols + 31) / 32, splits), dim3(32, k4j::PARAM_ROWS), 0, [&] {
        k.params_any(d.dy.data(), d.x.data(), mp, rstd.data(), pg.data(), pb.data(), p.rows, p.cols, p.rms ? 1 : 0);
    });
    emu::launch(dim3((p.cols + 31) / 32), dim3(32, k4j::FIN_ROWS), 0,
                [&] { k.finalize(pg.data(), pb.data(), dg.data(), db.data(), splits, p.cols); });
    std::vector<double> rdx, sdx, rdg, rdb;
    backward_reference(p, d, mean, rstd, rdx, sdx, rdg, rdb);
    const std::string what = std::string(name<T>()) + " " + describe("bwd_any", p, block, splits);
    double e = scaled_error(dx, rdx, sdx);
    report(e <= tolerance<T>(), what + " dx", e, tolerance<T>());
    e = rel_error(dg, rdg);
    report(e <= tolerance<T>(), what + " dgamma", e, tolerance<T>());
    e = rel_error(db, rdb);
    report(e <= tolerance<T>(), what + " dbeta", e, tolerance<T>());
}

int round32(int v) { return (v + 31) / 32 * 32; }

template <typename T>
void check_all(const Kernels<T>& k, const Problem& p) {
    constexpr int V = 16 / sizeof(T);
    const Data<T> d = make_data<T>(p);
    // any-shape path: a warp per row and several warps per row, several rows per block
    check_forward<T>("fwd_any", k.fwd_any, p, d, dim3(32, 3));
    check_forward<T>("fwd_any", k.fwd_any, p, d, dim3(std::min(1024, std::max(64, round32(p.cols / 2))), 1));
    check_backward_any<T>(k, p, d, dim3(32, 2), 1);
    check_backward_any<T>(k, p, d, dim3(64, 1), std::max(1, std::min(3, p.rows)));
    if (p.cols % V != 0) return;
    const int nvec = p.cols / V;
    const int iters[] = {1, 2, 4, 8};
    for (int ii = 0; ii < 4; ++ii) {
        const int tr = round32((nvec + iters[ii] - 1) / iters[ii]);
        if (tr > 1024) continue;
        const char* names[] = {"fwd_v1", "fwd_v2", "fwd_v4", "fwd_v8"};
        check_forward<T>(names[ii], k.fwd_v[ii], p, d, dim3(tr, 1));
        if (tr * 2 <= 1024) check_forward<T>(names[ii], k.fwd_v[ii], p, d, dim3(tr, 2));
        if (tr + 32 <= 256) check_forward<T>(names[ii], k.fwd_v[ii], p, d, dim3(tr + 32, 3));
        // the backward kernels' largest blocks (LayerNormCuda.backwardMaxThreads)
        const int bwd_max = ii == 0 ? 1024 : 512;
        if (ii < 3 && tr <= bwd_max) {
            const char* bn[] = {"bwd_v1", "bwd_v2", "bwd_v4"};
            // one block for all rows (several loop trips, each prefetching the next), a grid whose blocks
            // take 0 to 2 rows, and one that leaves blocks idle; dgamma alone, dbeta alone, neither
            check_backward_vec<T>(bn[ii], k.bwd_v[ii], k, p, d, dim3(tr, 1), 1, true, true);
            if (tr * 3 <= bwd_max)
                check_backward_vec<T>(bn[ii], k.bwd_v[ii], k, p, d, dim3(tr, 3), std::max(1, p.rows / 5), true,
                                      p.beta);
            check_backward_vec<T>(bn[ii], k.bwd_v[ii], k, p, d, dim3(tr, 1), (p.rows + 1) / 2, !p.gamma, p.gamma);
            check_backward_vec<T>(bn[ii], k.bwd_v[ii], k, p, d, dim3(tr, 1), p.rows + 2, false, false);
        }
    }
}

template <typename T>
void run_suite(const Kernels<T>& k) {
    const int shapes[][2] = {{1, 1},  {3, 7},    {5, 8},    {2, 31},   {7, 32},  {4, 100}, {9, 128},
                             {3, 264}, {2, 1000}, {5, 1024}, {2, 1536}, {3, 2056}, {1, 4096}};
    for (auto& s : shapes)
        for (int variant = 0; variant < 4; ++variant) {
            // long rows take the two most different variants only: the emulator is slow
            if (s[1] >= 1000 && (variant == 1 || variant == 2)) continue;
            Problem p{s[0], s[1], variant == 1 || variant == 3, variant != 2, variant < 2, 1e-5f};
            check_all<T>(k, p);
        }
}

}  // namespace

int main(int argc, char** argv) {
    const std::string only = argc > 1 ? argv[1] : "";
    if (only.empty() || only == "f32") run_suite(K32);
    if (only.empty() || only == "f16") run_suite(K16);
    if (only.empty() || only == "bf16") run_suite(KB16);
    std::printf("layernorm on the emulator: %d checks passed, %d failed\n", passes, failures);
    return failures == 0 ? 0 : 1;
}
