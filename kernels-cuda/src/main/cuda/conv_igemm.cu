// Convolution as an implicit GEMM on the tensor cores: NHWC, fp16/bf16 storage, fp32 accumulation.
// The launch side (kernel choice, grid, split-K, workspace) is Conv2dCuda.java; bench/gpu/check_conv.py
// launches the same entry points the same way.
//
// The three passes as C[M x NG] = A[M x KD] * B[KD x NG], per group g (Cg = C/groups, Kg = K/groups):
//   fprop  M = N*P*Q pixels   NG = Kg    KD = R*S*Cg    A = x gathered (k-contiguous), B = w[k][r][s][c]
//   dgrad  M = N*H*W pixels   NG = Cg    KD = R*S*Kg    A = dy gathered (k-contiguous),
//          B = w[k][r][s][c] read as [kd][c] (n-contiguous); an input pixel h takes tap r from output
//          row p = (h + padTop - r*dilH) / strideH when that divides exactly and 0 <= p < P.
//          With dilation 1 the launch covers one stride phase (phaseH, phaseW): the input rows h with
//          (h + padTop) % strideH == phaseH, which take exactly the taps r = phaseH + j*strideH, at
//          p = (h + padTop - r) / strideH; so M = N*Hphase*Wphase, KD = Rphase*Sphase*Kg and no tap is
//          wasted (a stride-1 convolution is the single phase (0, 0)). The host launches every phase
//          (one launch each, some may have no taps and then write zeros). phaseH = -1 instead gathers every
//          tap of every pixel and skips those that do not divide (any dilation).
//   wgrad  M = Kg             NG = R*S*Cg KD = N*P*Q    A = dy (m-contiguous), B = x gathered
//          (n-contiguous); KD is split over gridDim.z, each split writes fp32 partials that
//          conv_reduce_* (conv_support.cu) sums in a fixed order.
//
// CTA tile BM x BN x 32 over WARPS_M x WARPS_N warps, each warp (BM/WARPS_M) x (BN/WARPS_N) of
// m16n8k16 mma.sync. Shared-memory tiles are padded by 8 elements per row, which puts the eight 16-byte
// rows of every ldmatrix phase on distinct banks. Operands whose reduction index is contiguous in memory
// (k-major) are stored [rows][32] and read with ldmatrix; the others are stored [32][cols] and read with
// ldmatrix.trans, which yields the same fragments. A STAGES-deep cp.async pipeline feeds the tiles,
// one __syncthreads per k-tile.
//
// Loaders come in two kinds per operand: 'v' moves 16-byte chunks with cp.async (8 channels of one
// filter tap: needs the contiguous channel count of that operand to be a multiple of 8 and 16-byte
// aligned base pointers); 's' moves single elements with plain loads (any size, any 2-byte alignment).
// Either way out-of-range elements become zeros, so M, NG and KD need not be tile multiples.
//
// Entry points conv_<pass>_<f16|bf16>_<BM>x<BN>w<warps>_<A loader><B loader>, all with the same parameters:
//   (const T* a, const T* b, const T* bias, void* out,
//    int N, int H, int W, int C, int K, int R, int S, int P, int Q,
//    int strideH, int strideW, int padTop, int padLeft, int dilH, int dilW, int groups, int splitLen,
//    int phaseH, int phaseW)
//   fprop: a = x, b = w, bias = [K] or null, out = y (T)
//   dgrad: a = dy, b = w, bias unused (null), out = dx (T)
//   wgrad: a = dy, b = x, bias unused (null), out = fp32 partials [splits][K][R*S*Cg];
//          splitLen = reduction pixels per split, a multiple of 32 (fprop/dgrad ignore it)
//   phaseH, phaseW: dgrad's stride phase (0 <= phase < stride; dilation 1) or -1, -1; fprop/wgrad ignore them
//   grid = (ceil(M/BM) * ceil(NG/BN), 1, groups * splits), splits = 1 for fprop/dgrad, M of the phase,
//   block = threads, dynamic shared memory = smem bytes, where <entry>_cfg = {threads, smem, BM, BN}
//   is a __constant__ int[4] of the module (read it with cuModuleGetGlobal).
#include "conv_common.cuh"

namespace conv {

enum Pass { FPROP = 0, DGRAD = 1, WGRAD = 2 };

constexpr int BK = 32;   // reduction depth of a k-tile
constexpr int PAD = 8;   // elements of padding per shared-memory row
constexpr int LDK = BK + PAD;
constexpr int INVALID_ROW = -(1 << 29);  // start row of a pixel past M: every tap falls outside

template <bool C, class A, class B> struct Select { using type = A; };
template <class A, class B> struct Select<false, A, B> { using type = B; };

// dgrad's view of the input: the rows/columns of one stride phase (or all of them), the taps they take,
// and where row i, column iw of the view lie in dx. Loaders see a stride-1 problem of Hl x Wl pixels with
// Rl x Sl taps at dilation dhl (1 in a phase) and division by shl only in the all-taps mode.
struct DgradView {
    int Hl, Wl, Rl, Sl;   // view extent and taps
    int Sc;               // Sl as a counter radix (1 when a phase has no taps: then KD = 0, nothing is loaded)
    int hoff, woff;       // output row of view row i, tap j: (i + hoff - j*dhl) / shl
    int dhl, dwl, shl, swl;
    int r0, rstep, s0, sstep;  // filter tap of view tap j: r0 + j*rstep
    int h0, hstep, w0, wstep;  // dx row of view row i: h0 + i*hstep

