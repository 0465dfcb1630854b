"""Device check of the CUDA layer-norm kernels (kernels-cuda/src/main/cuda/layernorm.cu).

Loads the compiled module ``layernorm`` with cupy and launches it exactly as LayerNormCuda.java does (the
``forward_shape``/``backward_shape`` functions below mirror LayerNormCuda.forwardShape/backwardShape with
their default tuning parameters, and the backward grid uses the same occupancy query), then

1. correctness, fp32/fp16/bf16, layer norm and RMS norm, with and without gamma/beta: odd shapes (1 column,
   prime lengths, lengths that are not a multiple of the 16-byte pack, rows too long for the registers),
   zero rows, a misaligned input (the scalar path), every fast launch shape the Java side can choose for a
   few lengths, the benchmark shapes at full size, and the PTX (JIT) build once. Reference: float64 on the
   same (upcast) inputs; backward from the fp32 statistics our forward saved (the formula is itself checked
   against float64 autograd). ||out - ref|| / ||ref||, NaN-poisoned outputs and partial buffers, guard
   elements around y and dx; fp16/bf16 tolerance twice the error of torch's own computation in that dtype.
2. timing of the GPU benchmark set (ln-16k-4k and ln-64k-1k in fp32/bf16/fp16, ln-4k-16k in bf16/fp16):
   ours forward and backward against torch (``native_layer_norm`` and ``native_layer_norm_backward``, the
   kernels ``F.layer_norm`` and its autograd run) and a device-to-device copy of the same bytes, all in this
   process; CUDA events, warm-up, median, input sets rotated past the L2. Bytes moved as DESIGN.md counts
   them (forward reads x, gamma, beta and writes y, mean, rstd; backward reads dy, x, gamma, mean, rstd and
   writes dx, dgamma, dbeta). Targets (issue 4): >= 85% of the copy's GB/s and >= 1.0x torch on
   ln-16k-4k and ln-64k-1k, bf16 and fp32.
3. a sweep of the tuning parameters on the target problems (quick: only the backward's row-group sizes), each
   configuration checked against the float64 reference before it is timed, and the portable dialect twin
   (dialect_layernorm_*, kernels-opencl's layernorm.cl compiled through kernels4j.h) checked and timed forward.

The partial result is rewritten to <out_dir>/layernorm_partial.json after every phase, so a kernel fault
(which ends the process) leaves what was measured before it.

Stand-alone: python3 bench/gpu/check_layernorm.py --kernels-dir <dir> [--out <dir>] [--quick]
"""

from __future__ import annotations

import argparse
import functools
import math
import os
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402

SUFFIX = {torch.float32: "f32", torch.float16: "f16", torch.bfloat16: "bf16"}
DTYPES = (torch.float32, torch.float16, torch.bfloat16)
NULL = np.uint64(0)
EPS = 1e-5

# LayerNormCuda's constants and the defaults of its tuning spaces (cuda.layernorm.forward/backward)
FWD_VECS, FWD_BLOCK = 4, 256
BWD_ROW_MAX, BWD_BLOCK, BWD_PER_SM = 512, 256, 8
ANY_ELEMENTS_PER_THREAD = 8
PARAM_ROWS, FIN_ROWS = 8, 16

# shared/benchmark-shapes.md, GPU set
BENCH = [
    ("ln-16k-4k", 16384, 4096, (torch.float32, torch.bfloat16, torch.float16)),
    ("ln-64k-1k", 65536, 1024, (torch.float32, torch.bfloat16, torch.float16)),
    ("ln-4k-16k", 4096, 16384, (torch.bfloat16, torch.float16)),
]
TARGET_SHAPES = ("ln-16k-4k", "ln-64k-1k")
TARGET_DTYPES = (torch.float32, torch.bfloat16)


def ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def round32(n: int) -> int:
    return ceil_div(n, 32) * 32


def pow2_ceil(n: int) -> int:
    p = 1
    while p < n:
        p <<= 1
    return p


def pack(dt) -> int:
    return 16 // torch.empty((), dtype=dt).element_size()


def any_row_threads(cols: int) -> int:
    return max(32, min(1024, round32(ceil_div(cols, ANY_ELEMENTS_PER_THREAD))))


