"""The GPU machine's ceilings, against which every later GPU figure is judged (issue 9, part e).

* device-to-device copy bandwidth, counting bytes read + bytes written, buffers far larger than L2:
  PyTorch's ``copy_`` and our own copy kernel (the probe's cubin, launched through cupy with the
  shared harness, so this also proves that harness path works);
* matrix-multiply throughput through PyTorch (cuBLAS) for 8192^3 in bf16, fp16, fp32 and tf32, on
  random data, each checked against a float64 product;
* which backend ``scaled_dot_product_attention`` picks for bf16 [8, 16, 4096, 128] (PyTorch's own
  choice function, and the kernel names its profiler records), with each backend's forward (and
  forward + backward) time where it runs.

Usage (GPU machine, repository root)::

    python3 bench/gpu/ceilings.py --probe-kernels .gpu/probe --out $OUT/ceilings.json [--quick]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time
import traceback

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402  (after the path tweak)
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

GiB = 1 << 30
# the problems (module constants so that a CPU dry run can shrink them)
COPY_BYTES = GiB
MATMUL_SIZE = 8192
SDPA_SHAPE = (8, 16, 4096, 128)


def copy_bandwidth(probe_dir: str, quick: bool) -> dict:
    nbytes = COPY_BYTES // 2 if quick else COPY_BYTES
    n = nbytes // 4
    gen, seed = h.generator()
    src = h.uniform((n,), torch.float32, gen)
    dst = torch.empty_like(src)
    moved = 2 * nbytes  # bytes read + bytes written
    rows = []

    h.poison(dst)
    t = h.time_cuda(lambda i: dst.copy_(src), repeats=30)
    rows.append({"what": "torch copy_", "median_ms": t["median_ms"], "GB/s": h.gbps(moved, t["median_ms"]),
                 "spread": t["spread"], "correct": bool(torch.equal(dst, src))})

    mod = h.load_module(probe_dir, "probe")
    sms = torch.cuda.get_device_properties(0).multi_processor_count
    for name in ("copy_vec4_u1", "copy_vec4_u4"):
        kernel = mod.get(name)
        for per_sm in (4, 8):
            grid = sms * per_sm
            h.poison(dst)
            t = h.time_cuda(lambda i: h.launch(kernel, grid, 256, (src, dst, h.i64(n))), repeats=30)
            rows.append({"what": f"{name} grid {grid}x256 ({os.path.basename(mod.path)})",
                         "median_ms": t["median_ms"], "GB/s": h.gbps(moved, t["median_ms"]),
                         "spread": t["spread"], "correct": bool(torch.equal(dst, src))})
    ours = [r for r in rows if r["what"] != "torch copy_" and r["correct"]]
    return {"bytes_per_buffer": nbytes, "buffer_over_l2": nbytes / h.l2_bytes(), "seed": seed,
            "counting": "bytes read + bytes written", "rows": rows,
            "torch_gb_per_s": rows[0]["GB/s"] if rows[0]["correct"] else None,
            "ours_best_gb_per_s": max((r["GB/s"] for r in ours), default=None)}


def _set_tf32(enabled: bool) -> str:
    """Sets cuBLAS's fp32 matmul mode through whichever API this torch has (the two must not be mixed)."""
    m = torch.backends.cuda.matmul
    if hasattr(m, "fp32_precision"):
        m.fp32_precision = "tf32" if enabled else "ieee"
        return f"torch.backends.cuda.matmul.fp32_precision={m.fp32_precision}"
    m.allow_tf32 = enabled
    return f"torch.backends.cuda.matmul.allow_tf32={enabled}"


