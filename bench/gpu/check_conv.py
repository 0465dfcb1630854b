"""Device check of the CUDA convolution kernels (kernels-cuda/src/main/cuda/conv_*.cu).

Loads the compiled modules conv_igemm (mma.sync), conv_wgmma (Hopper's warpgroup MMA, sm_90a), conv_simt,
conv_depthwise and conv_support with cupy and launches them exactly as Conv2dCuda.java does: the planner below
follows the same rules (kernel choice for each engine, grid, split-K, workspace, NCHW through transposes for
fp16/bf16), and Conv2dCudaTest pins the Java side's choices for the benchmark layers to the ones named here.
The two fp16/bf16 engines are checked and timed side by side, so that one GPU run decides which one
Conv2dCuda routes sm_90 to (system property kernels4j.cuda.conv.engine=mma|wgmma|auto, tuning parameter
ENGINE):

1. correctness, mma.sync engine: fprop, dgrad (dx), wgrad (dw) and the bias gradient (db) for fp32, fp16 and
   bf16 on random odd shapes (strides, asymmetric padding, dilation, groups, depthwise, C or K not a multiple
   of 8 -- among them the conformance case that faulted on the first H200 run, fp16 NCHW 1x1 N=3 C=16 K=7 --,
   NHWC and NCHW), and the six ResNet-50 layers of the GPU benchmark set (bf16 NHWC, batch 8 in quick mode,
   128 otherwise); reference torch float64 on the same (upcast) inputs (float32 with TF32 off for the
   large layers, whose error is far below the bf16 tolerance); NaN-poisoned outputs with guard elements;
   fp16/bf16 tolerance twice the error of torch's own computation in that dtype;
2. timing, the six layers bf16 NHWC N=128, fprop/dgrad/wgrad: cuDNN (cudnn.benchmark, channels_last) and
   the planned mma.sync kernels, CUDA events, median after warm-up, rotating input sets larger than L2;
   TFLOP/s = 2*N*K*(C/groups)*R*S*P*Q per pass; ratio = cuDNN time / ours (target >= 0.7);
3. (sm_90 with conv_wgmma.sm_90a.cubin) the wgmma engine: correctness on the odd shapes it takes (16-byte
   loaders) and on the layers for every tile, then each tile timed beside cuDNN and mma.sync; this runs
   after the results above are saved, so that a fault there cannot lose them; the plain tiles first, the
   warp-specialized ones under a watchdog (a hang ends the process, the partial result kept). The summary
   table at the end gives per layer and pass cuDNN, mma.sync (planned), wgmma (planned and best correct
   tile) and which engine wins;
4. (last, within a budget in quick mode) a sweep of the other mma.sync tiles and split counts per layer
   (fewer repeats), to show which the planner should pick;

Progress is printed as it goes and the partial result is rewritten to <out_dir>/conv_partial.json after
every step, so a kernel fault (which ends the process) still leaves what was measured before it.

Stand-alone: python3 bench/gpu/check_conv.py --kernels-dir <dir> [--out <dir>] [--quick]
Through the runner: python3 bench/gpu/run_checks.py --only conv --quick --kernels-dir <dir> --out <file>
"""

import argparse
import math
import os
import sys
import time
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402

MODULES = ("conv_igemm", "conv_simt", "conv_depthwise", "conv_support")  # conv_wgmma: on sm_90 only
SUFFIX = {torch.float32: "f32", torch.float16: "f16", torch.bfloat16: "bf16"}
BK_TC, BK_SIMT = 32, 16
WORKSPACE_CAP = 256 << 20  # bytes of split-K partials the planner allows per call
Z_MAX = 65535

# The six ResNet-50 layers of shared/benchmark-shapes.md: (name, C, H=W, K, R=S, stride, pad)
RN50 = [
    ("conv-rn50-c2", 64, 56, 64, 3, 1, 1),
    ("conv-rn50-c3", 128, 28, 128, 3, 1, 1),
    ("conv-rn50-c4", 256, 14, 256, 3, 1, 1),
    ("conv-rn50-c5", 512, 7, 512, 3, 1, 1),
    ("conv-rn50-1x1", 256, 56, 64, 1, 1, 0),
    ("conv-rn50-stem", 3, 224, 64, 7, 2, 3),
]


@dataclass(frozen=True)
class Conv:
    N: int
    C: int
    H: int
    W: int
    K: int
    R: int
    S: int
    stride: tuple = (1, 1)
    pad: tuple = (0, 0, 0, 0)  # top, left, bottom, right
    dil: tuple = (1, 1)
    groups: int = 1

    @property
    def P(self):
        return (self.H + self.pad[0] + self.pad[2] - self.dil[0] * (self.R - 1) - 1) // self.stride[0] + 1

    @property
    def Q(self):
        return (self.W + self.pad[1] + self.pad[3] - self.dil[1] * (self.S - 1) - 1) // self.stride[1] + 1

    @property
    def Cg(self):
        return self.C // self.groups

    @property
    def Kg(self):
        return self.K // self.groups

    @property
    def depthwise(self):
        return self.groups == self.C and self.Cg == 1

    def flops(self):
        return 2.0 * self.N * self.K * self.Cg * self.R * self.S * self.P * self.Q

    def args(self, split_len=0):
        """The int arguments every conv kernel takes after its four pointers."""
        return [h.i32(v) for v in (self.N, self.H, self.W, self.C, self.K, self.R, self.S, self.P, self.Q,
                                   self.stride[0], self.stride[1], self.pad[0], self.pad[1], self.dil[0],
                                   self.dil[1], self.groups, split_len)]

    def label(self):
        return (f"N{self.N} C{self.C} {self.H}x{self.W} K{self.K} {self.R}x{self.S} s{self.stride[0]}x{self.stride[1]}"
                f" p{','.join(map(str, self.pad))} d{self.dil[0]}x{self.dil[1]} g{self.groups}")