    CONV_FN void init(const Geo& g, int phaseH, int phaseW) {
        if (phaseH < 0) {
            Hl = g.H; Wl = g.W; Rl = g.R; Sl = g.S;
            hoff = g.ph; woff = g.pw;
            dhl = g.dh; dwl = g.dw; shl = g.sh; swl = g.sw;
            r0 = 0; rstep = 1; s0 = 0; sstep = 1;
            h0 = 0; hstep = 1; w0 = 0; wstep = 1;
            Sc = Sl;
            return;
        }
        h0 = ((phaseH - g.ph) % g.sh + g.sh) % g.sh;
        w0 = ((phaseW - g.pw) % g.sw + g.sw) % g.sw;
        Hl = h0 < g.H ? (g.H - h0 + g.sh - 1) / g.sh : 0;
        Wl = w0 < g.W ? (g.W - w0 + g.sw - 1) / g.sw : 0;
        Rl = phaseH < g.R ? (g.R - phaseH + g.sh - 1) / g.sh : 0;
        Sl = phaseW < g.S ? (g.S - phaseW + g.sw - 1) / g.sw : 0;
        hoff = (h0 + g.ph - phaseH) / g.sh;
        woff = (w0 + g.pw - phaseW) / g.sw;
        dhl = dwl = shl = swl = 1;
        r0 = phaseH; rstep = g.sh; s0 = phaseW; sstep = g.sw;
        hstep = g.sh; wstep = g.sw;
        Sc = Sl > 0 ? Sl : 1;
    }
};

// Everything a loader needs to know about its CTA.
struct Ctx {
    Geo g;
    DgradView v;
    const uint16_t* a;
    const uint16_t* b;
    int M, NG, KD;
    int m0, n0, grp;
    int kbegin, kend;  // this CTA's range of the reduction index
    int tid;
    int4* rowtab;
    int4* coltab;
};

// Shared-memory plan of one kernel instance; also what <entry>_cfg reports.
template <int PASS, int BM, int BN, int STAGES, bool VA, bool VB>
struct Plan {
    static constexpr bool A_KMAJOR = PASS != WGRAD;
    static constexpr bool B_KMAJOR = PASS == FPROP;
    static constexpr int A_ELEMS = A_KMAJOR ? BM * LDK : BK * (BM + PAD);
    static constexpr int B_ELEMS = B_KMAJOR ? BN * LDK : BK * (BN + PAD);
    static constexpr int STAGE_ELEMS = A_ELEMS + B_ELEMS;
    static constexpr int PIPE_BYTES = STAGES * STAGE_ELEMS * 2;
    static constexpr int EPI_BYTES = PASS == WGRAD ? 0 : BM * (BN + PAD) * 2;
    static constexpr int TAB_OFFSET = PIPE_BYTES > EPI_BYTES ? PIPE_BYTES : EPI_BYTES;
    // per-row (pixel) table of the scalar k-major A loader, per-column (tap) table of the scalar wgrad B loader
    static constexpr bool ROW_TABLE = A_KMAJOR && !VA;
    static constexpr bool COL_TABLE = PASS == WGRAD && !VB;
    static constexpr int COL_TAB_OFFSET = TAB_OFFSET + (ROW_TABLE ? BM * 16 : 0);
    static constexpr int SMEM_BYTES = COL_TAB_OFFSET + (COL_TABLE ? BN * 16 : 0);
};

// ---------------------------------------------------------------------------------------------------
// A loaders, k-major [BM][LDK]: fprop (x) and dgrad (dy). Element (m, kd): fprop kd = (r*S + s)*Cg + c,
// dgrad kd = (r*S + s)*Kg + k; the counter kc tracks (r, s, c|k) of this thread's column.

// 16-byte chunks: thread t owns chunk column t%4 of rows t/4 + i*THREADS/4.
template <int PASS, int BM, int THREADS>
struct LoadA_KVec {
    static constexpr int CHUNKS = BM * (BK / 8);
    static constexpr int ITER = (CHUNKS + THREADS - 1) / THREADS;
    static constexpr int ROW_STEP = THREADS / (BK / 8);
    const uint16_t* base[ITER];
    int hb[ITER], wb[ITER];
    Counter3 kc;
    int kd, row0, col;

    CONV_FN bool owns(int i, int tid) const { return CHUNKS % THREADS == 0 || i * THREADS + tid < CHUNKS; }

    CONV_FN void init(const Ctx& c) {
        const Geo& g = c.g;
        col = (c.tid % (BK / 8)) * 8;
        row0 = c.tid / (BK / 8);
#pragma unroll
        for (int i = 0; i < ITER; ++i) {
            const int m = c.m0 + row0 + i * ROW_STEP;
            base[i] = c.a;
            hb[i] = INVALID_ROW;
            wb[i] = INVALID_ROW;
            if (m < c.M && owns(i, c.tid)) {
                if (PASS == FPROP) {
                    const int n = m / (g.P * g.Q);
                    const int pq = m - n * g.P * g.Q;
                    const int p = pq / g.Q;
                    base[i] = c.a + (long long)n * g.H * g.W * g.C + c.grp * g.Cg;
                    hb[i] = p * g.sh - g.ph;
                    wb[i] = (pq - p * g.Q) * g.sw - g.pw;
                } else {
                    const int n = m / (c.v.Hl * c.v.Wl);
                    const int hw = m - n * c.v.Hl * c.v.Wl;
                    const int h = hw / c.v.Wl;
                    base[i] = c.a + (long long)n * g.P * g.Q * g.K + c.grp * g.Kg;
                    hb[i] = h + c.v.hoff;
                    wb[i] = hw - h * c.v.Wl + c.v.woff;
                }
            }
        }
        kd = c.kbegin + col;
        if (PASS == FPROP) kc.init(kd, g.Cg, g.S);
        else kc.init(kd, g.Kg, c.v.Sc);
    }