def forward_shape(cols, dt, aligned, vecs=FWD_VECS, block=FWD_BLOCK):
    """(kernel, vecs per thread (0: any-shape kernel), threads per row, rows per block) as LayerNormCuda."""
    v = pack(dt)
    if aligned and cols % v == 0:
        nvec = cols // v
        if nvec <= 32 * vecs:
            tr, it = 32, pow2_ceil(ceil_div(nvec, 32))
        else:
            it = vecs
            tr = round32(ceil_div(nvec, it))
            while tr > 1024 and it < 8:
                it *= 2
                tr = round32(ceil_div(nvec, it))
        if tr <= 1024:
            return f"ln_fwd_v{it}_{SUFFIX[dt]}", it, tr, max(1, block // tr)
    tr = any_row_threads(cols)
    return f"ln_fwd_any_{SUFFIX[dt]}", 0, tr, max(1, block // tr)


def backward_max_threads(vecs: int) -> int:
    """LayerNormCuda.backwardMaxThreads: the __launch_bounds__ of ln_bwd_v<vecs>."""
    return 1024 if vecs == 1 else 512


def backward_shared_bytes(shape, cols) -> int:
    """LayerNormCuda.backwardSharedBytes: the dgamma and dbeta sums of every row-group of a block."""
    return 2 * shape[3] * cols * 4


@functools.lru_cache(maxsize=None)
def shared_limit() -> int:
    """The device's opt-in shared memory per block (LayerNormCuda reads it as localMemoryBytes)."""
    v = getattr(torch.cuda.get_device_properties(0), "shared_memory_per_block_optin", None)
    if v:
        return int(v)
    import cupy
    return int(cupy.cuda.runtime.deviceGetAttribute(97, 0))  # cudaDevAttrMaxSharedMemoryPerBlockOptin


def backward_shape(cols, dt, aligned, row_max=BWD_ROW_MAX, block=BWD_BLOCK, limit=None):
    """The dx kernel's launch shape, as LayerNormCuda.backwardShape (limit: shared bytes per block)."""
    limit = shared_limit() if limit is None else limit
    v = pack(dt)
    row_bytes = 2 * cols * 4
    if aligned and cols % v == 0 and row_bytes <= limit:
        nvec = cols // v
        it = 1
        while it <= 4:
            mx = backward_max_threads(it)
            tr = round32(ceil_div(nvec, it))
            if tr <= min(row_max, mx):
                return f"ln_bwd_v{it}_{SUFFIX[dt]}", it, tr, max(1, min(min(block, mx) // tr, limit // row_bytes))
            it *= 2
    tr = any_row_threads(cols)
    return f"ln_bwd_dx_any_{SUFFIX[dt]}", 0, tr, max(1, block // tr)


def aligned16(*ts) -> bool:
    return all(t is None or t.data_ptr() % 16 == 0 for t in ts)


def ptr(t):
    return NULL if t is None else t


class LayerNormKernels:
    """Launches layernorm.cu as LayerNormCuda.java does."""

    def __init__(self, kernels_dir: str, prefer_ptx: bool = False):
        self.mod = h.load_module(kernels_dir, "layernorm", prefer_ptx=prefer_ptx)
        self.sms = torch.cuda.get_device_properties(0).multi_processor_count
        self.cache = {}
        self.occupancy_source = None

    def k(self, name):
        if name not in self.cache:
            self.cache[name] = self.mod.get(name)
        return self.cache[name]

    def occupancy(self, name, threads, smem) -> int:
        """cuOccupancyMaxActiveBlocksPerMultiprocessor, as the Java side asks it."""
        kern = self.k(name)
        if smem > 48 * 1024 and kern.max_dynamic_shared_size_bytes < smem:
            kern.max_dynamic_shared_size_bytes = smem  # the query, like a launch, needs the opt-in
        try:
            import cupy
            n = cupy.cuda.driver.occupancyMaxActiveBlocksPerMultiprocessor(kern.kernel.ptr, threads, smem)
            self.occupancy_source = "driver"
            return int(n)
        except Exception as e:  # report, and use the register-file bound instead
            self.occupancy_source = f"estimate ({type(e).__name__}: {e})"
            regs = max(1, kern.num_regs)
            return max(1, min(2048 // threads, 65536 // (round32(regs * 32) // 32 * threads), 32))

    def forward(self, x, g, b, y, mean, rstd, rms, shape=None, eps=EPS):
        rows, cols = x.shape
        if rows == 0:
            return None
        if shape is None:
            shape = forward_shape(cols, x.dtype, aligned16(x, g, b, y))
        name, _, tr, rpb = shape
        h.launch(self.k(name), (ceil_div(rows, rpb),), (tr, rpb),
                 (x, ptr(g), ptr(b), y, ptr(mean), rstd, h.i32(rows), h.i32(cols), h.f32(eps), h.i32(1 if rms else 0)))
        return shape

    def backward(self, dy, x, g, mean, rstd, dx, dg, db, rms, shape=None, per_sm=BWD_PER_SM, parts=None):
        """Returns (shape, grid or splits); `parts` is an optional preallocated fp32 buffer for the partials."""
        rows, cols = x.shape
        if rows == 0:
            for t in (dg, db):
                if t is not None:
                    t.zero_()
            return None, 0
        nparams = (dg is not None) + (db is not None)
        if shape is None:  # without dgamma/dbeta the shared-memory sums are not needed, as in LayerNormCuda
            shape = backward_shape(cols, x.dtype, aligned16(dy, x, g, dx), limit=None if nparams else 1 << 62)
        name, vecs, tr, rpb = shape
        rms_flag = h.i32(1 if rms else 0)
        sfx = SUFFIX[x.dtype]
        if vecs > 0:
            smem = backward_shared_bytes(shape, cols) if nparams else 0
            occ = self.occupancy(name, tr * rpb, smem)
            grid = min(ceil_div(rows, rpb), self.sms * min(occ, per_sm))
            pg, pb = self._partials(parts, nparams, grid, cols, dg, db)
            h.launch(self.k(name), (grid,), (tr, rpb),
                     (dy, x, ptr(g), ptr(mean), rstd, dx, ptr(pg), ptr(pb), h.i32(rows), h.i32(cols), rms_flag),
                     shared_mem=smem)
            n = grid
        else:
            h.launch(self.k(name), (ceil_div(rows, rpb),), (tr, rpb),
                     (dy, x, ptr(g), ptr(mean), rstd, dx, h.i32(rows), h.i32(cols), rms_flag))
            tiles = ceil_div(cols, 32)
            n = max(1, min(ceil_div(rows, PARAM_ROWS), self.sms * 4 // tiles))
            pg, pb = self._partials(parts, nparams, n, cols, dg, db)
            if nparams:
                h.launch(self.k(f"ln_bwd_params_any_{sfx}"), (tiles, n), (32, PARAM_ROWS),
                         (dy, x, ptr(mean), rstd, ptr(pg), ptr(pb), h.i32(rows), h.i32(cols), rms_flag))
        if nparams:
            h.launch(self.k(f"ln_bwd_finalize_{sfx}"), (ceil_div(cols, 32),), (32, FIN_ROWS),
                     (ptr(pg), ptr(pb), ptr(dg), ptr(db), h.i32(n), h.i32(cols)))
        return shape, n

    @staticmethod
    def _partials(parts, nparams, n, cols, dg, db):
        if nparams == 0:
            return None, None
        if parts is None or parts.numel() < nparams * n * cols:
            parts = h.poison(torch.empty(nparams * n * cols, dtype=torch.float32, device=h.DEVICE))
        flat = parts[:nparams * n * cols].view(nparams, n, cols)
        pg = flat[0] if dg is not None else None
        pb = flat[nparams - 1] if db is not None else None
        return pg, pb


# ---------------------------------------------------------------------------------------------
# references


def reference_forward(x, g, b, rms, eps=EPS):
    x64 = x.double()
    if rms:
        mu = None
        rstd = torch.rsqrt((x64 * x64).mean(-1) + eps)
        xh = x64 * rstd[:, None]
    else:
        mu = x64.mean(-1)
        rstd = torch.rsqrt(((x64 - mu[:, None]) ** 2).mean(-1) + eps)
        xh = (x64 - mu[:, None]) * rstd[:, None]
    y = xh * (g.double() if g is not None else 1.0) + (b.double() if b is not None else 0.0)
    return y, mu, rstd


def reference_backward(dy, x, g, mean, rstd, rms):
    """dx, dgamma, dbeta in float64 from the given statistics (the ones the kernels read)."""
    x64, dy64 = x.double(), dy.double()
    mu = torch.zeros_like(rstd, dtype=torch.float64) if rms else mean.double()
    rs = rstd.double()[:, None]
    xh = (x64 - mu[:, None]) * rs
    gdy = dy64 * (g.double() if g is not None else 1.0)
    a = torch.zeros_like(rs) if rms else gdy.mean(-1, keepdim=True)
    bb = (gdy * xh).mean(-1, keepdim=True)
    dx = rs * (gdy - a - xh * bb)
    return dx, (dy64 * xh).sum(0), dy64.sum(0)


def plain_forward(x, g, b, rms, eps=EPS):
    """torch's own computation in the storage dtype: the yardstick for fp16/bf16 tolerances."""
    cols = x.shape[-1]
    if rms:
        y = F.rms_norm(x, (cols,), g, eps)
        return y + b if b is not None else y
    return F.layer_norm(x, (cols,), g, b, eps)


def plain_backward(dy, x, g, b, rms, eps=EPS):
    xr = x.detach().clone().requires_grad_(True)
    gr = g.detach().clone().requires_grad_(True) if g is not None else None
    br = b.detach().clone().requires_grad_(True) if b is not None else None
    plain_forward(xr, gr, br, rms, eps).backward(dy)
    return xr.grad, (gr.grad if gr is not None else None), (br.grad if br is not None else None)


def formula_self_check(gen) -> dict:
    """reference_backward against float64 autograd of F.layer_norm / rms_norm with exact statistics."""
    worst = 0.0
    for rms in (False, True):
        x = torch.randn((7, 33), generator=gen, device=h.DEVICE, dtype=torch.float64)
        dy = torch.randn((7, 33), generator=gen, device=h.DEVICE, dtype=torch.float64)
        g = torch.randn((33,), generator=gen, device=h.DEVICE, dtype=torch.float64)
        b = torch.randn((33,), generator=gen, device=h.DEVICE, dtype=torch.float64)
        _, mu, rstd = reference_forward(x, g, b, rms)
        dx, dg, db = reference_backward(dy, x, g, mu, rstd, rms)
        adx, adg, adb = plain_backward(dy, x, g, b, rms)
        worst = max(worst, h.rel_error(dx, adx), h.rel_error(dg, adg), h.rel_error(db, adb))
    return h.verdict("reference backward formula vs float64 autograd", worst, 1e-12)


# ---------------------------------------------------------------------------------------------
# correctness


def check_case(ln, rows, cols, dt, rms, with_g, with_b, gen, fwd_shape=None, bwd_shape=None, label="",
               misalign=False):
    """Forward then backward of one problem; returns the verdicts."""
    out = []
    name = f"{SUFFIX[dt]} {'rms' if rms else 'ln'} [{rows}x{cols}]{' g' if with_g else ''}{' b' if with_b else ''}" \
           f"{' misaligned' if misalign else ''}{(' ' + label) if label else ''}"
    if misalign:  # one element past an aligned start: the tensors are no longer 16-byte aligned
        buf = h.randn((rows * cols + 1,), dt, gen)
        x = buf[1:].view(rows, cols)
    else:
        x = h.randn((rows, cols), dt, gen, scale=2.0).add_(3.0)  # an offset: the variance must not cancel
    g = h.randn((cols,), dt, gen, scale=0.5).add_(1.0) if with_g else None
    b = h.randn((cols,), dt, gen, scale=0.5) if with_b else None
    dy = h.randn((rows, cols), dt, gen)
    y = h.Guarded((rows, cols), dt)
    mean = None if rms else h.poison(torch.empty(rows, dtype=torch.float32, device=h.DEVICE))
    rstd = h.poison(torch.empty(rows, dtype=torch.float32, device=h.DEVICE))
    fs = ln.forward(x, g, b, y.view, mean, rstd, rms, shape=fwd_shape)
    h.sync(f"forward {name}")
    ref_y, ref_mu, ref_rstd = reference_forward(x, g, b, rms)
    tol = h.tolerance(dt, None if dt == torch.float32 else h.rel_error(plain_forward(x, g, b, rms), ref_y))
    kern = fs[0] if fs else "none"
    out.append(h.verdict(f"fwd {name} y", h.rel_error(y.view, ref_y) if rows else 0.0, tol, h.unwritten(y.view),
                         y.stray_writes(), kernel=kern))
    if rows:
        out.append(h.verdict(f"fwd {name} rstd", h.rel_error(rstd, ref_rstd), 1e-5, h.unwritten(rstd), kernel=kern))
        if not rms:
            out.append(h.verdict(f"fwd {name} mean", h.rel_error(mean, ref_mu), 1e-5, h.unwritten(mean), kernel=kern))

    dx = h.Guarded((rows, cols), dt)
    dg = h.poison(torch.empty(cols, dtype=dt, device=h.DEVICE)) if with_g else None
    db = h.poison(torch.empty(cols, dtype=dt, device=h.DEVICE)) if with_b else None
    bs, parts = ln.backward(dy, x, g, mean, rstd, dx.view, dg, db, rms, shape=bwd_shape)
    h.sync(f"backward {name}")
    rdx, rdg, rdb = reference_backward(dy, x, g, mean, rstd, rms) if rows else (
        torch.zeros((0, cols), dtype=torch.float64, device=h.DEVICE),
        torch.zeros(cols, dtype=torch.float64, device=h.DEVICE), torch.zeros(cols, dtype=torch.float64, device=h.DEVICE))
    if dt == torch.float32 or rows == 0:
        tdx = tdg = tdb = 1e-5
    else:
        pdx, pdg, pdb = plain_backward(dy, x, g, b, rms)
        tdx = h.tolerance(dt, h.rel_error(pdx, rdx))
        tdg = h.tolerance(dt, h.rel_error(pdg, rdg)) if with_g else 0
        tdb = h.tolerance(dt, h.rel_error(pdb, rdb)) if with_b else 0
    if rows:
        # dx = rs (g dy - mean(g dy) - xhat mean(g dy xhat)) cancels to O(eps) where the row is short
        # (RMS norm of one column: dx = rs g dy (1 - xhat^2) = rs g dy eps rs^2), and fp32 rounding of
        # xhat alone leaves ~1e-7 absolute there, which no relative rule can judge (nor the 16-bit rule: the
        # plain computation's error there is luck). So dx, in every dtype, also gets the conformance kit's
        # absolute floor (Accuracy.ABSOLUTE_FLOOR: 1e-5 per element, in norm form 1e-5 * sqrt(n)), as the
        # Java suite judges the same kernels.
        # (h.rel_error is absolute where the reference is all zeros, and so is the floor then)
        ref_norm = torch.linalg.vector_norm(rdx).item()
        floor = 1e-5 * math.sqrt(rdx.numel())
        tdx = tdx + floor / ref_norm if ref_norm > 0 else max(tdx, floor)
    kern = f"{bs[0] if bs else 'none'} parts={parts}"
    out.append(h.verdict(f"bwd {name} dx", h.rel_error(dx.view, rdx) if rows else 0.0, tdx, h.unwritten(dx.view),
                         dx.stray_writes(), kernel=kern))
    if with_g:
        e = h.rel_error(dg, rdg) if rows else (0.0 if bool((dg == 0).all()) else math.inf)
        out.append(h.verdict(f"bwd {name} dgamma", e, tdg, h.unwritten(dg), kernel=kern))
    if with_b:
        e = h.rel_error(db, rdb) if rows else (0.0 if bool((db == 0).all()) else math.inf)
        out.append(h.verdict(f"bwd {name} dbeta", e, tdb, h.unwritten(db), kernel=kern))
    return out


ODD = [(1, 1), (3, 7), (5, 8), (2, 31), (7, 32), (4, 100), (9, 128), (3, 264), (2, 1000), (5, 1024), (2, 1536),
       (3, 2056), (1, 4096), (17, 8192), (3, 12288), (2, 16384), (2, 32768), (1, 40000), (0, 64), (1000, 64),
       (70000, 16)]
VARIANTS = [(False, True, True), (True, True, False), (False, False, False), (True, True, True)]


def all_fast_shapes(cols, dt):
    """Every fast launch shape a tuning could give for this length (as in the CPU emulator's test)."""
    fwd, bwd = set(), set()
    for vecs in (1, 2, 4, 8):
        for block in (64, 128, 256, 512, 1024):
            s = forward_shape(cols, dt, True, vecs, block)
            if s[1] > 0:
                fwd.add(s)
    for row_max in (128, 256, 512, 1024):
        for block in (64, 128, 256, 512, 1024):
            s = backward_shape(cols, dt, True, row_max, block)
            if s[1] > 0:
                bwd.add(s)
    return sorted(fwd), sorted(bwd)


# ---------------------------------------------------------------------------------------------
# timing


def bytes_moved(rows, cols, dt, rms, pass_):
    es = torch.empty((), dtype=dt).element_size()
    stats = rows * 4 * (1 if rms else 2)
    if pass_ == "fwd":
        return 2 * rows * cols * es + 2 * cols * es + stats
    return 3 * rows * cols * es + cols * es + stats + 2 * cols * es


def time_shape(ln, name, rows, cols, dt, gen, quick):
    """Ours vs torch vs a copy of the same bytes, forward and backward (layer norm with gamma and beta)."""
    es = torch.empty((), dtype=dt).element_size()
    n_sets = h.sets_needed(2 * rows * cols * es)
    xs = [h.randn((rows, cols), dt, gen) for _ in range(n_sets)]
    dys = [h.randn((rows, cols), dt, gen) for _ in range(n_sets)]
    g = h.randn((cols,), dt, gen, scale=0.5).add_(1.0)
    b = h.randn((cols,), dt, gen, scale=0.5)
    y = torch.empty((rows, cols), dtype=dt, device=h.DEVICE)
    mean = torch.empty(rows, dtype=torch.float32, device=h.DEVICE)
    rstd = torch.empty(rows, dtype=torch.float32, device=h.DEVICE)
    dx = torch.empty_like(y)
    dg = torch.empty(cols, dtype=dt, device=h.DEVICE)
    db = torch.empty(cols, dtype=dt, device=h.DEVICE)
    parts = torch.empty(2 * ln.sms * 16 * cols, dtype=torch.float32, device=h.DEVICE)
    repeats = 15 if quick else 40

    fshape = forward_shape(cols, dt, True)
    t_f = h.time_cuda(lambda i: ln.forward(xs[i], g, b, y, mean, rstd, False), sets=n_sets, repeats=repeats)
    ln.forward(xs[0], g, b, y, mean, rstd, False)
    t_torch_f = h.time_cuda(lambda i: torch.ops.aten.native_layer_norm(xs[i], [cols], g, b, EPS), sets=n_sets,
                            repeats=repeats)
    tm, trs = torch.ops.aten.native_layer_norm(xs[0], [cols], g, b, EPS)[1:]
    bshape = [None, 0]

    def ours_b(i):
        bshape[:] = ln.backward(dys[i], xs[i], g, mean, rstd, dx, dg, db, False, parts=parts)

    t_b = h.time_cuda(ours_b, sets=n_sets, repeats=repeats)
    t_torch_b = h.time_cuda(lambda i: torch.ops.aten.native_layer_norm_backward(
        dys[i], xs[i], [cols], tm, trs, g, b, [True, True, True]), sets=n_sets, repeats=repeats)
    src = torch.empty(rows * cols * es, dtype=torch.uint8, device=h.DEVICE)
    dsts = [torch.empty_like(src) for _ in range(max(1, n_sets))]
    t_copy = h.time_cuda(lambda i: dsts[i].copy_(src), sets=len(dsts), repeats=repeats)
    copy_gbs = h.gbps(2 * rows * cols * es, t_copy["median_ms"])

    rows_out = []
    for pass_, t_ours, t_pt, shape in (("fwd", t_f, t_torch_f, fshape[:4]), ("bwd", t_b, t_torch_b, bshape[0])):
        nbytes = bytes_moved(rows, cols, dt, False, pass_)
        ours_gbs = h.gbps(nbytes, t_ours["median_ms"])
        row = {"shape": name, "dtype": SUFFIX[dt], "pass": pass_,
               "ours_ms": t_ours["median_ms"], "torch_ms": t_pt["median_ms"], "copy_ms": t_copy["median_ms"],
               "ours_GBs": ours_gbs, "torch_GBs": h.gbps(nbytes, t_pt["median_ms"]), "copy_GBs": copy_gbs,
               "of_copy": ours_gbs / copy_gbs, "vs_torch": t_pt["median_ms"] / t_ours["median_ms"],
               "spread": t_ours["spread"], "kernel": shape[0] if shape else None,
               "launch": f"v{shape[1]} row {shape[2]} x{shape[3]}" if shape else None,
               "bytes": nbytes}
        if name in TARGET_SHAPES and dt in TARGET_DTYPES:
            row["target_met"] = row["of_copy"] >= 0.85 and row["vs_torch"] >= 1.0
        rows_out.append(row)
    return rows_out


def sweep_shape(ln, name, rows, cols, dt, gen, quick=False):
    """Other tuning values on one benchmark problem, each checked against float64 before it is timed
    (quick: the backward's row-group sizes only, at the default blocks per SM)."""
    out = []
    x = h.randn((rows, cols), dt, gen)
    dy = h.randn((rows, cols), dt, gen)
    g = h.randn((cols,), dt, gen, scale=0.5).add_(1.0)
    b = h.randn((cols,), dt, gen, scale=0.5)
    ref_y, _, _ = reference_forward(x, g, b, False)
    y = torch.empty_like(x)
    mean = torch.empty(rows, dtype=torch.float32, device=h.DEVICE)
    rstd = torch.empty(rows, dtype=torch.float32, device=h.DEVICE)
    tol_f = h.tolerance(dt, None if dt == torch.float32 else h.rel_error(plain_forward(x, g, b, False), ref_y))
    seen = set()
    for vecs in (() if quick else (1, 2, 4, 8)):
        for block in (128, 256, 512, 1024):
            s = forward_shape(cols, dt, True, vecs, block)
            if s in seen:
                continue
            seen.add(s)
            h.poison(y)
            ln.forward(x, g, b, y, mean, rstd, False, shape=s)
            h.sync(f"sweep forward {s}")
            err = h.rel_error(y, ref_y)
            t = h.time_cuda(lambda i: ln.forward(x, g, b, y, mean, rstd, False, shape=s), repeats=20)
            out.append({"shape": name, "dtype": SUFFIX[dt], "pass": "fwd", "VECS_PER_THREAD": vecs,
                        "BLOCK_THREADS": block, "kernel": s[0], "launch": f"row {s[2]} x{s[3]}",
                        "ok": err <= tol_f, "rel_error": err, "ms": t["median_ms"],
                        "GBs": h.gbps(bytes_moved(rows, cols, dt, False, "fwd"), t["median_ms"])})
    ln.forward(x, g, b, y, mean, rstd, False)
    h.sync("sweep forward default")
    rdx, rdg, rdb = reference_backward(dy, x, g, mean, rstd, False)
    pdx, pdg, pdb = plain_backward(dy, x, g, b, False)
    tol = (1e-5, 1e-5, 1e-5) if dt == torch.float32 else (
        h.tolerance(dt, h.rel_error(pdx, rdx)), h.tolerance(dt, h.rel_error(pdg, rdg)), h.tolerance(dt, h.rel_error(pdb, rdb)))
    dx = torch.empty_like(x)
    dg = torch.empty(cols, dtype=dt, device=h.DEVICE)
    db = torch.empty(cols, dtype=dt, device=h.DEVICE)
    parts = torch.empty(2 * ln.sms * 16 * cols, dtype=torch.float32, device=h.DEVICE)
    seen = set()
    for row_max in ((256, 512, 1024) if quick else (128, 256, 512, 1024)):
        for block in ((256, 1024) if quick else (128, 256, 512, 1024)):
            s = backward_shape(cols, dt, True, row_max, block)
            for per_sm in ((BWD_PER_SM,) if quick else (1, 2, 4, 8, 16)):
                if (s, per_sm) in seen:
                    continue
                seen.add((s, per_sm))
                for t_ in (dx, dg, db, parts):
                    h.poison(t_)
                _, n = ln.backward(dy, x, g, mean, rstd, dx, dg, db, False, shape=s, per_sm=per_sm, parts=parts)
                h.sync(f"sweep backward {s} {per_sm}")
                errs = (h.rel_error(dx, rdx), h.rel_error(dg, rdg), h.rel_error(db, rdb))
                t = h.time_cuda(lambda i: ln.backward(dy, x, g, mean, rstd, dx, dg, db, False, shape=s,
                                                      per_sm=per_sm, parts=parts), repeats=20)
                out.append({"shape": name, "dtype": SUFFIX[dt], "pass": "bwd", "ROW_THREADS_MAX": row_max,
                            "BLOCK_THREADS": block, "BLOCKS_PER_SM": per_sm, "kernel": s[0],
                            "launch": f"row {s[2]} x{s[3]} grid {n}",
                            "ok": all(e <= t_ for e, t_ in zip(errs, tol)), "rel_error": max(errs),
                            "ms": t["median_ms"], "GBs": h.gbps(bytes_moved(rows, cols, dt, False, "bwd"), t["median_ms"])})
    return out


def dialect_twin(kernels_dir, gen, quick):
    """The portable layernorm.cl through kernels4j.h: correctness on a few shapes, forward timing."""
    correctness, timings = [], []
    for dt in DTYPES:
        mod = h.load_module(kernels_dir, f"dialect_layernorm_{SUFFIX[dt]}")
        fwd = mod.get("ln_forward")
        wg = 256  # LN_WG's default in layernorm.cl; the module was built with it

        def launch(x, g, b, y, mean, rstd, rms):
            rows, cols = x.shape
            team = pow2_ceil(min(wg, ceil_div(cols // 4, 4)))  # LayerNormOpenCl's layout, LN_VECS_PER_ITEM=4
            h.launch(fwd, (ceil_div(rows, wg // team),), (wg,),
                     (x, ptr(g), ptr(b), y, ptr(mean), rstd, h.i32(rows), h.i32(cols), h.i32(team), h.f32(EPS),
                      h.i32(1 if rms else 0)))

        for rows, cols in ((3, 8), (37, 1000), (5, 4096)):
            x = h.randn((rows, cols), dt, gen)
            g = h.randn((cols,), dt, gen)
            b = h.randn((cols,), dt, gen)
            y = h.poison(torch.empty_like(x))
            mean = h.poison(torch.empty(rows, dtype=torch.float32, device=h.DEVICE))
            rstd = h.poison(torch.empty(rows, dtype=torch.float32, device=h.DEVICE))
            launch(x, g, b, y, mean, rstd, False)
            h.sync("dialect ln_forward")
            ref, _, _ = reference_forward(x, g, b, False)
            tol = h.tolerance(dt, None if dt == torch.float32 else h.rel_error(plain_forward(x, g, b, False), ref))
            correctness.append(h.verdict(f"dialect twin fwd {SUFFIX[dt]} [{rows}x{cols}]", h.rel_error(y, ref), tol,
                                         h.unwritten(y), kernel=f"{os.path.basename(mod.path)}:ln_forward"))
        for name, rows, cols, dts in BENCH:
            if dt not in dts or quick:
                continue
            x = h.randn((rows, cols), dt, gen)
            g = h.randn((cols,), dt, gen)
            b = h.randn((cols,), dt, gen)
            y = torch.empty_like(x)
            mean = torch.empty(rows, dtype=torch.float32, device=h.DEVICE)
            rstd = torch.empty(rows, dtype=torch.float32, device=h.DEVICE)
            t = h.time_cuda(lambda i: launch(x, g, b, y, mean, rstd, False), repeats=20)
            timings.append({"shape": name, "dtype": SUFFIX[dt], "pass": "fwd (dialect twin)", "ms": t["median_ms"],
                            "GBs": h.gbps(bytes_moved(rows, cols, dt, False, "fwd"), t["median_ms"])})
    return correctness, timings


# ---------------------------------------------------------------------------------------------


def run(kernels_dir: str, out_dir: str, quick: bool) -> dict:
    started = time.time()
    gen, seed = h.generator()
    ln = LayerNormKernels(kernels_dir)
    result = {"device": h.device_info(), "module": ln.mod.path, "module_kind": ln.mod.kind, "seed": seed,
              "correctness": [], "timings": [], "sweep": [], "dialect_twin": []}
    partial = os.path.join(out_dir, "layernorm_partial.json")

    def save(phase):
        result["ok"] = bool(result["correctness"]) and all(v["ok"] for v in result["correctness"])
        result["phase"] = phase
        result["elapsed_s"] = round(time.time() - started, 1)
        h.write_json(partial, result)

    def add(vs, what):
        result["correctness"].extend(vs)
        bad = [v for v in vs if not v["ok"]]
        print(f"  {'FAIL' if bad else 'ok  '} {what}"
              + "".join(f"\n       {v['name']}: {v['why']} [{v.get('kernel')}]" for v in bad[:6]), flush=True)

    print(f"check_layernorm: seed {seed}, module {ln.mod.path} ({ln.mod.kind})", flush=True)
    add([formula_self_check(gen)], "reference backward formula")
    save("formula")

    # 1. correctness: odd shapes x variants x dtypes, default launch shapes
    for rows, cols in (ODD[:12] if quick else ODD):
        for dt in DTYPES:
            vs = []
            for rms, with_g, with_b in VARIANTS:
                vs += check_case(ln, rows, cols, dt, rms, with_g, with_b, gen)
            add(vs, f"{SUFFIX[dt]} [{rows}x{cols}] {len(VARIANTS)} variants")
        save(f"odd {rows}x{cols}")
    for dt in DTYPES:
        add(check_case(ln, 33, 1024, dt, False, True, True, gen, misalign=True)
            + check_case(ln, 5, 77, dt, True, True, False, gen, misalign=True), f"{SUFFIX[dt]} misaligned input")
    save("misaligned")
    # every fast launch shape for a few lengths
    for cols in ((1024, 4096) if quick else (128, 1024, 2056, 4096, 8192)):
        for dt in DTYPES:
            fwd_shapes, bwd_shapes = all_fast_shapes(cols, dt)
            vs = []
            for s in fwd_shapes:
                vs += [v for v in check_case(ln, 37, cols, dt, False, True, True, gen, fwd_shape=s, label=str(s[:4]))
                       if v["name"].startswith("fwd")]
            for s in bwd_shapes:
                vs += [v for v in check_case(ln, 37, cols, dt, True, True, True, gen, bwd_shape=s, label=str(s[:4]))
                       if v["name"].startswith("bwd")]
            add(vs, f"{SUFFIX[dt]} cols={cols}: {len(fwd_shapes)} forward and {len(bwd_shapes)} backward launch shapes")
        save(f"shapes {cols}")
    # the benchmark problems at full size, as timed below
    for name, rows, cols, dts in BENCH:
        for dt in dts:
            add(check_case(ln, rows, cols, dt, False, True, True, gen, label=name), f"{SUFFIX[dt]} {name}")
            if not quick:
                add(check_case(ln, rows, cols, dt, True, True, False, gen, label=name), f"{SUFFIX[dt]} {name} rms")
        save(f"bench correctness {name}")
    # the PTX build, JIT-compiled by the driver (what GPUs without a shipped cubin load)
    try:
        ln_ptx = LayerNormKernels(kernels_dir, prefer_ptx=True)
        vs = check_case(ln_ptx, 37, 4096, torch.bfloat16, False, True, True, gen, label="ptx")
        vs += check_case(ln_ptx, 11, 1000, torch.float32, True, True, True, gen, label="ptx")
        for v in vs:
            v["module"] = ln_ptx.mod.path
        add(vs, "PTX build (driver JIT)")
    except Exception as e:  # a JIT failure is a result, not a crash
        result["correctness"].append(h.verdict(f"PTX build loads: {type(e).__name__}: {e}", math.inf, 0.0))
    save("ptx")

    # 2. timing
    for name, rows, cols, dts in BENCH:
        for dt in dts:
            rows_t = time_shape(ln, name, rows, cols, dt, gen, quick)
            result["timings"].extend(rows_t)
            for r in rows_t:
                print(f"  {name} {r['dtype']} {r['pass']}: ours {r['ours_ms']:.4f} ms {r['ours_GBs']:.0f} GB/s "
                      f"({100 * r['of_copy']:.0f}% of copy {r['copy_GBs']:.0f} GB/s), torch {r['torch_ms']:.4f} ms, "
                      f"x{r['vs_torch']:.2f} vs torch [{r['kernel']} {r['launch']}]", flush=True)
            torch.cuda.empty_cache()
        save(f"timing {name}")
    result["occupancy_source"] = ln.occupancy_source

    # 3. tuning sweep (quick: the backward's row-group sizes on the target problems) and the portable twin
    for name, rows, cols, dts in BENCH:
        if name not in TARGET_SHAPES:
            continue
        for dt in TARGET_DTYPES:
            result["sweep"].extend(sweep_shape(ln, name, rows, cols, dt, gen, quick))
            torch.cuda.empty_cache()
        save(f"sweep {name}")
    bad = [s for s in result["sweep"] if not s["ok"]]
    if bad:
        result["correctness"].append(h.verdict(f"sweep: {len(bad)} configurations wrong, e.g. {bad[0]}", math.inf, 0.0))
    try:
        twin_c, twin_t = dialect_twin(kernels_dir, gen, quick)
        result["dialect_twin"] = twin_t
        add(twin_c, "portable dialect twin (forward)")
    except Exception as e:
        result["correctness"].append(h.verdict(f"dialect twin: {type(e).__name__}: {e}", math.inf, 0.0))
    save("done")

    targets = [r for r in result["timings"] if "target_met" in r]
    result["targets_met"] = f"{sum(r['target_met'] for r in targets)}/{len(targets)}"
    result["elapsed_s"] = round(time.time() - started, 1)
    h.write_json(partial, result)
    h.print_table(result["timings"], ["shape", "dtype", "pass", "ours_ms", "torch_ms", "ours_GBs", "copy_GBs",
                                      "of_copy", "vs_torch", "target_met", "kernel", "launch"],
                  title="layer norm timings (ours vs torch vs copy)")
    if result["sweep"]:
        best = {}
        for s in result["sweep"]:
            k = (s["shape"], s["dtype"], s["pass"])
            if s["ok"] and (k not in best or s["ms"] < best[k]["ms"]):
                best[k] = s
        h.print_table(list(best.values()), title="fastest correct configuration per problem (sweep)")
    print(f"check_layernorm: {sum(v['ok'] for v in result['correctness'])}/{len(result['correctness'])} checks ok, "
          f"targets met {result['targets_met']}, {result['elapsed_s']} s", flush=True)
    return result


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--kernels-dir", default="kernels-cuda/target/classes/org/kernels4j/cuda/kernels")
    ap.add_argument("--out", default="/tmp/k4j-layernorm")
    ap.add_argument("--quick", action="store_true")
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    res = run(a.kernels_dir, a.out, a.quick)
    h.write_json(os.path.join(a.out, "layernorm.json"), res)
    return 0 if res.get("ok") else 1


if __name__ == "__main__":
    sys.exit(main())
