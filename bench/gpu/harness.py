"""Shared helpers for the GPU device checks (``bench/gpu/check_*.py``) and the ceilings script.

Runs on the GPU machine only (python3 with torch and cupy); nothing here is imported by the Java
build or by CI. The rules it encodes come from ``/work/.library/device/METHOD.md`` and DESIGN.md:

* correctness first: fresh random inputs (the seed is recorded, never fixed), outputs poisoned with
  NaN before every run, guard elements around outputs to catch out-of-bounds writes, the error
  measured as ||out - ref|| / ||ref|| in float64;
* timing with CUDA events after warm-up, the median of many repeats, rotating over several input
  sets whose total is several times the L2 cache, so that repeats do not measure the cache;
* every figure reported with the quantities it was derived from (bytes, FLOPs, milliseconds).

A check module uses it like this::

    import harness as h
    mod = h.load_module(kernels_dir, "layernorm")             # <name>.sm_XY.cubin, else <name>.ptx
    fwd = mod.get("layernorm_fwd_bf16")
    gen, seed = h.generator()
    sets = [h.randn((16384, 4096), torch.bfloat16, gen) for _ in range(h.sets_needed(16384 * 4096 * 2))]
    y = torch.empty_like(sets[0]); h.poison(y)
    h.launch(fwd, grid, block, (sets[0], y, h.i32(4096), h.f32(1e-5)))
    h.sync("layernorm_fwd_bf16")
    err = h.rel_error(y, ref64)
    t = h.time_cuda(lambda i: h.launch(fwd, grid, block, (sets[i], y, h.i32(4096), h.f32(1e-5))), sets=len(sets))
    row = {"median_ms": t["median_ms"], "GB/s": h.gbps(bytes_moved, t["median_ms"])}
"""

from __future__ import annotations

import json
import math
import os
import statistics
import sys
from dataclasses import dataclass
from typing import Callable, Iterable, Sequence

import numpy as np
import torch

try:  # cupy is only needed to launch our own cubin/PTX; torch-only helpers work without it
    import cupy
except ImportError as _cupy_error:  # reported when load_module/launch is used
    cupy = None
    _CUPY_IMPORT_ERROR = _cupy_error
else:
    _CUPY_IMPORT_ERROR = None

DEVICE = "cuda"

# ---------------------------------------------------------------------------------------------
# the device


def device_info() -> dict:
    """What every result file records about the machine it was measured on."""
    p = torch.cuda.get_device_properties(0)
    info = {
        "name": p.name,
        "compute_capability": f"{p.major}.{p.minor}",
        "multiprocessors": p.multi_processor_count,
        "total_memory_bytes": p.total_memory,
        "l2_cache_bytes": l2_bytes(),
        "torch": torch.__version__,
        "torch_cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
        "python": sys.version.split()[0],
    }
    if cupy is not None:
        info["cupy"] = cupy.__version__
        info["driver_version"] = cupy.cuda.runtime.driverGetVersion()
        info["runtime_version"] = cupy.cuda.runtime.runtimeGetVersion()
    return info


def l2_bytes() -> int:
    """L2 size of device 0; 64 MiB if torch does not report it (larger than any current L2)."""
    return int(getattr(torch.cuda.get_device_properties(0), "L2_cache_size", 0) or 64 << 20)


def compute_capability() -> tuple[int, int]:
    p = torch.cuda.get_device_properties(0)
    return p.major, p.minor


# ---------------------------------------------------------------------------------------------
# loading and launching our own kernels


@dataclass
class Module:
    """A loaded cubin or PTX module; ``path`` says which file was used (recorded in results)."""

    raw: object
    path: str
    kind: str  # "cubin" (machine code for this device) or "ptx" (JIT-compiled by the driver)

    def get(self, entry: str):
        """The kernel ``entry`` (an ``extern "C"`` name), as a cupy RawKernel."""
        return self.raw.get_function(entry)