    CONV_FN void load(uint16_t* sA, const Ctx& c) const {
        const Geo& g = c.g;
#pragma unroll
        for (int i = 0; i < ITER; ++i) {
            if (!owns(i, c.tid)) continue;
            bool ok = kd < c.kend;
            const uint16_t* p;
            if (PASS == FPROP) {
                const int h = hb[i] + kc.hi * g.dh;
                const int w = wb[i] + kc.mid * g.dw;
                ok = ok && (unsigned)h < (unsigned)g.H && (unsigned)w < (unsigned)g.W;
                p = base[i] + ((long long)h * g.W + w) * g.C + kc.lo;
            } else {
                const int th = hb[i] - kc.hi * c.v.dhl;
                const int tw = wb[i] - kc.mid * c.v.dwl;
                ok = ok && th >= 0 && tw >= 0;
                int op = th, oq = tw;
                if (c.v.shl != 1 || c.v.swl != 1) {
                    op = th / c.v.shl;
                    oq = tw / c.v.swl;
                    ok = ok && op * c.v.shl == th && oq * c.v.swl == tw;
                }
                ok = ok && op < g.P && oq < g.Q;
                p = base[i] + ((long long)op * g.Q + oq) * g.K + kc.lo;
            }
            cp_async16(sA + (row0 + i * ROW_STEP) * LDK + col, ok ? p : c.a, ok);
        }
    }

    CONV_FN void advance(const Ctx& c) {
        kd += BK;
        if (PASS == FPROP) kc.step(BK, c.g.Cg, c.g.S);
        else kc.step(BK, c.g.Kg, c.v.Sc);
    }
};

// Single elements: lane = column of the k-tile, warp w owns rows w + j*WARPS. The pixel of each tile row
// is decoded once per CTA into a shared table {n, start row, start column, valid}.
template <int PASS, int BM, int THREADS>
struct LoadA_KScalar {
    static constexpr int WARPS = THREADS / 32;
    static constexpr int ROWS = BM / WARPS;
    static_assert(BM % WARPS == 0, "rows per warp");
    Counter3 kc;
    int kd;

    CONV_FN void init(const Ctx& c) {
        const Geo& g = c.g;
        for (int row = c.tid; row < BM; row += THREADS) {
            const int m = c.m0 + row;
            int4 t = make_int4(0, INVALID_ROW, INVALID_ROW, 0);
            if (m < c.M) {
                if (PASS == FPROP) {
                    const int n = m / (g.P * g.Q);
                    const int pq = m - n * g.P * g.Q;
                    const int p = pq / g.Q;
                    t = make_int4(n, p * g.sh - g.ph, (pq - p * g.Q) * g.sw - g.pw, 1);
                } else {
                    const int n = m / (c.v.Hl * c.v.Wl);
                    const int hw = m - n * c.v.Hl * c.v.Wl;
                    const int h = hw / c.v.Wl;
                    t = make_int4(n, h + c.v.hoff, hw - h * c.v.Wl + c.v.woff, 1);
                }
            }
            c.rowtab[row] = t;
        }
        kd = c.kbegin + (c.tid & 31);
        if (PASS == FPROP) kc.init(kd, g.Cg, g.S);
        else kc.init(kd, g.Kg, c.v.Sc);
    }

    CONV_FN void load(uint16_t* sA, const Ctx& c) const {
        const Geo& g = c.g;
        const int lane = c.tid & 31, warp = c.tid >> 5;
        uint16_t v[ROWS];
#pragma unroll
        for (int j = 0; j < ROWS; ++j) {
            const int4 t = c.rowtab[warp + j * WARPS];
            bool ok = t.w != 0 && kd < c.kend;
            long long off;
            if (PASS == FPROP) {
                const int h = t.y + kc.hi * g.dh;
                const int w = t.z + kc.mid * g.dw;
                ok = ok && (unsigned)h < (unsigned)g.H && (unsigned)w < (unsigned)g.W;
                off = (((long long)t.x * g.H + h) * g.W + w) * g.C + c.grp * g.Cg + kc.lo;
            } else {
                const int th = t.y - kc.hi * c.v.dhl;
                const int tw = t.z - kc.mid * c.v.dwl;
                ok = ok && th >= 0 && tw >= 0;
                const int op = th / c.v.shl;
                const int oq = tw / c.v.swl;
                ok = ok && op * c.v.shl == th && oq * c.v.swl == tw && op < g.P && oq < g.Q;
                off = (((long long)t.x * g.P + op) * g.Q + oq) * g.K + c.grp * g.Kg + kc.lo;
            }
            v[j] = ok ? c.a[off] : (uint16_t)0;
        }
#pragma unroll
        for (int j = 0; j < ROWS; ++j) sA[(warp + j * WARPS) * LDK + lane] = v[j];
    }

    CONV_FN void advance(const Ctx& c) {
        kd += BK;
        if (PASS == FPROP) kc.step(BK, c.g.Cg, c.g.S);
        else kc.step(BK, c.g.Kg, c.v.Sc);
    }
};

// ---------------------------------------------------------------------------------------------------
// B loaders, k-major [BN][LDK]: fprop's filter, row ng = output channel, contiguous over kd.

template <int BN, int THREADS>
struct LoadB_KVec {
    static constexpr int CHUNKS = BN * (BK / 8);
    static constexpr int ITER = (CHUNKS + THREADS - 1) / THREADS;
    static constexpr int ROW_STEP = THREADS / (BK / 8);
    const uint16_t* rowp[ITER];
    int kd, row0, col;

    CONV_FN bool owns(int i, int tid) const { return CHUNKS % THREADS == 0 || i * THREADS + tid < CHUNKS; }

    CONV_FN void init(const Ctx& c) {
        col = (c.tid % (BK / 8)) * 8;
        row0 = c.tid / (BK / 8);
#pragma unroll
        for (int i = 0; i < ITER; ++i) {
            const int ng = c.n0 + row0 + i * ROW_STEP;
            rowp[i] = ng < c.NG && owns(i, c.tid) ? c.b + (long long)(c.grp * c.g.Kg + ng) * c.KD : nullptr;
        }
        kd = c.kbegin + col;
    }