def matmul(quick: bool) -> dict:
    size = MATMUL_SIZE
    flops = 2.0 * size ** 3
    out = {"m=n=k": size, "flops_per_product": flops, "rows": [],
           "bf16_reduced_precision_reduction": torch.backends.cuda.matmul.allow_bf16_reduced_precision_reduction,
           "fp16_reduced_precision_reduction": torch.backends.cuda.matmul.allow_fp16_reduced_precision_reduction}
    for label, dtype, tf32 in (("bf16", torch.bfloat16, False), ("fp16", torch.float16, False),
                               ("tf32", torch.float32, True), ("fp32", torch.float32, False)):
        try:
            mode = _set_tf32(tf32)
            gen, seed = h.generator()
            sets = [(h.randn((size, size), dtype, gen), h.randn((size, size), dtype, gen)) for _ in range(2)]
            c = torch.empty((size, size), dtype=dtype, device=h.DEVICE)
            h.poison(c)
            torch.matmul(*sets[0], out=c)
            h.sync(f"matmul {label}")
            ref = sets[0][0].double() @ sets[0][1].double()
            err = h.rel_error(c, ref)
            del ref
            slow = dtype == torch.float32 and not tf32
            t = h.time_cuda(lambda i: torch.matmul(*sets[i], out=c), sets=2, warmup=2 if slow else 5,
                            repeats=(5 if quick else 10) if slow else (10 if quick else 30))
            out["rows"].append({"dtype": label, "median_ms": t["median_ms"], "TFLOP/s": h.tflops(flops, t["median_ms"]),
                                "spread": t["spread"], "rel_error_vs_fp64": err, "mode": mode, "seed": seed})
            del sets, c
        except Exception:
            out["rows"].append({"dtype": label, "error": traceback.format_exc(limit=3)})
    _set_tf32(False)
    return out


def _backend_of(kernel_names: list[str]) -> str:
    """Which SDPA implementation a set of CUDA kernel names belongs to."""
    joined = " ".join(kernel_names).lower()
    if "flash" in joined and "cudnn" not in joined:
        return "FLASH_ATTENTION"
    if "fmha" in joined or "efficient" in joined or "cutlass" in joined:
        return "EFFICIENT_ATTENTION"
    if "cudnn" in joined or "sdpa" in joined:
        return "CUDNN_ATTENTION"
    return "MATH (no fused attention kernel seen)"


def _cuda_kernels(fn) -> list[str]:
    from torch.profiler import ProfilerActivity, profile
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        fn()
        torch.cuda.synchronize()
    names = []
    for e in prof.events():
        dev = getattr(e, "device_type", None)
        if dev is not None and "CUDA" in str(dev) and e.name not in names:
            names.append(e.name)
    return names