def load_module(kernels_dir: str, name: str, prefer_ptx: bool = False) -> Module:
    """Loads the best build of module ``name`` for this device from ``kernels_dir``.

    Order: ``<name>.sm_<XY>a.cubin`` (arch-specific features such as wgmma; runs only on exactly this
    compute capability), ``<name>.sm_<XY>.cubin``, then ``<name>.ptx`` (JIT-compiled by the driver),
    as the kernels-cuda build names them. ``prefer_ptx`` loads the PTX first, to test the path that
    devices without a shipped cubin take.
    """
    _need_cupy()
    major, minor = compute_capability()
    cubins = [(os.path.join(kernels_dir, f"{name}.sm_{major}{minor}{v}.cubin"), "cubin") for v in ("a", "")]
    ptx = [(os.path.join(kernels_dir, f"{name}.ptx"), "ptx")]
    for path, kind in (ptx + cubins if prefer_ptx else cubins + ptx):
        if os.path.isfile(path):
            return Module(cupy.RawModule(path=path), path, kind)
    present = sorted(f for f in os.listdir(kernels_dir) if f.startswith(name)) if os.path.isdir(kernels_dir) else []
    raise FileNotFoundError(f"no {name}.sm_{major}{minor}[a].cubin or {name}.ptx in {kernels_dir} "
                            f"(present: {present or 'nothing'})")


def i32(v: int) -> np.int32:
    """An ``int`` kernel argument (cupy passes numpy scalars by value with their own width)."""
    return np.int32(v)


def i64(v: int) -> np.int64:
    """A ``long long`` / ``size_t`` kernel argument."""
    return np.int64(v)


def f32(v: float) -> np.float32:
    """A ``float`` kernel argument."""
    return np.float32(v)


def _kernel_arg(a):
    if isinstance(a, torch.Tensor):
        if not a.is_cuda:
            raise TypeError("kernel argument is a host tensor; move it to the GPU first")
        return np.uint64(a.data_ptr())
    if isinstance(a, (bool, int, float)):
        # a Python number has no C width: passing it would silently shift every later argument
        raise TypeError(f"kernel argument {a!r} is a Python number: wrap it with harness.i32/i64/f32")
    return a


def launch(kernel, grid, block, args: Sequence, shared_mem: int = 0) -> None:
    """Launches ``kernel`` on torch's current stream, so that torch events and ops order with it.

    Tensors are passed as device pointers; numbers must be numpy scalars (``i32``, ``f32``...).
    Dynamic shared memory above 48 KiB is opted into on the kernel first, as the driver requires.
    """
    _need_cupy()
    grid = tuple(grid) if isinstance(grid, (tuple, list)) else (int(grid),)
    block = tuple(block) if isinstance(block, (tuple, list)) else (int(block),)
    if shared_mem > 48 * 1024 and kernel.max_dynamic_shared_size_bytes < shared_mem:
        kernel.max_dynamic_shared_size_bytes = shared_mem
    with cupy.cuda.ExternalStream(torch.cuda.current_stream().cuda_stream):
        kernel(grid, block, tuple(_kernel_arg(a) for a in args), shared_mem=shared_mem)


def sync(where: str = "") -> None:
    """Waits for the device and turns an asynchronous kernel fault into an exception naming ``where``."""
    try:
        torch.cuda.synchronize()
    except Exception as e:  # a fault is sticky: the process cannot use the GPU after it
        raise RuntimeError(f"device error after {where or 'launch'}: {e}") from e


def _need_cupy():
    if cupy is None:
        raise RuntimeError(f"cupy is not importable here ({_CUPY_IMPORT_ERROR}); it loads our cubin/PTX")


# ---------------------------------------------------------------------------------------------
# data: fresh random inputs, poisoned and guarded outputs


def generator(seed: int | None = None) -> tuple[torch.Generator, int]:
    """A CUDA generator with a fresh seed (or ``seed`` to reproduce a failure); record the seed."""
    if seed is None:
        seed = int.from_bytes(os.urandom(8), "little") & ((1 << 63) - 1)
    g = torch.Generator(device=DEVICE)
    g.manual_seed(seed)
    return g, seed


def randn(shape, dtype: torch.dtype, gen: torch.Generator, scale: float = 1.0) -> torch.Tensor:
    """Normal random data drawn in fp32 and rounded once to ``dtype`` (never zeros, never constant)."""
    t = torch.randn(shape, generator=gen, device=DEVICE, dtype=torch.float32)
    if scale != 1.0:
        t.mul_(scale)
    return t.to(dtype)


def uniform(shape, dtype: torch.dtype, gen: torch.Generator, low: float = -1.0, high: float = 1.0) -> torch.Tensor:
    t = torch.rand(shape, generator=gen, device=DEVICE, dtype=torch.float32)
    return t.mul_(high - low).add_(low).to(dtype)