    CONV_FN void load(uint16_t* sB, const Ctx& c) const {
#pragma unroll
        for (int i = 0; i < ITER; ++i) {
            if (!owns(i, c.tid)) continue;
            const bool ok = rowp[i] != nullptr && kd < c.kend;
            cp_async16(sB + (row0 + i * ROW_STEP) * LDK + col, ok ? rowp[i] + kd : c.b, ok);
        }
    }

    CONV_FN void advance(const Ctx&) { kd += BK; }
};

template <int BN, int THREADS>
struct LoadB_KScalar {
    static constexpr int WARPS = THREADS / 32;
    static constexpr int ROWS = BN / WARPS;
    static_assert(BN % WARPS == 0, "rows per warp");
    int kd;

    CONV_FN void init(const Ctx& c) { kd = c.kbegin + (c.tid & 31); }

    CONV_FN void load(uint16_t* sB, const Ctx& c) const {
        const int lane = c.tid & 31, warp = c.tid >> 5;
        uint16_t v[ROWS];
#pragma unroll
        for (int j = 0; j < ROWS; ++j) {
            const int ng = c.n0 + warp + j * WARPS;
            const bool ok = ng < c.NG && kd < c.kend;
            v[j] = ok ? c.b[(long long)(c.grp * c.g.Kg + ng) * c.KD + kd] : (uint16_t)0;
        }
#pragma unroll
        for (int j = 0; j < ROWS; ++j) sB[(warp + j * WARPS) * LDK + lane] = v[j];
    }

    CONV_FN void advance(const Ctx&) { kd += BK; }
};

// ---------------------------------------------------------------------------------------------------
// A loaders, m-major [BK][BM+PAD]: wgrad's dy, element (pixel kd, output channel m).

template <int BM, int THREADS>
struct LoadA_MVec {
    static constexpr int CPR = BM / 8;  // chunks per row
    static constexpr int ITER = BK * CPR / THREADS;
    static constexpr int ROW_STEP = THREADS / CPR;
    static_assert(THREADS % CPR == 0 && (BK * CPR) % THREADS == 0, "chunk ownership");
    const uint16_t* colp;
    int krow0, cc, kb;
    bool colok;

    CONV_FN void init(const Ctx& c) {
        cc = c.tid % CPR;
        krow0 = c.tid / CPR;
        const int m = c.m0 + cc * 8;
        colok = m < c.M;
        colp = c.a + c.grp * c.g.Kg + m;
        kb = c.kbegin;
    }

    CONV_FN void load(uint16_t* sA, const Ctx& c) const {
#pragma unroll
        for (int i = 0; i < ITER; ++i) {
            const int krow = krow0 + i * ROW_STEP;
            const int pix = kb + krow;
            const bool ok = colok && pix < c.kend;
            cp_async16(sA + krow * (BM + PAD) + cc * 8, ok ? colp + (long long)pix * c.g.K : c.a, ok);
        }
    }

    CONV_FN void advance(const Ctx&) { kb += BK; }
};

template <int BM, int THREADS>
struct LoadA_MScalar {
    static constexpr int ITER = BK * BM / THREADS;
    static constexpr int ROW_STEP = THREADS / BM;
    static_assert(THREADS % BM == 0, "column ownership");
    int mcol, krow0, kb;

    CONV_FN void init(const Ctx& c) {
        mcol = c.tid % BM;
        krow0 = c.tid / BM;
        kb = c.kbegin;
    }

    CONV_FN void load(uint16_t* sA, const Ctx& c) const {
        const int m = c.m0 + mcol;
        uint16_t v[ITER];
#pragma unroll
        for (int i = 0; i < ITER; ++i) {
            const int pix = kb + krow0 + i * ROW_STEP;
            const bool ok = m < c.M && pix < c.kend;
            v[i] = ok ? c.a[(long long)pix * c.g.K + c.grp * c.g.Kg + m] : (uint16_t)0;
        }
#pragma unroll
        for (int i = 0; i < ITER; ++i) sA[(krow0 + i * ROW_STEP) * (BM + PAD) + mcol] = v[i];
    }

    CONV_FN void advance(const Ctx&) { kb += BK; }
};

// ---------------------------------------------------------------------------------------------------
// B loaders, n-major [BK][BN+PAD]: dgrad's filter (kd = (j*Sl + jw)*Kg + k over the view's taps, filter
// tap (r0 + j*rstep, s0 + jw*sstep), column c) and wgrad's x (kd = pixel (n, p, q), column
// ng = (r*S + s)*Cg + c). Counters: dgrad (j, jw, k), wgrad (n, p, q).

template <int PASS, int BN, int THREADS>
struct LoadB_NVec {
    static constexpr int CPR = BN / 8;
    static constexpr int ITER = BK * CPR / THREADS;
    static constexpr int ROW_STEP = THREADS / CPR;
    static_assert(THREADS % CPR == 0 && (BK * CPR) % THREADS == 0, "chunk ownership");
    const uint16_t* colp;
    Counter3 kc[ITER];
    int krow0, cc, kb, roff, soff;
    bool colok;

