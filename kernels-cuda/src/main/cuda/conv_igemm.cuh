// The implicit-GEMM convolution on the tensor cores, shared by conv_igemm.cu (mma.sync, sm_80 and newer)
// and conv_wgmma.cu (wgmma, sm_90a). conv_igemm.cu's header describes the GEMMs, tiles, loaders and
// entry points.
#pragma once

#include "conv_common.cuh"

namespace conv {

enum Pass { FPROP = 0, DGRAD = 1, WGRAD = 2 };

constexpr int BK = 32;   // reduction depth of a k-tile
constexpr int PAD = 8;   // elements of padding per shared-memory row
constexpr int LDK = BK + PAD;
constexpr int INVALID_ROW = -(1 << 29);  // start row of a pixel past M: every tap falls outside

template <bool C, class A, class B> struct Select { using type = A; };
template <class A, class B> struct Select<false, A, B> { using type = B; };

// Where element (row, col) of a k-major tile [rows][BK] and element (krow, col) of an m/n-major tile
// [BK][COLS] live in shared memory (in elements), and the tiles' sizes.
//
// Padded: row-major with 8 elements of padding per row, for ldmatrix (the eight 16-byte rows of an
// ldmatrix phase fall on distinct banks).
struct PaddedLayout {
    static CONV_FN int k_at(int row, int col) { return row * LDK + col; }
    template <int COLS>
    static CONV_FN int mn_at(int krow, int col) { return krow * (COLS + PAD) + col; }
    static constexpr int k_elems(int rows) { return rows * LDK; }
    static constexpr int mn_elems(int cols) { return BK * (cols + PAD); }
};

// Core matrices, for wgmma descriptors without swizzle (the PTX "interleave" canonical layouts): 8x8
// elements stored as 8 rows of 16 bytes, 128 contiguous bytes. k-major tiles: the 8 rows are 8 rows of
// the tile and 8 consecutive k; the next k-chunk is LBO = 10 units of 16 bytes further, the next 8 rows
// SBO = 40 units. m/n-major tiles: the 8 rows are 8 consecutive k and the 16 bytes 8 consecutive columns;
// the next 8 columns are SBO = 9 units further, the next 8 k LBO = 9 * COLS/8 units. The odd strides (10
// and 9 units rather than 8) put the 16-byte chunks that the loaders' consecutive threads write on
// distinct banks.
struct CoreLayout {
    static constexpr int K_LBO = 10;               // 16-byte units between k-chunks of a k-major tile
    static constexpr int K_SBO = (BK / 8) * K_LBO;  // between its 8-row groups
    static constexpr int MN_SBO = 9;               // between 8-column groups of an m/n-major tile
    template <int COLS>
    static constexpr int MN_LBO = (COLS / 8) * MN_SBO;  // between its 8-k groups

    static CONV_FN int k_at(int row, int col) {
        return ((row >> 3) * K_SBO + (col >> 3) * K_LBO + (row & 7)) * 8 + (col & 7);
    }
    template <int COLS>
    static CONV_FN int mn_at(int krow, int col) {
        return ((krow >> 3) * MN_LBO<COLS> + (col >> 3) * MN_SBO + (krow & 7)) * 8 + (col & 7);
    }
    static constexpr int k_elems(int rows) { return (rows / 8) * K_SBO * 8; }
    static constexpr int mn_elems(int cols) { return (BK / 8) * (cols / 8) * MN_SBO * 8; }
};

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
template <int PASS, int BM, int BN, int STAGES, bool VA, bool VB, class L = PaddedLayout>
struct Plan {
    static constexpr bool A_KMAJOR = PASS != WGRAD;
    static constexpr bool B_KMAJOR = PASS == FPROP;
    static constexpr int A_ELEMS = A_KMAJOR ? L::k_elems(BM) : L::mn_elems(BM);
    static constexpr int B_ELEMS = B_KMAJOR ? L::k_elems(BN) : L::mn_elems(BN);
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
// A loaders, k-major [BM][BK]: fprop (x) and dgrad (dy). Element (m, kd): fprop kd = (r*S + s)*Cg + c,
// dgrad kd = (r*S + s)*Kg + k; the counter kc tracks (r, s, c|k) of this thread's column.

// 16-byte chunks: thread t owns chunk column t%4 of rows t/4 + i*THREADS/4.
template <int PASS, int BM, int THREADS, class L>
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
            cp_async16(sA + L::k_at(row0 + i * ROW_STEP, col), ok ? p : c.a, ok);
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
template <int PASS, int BM, int THREADS, class L>
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
        for (int j = 0; j < ROWS; ++j) sA[L::k_at(warp + j * WARPS, lane)] = v[j];
    }