def poison(t: torch.Tensor) -> torch.Tensor:
    """Fills an output with NaN (floats) or -1 (integers) so that an unwritten element fails the check."""
    t.fill_(float("nan") if t.is_floating_point() else -1)
    return t


def unwritten(t: torch.Tensor) -> int:
    """How many elements still hold NaN: unwritten, or NaN produced by the kernel; both fail."""
    return int(torch.isnan(t).sum().item()) if t.is_floating_point() else int((t == -1).sum().item())


GUARD = 4096  # elements; more than one block's worth of 16-byte stores of any dtype


class Guarded:
    """An output tensor with poisoned guard elements before and after it, to catch stray writes.

    ``view`` is the contiguous output the kernel gets; ``stray_writes()`` counts changed guards.
    """

    def __init__(self, shape, dtype: torch.dtype):
        n = math.prod(shape)
        self.full = torch.empty(n + 2 * GUARD, dtype=dtype, device=DEVICE)
        poison(self.full)
        self.view = self.full[GUARD:GUARD + n].view(shape)

    def repoison(self) -> None:
        poison(self.full)

    def stray_writes(self) -> int:
        head, tail = self.full[:GUARD], self.full[-GUARD:]
        return changed_from_poison(head) + changed_from_poison(tail)


def changed_from_poison(t: torch.Tensor) -> int:
    """How many elements no longer hold the poison value."""
    return int(t.numel() - (torch.isnan(t).sum().item() if t.is_floating_point() else (t == -1).sum().item()))


# ---------------------------------------------------------------------------------------------
# correctness


def rel_error(out: torch.Tensor, ref: torch.Tensor) -> float:
    """||out - ref|| / ||ref|| in float64; infinity if ``out`` holds NaN or Inf (never passes)."""
    o = out.detach().to(torch.float64)
    r = ref.detach().to(device=o.device, dtype=torch.float64)
    if o.shape != r.shape:
        raise ValueError(f"shape mismatch: out {tuple(o.shape)} vs ref {tuple(r.shape)}")
    if not torch.isfinite(o).all():
        return math.inf
    denom = torch.linalg.vector_norm(r).item()
    num = torch.linalg.vector_norm(o - r).item()
    return num / denom if denom > 0 else num


def tolerance(dtype: torch.dtype, plain_error: float | None = None) -> float:
    """DESIGN.md's rule: fp32 1e-5 relative to the reference's norm; fp16/bf16 no worse than twice
    the error of a plain computation of the same function in that dtype (``plain_error``, measured
    by the caller, e.g. torch's own op on the same inputs against the same float64 reference)."""
    if dtype == torch.float32:
        return 1e-5
    if plain_error is None:
        raise ValueError(f"tolerance for {dtype} needs the plain {dtype} computation's error")
    # a floor of one unit of the dtype's precision keeps a lucky near-exact plain run from failing us
    floor = {torch.float16: 2.0 ** -11, torch.bfloat16: 2.0 ** -8}.get(dtype, 0.0)
    return max(2.0 * plain_error, floor)


def verdict(name: str, err: float, tol: float, unwritten_count: int = 0, stray: int = 0, **extra) -> dict:
    """One correctness result as a JSON-able dict with an explicit pass/fail and why."""
    reasons = []
    if unwritten_count:
        reasons.append(f"{unwritten_count} output elements unwritten or NaN")
    if stray:
        reasons.append(f"{stray} guard elements overwritten")
    if not (err <= tol):
        reasons.append(f"error {err:.3e} > tolerance {tol:.3e}")
    return {"name": name, "ok": not reasons, "rel_error": err, "tolerance": tol,
            "why": "; ".join(reasons) or None, **extra}


# ---------------------------------------------------------------------------------------------
# timing


def sets_needed(bytes_per_set: int, factor: float = 3.0, cap: int = 64) -> int:
    """How many input sets to rotate over so that their total exceeds ``factor`` x L2."""
    return max(1, min(cap, math.ceil(factor * l2_bytes() / max(1, bytes_per_set))))