    CONV_FN void init(const Ctx& c) {
        const Geo& g = c.g;
        cc = c.tid % CPR;
        krow0 = c.tid / CPR;
        kb = c.kbegin;
        const int ng = c.n0 + cc * 8;
        colok = ng < c.NG;
        if (PASS == DGRAD) {
            colp = c.b + ng;
            roff = soff = 0;
#pragma unroll
            for (int i = 0; i < ITER; ++i) kc[i].init(kb + krow0 + i * ROW_STEP, g.Kg, c.v.Sc);
        } else {
            const int rs = ng / g.Cg;
            const int r = rs / g.S;
            roff = r * g.dh - g.ph;
            soff = (rs - r * g.S) * g.dw - g.pw;
            colp = c.b + c.grp * g.Cg + (ng - rs * g.Cg);
#pragma unroll
            for (int i = 0; i < ITER; ++i) kc[i].init(kb + krow0 + i * ROW_STEP, g.Q, g.P);
        }
    }

    CONV_FN void load(uint16_t* sB, const Ctx& c) const {
        const Geo& g = c.g;
#pragma unroll
        for (int i = 0; i < ITER; ++i) {
            const int krow = krow0 + i * ROW_STEP;
            bool ok = colok && kb + krow < c.kend;
            const uint16_t* p;
            if (PASS == DGRAD) {
                const int rs = (c.v.r0 + kc[i].hi * c.v.rstep) * g.S + c.v.s0 + kc[i].mid * c.v.sstep;
                p = colp + ((long long)(c.grp * g.Kg + kc[i].lo) * (g.R * g.S) + rs) * g.Cg;
            } else {
                const int h = kc[i].mid * g.sh + roff;
                const int w = kc[i].lo * g.sw + soff;
                ok = ok && (unsigned)h < (unsigned)g.H && (unsigned)w < (unsigned)g.W;
                p = colp + (((long long)kc[i].hi * g.H + h) * g.W + w) * g.C;
            }
            cp_async16(sB + krow * (BN + PAD) + cc * 8, ok ? p : c.b, ok);
        }
    }

    CONV_FN void advance(const Ctx& c) {
        kb += BK;
#pragma unroll
        for (int i = 0; i < ITER; ++i) {
            if (PASS == DGRAD) kc[i].step(BK, c.g.Kg, c.v.Sc);
            else kc[i].step(BK, c.g.Q, c.g.P);
        }
    }
};

// Single elements: lane = row of the k-tile (one reduction index per thread, decoded incrementally),
// warp w owns columns w + j*WARPS; wgrad decodes each column's tap once per CTA into a shared table
// {r*dilH - padTop, s*dilW - padLeft, c, valid}.
template <int PASS, int BN, int THREADS>
struct LoadB_NScalar {
    static constexpr int WARPS = THREADS / 32;
    static constexpr int COLS = BN / WARPS;
    static_assert(BN % WARPS == 0, "columns per warp");
    Counter3 kc;
    int kd;

    CONV_FN void init(const Ctx& c) {
        const Geo& g = c.g;
        kd = c.kbegin + (c.tid & 31);
        if (PASS == DGRAD) {
            kc.init(kd, g.Kg, c.v.Sc);
        } else {
            kc.init(kd, g.Q, g.P);
            for (int col = c.tid; col < BN; col += THREADS) {
                const int ng = c.n0 + col;
                int4 t = make_int4(0, 0, 0, 0);
                if (ng < c.NG) {
                    const int rs = ng / g.Cg;
                    const int r = rs / g.S;
                    t = make_int4(r * g.dh - g.ph, (rs - r * g.S) * g.dw - g.pw, ng - rs * g.Cg, 1);
                }
                c.coltab[col] = t;
            }
        }
    }

    CONV_FN void load(uint16_t* sB, const Ctx& c) const {
        const Geo& g = c.g;
        const int lane = c.tid & 31, warp = c.tid >> 5;
        uint16_t v[COLS];
#pragma unroll
        for (int j = 0; j < COLS; ++j) {
            const int col = warp + j * WARPS;
            bool ok = kd < c.kend;
            long long off;
            if (PASS == DGRAD) {
                const int ng = c.n0 + col;
                ok = ok && ng < c.NG;
                const int rs = (c.v.r0 + kc.hi * c.v.rstep) * g.S + c.v.s0 + kc.mid * c.v.sstep;
                off = ((long long)(c.grp * g.Kg + kc.lo) * (g.R * g.S) + rs) * g.Cg + ng;
            } else {
                const int4 t = c.coltab[col];
                const int h = kc.mid * g.sh + t.x;
                const int w = kc.lo * g.sw + t.y;
                ok = ok && t.w != 0 && (unsigned)h < (unsigned)g.H && (unsigned)w < (unsigned)g.W;
                off = (((long long)kc.hi * g.H + h) * g.W + w) * g.C + c.grp * g.Cg + t.z;
            }
            v[j] = ok ? c.b[off] : (uint16_t)0;
        }
#pragma unroll
        for (int j = 0; j < COLS; ++j) sB[lane * (BN + PAD) + warp + j * WARPS] = v[j];
    }

    CONV_FN void advance(const Ctx& c) {
        kd += BK;
        if (PASS == DGRAD) kc.step(BK, c.g.Kg, c.v.Sc);
        else kc.step(BK, c.g.Q, c.g.P);
    }
};

// ---------------------------------------------------------------------------------------------------
// One warp's share of the CTA tile: MI x NI m16n8 accumulators, fed by ldmatrix from a pipeline stage.

template <class E, int PASS, int BM, int BN, int WARPS_M, int WARPS_N>
struct WarpTile {
    static constexpr int WM = BM / WARPS_M, WN = BN / WARPS_N;
    static constexpr int MI = WM / 16, NI = WN / 8;
    static_assert(WM % 16 == 0 && WN % 16 == 0, "warp tile");
    float acc[MI][NI][4];
    int wm0, wn0;

    CONV_FN void init(int warp) {
        wm0 = (warp / WARPS_N) * WM;
        wn0 = (warp % WARPS_N) * WN;
#pragma unroll
        for (int mi = 0; mi < MI; ++mi)
#pragma unroll
            for (int ni = 0; ni < NI; ++ni)
#pragma unroll
                for (int e = 0; e < 4; ++e) acc[mi][ni][e] = 0.f;
    }