    CONV_FN void advance(const Ctx& c) {
        kd += BK;
        if (PASS == FPROP) kc.step(BK, c.g.Cg, c.g.S);
        else kc.step(BK, c.g.Kg, c.v.Sc);
    }
};

// ---------------------------------------------------------------------------------------------------
// B loaders, k-major [BN][BK]: fprop's filter, row ng = output channel, contiguous over kd.

template <int BN, int THREADS, class L>
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
            cp_async16(sB + L::k_at(row0 + i * ROW_STEP, col), ok ? rowp[i] + kd : c.b, ok);
        }
    }

    CONV_FN void advance(const Ctx&) { kd += BK; }
};

template <int BN, int THREADS, class L>
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
        for (int j = 0; j < ROWS; ++j) sB[L::k_at(warp + j * WARPS, lane)] = v[j];
    }

    CONV_FN void advance(const Ctx&) { kd += BK; }
};

// ---------------------------------------------------------------------------------------------------
// A loaders, m-major [BK][BM]: wgrad's dy, element (pixel kd, output channel m).

template <int BM, int THREADS, class L>
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
            cp_async16(sA + L::template mn_at<BM>(krow, cc * 8), ok ? colp + (long long)pix * c.g.K : c.a, ok);
        }
    }

    CONV_FN void advance(const Ctx&) { kb += BK; }
};

template <int BM, int THREADS, class L>
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
        for (int i = 0; i < ITER; ++i) sA[L::template mn_at<BM>(krow0 + i * ROW_STEP, mcol)] = v[i];
    }

    CONV_FN void advance(const Ctx&) { kb += BK; }
};

// ---------------------------------------------------------------------------------------------------
// B loaders, n-major [BK][BN]: dgrad's filter (kd = (j*Sl + jw)*Kg + k over the view's taps, filter
// tap (r0 + j*rstep, s0 + jw*sstep), column c) and wgrad's x (kd = pixel (n, p, q), column
// ng = (r*S + s)*Cg + c). Counters: dgrad (j, jw, k), wgrad (n, p, q).

template <int PASS, int BN, int THREADS, class L>
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
            cp_async16(sB + L::template mn_at<BN>(krow, cc * 8), ok ? p : c.b, ok);
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
template <int PASS, int BN, int THREADS, class L>
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
        for (int j = 0; j < COLS; ++j) sB[L::template mn_at<BN>(lane, warp + j * WARPS)] = v[j];
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

// Hopper's warpgroup MMA: NWG warpgroups (4 warps each) stacked along M, each computing 64 x BN with
// wgmma.m64nBNk16 from core-matrix tiles in shared memory (descriptors, no swizzle). Per warp the
// accumulators have the m16n8 layout (rows 16*(warp%4) + lane/4 and +8 of the warpgroup's 64, columns
// 8*j + 2*(lane%4) and +1), so the epilogue is the mma.sync one with MI = 1, NI = BN/8. wgmma runs
// asynchronously: compute() issues a k-tile, commits it and waits for the previous one only, so one
// k-tile of MMAs is always in flight; the pipeline therefore refills the stage read two iterations ago.
template <class E, int PASS, int BM, int BN>
struct WgTile {
    static constexpr int MI = 1, NI = BN / 8;
    static_assert(BM % 64 == 0 && (BN == 64 || BN == 128 || BN == 256), "wgmma tile");
    float acc[1][NI][4];
    int wm0, wn0, wgrow;

    CONV_FN void init(int warp) {
        wgrow = (warp >> 2) * 64;
        wm0 = wgrow + (warp & 3) * 16;
        wn0 = 0;
#pragma unroll
        for (int ni = 0; ni < NI; ++ni)
#pragma unroll
            for (int e = 0; e < 4; ++e) acc[0][ni][e] = 0.f;
    }