def time_cuda(fn: Callable[[int], object], sets: int = 1, warmup: int = 5, repeats: int = 30,
              batch: int = 1) -> dict:
    """Times ``fn(i)`` (i = input-set index, rotating over ``sets``) with CUDA events.

    ``warmup`` untimed calls first (module load, JIT, cuDNN/cuBLAS heuristics stay out); then
    ``repeats`` samples, each of ``batch`` consecutive calls between two events (batch > 1 for
    kernels of a few microseconds, where event resolution and launch gaps would dominate).
    Returns milliseconds per call: median, min, p10, p90, and the spread (p90 - p10) / median, which
    is the noise any comparison between two versions must exceed.
    """
    calls = 0
    for _ in range(warmup):
        fn(calls % sets)
        calls += 1
    sync("warm-up")
    starts = [torch.cuda.Event(enable_timing=True) for _ in range(repeats)]
    ends = [torch.cuda.Event(enable_timing=True) for _ in range(repeats)]
    for r in range(repeats):
        starts[r].record()
        for _ in range(batch):
            fn(calls % sets)
            calls += 1
        ends[r].record()
    sync("timed runs")
    ms = sorted(s.elapsed_time(e) / batch for s, e in zip(starts, ends))
    med = statistics.median(ms)
    p10, p90 = _quantile(ms, 0.1), _quantile(ms, 0.9)
    return {"median_ms": med, "min_ms": ms[0], "p10_ms": p10, "p90_ms": p90,
            "spread": (p90 - p10) / med if med > 0 else None,
            "repeats": repeats, "batch": batch, "sets": sets, "warmup": warmup}


def _quantile(sorted_values: Sequence[float], q: float) -> float:
    i = q * (len(sorted_values) - 1)
    lo, hi = math.floor(i), math.ceil(i)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (i - lo)


def tflops(flops: float, ms: float) -> float:
    return flops / (ms * 1e-3) / 1e12 if ms > 0 else math.nan


def gbps(nbytes: float, ms: float) -> float:
    """Decimal GB/s (1e9 bytes per second), as bandwidth figures are quoted."""
    return nbytes / (ms * 1e-3) / 1e9 if ms > 0 else math.nan


def nbytes(*tensors: torch.Tensor) -> int:
    return sum(t.numel() * t.element_size() for t in tensors)


# ---------------------------------------------------------------------------------------------
# reporting


def fmt(v, digits: int = 3) -> str:
    """Compact human format: floats to ``digits`` significant digits, scientific when tiny."""
    if v is None:
        return "-"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        if math.isnan(v) or math.isinf(v):
            return str(v)
        if v != 0 and (abs(v) < 1e-2 or abs(v) >= 1e6):
            return f"{v:.{digits - 1}e}"
        return f"{v:.{digits}g}" if abs(v) < 10 ** digits else f"{v:.0f}"
    return str(v)


def table(rows: Iterable[dict], columns: Sequence[str] | None = None, title: str | None = None) -> str:
    """A plain-text table of ``rows`` (dicts); missing cells print as '-'."""
    rows = list(rows)
    if columns is None:
        columns = []
        for r in rows:
            columns.extend(k for k in r if k not in columns)
    cells = [[_clip(fmt(r.get(c))) for c in columns] for r in rows]
    widths = [max([len(c)] + [len(row[i]) for row in cells]) for i, c in enumerate(columns)]
    lines = [title] if title else []
    lines.append("  ".join(c.ljust(w) for c, w in zip(columns, widths)))
    lines.append("  ".join("-" * w for w in widths))
    lines.extend("  ".join(v.ljust(w) for v, w in zip(row, widths)) for row in cells)
    return "\n".join(lines)


def _clip(text: str, width: int = 60) -> str:
    return text if len(text) <= width else text[:width - 3] + "..."


def print_table(rows: Iterable[dict], columns: Sequence[str] | None = None, title: str | None = None) -> None:
    print(table(rows, columns, title), flush=True)


def jsonable(obj):
    """Converts numpy/torch scalars, dtypes and tuples so that ``json.dump`` accepts the result."""
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, (np.generic,)):
        return obj.item()
    if isinstance(obj, torch.dtype):
        return str(obj).replace("torch.", "")
    if isinstance(obj, float) and (math.isnan(obj) or math.isinf(obj)):
        return str(obj)  # JSON has no NaN/Infinity
    if isinstance(obj, (str, int, float, bool)) or obj is None:
        return obj
    return str(obj)


def write_json(path: str, obj) -> None:
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    with open(path, "w") as f:
        json.dump(jsonable(obj), f, indent=2)