    CONV_FN void compute(const uint16_t* sA, const uint16_t* sB, int lane) {
#pragma unroll
        for (int ks = 0; ks < BK; ks += 16) {
            uint32_t af[MI][4];
            uint32_t bf[NI][2];
#pragma unroll
            for (int mi = 0; mi < MI; ++mi) {
                if (PASS != WGRAD) {
                    // matrices: rows 0-7|8-15 (lanes 0-7|8-15) x k 0-7, then x k 8-15 (lanes 16-31)
                    ldsm_x4(af[mi], sA + (wm0 + mi * 16 + (lane & 15)) * LDK + ks + (lane >> 4) * 8);
                } else {
                    // stored [k][m]: matrix j = lane/8 covers m block j&1, k block j>>1
                    ldsm_x4_trans(af[mi], sA + (ks + (lane & 7) + (lane >> 4) * 8) * (BM + PAD) + wm0 + mi * 16 +
                                              ((lane >> 3) & 1) * 8);
                }
            }
#pragma unroll
            for (int nj = 0; nj < NI / 2; ++nj) {
                uint32_t t[4];
                if (PASS == FPROP) {
                    // stored [n][k]: matrix j covers n block j>>1, k block j&1
                    ldsm_x4(t, sB + (wn0 + nj * 16 + (lane & 7) + (lane >> 4) * 8) * LDK + ks + ((lane >> 3) & 1) * 8);
                } else {
                    // stored [k][n]: matrix j covers k block j&1, n block j>>1
                    ldsm_x4_trans(t, sB + (ks + (lane & 7) + ((lane >> 3) & 1) * 8) * (BN + PAD) + wn0 + nj * 16 +
                                         (lane >> 4) * 8);
                }
                bf[2 * nj][0] = t[0];
                bf[2 * nj][1] = t[1];
                bf[2 * nj + 1][0] = t[2];
                bf[2 * nj + 1][1] = t[3];
            }
#pragma unroll
            for (int mi = 0; mi < MI; ++mi)
#pragma unroll
                for (int ni = 0; ni < NI; ++ni) E::mma(acc[mi][ni], af[mi], bf[ni][0], bf[ni][1]);
        }
    }
};

template <class E, int PASS, int BM, int BN, int WARPS_M, int WARPS_N, int STAGES, bool VA, bool VB>
CONV_FN void igemm(const uint16_t* a, const uint16_t* b, const uint16_t* bias, void* out, const Geo& g,
                   int splitLen, int phaseH, int phaseW) {
    constexpr int THREADS = WARPS_M * WARPS_N * 32;
    using PL = Plan<PASS, BM, BN, STAGES, VA, VB>;
    using LA = typename Select<PASS == WGRAD,
                              typename Select<VA, LoadA_MVec<BM, THREADS>, LoadA_MScalar<BM, THREADS>>::type,
                              typename Select<VA, LoadA_KVec<PASS, BM, THREADS>,
                                              LoadA_KScalar<PASS, BM, THREADS>>::type>::type;
    using LB = typename Select<PASS == FPROP,
                              typename Select<VB, LoadB_KVec<BN, THREADS>, LoadB_KScalar<BN, THREADS>>::type,
                              typename Select<VB, LoadB_NVec<PASS, BN, THREADS>,
                                              LoadB_NScalar<PASS, BN, THREADS>>::type>::type;

    unsigned char* smem = dyn_smem();
    uint16_t* pipe = reinterpret_cast<uint16_t*>(smem);

    Ctx c;
    c.g = g;
    c.a = a;
    c.b = b;
    c.tid = threadIdx.x;
    if (PASS == FPROP) {
        c.M = g.N * g.P * g.Q; c.NG = g.Kg; c.KD = g.R * g.S * g.Cg;
    } else if (PASS == DGRAD) {
        c.v.init(g, phaseH, phaseW);
        c.M = g.N * c.v.Hl * c.v.Wl; c.NG = g.Cg; c.KD = c.v.Rl * c.v.Sl * g.Kg;
    } else {
        c.M = g.Kg; c.NG = g.R * g.S * g.Cg; c.KD = g.N * g.P * g.Q;
    }
    const int ntn = (c.NG + BN - 1) / BN;
    const int mt = blockIdx.x / ntn;
    c.m0 = mt * BM;
    c.n0 = (blockIdx.x - mt * ntn) * BN;
    c.grp = blockIdx.z % g.groups;
    const int split = blockIdx.z / g.groups;
    if (PASS == WGRAD) {
        c.kbegin = split * splitLen;
        c.kend = c.KD - c.kbegin < splitLen ? c.KD : c.kbegin + splitLen;
    } else {
        c.kbegin = 0;
        c.kend = c.KD;
    }
    const int numK = c.kend > c.kbegin ? (c.kend - c.kbegin + BK - 1) / BK : 0;
    c.rowtab = reinterpret_cast<int4*>(smem + PL::TAB_OFFSET);
    c.coltab = reinterpret_cast<int4*>(smem + PL::COL_TAB_OFFSET);

    LA la;
    LB lb;
    la.init(c);
    lb.init(c);
    if (PL::ROW_TABLE || PL::COL_TABLE) __syncthreads();

    const int lane = c.tid & 31;
    WarpTile<E, PASS, BM, BN, WARPS_M, WARPS_N> wt;
    wt.init(c.tid >> 5);

#pragma unroll
    for (int s = 0; s < STAGES - 1; ++s) {
        if (s < numK) {
            uint16_t* st = pipe + s * PL::STAGE_ELEMS;
            la.load(st, c);
            lb.load(st + PL::A_ELEMS, c);
            la.advance(c);
            lb.advance(c);
        }
        cp_async_commit();
    }

    for (int kt = 0; kt < numK; ++kt) {
        // tile kt has landed (for this thread); the barrier makes it everyone's and frees the stage
        // computed in iteration kt-1, which the load below refills
        cp_async_wait<STAGES - 2>();
        __syncthreads();
        const int nk = kt + STAGES - 1;
        if (nk < numK) {
            uint16_t* st = pipe + (nk % STAGES) * PL::STAGE_ELEMS;
            la.load(st, c);
            lb.load(st + PL::A_ELEMS, c);
            la.advance(c);
            lb.advance(c);
        }
        cp_async_commit();
        const uint16_t* st = pipe + (kt % STAGES) * PL::STAGE_ELEMS;
        wt.compute(st, st + PL::A_ELEMS, lane);
    }

    using WT = WarpTile<E, PASS, BM, BN, WARPS_M, WARPS_N>;
    const int gq = lane >> 2, t4 = lane & 3;
    if (PASS == WGRAD) {
        // fp32 partials [split][K][NG]; pairs of columns as one 8-byte store when NG keeps them aligned
        float* o = reinterpret_cast<float*>(out) + ((long long)split * g.K + c.grp * g.Kg) * c.NG;
        const bool pairs = (c.NG & 1) == 0;
#pragma unroll
        for (int mi = 0; mi < WT::MI; ++mi)
#pragma unroll
            for (int ni = 0; ni < WT::NI; ++ni)
#pragma unroll
                for (int half = 0; half < 2; ++half) {
                    const int m = c.m0 + wt.wm0 + mi * 16 + gq + half * 8;
                    const int col = c.n0 + wt.wn0 + ni * 8 + 2 * t4;
                    if (m >= c.M || col >= c.NG) continue;
                    float* d = o + (long long)m * c.NG + col;
                    const float v0 = wt.acc[mi][ni][2 * half], v1 = wt.acc[mi][ni][2 * half + 1];
                    if (pairs) {
                        *reinterpret_cast<float2*>(d) = make_float2(v0, v1);
                    } else {
                        d[0] = v0;
                        if (col + 1 < c.NG) d[1] = v1;
                    }
                }
        return;
    }

    // fprop/dgrad: stage the converted tile in shared memory, then write whole 16-byte row chunks
    cp_async_wait<0>();
    __syncthreads();
    constexpr int LDC = BN + PAD;
    uint16_t* sC = pipe;
#pragma unroll
    for (int mi = 0; mi < WT::MI; ++mi)
#pragma unroll
        for (int ni = 0; ni < WT::NI; ++ni) {
            const int row = wt.wm0 + mi * 16 + gq;
            const int col = wt.wn0 + ni * 8 + 2 * t4;
            float b0 = 0.f, b1 = 0.f;
            if (PASS == FPROP && bias != nullptr) {
                const int nc = c.n0 + col;
                if (nc < c.NG) b0 = E::to_f(bias[c.grp * g.Kg + nc]);
                if (nc + 1 < c.NG) b1 = E::to_f(bias[c.grp * g.Kg + nc + 1]);
            }
#pragma unroll
            for (int half = 0; half < 2; ++half) {
                const uint32_t lo = E::from_f(wt.acc[mi][ni][2 * half] + b0);
                const uint32_t hi = E::from_f(wt.acc[mi][ni][2 * half + 1] + b1);
                *reinterpret_cast<uint32_t*>(sC + (row + half * 8) * LDC + col) = lo | (hi << 16);
            }
        }
    __syncthreads();
    constexpr int CPR = BN / 8;
    const int ldo = PASS == FPROP ? g.K : g.C;
    const int cbase = c.grp * c.NG;
    uint16_t* o = reinterpret_cast<uint16_t*>(out);
    const bool vec = (ldo & 7) == 0 && (cbase & 7) == 0 && (reinterpret_cast<uintptr_t>(out) & 15) == 0;
    for (int e = c.tid; e < BM * CPR; e += THREADS) {
        const int row = e / CPR;
        const int cc = e - row * CPR;
        const int m = c.m0 + row;
        const int col = c.n0 + cc * 8;
        if (m >= c.M || col >= c.NG) continue;
        long long pix = m;  // fprop: y row m; dgrad: the dx pixel of view row m
        if (PASS == DGRAD) {
            const int n = m / (c.v.Hl * c.v.Wl);
            const int hw = m - n * c.v.Hl * c.v.Wl;
            const int i = hw / c.v.Wl;
            pix = ((long long)n * g.H + c.v.h0 + i * c.v.hstep) * g.W + c.v.w0 + (hw - i * c.v.Wl) * c.v.wstep;
        }
        uint16_t* d = o + pix * ldo + cbase + col;
        const uint16_t* s = sC + row * LDC + cc * 8;
        if (vec && col + 8 <= c.NG) {
            *reinterpret_cast<uint4*>(d) = *reinterpret_cast<const uint4*>(s);
        } else {
            for (int j = 0; j < 8 && col + j < c.NG; ++j) d[j] = s[j];
        }
    }
}

}  // namespace conv