def sdpa(quick: bool) -> dict:
    from torch.nn.attention import SDPBackend, sdpa_kernel
    B, H, N, D = SDPA_SHAPE
    gen, seed = h.generator()
    q, k, v = (h.randn((B, H, N, D), torch.bfloat16, gen) for _ in range(3))
    out = {"shape": [B, H, N, D], "dtype": "bf16", "seed": seed,
           "flops_fwd": 4.0 * B * H * N * N * D, "flops_note": "4*B*H*N*N*d forward, halved when causal; bwd 2.5x fwd"}
    try:
        choice = torch._fused_sdp_choice(q, k, v)
        out["torch_fused_sdp_choice"] = (choice if isinstance(choice, SDPBackend) else SDPBackend(choice)).name
    except Exception as e:  # a private function: may move between versions
        out["torch_fused_sdp_choice"] = f"unavailable: {e}"
    try:
        kernels = _cuda_kernels(lambda: F.scaled_dot_product_attention(q, k, v))
        out["default_kernels"] = kernels
        out["default_backend_from_kernels"] = _backend_of(kernels)
        causal_kernels = _cuda_kernels(lambda: F.scaled_dot_product_attention(q, k, v, is_causal=True))
        out["default_causal_kernels"] = causal_kernels
        out["default_causal_backend_from_kernels"] = _backend_of(causal_kernels)
    except Exception as e:  # the profiler is a second opinion; the timings below still run
        out["default_backend_from_kernels"] = f"profiler failed: {type(e).__name__}: {e}"

    # float64 reference on batch 0 only: [16, 4096, 4096] fp64 scores are 2 GiB
    q0, k0, v0 = (t[:1].double() for t in (q, k, v))
    ref = {c: F.scaled_dot_product_attention(q0, k0, v0, is_causal=c) for c in (False, True)}
    del q0, k0, v0
    rows = []
    backends = [None, SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION, SDPBackend.CUDNN_ATTENTION]
    if not quick:
        backends.append(SDPBackend.MATH)
    qg, kg, vg = (t.detach().clone().requires_grad_(True) for t in (q, k, v))
    for backend in backends:
        for causal in (False, True):
            name = "default" if backend is None else backend.name
            row = {"backend": name, "causal": causal}
            rows.append(row)
            flops = out["flops_fwd"] / (2 if causal else 1)
            try:
                ctx = sdpa_kernel([backend]) if backend is not None else contextlib.nullcontext()
                with ctx:
                    o = F.scaled_dot_product_attention(q, k, v, is_causal=causal)
                    h.sync(f"sdpa {name}")
                    row["rel_error_vs_fp64_batch0"] = h.rel_error(o[:1], ref[causal])
                    t = h.time_cuda(lambda i: F.scaled_dot_product_attention(q, k, v, is_causal=causal),
                                    warmup=3, repeats=10 if quick else 20)
                    row["fwd_ms"] = t["median_ms"]
                    row["fwd_TFLOP/s"] = h.tflops(flops, t["median_ms"])
                    if backend is not SDPBackend.MATH:
                        do = torch.randn_like(q)

                        def fwd_bwd(i):
                            F.scaled_dot_product_attention(qg, kg, vg, is_causal=causal).backward(do)

                        t = h.time_cuda(fwd_bwd, warmup=2, repeats=5 if quick else 10)
                        row["fwd_bwd_ms"] = t["median_ms"]
                        row["fwd_bwd_TFLOP/s"] = h.tflops(3.5 * flops, t["median_ms"])
            except Exception as e:
                row["error"] = f"{type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''}"
    out["rows"] = rows
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--probe-kernels", default=".gpu/probe", help="folder with probe.sm_90.cubin / probe.ptx")
    ap.add_argument("--out", default="ceilings.json")
    ap.add_argument("--quick", action="store_true", help="smaller copy, fewer repeats, no MATH attention")
    a = ap.parse_args()

    result = {"device": h.device_info(), "quick": a.quick}
    failed = False
    for name, fn in (("copy", lambda: copy_bandwidth(a.probe_kernels, a.quick)),
                     ("matmul", lambda: matmul(a.quick)),
                     ("sdpa", lambda: sdpa(a.quick))):
        started = time.time()
        try:
            result[name] = fn()
        except Exception:
            result[name] = {"error": traceback.format_exc()}
            print(result[name]["error"], file=sys.stderr, flush=True)
            failed = True
        result[name]["seconds"] = round(time.time() - started, 1)
        h.write_json(a.out, result)  # after every part: a later hang keeps what is done
        torch.cuda.empty_cache()

    print(f"device: {result['device']['name']}, {result['device']['multiprocessors']} SMs, "
          f"L2 {result['device']['l2_cache_bytes'] / 2**20:.0f} MiB, torch {result['device']['torch']}")
    if "rows" in result["copy"]:
        h.print_table(result["copy"]["rows"], ["what", "median_ms", "GB/s", "spread", "correct"],
                      f"copy, {result['copy']['bytes_per_buffer'] / GiB:.2f} GiB buffers, GB/s = (read + written) / time")
    if "rows" in result["matmul"]:
        h.print_table(result["matmul"]["rows"], ["dtype", "median_ms", "TFLOP/s", "spread", "rel_error_vs_fp64", "error"],
                      f"matmul {MATMUL_SIZE}^3 (torch.matmul, random data)")
    if "rows" in result["sdpa"]:
        s = result["sdpa"]
        print(f"sdpa bf16 {s['shape']}: torch._fused_sdp_choice = {s.get('torch_fused_sdp_choice')}; "
              f"kernels seen = {s.get('default_backend_from_kernels')} (causal: {s.get('default_causal_backend_from_kernels')})")
        h.print_table(s["rows"], ["backend", "causal", "fwd_ms", "fwd_TFLOP/s", "fwd_bwd_ms", "fwd_bwd_TFLOP/s",
                                  "rel_error_vs_fp64_batch0", "error"], "scaled_dot_product_attention per backend")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