def cdiv(a, b):
    return -(-a // b)


# ---------------------------------------------------------------------------------------------------
# The planner: the rules of Conv2dCuda.java


@dataclass
class Launch:
    module: str
    entry: str
    grid: tuple
    block: tuple
    smem: int = 0
    splits: int = 1
    split_len: int = 0
    phase: tuple = (-1, -1)


class Kernels:
    def __init__(self, kernels_dir: str):
        self.mods = {m: h.load_module(kernels_dir, m) for m in MODULES}
        self.sms = torch.cuda.get_device_properties(0).multi_processor_count
        self._cfg = read_configs(os.path.join(kernels_dir, "conv_igemm.ptx"))
        self.wgmma_reason = None
        major, minor = h.compute_capability()
        cubin = os.path.join(kernels_dir, f"conv_wgmma.sm_{major}{minor}a.cubin")
        if (major, minor) != (9, 0):
            self.wgmma_reason = f"wgmma kernels are built for sm_90a; this device is sm_{major}{minor}"
        elif not os.path.isfile(cubin):
            self.wgmma_reason = f"no {os.path.basename(cubin)} in {kernels_dir}"
        else:
            import cupy
            self.mods["conv_wgmma"] = h.Module(cupy.RawModule(path=cubin), cubin, "cubin")
            self._cfg.update(read_configs(os.path.join(kernels_dir, "conv_wgmma.ptx")))

    def fn(self, module, entry):
        return self.mods[module].get(entry)

    def cfg(self, entry):
        """{threads, smem bytes, BM, BN} of a tensor-core entry (its __constant__ <entry>_cfg)."""
        if entry not in self._cfg:
            raise KeyError(f"no tensor-core entry {entry} in conv_igemm/conv_wgmma")
        return self._cfg[entry]

    def paths(self):
        return {m: (mod.path, mod.kind) for m, mod in self.mods.items()}


def read_configs(ptx_path):
    """The <entry>_cfg initialisers of a module's PTX: 16 little-endian bytes = 4 ints (PTX drops trailing zeros)."""
    import re
    text = open(ptx_path).read()
    out = {}
    for m in re.finditer(r"\.const \.align 4 \.b8 (conv_\w+)_cfg\[16\] = \{([0-9, ]*)\};", text):
        b = [int(v) for v in m.group(2).split(",")] + [0] * 16
        out[m.group(1)] = [int.from_bytes(bytes(b[4 * i:4 * i + 4]), "little") for i in range(4)]
    if not out:
        raise RuntimeError(f"no _cfg constants in {ptx_path}")
    return out


def gemm_dims(pas, c: Conv):
    if pas == "fprop":
        return c.N * c.P * c.Q, c.Kg, c.R * c.S * c.Cg
    if pas == "dgrad":
        return c.N * c.H * c.W, c.Cg, c.R * c.S * c.Kg
    return c.Kg, c.R * c.S * c.Cg, c.N * c.P * c.Q


# CTAs of a tile one H100/H200 SM holds at once, from the registers (ptxas) and shared memory of the
# kernels; Conv2dCuda.java asks the driver (cuOccupancyMaxActiveBlocksPerMultiprocessor) instead.
SLOTS = {"128x256w8": 1, "128x128w8": 2, "128x128w4": 2, "256x64w4": 2, "128x64w4": 3, "64x64w4": 4,
         "64x256w4": 2, "64x128w4": 3, "128x32w4": 4, "128x16w4": 4}

# The wgmma tiles of conv_wgmma.cu per pass (Conv2dCuda.Pass.wgTiles): "<BM>x<BN>" (every warp loads and
# multiplies, 4 stages), then the warp-specialized "<BM>x<BN>ws<stages>" (a producer warpgroup, mbarriers)
WG_TILES = {"fprop": ["128x256", "128x128", "128x64", "128x256ws6", "128x128ws8"],
            "dgrad": ["128x256", "128x128", "128x64", "128x256ws6", "128x128ws8"],
            "wgrad": ["128x256", "128x128", "64x256", "128x256ws6", "128x128ws8"]}


def wg_slots(tile):
    """CTAs of a wgmma tile one SM holds (conv_wgmma.cu's minimum blocks)."""
    return 1 if "ws" in tile or tile.endswith("x256") else 2


def dgrad_phases(c: Conv):
    """dgrad's launches (conv_igemm.cu): with dilation 1 one per stride phase that has pixels,
    (phaseH, phaseW, rows, columns); otherwise one gathering every tap, (-1, -1, H, W)."""
    if c.dil != (1, 1):
        return [(-1, -1, c.H, c.W)]
    out = []
    for a in range(c.stride[0]):
        for b in range(c.stride[1]):
            h0, w0 = (a - c.pad[0]) % c.stride[0], (b - c.pad[1]) % c.stride[1]
            rows = cdiv(c.H - h0, c.stride[0]) if h0 < c.H else 0
            cols = cdiv(c.W - w0, c.stride[1]) if w0 < c.W else 0
            if rows > 0 and cols > 0:
                out.append((a, b, rows, cols))
    return out


def vector_loaders(pas, c: Conv):
    """Whether the 16-byte loaders can read operand A and B (torch allocations are aligned): the contiguous
    channel count of the operand a multiple of 8 (A: Cg for fprop, Kg for dgrad/wgrad; B: Cg)."""
    return (c.Cg if pas == "fprop" else c.Kg) % 8 == 0, c.Cg % 8 == 0


def tc_entry(kern, pas, c: Conv, dt, engine="mma", tile=None, m=None):
    """The tensor-core entry Conv2dCuda.tcKernel picks (tile=None) or the one of `tile` ("<BM>x<BN>w<warps>_vv"
    for mma, "<BM>x<BN>" for wgmma), and its config {threads, smem, BM, BN}.

    Problems the 16-byte loaders cannot read take the single-element mma.sync kernels whatever the engine.
    mma.sync: among the tiles that do not waste most of NG, the largest one whose CTA count still fills every SM
    slot once; with one or two k-tiles (KD <= 64) the tiles of more CTAs per SM, since such a pass moves memory.
    wgmma: as wide as NG needs, narrower while the CTAs would not fill every SM once; wgrad as wide as NG.
    """
    suf = SUFFIX[dt]
    M, NG, KD = gemm_dims(pas, c)
    M = M if m is None else m
    va, vb = vector_loaders(pas, c)
    if not (va and vb) or (pas == "dgrad" and c.Cg <= 32):
        a = va and pas != "fprop"
        if pas == "fprop":
            name = "128x64w4"
        elif pas == "dgrad":
            name = "128x16w4" if c.Cg <= 16 else "128x32w4"
        else:
            name = "64x64w4"
        entry = f"conv_{pas}_{suf}_{name}_{'vs' if a else 'ss'}"
        return entry, kern.cfg(entry)
    if engine == "wgmma":
        if tile is None:
            tiles = WG_TILES[pas]
            if pas == "wgrad":
                tile = tiles[2] if M <= 64 else tiles[0] if NG > 128 else tiles[1]
            else:
                prefs = tiles[:3] if NG > 128 else tiles[1:3] if NG > 64 else tiles[2:3]
                tile = next((t for t in prefs if ctas(kern, f"conv_wg_{pas}_{suf}_{t}_vv", M, NG, c.groups)
                             >= kern.sms * wg_slots(t)), prefs[-1])
        entry = f"conv_wg_{pas}_{suf}_{tile}_vv"
        return entry, kern.cfg(entry)
    if tile is None:
        # the one-CTA and 256-row tiles are left to tuning: the first H200 run favoured more warps per SM
        if pas == "wgrad":
            tile = "128x128w4" if M > 64 else ("64x128w4" if NG > 64 else "64x64w4")
        else:
            if KD <= 2 * BK_TC:
                prefs = ["128x128w4", "128x64w4", "64x64w4"] if NG > 64 else ["128x64w4", "64x64w4"]
            elif NG > 64:
                prefs = ["128x128w4", "64x64w4"]
            else:
                prefs = ["128x64w4", "64x64w4"]
            tile = next((t for t in prefs if ctas(kern, f"conv_{pas}_{suf}_{t}_vv", M, NG, c.groups)
                         >= kern.sms * SLOTS[t]), prefs[-1])
        tile += "_vv"
    entry = f"conv_{pas}_{suf}_{tile}"
    return entry, kern.cfg(entry)


def ctas(kern, entry, M, NG, groups):
    _, _, bm, bn = kern.cfg(entry)
    return cdiv(M, bm) * cdiv(NG, bn) * groups


def split_k(kern, tiles, KD, bk, bytes_per_split, groups, splits=None):
    """Splits of the reduction (KD) so that tiles*splits fills the GPU ~4 times over; splitLen a multiple of bk."""
    ktiles = max(1, cdiv(KD, bk))
    if splits is None:
        splits = max(1, cdiv(4 * kern.sms, tiles))
    splits = max(1, min(splits, ktiles, Z_MAX // groups, max(1, WORKSPACE_CAP // max(1, bytes_per_split))))
    split_len = cdiv(ktiles, splits) * bk
    return cdiv(KD, split_len), split_len


def plan(kern, pas, c: Conv, dt, engine="mma", tile=None, splits=None):
    """The launches of one pass of an NHWC (or, fp32/depthwise, either-layout) problem: a list, since
    tensor-core dgrad launches once per stride phase. engine "mma" or "wgmma" (as Conv2dCuda's ENGINE);
    tile overrides the planner's tile for that engine; splits the planner's split count (wgrad)."""
    if pas == "dgrad" and dt != torch.float32 and not c.depthwise:
        out = []
        for a, b, rows, cols in dgrad_phases(c):
            m = c.N * rows * cols
            entry, (threads, smem, bm, bn) = tc_entry(kern, pas, c, dt, engine, tile, m)
            out.append(Launch(module_of(entry), entry, (cdiv(m, bm) * cdiv(c.Cg, bn), 1, c.groups),
                              (threads, 1, 1), smem, phase=(a, b)))
        return out
    return [plan_one(kern, pas, c, dt, engine, tile, splits)]


def module_of(entry):
    return "conv_wgmma" if entry.startswith("conv_wg_") else "conv_igemm"


def plan_one(kern, pas, c: Conv, dt, engine="mma", tile=None, splits=None):
    M, NG, KD = gemm_dims(pas, c)
    if c.depthwise:
        suf = SUFFIX[dt]
        if pas == "wgrad":
            npq = c.N * c.P * c.Q
            cb = cdiv(c.K, 32)
            s = max(1, min(cdiv(4 * kern.sms, cb), cdiv(npq, 256), Z_MAX))
            sl = cdiv(npq, s)
            s = cdiv(npq, sl)
            return Launch("conv_depthwise", f"conv_dw_wgrad_{suf}", (cb, s, 1), (32, 8, 1), 0, s, sl)
        per_image = c.K * c.P * c.Q if pas == "fprop" else c.C * c.H * c.W
        return Launch("conv_depthwise", f"conv_dw_{pas}_{suf}", (cdiv(per_image, 256), min(c.N, Z_MAX), 1), (256, 1, 1))
    if dt == torch.float32:
        tiles = cdiv(M, 64) * cdiv(NG, 64)
        s, sl = 1, 0
        if pas == "wgrad":
            s, sl = split_k(kern, tiles * c.groups, KD, BK_SIMT, c.K * NG * 4, c.groups, splits)
        return Launch("conv_simt", f"conv_simt_{pas}_f32", (tiles, 1, c.groups * s), (256, 1, 1), 0, s, sl)
    entry, (threads, smem, bm, bn) = tc_entry(kern, pas, c, dt, engine, tile)
    tiles = cdiv(M, bm) * cdiv(NG, bn)
    s, sl = 1, 0
    if pas == "wgrad":
        s, sl = split_k(kern, tiles * c.groups, KD, BK_TC, c.K * NG * 4, c.groups, splits)
    return Launch(module_of(entry), entry, (tiles, 1, c.groups * s), (threads, 1, 1), smem, s, sl)


def launch_conv(kern, Ls, c: Conv, a, b, bias, out, nchw=False):
    for L in Ls:
        args = [a, b, bias if bias is not None else np.uint64(0), out] + c.args(L.split_len)
        if L.module in ("conv_igemm", "conv_wgmma"):
            args += [h.i32(L.phase[0]), h.i32(L.phase[1])]
        else:
            args.append(h.i32(1 if nchw else 0))
        h.launch(kern.fn(L.module, L.entry), L.grid, L.block, args, L.smem)


def reduce_into(kern, partial, out, count, splits, dt):
    blocks = max(1, min(cdiv(count, 256), Z_MAX))
    h.launch(kern.fn("conv_support", f"conv_reduce_{SUFFIX[dt]}"), (blocks, 1, 1), (256, 1, 1),
             [partial, out, h.i64(count), h.i32(splits)])


def transpose(kern, src, dst, batch, rows, cols):
    name = "conv_transpose_b32" if src.element_size() == 4 else "conv_transpose_b16"
    grid = (cdiv(cols, 32), min(cdiv(rows, 32), Z_MAX), min(batch, Z_MAX))
    h.launch(kern.fn("conv_support", name), grid, (32, 8, 1), [src, dst, h.i32(batch), h.i32(rows), h.i32(cols)])


def space_to_depth(c: Conv, dt):
    """Conv2dCuda.spaceToDepth: the stride-1 NHWC problem over 2x2 pixel blocks that computes a stride-2 fp16/bf16
    convolution of fewer than 8 input channels (4C channels padded to a multiple of 8), or None."""
    if (dt == torch.float32 or c.groups != 1 or c.depthwise or c.stride != (2, 2) or c.dil != (1, 1)
            or c.C % 8 == 0 or 4 * c.C > 32):
        return None
    c2 = cdiv(4 * c.C, 8) * 8
    pt, pl = (c.pad[0] + 1) // 2, (c.pad[1] + 1) // 2
    r2 = (c.R - 1 + 2 * pt - c.pad[0]) // 2 + 1
    s2 = (c.S - 1 + 2 * pl - c.pad[1]) // 2 + 1
    h2, w2 = (c.H + 1) // 2, (c.W + 1) // 2
    return Conv(c.N, c2, h2, w2, c.K, r2, s2, (1, 1), (pt, pl, c.P - 1 + r2 - h2 - pt, c.Q - 1 + s2 - w2 - pl))


def gemm_problem(c: Conv, dt):
    """The problem the tensor-core kernels see: the space-to-depth one where that applies."""
    return space_to_depth(c, dt) or c


def wgmma_takes(c: Conv, dt):
    """Whether every pass of c has the 16-byte loaders that the wgmma kernels need."""
    g = gemm_problem(c, dt)
    return not g.depthwise and all(all(vector_loaders(p, g)) for p in ("fprop", "dgrad", "wgrad"))


def s2d_x(kern, name, src, dst, c: Conv, q: Conv, layout):
    """conv_s2d_x_b16 (x into q's image) or conv_d2s_x_b16 (back); c gives x's geometry and layout."""
    work = q.N * q.H * q.W * (q.C // 8) if name == "conv_s2d_x_b16" else c.N * c.C * c.H * c.W
    h.launch(kern.fn("conv_support", name), (max(1, cdiv(work, 256)), 1, 1), (256, 1, 1),
             [src, dst] + [h.i32(v) for v in (c.N, c.H, c.W, c.C, q.H, q.W, q.C, 1 if layout == "NCHW" else 0)])


def s2d_w(kern, name, src, dst, c: Conv, q: Conv, layout):
    """conv_s2d_w_b16 (c's filter into q's) or conv_d2s_w_b16 (back)."""
    work = q.K * q.R * q.S * q.C if name == "conv_s2d_w_b16" else c.K * c.R * c.S * c.C
    h.launch(kern.fn("conv_support", name), (max(1, cdiv(work, 256)), 1, 1), (256, 1, 1),
             [src, dst] + [h.i32(v) for v in (c.K, c.R, c.S, c.C, q.R, q.S, q.C, 2 * q.pad[0] - c.pad[0],
                                               2 * q.pad[1] - c.pad[1], 1 if layout == "NCHW" else 0)])


class Runner:
    """Runs a pass the way Conv2dCuda.java does, workspaces allocated per call."""

    def __init__(self, kern: Kernels):
        self.kern = kern

    def _nhwc_inputs(self, c, layout, x=None, w=None, dy=None):
        """fp16/bf16 NCHW: NHWC copies of the operands (filters [K][Cg][R][S] -> [K][R][S][Cg])."""
        k = self.kern
        res = []
        for t, kind in ((x, "x"), (w, "w"), (dy, "y")):
            if t is None:
                res.append(None)
                continue
            if layout == "NHWC":
                res.append(t)
                continue
            u = torch.empty_like(t)
            if kind == "x":
                transpose(k, t, u, c.N, c.C, c.H * c.W)
            elif kind == "y":
                transpose(k, t, u, c.N, c.K, c.P * c.Q)
            else:
                transpose(k, t, u, c.K, c.Cg, c.R * c.S)
            res.append(u)
        return res

    def fprop(self, c, dt, layout, x, w, bias, y, engine="mma", tile=None):
        k = self.kern
        if c.N == 0:  # nothing to write
            return None
        q = space_to_depth(c, dt) if not c.depthwise else None
        if q is not None:
            x2 = torch.empty(x_shape(q, "NHWC"), dtype=dt, device=h.DEVICE)
            w2 = torch.empty(w_shape(q, "NHWC"), dtype=dt, device=h.DEVICE)
            s2d_x(k, "conv_s2d_x_b16", x, x2, c, q, layout)
            s2d_w(k, "conv_s2d_w_b16", w, w2, c, q, layout)
            Ls = plan(k, "fprop", q, dt, engine, tile)
            yn = y if layout == "NHWC" else torch.empty(y_shape(c, "NHWC"), dtype=dt, device=h.DEVICE)
            launch_conv(k, Ls, q, x2, w2, bias, yn)
            if layout == "NCHW":
                transpose(k, yn, y, c.N, c.P * c.Q, c.K)
            return Ls[0]
        tc = dt != torch.float32 and not c.depthwise
        Ls = plan(k, "fprop", c, dt, engine, tile)
        if not tc or layout == "NHWC":
            launch_conv(k, Ls, c, x, w, bias, y, layout == "NCHW")
            return Ls[0]
        xn, wn, _ = self._nhwc_inputs(c, layout, x=x, w=w)
        yn = torch.empty_like(y)
        launch_conv(k, Ls, c, xn, wn, bias, yn)
        transpose(k, yn, y, c.N, c.P * c.Q, c.K)
        return Ls[0]

    def dgrad(self, c, dt, layout, dy, w, dx, engine="mma", tile=None):
        k = self.kern
        if c.N == 0:
            return None
        q = space_to_depth(c, dt)
        if q is not None:
            _, _, dyn = self._nhwc_inputs(c, layout, dy=dy)
            w2 = torch.empty(w_shape(q, "NHWC"), dtype=dt, device=h.DEVICE)
            dx2 = torch.empty(x_shape(q, "NHWC"), dtype=dt, device=h.DEVICE)
            s2d_w(k, "conv_s2d_w_b16", w, w2, c, q, layout)
            Ls = plan(k, "dgrad", q, dt, engine, tile)
            launch_conv(k, Ls, q, dyn, w2, None, dx2)
            s2d_x(k, "conv_d2s_x_b16", dx2, dx, c, q, layout)
            return Ls[0]
        tc = dt != torch.float32 and not c.depthwise
        Ls = plan(k, "dgrad", c, dt, engine, tile)
        if not tc or layout == "NHWC":
            launch_conv(k, Ls, c, dy, w, None, dx, layout == "NCHW")
            return Ls[0]
        _, wn, dyn = self._nhwc_inputs(c, layout, w=w, dy=dy)
        dxn = torch.empty_like(dx)
        launch_conv(k, Ls, c, dyn, wn, None, dxn)
        transpose(k, dxn, dx, c.N, c.H * c.W, c.C)
        return Ls[0]

    def wgrad(self, c, dt, layout, dy, x, dw, db=None, engine="mma", tile=None, splits=None):
        k = self.kern
        tc = dt != torch.float32 and not c.depthwise
        count = c.K * c.R * c.S * c.Cg
        L = None
        q = space_to_depth(c, dt)
        if c.N == 0:
            reduce_into(k, dw, dw, count, 0, dt)  # splits = 0 writes zeros; the partial pointer is not read
        elif q is not None:
            _, _, dyn = self._nhwc_inputs(c, layout, dy=dy)
            x2 = torch.empty(x_shape(q, "NHWC"), dtype=dt, device=h.DEVICE)
            s2d_x(k, "conv_s2d_x_b16", x, x2, c, q, layout)
            Ls = plan(k, "wgrad", q, dt, engine, tile, splits)
            L = Ls[0]
            count2 = q.K * q.R * q.S * q.C
            part = torch.empty(L.splits * count2, dtype=torch.float32, device=h.DEVICE)
            launch_conv(k, Ls, q, dyn, x2, None, part)
            dw2 = torch.empty(w_shape(q, "NHWC"), dtype=dt, device=h.DEVICE)
            reduce_into(k, part, dw2, count2, L.splits, dt)
            s2d_w(k, "conv_d2s_w_b16", dw2, dw, c, q, layout)
        else:
            Ls = plan(k, "wgrad", c, dt, engine, tile, splits)
            L = Ls[0]
            part = torch.empty(L.splits * count, dtype=torch.float32, device=h.DEVICE)
            if not tc or layout == "NHWC":
                launch_conv(k, Ls, c, dy, x, None, part, layout == "NCHW")
                reduce_into(k, part, dw, count, L.splits, dt)
            else:
                xn, _, dyn = self._nhwc_inputs(c, layout, x=x, dy=dy)
                launch_conv(k, Ls, c, dyn, xn, None, part)
                dwn = torch.empty_like(dw)
                reduce_into(k, part, dwn, count, L.splits, dt)
                transpose(k, dwn, dw, c.K, c.R * c.S, c.Cg)
        if db is not None:
            self.bias_grad(c, dt, layout, dy, db)
        return L

    def bias_grad(self, c, dt, layout, dy, db):
        k = self.kern
        npq = c.N * c.P * c.Q
        if npq == 0:
            reduce_into(k, db, db, c.K, 0, dt)
            return
        cb = cdiv(c.K, 32)
        s = max(1, min(cdiv(4 * k.sms, cb), cdiv(npq, 256), Z_MAX))
        sl = cdiv(npq, s)
        s = cdiv(npq, sl)
        part = torch.empty(s * c.K, dtype=torch.float32, device=h.DEVICE)
        h.launch(k.fn("conv_support", f"conv_bias_grad_{SUFFIX[dt]}"), (cb, s, 1), (32, 8, 1),
                 [dy, part, h.i32(c.N), h.i32(c.K), h.i32(c.P * c.Q), h.i32(sl), h.i32(1 if layout == "NCHW" else 0)])
        reduce_into(k, part, db, c.K, s, dt)


# ---------------------------------------------------------------------------------------------------
# Tensors in our layouts, and the torch views of them


def x_shape(c, layout):
    return (c.N, c.H, c.W, c.C) if layout == "NHWC" else (c.N, c.C, c.H, c.W)


def y_shape(c, layout):
    return (c.N, c.P, c.Q, c.K) if layout == "NHWC" else (c.N, c.K, c.P, c.Q)


def w_shape(c, layout):
    return (c.K, c.R, c.S, c.Cg) if layout == "NHWC" else (c.K, c.Cg, c.R, c.S)


def to_nchw(t, layout):
    """torch's logical NCHW view of an activation or filter stored in our layout."""
    return t.permute(0, 3, 1, 2) if layout == "NHWC" else t


def torch_passes(c: Conv, x, w, b, dy, dtype):
    """y, dx, dw, db of the convolution in `dtype` through autograd (asymmetric padding as an explicit pad)."""
    x = x.detach().to(dtype).requires_grad_(True)
    w = w.detach().to(dtype).requires_grad_(True)
    b = b.detach().to(dtype).requires_grad_(True) if b is not None else None
    xp = F.pad(x, (c.pad[1], c.pad[3], c.pad[0], c.pad[2]))
    y = F.conv2d(xp, w, b, c.stride, 0, c.dil, c.groups)
    y.backward(dy.to(dtype))
    return y.detach(), x.grad, w.grad, (b.grad if b is not None else None)



# ---------------------------------------------------------------------------------------------------
# Correctness


@dataclass
class Case:
    """One problem's inputs (in our layout), the reference passes and torch's own error in the dtype."""
    c: Conv
    dt: torch.dtype
    layout: str
    x: torch.Tensor
    w: torch.Tensor
    b: torch.Tensor
    dy: torch.Tensor
    ref: tuple
    plain_err: list


def make_case(c: Conv, dt, layout, gen, with_bias=True, ref_dtype=torch.float64):
    """Fresh random inputs and the reference (ref_dtype on the GPU: float64, or float32 with TF32 off for
    problems too large for float64 convolutions in seconds)."""
    x = h.randn(x_shape(c, layout), dt, gen)
    w = h.randn(w_shape(c, layout), dt, gen, scale=1.0 / math.sqrt(max(1, c.Cg * c.R * c.S)))
    b = h.randn((c.K,), dt, gen) if with_bias else None
    dy = h.randn(y_shape(c, layout), dt, gen)
    X, Wt, DY = to_nchw(x, layout), to_nchw(w, layout), to_nchw(dy, layout)
    ref = torch_passes(c, X, Wt, b, DY, ref_dtype)
    plain_err = [None] * 4
    if dt != torch.float32:
        plain = torch_passes(c, X, Wt, b, DY, dt)
        plain_err = [h.rel_error(p, r) if p is not None else None for p, r in zip(plain, ref)]
    return Case(c, dt, layout, x, w, b, dy, ref, plain_err)


def verify(run: Runner, k: Case, engine="mma", tiles=None):
    """Our three passes (and db) of a case, poisoned and guarded outputs, against its reference; tiles =
    {pass: tile} overrides the planner's tile of the engine. Returns a list of verdicts."""
    tiles = tiles or {}
    c, dt, layout = k.c, k.dt, k.layout
    xs, ws, ys = x_shape(c, layout), w_shape(c, layout), y_shape(c, layout)
    out_y, out_dx, out_dw = h.Guarded(ys, dt), h.Guarded(xs, dt), h.Guarded(ws, dt)
    out_db = h.Guarded((c.K,), dt)
    tag = f"{layout} {SUFFIX[dt]} {c.label()}"
    Lf = run.fprop(c, dt, layout, k.x, k.w, k.b, out_y.view, engine, tiles.get("fprop"))
    Ld = run.dgrad(c, dt, layout, k.dy, k.w, out_dx.view, engine, tiles.get("dgrad"))
    Lw = run.wgrad(c, dt, layout, k.dy, k.x, out_dw.view, out_db.view if k.b is not None else None, engine,
                   tiles.get("wgrad"))
    h.sync(f"{tag} ({engine} {tiles or 'planned'})")
    outs = [("fprop", out_y, 0, Lf), ("dgrad", out_dx, 1, Ld), ("wgrad", out_dw, 2, Lw)]
    if k.b is not None:
        outs.append(("db", out_db, 3, Lw))
    verdicts = []
    for name, g, idx, L in outs:
        got = to_nchw(g.view, layout) if idx < 3 else g.view
        err = h.rel_error(got, k.ref[idx])
        if dt == torch.float32:
            tol = h.tolerance(dt)
        else:
            tol = h.tolerance(dt, k.plain_err[idx] if k.plain_err[idx] is not None else 2.0 ** -9)
        entry = "conv_bias_grad+reduce" if name == "db" else (
            "-" if L is None else L.entry + (f" splits={L.splits}" if L.splits > 1 else ""))
        verdicts.append(h.verdict(f"{name} {tag}", err, tol, h.unwritten(g.view), g.stray_writes(),
                                  kernel=entry, engine=engine, output=name, plain_error=k.plain_err[idx]))
    return verdicts


def odd_cases():
    return [
        Conv(3, 40, 13, 13, 56, 3, 3, (1, 1), (1, 1, 1, 1)),                      # vector path, 3x3
        Conv(2, 48, 17, 11, 80, 3, 5, (2, 1), (1, 2, 0, 2), (1, 2), 2),           # groups 2, stride, dil, asym pad
        Conv(2, 3, 33, 33, 16, 7, 7, (2, 2), (3, 3, 3, 3)),                       # stem-like, C = 3
        Conv(5, 20, 9, 10, 12, 1, 1, (2, 2)),                                     # 1x1 stride 2, C and K not %8
        Conv(2, 64, 10, 10, 64, 3, 3, (1, 1), (1, 1, 1, 1), (1, 1), 4),           # grouped, Cg = Kg = 16
        Conv(4, 64, 15, 15, 64, 3, 3, (1, 1), (1, 1, 1, 1), (1, 1), 64),          # depthwise
        Conv(3, 24, 14, 9, 48, 3, 3, (2, 2), (1, 0, 1, 2), (2, 1), 24),           # depthwise x2, stride, dil
        Conv(1, 136, 7, 5, 264, 2, 2, (1, 1), (0, 0, 1, 1)),                      # NG spans 3 tiles, KD % 32 != 0
        Conv(3, 16, 5, 5, 7, 1, 1),  # the conformance case of the first H200 fault: K=7 takes "_ss", C=16 could "v"
        Conv(6, 64, 9, 11, 96, 1, 1),                                             # 1x1, KD = 64: the memory-bound tiles
    ]


def report(verdicts, what):
    bad = [v for v in verdicts if not v["ok"]]
    errs = ", ".join(f"{v.get('output', '?')} {v['rel_error']:.1e}" for v in verdicts)
    print(f"  {'FAIL' if bad else 'ok  '} {what} ({errs})" +
          "".join(f"\n       {v['name']}: {v['why']} [{v['kernel']}]" for v in bad), flush=True)


# ---------------------------------------------------------------------------------------------------
# Timing


def rn50_conv(entry, n=128):
    name, C, HW, K, RS, st, pad = entry
    return name, Conv(n, C, HW, HW, K, RS, RS, (st, st), (pad, pad, pad, pad))


class Layer:
    """Inputs of one layer (bf16 NHWC), rotated past the L2, with cuDNN's and our passes as timeable calls."""

    def __init__(self, run: Runner, name, c: Conv, dt, gen):
        self.run, self.name, self.c, self.dt = run, name, c, dt
        per_set = (c.N * c.H * c.W * c.C + c.N * c.P * c.Q * c.K) * 2
        self.sets = h.sets_needed(per_set)
        self.xs = [h.randn(x_shape(c, "NHWC"), dt, gen) for _ in range(self.sets)]
        self.dys = [h.randn(y_shape(c, "NHWC"), dt, gen) for _ in range(self.sets)]
        self.w = h.randn(w_shape(c, "NHWC"), dt, gen, scale=0.05)
        self.y = torch.empty(y_shape(c, "NHWC"), dtype=dt, device=h.DEVICE)
        self.dx = torch.empty(x_shape(c, "NHWC"), dtype=dt, device=h.DEVICE)
        self.dw = torch.empty(w_shape(c, "NHWC"), dtype=dt, device=h.DEVICE)
        # torch: logical NCHW views of the same NHWC memory are channels_last tensors
        tx = [to_nchw(t, "NHWC") for t in self.xs]
        tdy = [to_nchw(t, "NHWC") for t in self.dys]
        tw = to_nchw(self.w, "NHWC")
        args = (c.stride, (c.pad[0], c.pad[1]), c.dil, c.groups)
        self.torch_fns = {
            "fprop": lambda i: F.conv2d(tx[i], tw, None, *args),
            "dgrad": lambda i: torch.nn.grad.conv2d_input(tx[i].shape, tw, tdy[i], *args),
            "wgrad": lambda i: torch.nn.grad.conv2d_weight(tx[i], tw.shape, tdy[i], *args),
        }
        self.cudnn = {}

    def ours(self, pas, engine="mma", tile=None, splits=None):
        """(first launch, callable) of our pass; wgrad's partials allocated once, as the stream's workspace is."""
        kern, c = self.run.kern, self.c
        q = space_to_depth(c, self.dt)
        if q is not None:
            return self._ours_s2d(pas, q, engine, tile, splits)
        Ls = plan(kern, pas, c, self.dt, engine, tile, splits)
        L = Ls[0]
        if pas == "fprop":
            return L, lambda i: launch_conv(kern, Ls, c, self.xs[i], self.w, None, self.y)
        if pas == "dgrad":
            return L, lambda i: launch_conv(kern, Ls, c, self.dys[i], self.w, None, self.dx)
        count = c.K * c.R * c.S * c.Cg
        ws = torch.empty(max(1, L.splits * count), dtype=torch.float32, device=h.DEVICE)

        def wgrad(i):
            launch_conv(kern, Ls, c, self.dys[i], self.xs[i], None, ws)
            reduce_into(kern, ws, self.dw, count, L.splits, self.dt)
        return L, wgrad

    def _ours_s2d(self, pas, q, engine, tile, splits):
        """The space-to-depth path (an RGB stem): the transforms are part of the pass, as in Conv2dCuda."""
        kern, c, dt = self.run.kern, self.c, self.dt
        Ls = plan(kern, pas, q, dt, engine, tile, splits)
        L = Ls[0]
        x2 = torch.empty(x_shape(q, "NHWC"), dtype=dt, device=h.DEVICE)
        w2 = torch.empty(w_shape(q, "NHWC"), dtype=dt, device=h.DEVICE)
        if pas == "fprop":
            def fprop(i):
                s2d_x(kern, "conv_s2d_x_b16", self.xs[i], x2, c, q, "NHWC")
                s2d_w(kern, "conv_s2d_w_b16", self.w, w2, c, q, "NHWC")
                launch_conv(kern, Ls, q, x2, w2, None, self.y)
            return L, fprop
        if pas == "dgrad":
            def dgrad(i):
                s2d_w(kern, "conv_s2d_w_b16", self.w, w2, c, q, "NHWC")
                launch_conv(kern, Ls, q, self.dys[i], w2, None, x2)
                s2d_x(kern, "conv_d2s_x_b16", x2, self.dx, c, q, "NHWC")
            return L, dgrad
        count2 = q.K * q.R * q.S * q.C
        ws = torch.empty(max(1, L.splits * count2), dtype=torch.float32, device=h.DEVICE)

        def wgrad(i):
            s2d_x(kern, "conv_s2d_x_b16", self.xs[i], x2, c, q, "NHWC")
            launch_conv(kern, Ls, q, self.dys[i], x2, None, ws)
            reduce_into(kern, ws, w2, count2, L.splits, dt)
            s2d_w(kern, "conv_d2s_w_b16", w2, self.dw, c, q, "NHWC")
        return L, wgrad

    def time(self, fn, repeats):
        return h.time_cuda(fn, sets=self.sets, repeats=repeats)

    def cudnn_ms(self, pas, repeats):
        if pas not in self.cudnn:
            self.cudnn[pas] = self.time(self.torch_fns[pas], repeats)["median_ms"]
        return self.cudnn[pas]


def kernel_label(L: Launch):
    return L.entry.replace("conv_", "") + (f" s{L.splits}" if L.splits > 1 else "")


def timing_row(layer: Layer, pas, engine, L, t, repeats, planned):
    c = layer.c
    cudnn = layer.cudnn_ms(pas, repeats)
    flops = c.flops()
    es = 2
    x_b, y_b, w_b = c.N * c.H * c.W * c.C * es, c.N * c.P * c.Q * c.K * es, c.K * c.R * c.S * c.Cg * es
    ratio = cudnn / t["median_ms"]
    return {"layer": layer.name, "pass": pas, "engine": engine, "planned": planned, "kernel": kernel_label(L),
            "entry": L.entry,
            "ours_ms": t["median_ms"], "cudnn_ms": cudnn, "ours_TFLOPs": h.tflops(flops, t["median_ms"]),
            "cudnn_TFLOPs": h.tflops(flops, cudnn), "ratio": ratio, "target_met": ratio >= 0.7,
            "min_bytes": x_b + y_b + w_b, "ours_GBs": h.gbps(x_b + y_b + w_b, t["median_ms"]),
            "spread": t["spread"]}


def sweep_variants(pas, c, planned: Launch):
    """Every other 16-byte-loader mma.sync tile of the pass, and for wgrad half and twice the planned splits."""
    va, vb = vector_loaders(pas, c)
    if not (va and vb):
        return []
    tiles = {"fprop": ["128x256w8", "128x128w8", "128x128w4", "256x64w4", "128x64w4", "64x64w4"],
             "dgrad": ["128x256w8", "128x128w8", "128x128w4", "256x64w4", "128x64w4", "64x64w4"],
             "wgrad": ["128x256w8", "128x128w8", "128x128w4", "64x256w4", "64x128w4", "64x64w4"]}[pas]
    planned_tile = planned.entry.split("_", 3)[3]
    out = [(t + "_vv", None) for t in tiles if t + "_vv" != planned_tile]
    if pas == "wgrad":
        out += [(planned_tile, max(1, planned.splits // 2)), (planned_tile, planned.splits * 2)]
    return out


# ---------------------------------------------------------------------------------------------------


RN50_CHECK_BATCH_QUICK = 8
SWEEP_BUDGET_S = 90  # quick mode: the mma.sync sweep (last, least needed) starts no layer after this


def run(kernels_dir: str, out_dir: str, quick: bool) -> dict:
    # references: cuDNN's first choice (benchmarking every odd shape would cost more than the checks);
    # timing: cudnn.benchmark, as the benchmark set says
    torch.backends.cudnn.benchmark = False
    torch.backends.cudnn.allow_tf32 = False  # the float32 references must be float32
    torch.backends.cuda.matmul.allow_tf32 = False
    kern = Kernels(kernels_dir)
    runner = Runner(kern)
    result = {"device": h.device_info(), "modules": kern.paths(), "quick": quick, "correctness": [], "timings": [],
              "sweep": []}
    partial_path = os.path.join(out_dir, "conv_partial.json")

    def save():
        result["ok"] = all(v["ok"] for v in result["correctness"]) if result["correctness"] else False
        h.write_json(partial_path, result)

    started = time.time()
    gen, seed = h.generator()
    result["seed"] = seed
    print(f"check_conv: seed {seed}, quick {quick}, modules {kern.paths()}", flush=True)

    # 1. odd shapes, every dtype; NCHW for fp32 (native) and fp16 (transposes around the NHWC kernels)
    for c in odd_cases():
        for dt in (torch.float32, torch.float16, torch.bfloat16):
            for layout in (["NHWC", "NCHW"] if dt != torch.bfloat16 else ["NHWC"]):
                vs = verify(runner, make_case(c, dt, layout, gen))
                result["correctness"].extend(vs)
                report(vs, f"{layout} {SUFFIX[dt]} {c.label()}")
        save()
    # batch 0: dw and db must be zeros, nothing else written
    c0 = Conv(0, 16, 5, 5, 16, 3, 3, (1, 1), (1, 1, 1, 1))
    for dt in (torch.float32, torch.bfloat16):
        dw = h.poison(torch.empty(w_shape(c0, "NHWC"), dtype=dt, device=h.DEVICE))
        db = h.poison(torch.empty((c0.K,), dtype=dt, device=h.DEVICE))
        runner.wgrad(c0, dt, "NHWC", torch.empty(y_shape(c0, "NHWC"), dtype=dt, device=h.DEVICE),
                     torch.empty(x_shape(c0, "NHWC"), dtype=dt, device=h.DEVICE), dw, db)
        h.sync("batch 0")
        zero = bool((dw == 0).all().item() and (db == 0).all().item())
        result["correctness"].append(h.verdict(f"wgrad batch 0 {SUFFIX[dt]} (dw, db all zero)", 0.0 if zero else math.inf,
                                               0.0, kernel="conv_reduce", engine="mma"))
    save()

    # 2. the six ResNet-50 layers, bf16 NHWC, the planned mma.sync kernels (references kept for the wgmma step)
    n_check = RN50_CHECK_BATCH_QUICK if quick else 128
    layer_cases = {}
    for entry in RN50:
        name, c = rn50_conv(entry, n_check)
        k = make_case(c, torch.bfloat16, "NHWC", gen, ref_dtype=torch.float32)
        layer_cases[name] = k
        vs = verify(runner, k)
        for v in vs:
            v["name"] = f"{name} N={n_check}: {v['name']}"
        result["correctness"].extend(vs)
        report(vs, f"{name} N={n_check} bf16 mma.sync")
        save()
    print(f"check_conv: correctness {sum(v['ok'] for v in result['correctness'])}/{len(result['correctness'])} "
          f"in {time.time() - started:.0f} s", flush=True)

    # 3. timing, bf16 NHWC N=128, the planned mma.sync kernels against cuDNN
    torch.backends.cudnn.benchmark = True
    repeats = 20 if quick else 40
    layers = {}
    for entry in RN50:
        name, c = rn50_conv(entry)
        layer = Layer(runner, name, c, torch.bfloat16, gen)
        layers[name] = layer
        for pas in ("fprop", "dgrad", "wgrad"):
            L, fn = layer.ours(pas)
            row = timing_row(layer, pas, "mma", L, layer.time(fn, repeats), repeats, True)
            result["timings"].append(row)
            print(f"  {name} {pas}: mma.sync {row['ours_ms']:.4f} ms ({kernel_label(L)}), cudnn {row['cudnn_ms']:.4f} ms,"
                  f" ratio {row['ratio']:.3f}", flush=True)
        save()
    summarize_engine(result, "timings", "geomean_ratio")
    save()
    h.print_table(result["timings"], ["layer", "pass", "kernel", "ours_ms", "cudnn_ms", "ours_TFLOPs", "cudnn_TFLOPs",
                                      "ours_GBs", "ratio"],
                  "conv bf16 NHWC N=128: mma.sync (planned) vs cuDNN (ratio = cuDNN time / ours)")

    # 4. the wgmma engine: kept apart (result["wgmma"]) so that it never decides "ok" until it is routed
    result["wgmma"] = wgmma_engine(runner, gen, layer_cases, layers, repeats, quick,
                                   save_to=lambda: h.write_json(partial_path, result), result=result)

    # 5. the other mma.sync tiles and split counts (emulator-checked, timed only), while the budget lasts
    for name, layer in layers.items():
        if quick and time.time() - started > SWEEP_BUDGET_S:
            result["sweep_stopped"] = f"after {time.time() - started:.0f} s (quick budget {SWEEP_BUDGET_S} s)"
            print(f"check_conv: mma.sync sweep stopped {result['sweep_stopped']}", flush=True)
            break
        for pas in ("fprop", "dgrad", "wgrad"):
            L, _ = layer.ours(pas)
            for tile, splits in sweep_variants(pas, gemm_problem(layer.c, torch.bfloat16), L):
                try:
                    L2, fn2 = layer.ours(pas, "mma", tile, splits)
                    result["sweep"].append(timing_row(layer, pas, "mma", L2, layer.time(fn2, max(10, repeats // 2)),
                                                      repeats, False))
                except Exception as e:  # a failed variant must not hide the rest; a fault ends the run anyway
                    result["sweep"].append({"layer": name, "pass": pas, "kernel": f"{tile} s{splits}",
                                            "error": repr(e)})
        save()
    result["engines"] = engine_table(result)
    h.print_table(result["engines"], ["layer", "pass", "cudnn_ms", "mma_ms", "mma_kernel", "wgmma_ms", "wgmma_kernel",
                                      "wgmma_best_ms", "wgmma_best_kernel", "best_ratio", "faster"],
                  "per layer and pass: cuDNN, mma.sync planned, wgmma planned and best tile (ratio = cuDNN / best)")
    sweep_best = []
    for r in result["timings"]:
        alts = [w for w in result["sweep"] if w.get("layer") == r["layer"] and w.get("pass") == r["pass"] and "ours_ms" in w]
        if alts:
            b = min(alts, key=lambda w: w["ours_ms"])
            sweep_best.append({"layer": r["layer"], "pass": r["pass"], "planned": r["kernel"], "planned_ms": r["ours_ms"],
                               "best_other": b["kernel"], "best_other_ms": b["ours_ms"],
                               "gain": r["ours_ms"] / b["ours_ms"]})
    result["sweep_best"] = sweep_best
    h.print_table(sweep_best, ["layer", "pass", "planned", "planned_ms", "best_other", "best_other_ms", "gain"],
                  "mma.sync: the planned kernel vs the fastest other tile/split (gain > 1: the planner should change)")
    for key in ("mma", "wgmma_planned", "best"):
        g = result.get(f"geomean_ratio_{key}")
        print(f"geomean ratio vs cuDNN, {key}: {g:.3f}" if g else f"geomean ratio vs cuDNN, {key}: -", flush=True)
    print(f"check_conv: correctness mma.sync {sum(v['ok'] for v in result['correctness'])}/"
          f"{len(result['correctness'])}, wgmma {sum(v['ok'] for v in result['wgmma']['correctness'])}/"
          f"{len(result['wgmma']['correctness'])}"
          f"{' (skipped: ' + result['wgmma']['reason_skipped'] + ')' if result['wgmma'].get('reason_skipped') else ''}"
          f"; {time.time() - started:.0f} s", flush=True)
    result["elapsed_s"] = round(time.time() - started, 1)
    save()
    return result


def geomean(values):
    values = [v for v in values if v and v > 0]
    return math.exp(sum(math.log(v) for v in values) / len(values)) if values else None


def summarize_engine(result, key, prefix):
    rows = result[key]
    result[prefix] = geomean([r["ratio"] for r in rows])
    result["targets_met"] = sum(1 for r in rows if r["target_met"])
    for pas in ("fprop", "dgrad", "wgrad"):
        result[f"{prefix}_{pas}"] = geomean([r["ratio"] for r in rows if r["pass"] == pas])


WS_WATCHDOG_S = 30  # a warp-specialized kernel that deadlocks on the hardware must not eat the device call


def wgmma_engine(runner: Runner, gen, layer_cases, layers, repeats, quick, save_to, result):
    """The wgmma engine: the plain tiles first, then the warp-specialized ones under a watchdog (a wrong mbarrier
    protocol would hang the GPU, not fault it), each group checked (odd shapes, the layers) before it is timed."""
    kern = runner.kern
    out = {"reason_skipped": kern.wgmma_reason, "correctness": [], "timings": []}
    result["wgmma"] = out
    if kern.wgmma_reason:
        print(f"check_conv: wgmma engine skipped: {kern.wgmma_reason}", flush=True)
        return out
    n_tiles = len(WG_TILES["fprop"])
    combos = [{p: WG_TILES[p][i] for p in WG_TILES} for i in range(n_tiles)]
    plain = [t for t in combos if "ws" not in t["fprop"]]
    specialized = [t for t in combos if "ws" in t["fprop"]]
    odd = [c for c in odd_cases() if wgmma_takes(c, torch.bfloat16)]
    torch.backends.cudnn.benchmark = False  # references only
    odd_cases_by_dt = {(c, dt): make_case(c, dt, "NHWC", gen) for c in odd for dt in (torch.bfloat16, torch.float16)}
    torch.backends.cudnn.benchmark = True

    def check_and_time(group, label, with_planned):
        print(f"check_conv: wgmma engine, {label} tiles", flush=True)
        for (c, dt), k in odd_cases_by_dt.items():
            for tiles in group:
                vs = verify(runner, k, "wgmma", tiles)
                out["correctness"].extend(vs)
                report(vs, f"wgmma {SUFFIX[dt]} {c.label()} {tiles['fprop']}/{tiles['wgrad']}")
            save_to()
        for name, k in layer_cases.items():
            if not wgmma_takes(k.c, k.dt):
                continue
            for tiles in ([None] if with_planned else []) + group:
                vs = verify(runner, k, "wgmma", tiles)
                for v in vs:
                    v["name"] = f"{name} N={k.c.N}: {v['name']}"
                out["correctness"].extend(vs)
                report(vs, f"wgmma {name} N={k.c.N} {tiles or 'planned'}")
            save_to()
        for name, layer in layers.items():
            if not wgmma_takes(layer.c, layer.dt):
                continue
            for pas in ("fprop", "dgrad", "wgrad"):
                seen = {r["entry"] for r in out["timings"] if r["layer"] == name and r["pass"] == pas}
                todo = ([(None, True)] if with_planned else []) + [(t[pas], False) for t in group]
                for tile, planned in todo:
                    L, fn = layer.ours(pas, "wgmma", tile)
                    if L.entry in seen:
                        continue
                    seen.add(L.entry)
                    row = timing_row(layer, pas, "wgmma", L, layer.time(fn, repeats), repeats, planned)
                    out["timings"].append(row)
                    print(f"  {name} {pas}: wgmma {row['kernel']}{' (planned)' if planned else ''} {row['ours_ms']:.4f} ms,"
                          f" cudnn {row['cudnn_ms']:.4f} ms, ratio {row['ratio']:.3f}", flush=True)
            save_to()

    check_and_time(plain, "plain", True)
    out["ws_watchdog_s"] = WS_WATCHDOG_S
    out["ws_state"] = "started"
    save_to()
    import threading

    def hung():
        out["ws_state"] = f"did not finish within {WS_WATCHDOG_S} s (hang?): process ended by the watchdog"
        save_to()
        print(f"check_conv: warp-specialized wgmma {out['ws_state']}", flush=True)
        os._exit(3)
    watchdog = threading.Timer(WS_WATCHDOG_S, hung)
    watchdog.daemon = True
    watchdog.start()
    check_and_time(specialized, "warp-specialized", False)
    watchdog.cancel()
    out["ws_state"] = "finished"
    out["ok"] = all(v["ok"] for v in out["correctness"])
    return out


def engine_table(result):
    """Per layer and pass: cuDNN, mma.sync planned, wgmma planned and best; which engine is faster."""
    rows = []
    # a wgmma kernel counts only if none of its checks failed (odd shapes and layers)
    failed = {v["kernel"].split(" ")[0] for v in result.get("wgmma", {}).get("correctness", []) if not v["ok"]}
    wg = [w for w in result.get("wgmma", {}).get("timings", []) if w["entry"] not in failed]
    best_ratios, wg_planned_ratios = [], []
    for r in result["timings"]:
        mine = [w for w in wg if w["layer"] == r["layer"] and w["pass"] == r["pass"]]
        planned = next((w for w in mine if w["planned"]), None)
        best = min(mine, key=lambda w: w["ours_ms"]) if mine else None
        fastest = min([r["ours_ms"]] + ([best["ours_ms"]] if best else []))
        rows.append({"layer": r["layer"], "pass": r["pass"], "cudnn_ms": r["cudnn_ms"], "mma_ms": r["ours_ms"],
                     "mma_kernel": r["kernel"], "wgmma_ms": planned["ours_ms"] if planned else None,
                     "wgmma_kernel": planned["kernel"] if planned else None,
                     "wgmma_best_ms": best["ours_ms"] if best else None,
                     "wgmma_best_kernel": best["kernel"] if best else None,
                     "best_ratio": r["cudnn_ms"] / fastest,
                     "faster": "-" if not best else ("wgmma" if best["ours_ms"] < r["ours_ms"] else "mma")})
        best_ratios.append(r["cudnn_ms"] / fastest)
        wg_planned_ratios.append(r["cudnn_ms"] / planned["ours_ms"] if planned else None)
    result["geomean_ratio_mma"] = result.get("geomean_ratio")
    result["wgmma_failed_kernels"] = sorted(failed)
    result["geomean_ratio_wgmma_planned"] = geomean(wg_planned_ratios)
    result["geomean_ratio_best"] = geomean(best_ratios)
    return rows


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--kernels-dir", required=True)
    ap.add_argument("--out", default=os.environ.get("OUT", "."))
    ap.add_argument("--quick", action="store_true")
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    res = run(a.kernels_dir, a.out, a.quick)
    h.write_json(os.path.join(a.out, "conv.json"), res)
    return 0 if res.get("ok") else 1


if __name__ == "__main__":
    sys.exit(main())