// ---------------------------------------------------------------------------------------------------
// Entry points.

#define CONV_IGEMM_ENTRY(NAME, E, PASS, BM, BN, WM, WN, STAGES, VA, VB, MINB)                               \
    extern "C" {                                                                                           \
    __constant__ int NAME##_cfg[4] = {WM * WN * 32, conv::Plan<conv::PASS, BM, BN, STAGES, VA, VB>::SMEM_BYTES, \
                                      BM, BN};                                                             \
    }                                                                                                      \
    extern "C" __global__ void __launch_bounds__(WM * WN * 32, MINB)                                       \
        NAME(const uint16_t* __restrict__ a, const uint16_t* __restrict__ b, const uint16_t* __restrict__ bias, \
             void* __restrict__ out, int N, int H, int W, int C, int K, int R, int S, int P, int Q, int sh,      \
             int sw, int ph, int pw, int dh, int dw, int groups, int splitLen, int phaseH, int phaseW) {      \
        conv::igemm<conv::E, conv::PASS, BM, BN, WM, WN, STAGES, VA, VB>(                                    \
            a, b, bias, out, conv::make_geo(N, H, W, C, K, R, S, P, Q, sh, sw, ph, pw, dh, dw, groups), splitLen, \
            phaseH, phaseW);                                                                               \
    }