    // bits 0-13 start address >> 4, 16-29 leading (k-direction) byte offset >> 4, 32-45 stride (m/n-direction)
    // byte offset >> 4; layout type 0 (no swizzle), base offset 0
    static CONV_FN uint64_t desc(const uint16_t* p, int lbo, int sbo) {
        return (uint64_t)((smem_u32(p) >> 4) & 0x3FFF) | ((uint64_t)(lbo & 0x3FFF) << 16) |
               ((uint64_t)(sbo & 0x3FFF) << 32);
    }

    CONV_FN void fence_acc() {
#pragma unroll
        for (int ni = 0; ni < NI; ++ni)
#pragma unroll
            for (int e = 0; e < 4; ++e) reg_fence(acc[0][ni][e]);
    }

    CONV_FN void compute(const uint16_t* sA, const uint16_t* sB, int) {
        using CL = CoreLayout;
        fence_acc();
        wgmma_fence();
#pragma unroll
        for (int ks = 0; ks < BK; ks += 16) {
            const uint64_t da = PASS != WGRAD ? desc(sA + CL::k_at(wgrow, ks), CL::K_LBO, CL::K_SBO)
                                              : desc(sA + CL::template mn_at<BM>(ks, wgrow), CL::template MN_LBO<BM>, CL::MN_SBO);
            const uint64_t db = PASS == FPROP ? desc(sB + CL::k_at(0, ks), CL::K_LBO, CL::K_SBO)
                                              : desc(sB + CL::template mn_at<BN>(ks, 0), CL::template MN_LBO<BN>, CL::MN_SBO);
            // A is m-major only for wgrad, B is n-major except for fprop (transpose flags 1)
            E::template wgmma<BN, PASS == WGRAD ? 1 : 0, PASS == FPROP ? 0 : 1>(&acc[0][0][0], da, db);
        }
        wgmma_commit();
        wgmma_wait<1>();
        fence_acc();
    }

    CONV_FN void drain() {
        wgmma_wait<0>();
        fence_acc();
    }
};