// Tiles <BM>x<BN>w<warps>. Warp tiles of 64x64 (w4 on 128x128, 256x64, 64x256; w8 on 128x256) read 128
// bytes of shared memory per mma, 64x32 ones (w8 on 128x128) 192: the larger warp tiles are the ones to
// beat shared-memory bandwidth, the smaller ones fill the GPU on small problems. One CTA of 256 threads
// with 64x64 warp tiles needs up to 255 registers per thread, hence min blocks 1 there.
#define CONV_IGEMM_DTYPE(E, SUF)                                                                        \
    CONV_IGEMM_ENTRY(conv_fprop_##SUF##_128x256w8_vv, E, FPROP, 128, 256, 2, 4, 4, true, true, 1)     \
    CONV_IGEMM_ENTRY(conv_fprop_##SUF##_128x128w8_vv, E, FPROP, 128, 128, 2, 4, 4, true, true, 2)     \
    CONV_IGEMM_ENTRY(conv_fprop_##SUF##_128x128w4_vv, E, FPROP, 128, 128, 2, 2, 4, true, true, 2)     \
    CONV_IGEMM_ENTRY(conv_fprop_##SUF##_256x64w4_vv, E, FPROP, 256, 64, 4, 1, 4, true, true, 2)       \
    CONV_IGEMM_ENTRY(conv_fprop_##SUF##_128x64w4_vv, E, FPROP, 128, 64, 2, 2, 4, true, true, 2)       \
    CONV_IGEMM_ENTRY(conv_fprop_##SUF##_64x64w4_vv, E, FPROP, 64, 64, 2, 2, 4, true, true, 2)         \
    CONV_IGEMM_ENTRY(conv_fprop_##SUF##_128x64w4_ss, E, FPROP, 128, 64, 2, 2, 4, false, false, 2)     \
    CONV_IGEMM_ENTRY(conv_dgrad_##SUF##_128x256w8_vv, E, DGRAD, 128, 256, 2, 4, 4, true, true, 1)     \
    CONV_IGEMM_ENTRY(conv_dgrad_##SUF##_128x128w8_vv, E, DGRAD, 128, 128, 2, 4, 4, true, true, 2)     \
    CONV_IGEMM_ENTRY(conv_dgrad_##SUF##_128x128w4_vv, E, DGRAD, 128, 128, 2, 2, 4, true, true, 2)     \
    CONV_IGEMM_ENTRY(conv_dgrad_##SUF##_256x64w4_vv, E, DGRAD, 256, 64, 4, 1, 4, true, true, 2)       \
    CONV_IGEMM_ENTRY(conv_dgrad_##SUF##_128x64w4_vv, E, DGRAD, 128, 64, 2, 2, 4, true, true, 2)       \
    CONV_IGEMM_ENTRY(conv_dgrad_##SUF##_64x64w4_vv, E, DGRAD, 64, 64, 2, 2, 4, true, true, 2)         \
    CONV_IGEMM_ENTRY(conv_dgrad_##SUF##_128x32w4_vs, E, DGRAD, 128, 32, 4, 1, 4, true, false, 2)      \
    CONV_IGEMM_ENTRY(conv_dgrad_##SUF##_128x32w4_ss, E, DGRAD, 128, 32, 4, 1, 4, false, false, 2)     \
    CONV_IGEMM_ENTRY(conv_dgrad_##SUF##_128x16w4_vs, E, DGRAD, 128, 16, 4, 1, 4, true, false, 2)      \
    CONV_IGEMM_ENTRY(conv_dgrad_##SUF##_128x16w4_ss, E, DGRAD, 128, 16, 4, 1, 4, false, false, 2)     \
    CONV_IGEMM_ENTRY(conv_wgrad_##SUF##_128x256w8_vv, E, WGRAD, 128, 256, 2, 4, 4, true, true, 1)     \
    CONV_IGEMM_ENTRY(conv_wgrad_##SUF##_128x128w8_vv, E, WGRAD, 128, 128, 2, 4, 4, true, true, 2)     \
    CONV_IGEMM_ENTRY(conv_wgrad_##SUF##_128x128w4_vv, E, WGRAD, 128, 128, 2, 2, 4, true, true, 2)     \
    CONV_IGEMM_ENTRY(conv_wgrad_##SUF##_64x256w4_vv, E, WGRAD, 64, 256, 1, 4, 4, true, true, 2)       \
    CONV_IGEMM_ENTRY(conv_wgrad_##SUF##_64x128w4_vv, E, WGRAD, 64, 128, 2, 2, 4, true, true, 2)       \
    CONV_IGEMM_ENTRY(conv_wgrad_##SUF##_64x64w4_vv, E, WGRAD, 64, 64, 2, 2, 4, true, true, 2)         \
    CONV_IGEMM_ENTRY(conv_wgrad_##SUF##_64x64w4_vs, E, WGRAD, 64, 64, 2, 2, 4, true, false, 2)        \
    CONV_IGEMM_ENTRY(conv_wgrad_##SUF##_64x64w4_ss, E, WGRAD, 64, 64, 2, 2, 4, false, false, 2)

CONV_IGEMM_DTYPE(F16, f16)
CONV_IGEMM_DTYPE(BF16, bf16)