// The CTA's share of a pass: GEMM extents, tile origin, group and reduction range (split-K for wgrad).
CONV_FN int setup(Ctx& c, int pass, int BM, int BN, const uint16_t* a, const uint16_t* b, const Geo& g, int splitLen,
                  int phaseH, int phaseW, int& split) {
    c.g = g;
    c.a = a;
    c.b = b;
    if (pass == FPROP) {
        c.M = g.N * g.P * g.Q; c.NG = g.Kg; c.KD = g.R * g.S * g.Cg;
    } else if (pass == DGRAD) {
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
    split = blockIdx.z / g.groups;
    if (pass == WGRAD) {
        c.kbegin = split * splitLen;
        c.kend = c.KD - c.kbegin < splitLen ? c.KD : c.kbegin + splitLen;
    } else {
        c.kbegin = 0;
        c.kend = c.KD;
    }
    return c.kend > c.kbegin ? (c.kend - c.kbegin + BK - 1) / BK : 0;
}

// Writes the accumulators: wgrad fp32 partials directly; fprop/dgrad through a staging tile in shared memory
// (the pipeline's, free once every thread taking part has passed sync()), then whole 16-byte row chunks.
// tid/THREADS: this thread among those that hold accumulators.
template <class E, int PASS, int BM, int BN, int THREADS, class WT, class Sync>
CONV_FN void epilogue(const WT& wt, const Ctx& c, const uint16_t* bias, void* out, int split, int tid, int lane,
                      uint16_t* pipe, Sync sync) {
    const Geo& g = c.g;
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
    sync();
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
    sync();
    constexpr int CPR = BN / 8;
    const int ldo = PASS == FPROP ? g.K : g.C;
    const int cbase = c.grp * c.NG;
    uint16_t* o = reinterpret_cast<uint16_t*>(out);
    const bool vec = (ldo & 7) == 0 && (cbase & 7) == 0 && (reinterpret_cast<uintptr_t>(out) & 15) == 0;
    for (int e = tid; e < BM * CPR; e += THREADS) {
        const int row = e / CPR;
        const int cc = e - row * CPR;
        const int m = c.m0 + row;
        const int col = c.n0 + cc * 8;
        if (m >= c.M || col >= c.NG) continue;
        long long pix = m;  // fprop: y row m; dgrad: the dx pixel of view row m (itself when the view is all of dx)
        if (PASS == DGRAD && (c.v.hstep != 1 || c.v.wstep != 1)) {
            const int n = m / (c.v.Hl * c.v.Wl);
            const int hw = m - n * c.v.Hl * c.v.Wl;
            const int i = hw / c.v.Wl;
            pix = ((long long)n * g.H + c.v.h0 + i * c.v.hstep) * g.W + c.v.w0 + (hw - i * c.v.Wl) * c.v.wstep;
        }
        uint16_t* d = o + pix * ldo + cbase + col;
        const uint16_t* src = sC + row * LDC + cc * 8;
        if (vec && col + 8 <= c.NG) {
            *reinterpret_cast<uint4*>(d) = *reinterpret_cast<const uint4*>(src);
        } else {
            for (int j = 0; j < 8 && col + j < c.NG; ++j) d[j] = src[j];
        }
    }
}

template <int PASS, int BM, int BN, int THREADS, bool VA, bool VB, class L>
struct Loaders {
    using A = typename Select<PASS == WGRAD,
                             typename Select<VA, LoadA_MVec<BM, THREADS, L>, LoadA_MScalar<BM, THREADS, L>>::type,
                             typename Select<VA, LoadA_KVec<PASS, BM, THREADS, L>,
                                             LoadA_KScalar<PASS, BM, THREADS, L>>::type>::type;
    using B = typename Select<PASS == FPROP,
                             typename Select<VB, LoadB_KVec<BN, THREADS, L>, LoadB_KScalar<BN, THREADS, L>>::type,
                             typename Select<VB, LoadB_NVec<PASS, BN, THREADS, L>,
                                             LoadB_NScalar<PASS, BN, THREADS, L>>::type>::type;
};

// Tensor-core implicit GEMM, every thread loading and multiplying, one __syncthreads per k-tile. NWG = 0:
// WARPS_M x WARPS_N warps of mma.sync fed by ldmatrix from padded tiles, STAGES - 1 k-tiles loading ahead.
// NWG > 0: NWG warpgroups of wgmma (BM = 64 * NWG; WARPS_M and WARPS_N unused) from core-matrix tiles,
// STAGES - 2 k-tiles loading ahead (one more is being multiplied).
template <class E, int PASS, int BM, int BN, int WARPS_M, int WARPS_N, int STAGES, bool VA, bool VB, int NWG = 0>
CONV_FN void igemm(const uint16_t* a, const uint16_t* b, const uint16_t* bias, void* out, const Geo& g,
                   int splitLen, int phaseH, int phaseW) {
    constexpr int THREADS = NWG > 0 ? NWG * 128 : WARPS_M * WARPS_N * 32;
    constexpr int AHEAD = NWG > 0 ? STAGES - 2 : STAGES - 1;
    using L = typename Select<(NWG > 0), CoreLayout, PaddedLayout>::type;
    using PL = Plan<PASS, BM, BN, STAGES, VA, VB, L>;
    using LD = Loaders<PASS, BM, BN, THREADS, VA, VB, L>;
    using WT = typename Select<(NWG > 0), WgTile<E, PASS, BM, BN>,
                               WarpTile<E, PASS, BM, BN, WARPS_M, WARPS_N>>::type;

    unsigned char* smem = dyn_smem();
    uint16_t* pipe = reinterpret_cast<uint16_t*>(smem);

    Ctx c;
    int split;
    const int numK = setup(c, PASS, BM, BN, a, b, g, splitLen, phaseH, phaseW, split);
    c.tid = threadIdx.x;
    c.rowtab = reinterpret_cast<int4*>(smem + PL::TAB_OFFSET);
    c.coltab = reinterpret_cast<int4*>(smem + PL::COL_TAB_OFFSET);

    typename LD::A la;
    typename LD::B lb;
    la.init(c);
    lb.init(c);
    if (PL::ROW_TABLE || PL::COL_TABLE) __syncthreads();

    const int lane = c.tid & 31;
    WT wt;
    wt.init(c.tid >> 5);

#pragma unroll
    for (int s = 0; s < AHEAD; ++s) {
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
        // tile kt has landed (for this thread); the barrier makes it everyone's and frees the stage whose
        // MMAs finished last (iteration kt-1, or kt-2 with wgmma), which the load below refills. wgmma reads
        // shared memory through the async proxy: the copies' writes are fenced into it first.
        cp_async_wait<AHEAD - 1>();
        if constexpr (NWG > 0) fence_proxy_async();
        __syncthreads();
        const int nk = kt + AHEAD;
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
    if constexpr (NWG > 0) wt.drain();
    epilogue<E, PASS, BM, BN, THREADS>(wt, c, bias, out, split, c.tid, lane, pipe, [] {
        cp_async_wait<0>();
        __syncthreads();
    });
}

// The shared memory of a warp-specialized kernel: the pipeline (or the epilogue's staging tile), then a full
// and an empty mbarrier per stage.
template <int PASS, int BM, int BN, int STAGES>
struct WsPlan {
    using PL = Plan<PASS, BM, BN, STAGES, true, true, CoreLayout>;
    static constexpr int BAR_OFFSET = PL::SMEM_BYTES;
    static constexpr int SMEM_BYTES = BAR_OFFSET + 2 * STAGES * 8;
};

// Warp-specialized wgmma implicit GEMM (16-byte loaders): warpgroup 0 produces, copying k-tile kt into stage
// kt % STAGES with cp.async once the consumers have released it (empty barrier) and signalling its arrival with
// cp.async.mbarrier.arrive (full barrier); warpgroups 1..NWG consume, each 64 rows x BN with wgmma, one k-tile
// of MMAs in flight, releasing a stage when its MMAs have completed. No CTA-wide barrier in the main loop, so
// the tensor cores are fed while the loads of later stages are still being issued; the producer runs up to
// STAGES k-tiles ahead. Consumers fence the landed copies into the async proxy before their wgmma reads them.
template <class E, int PASS, int BM, int BN, int STAGES, int NWG>
CONV_FN void igemm_ws(const uint16_t* a, const uint16_t* b, const uint16_t* bias, void* out, const Geo& g,
                      int splitLen, int phaseH, int phaseW) {
    static_assert(BM == 64 * NWG, "one consumer warpgroup per 64 rows");
    using L = CoreLayout;
    using PL = Plan<PASS, BM, BN, STAGES, true, true, L>;
    using LD = Loaders<PASS, BM, BN, 128, true, true, L>;
    using WT = WgTile<E, PASS, BM, BN>;
    constexpr int CONSUMERS = NWG * 128;

    unsigned char* smem = dyn_smem();
    uint16_t* pipe = reinterpret_cast<uint16_t*>(smem);
    uint64_t* full = reinterpret_cast<uint64_t*>(smem + WsPlan<PASS, BM, BN, STAGES>::BAR_OFFSET);
    uint64_t* empty = full + STAGES;

    Ctx c;
    int split;
    const int numK = setup(c, PASS, BM, BN, a, b, g, splitLen, phaseH, phaseW, split);
    const int tid = threadIdx.x;
    if (tid == 0) {
        for (int s = 0; s < STAGES; ++s) {
            mbar_init(full + s, 128);
            mbar_init(empty + s, CONSUMERS);
        }
    }
    __syncthreads();

    if (tid < 128) {
        c.tid = tid;
        typename LD::A la;
        typename LD::B lb;
        la.init(c);
        lb.init(c);
        for (int kt = 0; kt < numK; ++kt) {
            const int s = kt % STAGES;
            if (kt >= STAGES) mbar_wait(empty + s, (kt / STAGES - 1) & 1);
            uint16_t* st = pipe + s * PL::STAGE_ELEMS;
            la.load(st, c);
            lb.load(st + PL::A_ELEMS, c);
            la.advance(c);
            lb.advance(c);
            cp_async_mbar_arrive(full + s);
        }
        return;
    }

    const int ctid = tid - 128;
    const int lane = tid & 31;
    WT wt;
    wt.init(ctid >> 5);
    for (int kt = 0; kt < numK; ++kt) {
        const int s = kt % STAGES;
        mbar_wait(full + s, (kt / STAGES) & 1);
        fence_proxy_async();
        const uint16_t* st = pipe + s * PL::STAGE_ELEMS;
        wt.compute(st, st + PL::A_ELEMS, lane);
        // compute() waited for k-tile kt-1's MMAs: its stage is free
        if (kt > 0) mbar_arrive(empty + (kt - 1) % STAGES);
    }
    wt.drain();
    epilogue<E, PASS, BM, BN, CONSUMERS>(wt, c, bias, out, split, ctid, lane, pipe,
                                         [] { named_barrier_sync(1, CONSUMERS); });
}

}  // namespace conv

