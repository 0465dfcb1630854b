#!/usr/bin/env python3
"""PyTorch baseline for the GPU benchmark set, in the JMH JSON shape that `kernels4j bench --include` merges.

    python3 bench/torch_gpu_baseline.py PROBLEMS.json OUT.json [--quick] [--device cuda]

PROBLEMS.json comes from `kernels4j bench --print-problems --backends cuda [--filter ...]` (the catalog stays in
Java). For each problem and dtype it times PyTorch the way shared/benchmark-shapes.md says: layer_norm,
conv2d in channels_last with cudnn.benchmark, scaled_dot_product_attention (whichever backend PyTorch picks;
the enabled SDPA backends are recorded), backward through autograd (torch.autograd.grad, every input
gradient, from a graph built before each timed call), CUDA events around each call after a warm-up. Each
call's time is one sample (primaryMetric.rawData), so the report's noise estimate works on it as on JMH's.
Inputs: random normal from a fixed seed per problem. On a machine without CUDA (--device cpu) it times with
perf_counter, for testing the script.
"""
import argparse
import json
import statistics
import sys
import time
import zlib

import torch
import torch.nn.functional as F

DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


def seed_of(name):
    return zlib.crc32(name.encode("utf-8"))


def make_case(p, dtype, device):
    """(inputs requiring grad, forward function of those inputs, output gradient)."""
    gen = torch.Generator(device=device).manual_seed(seed_of(p["name"]))

    def randn(*shape, channels_last=False):
        t = torch.randn(*shape, generator=gen, device=device, dtype=torch.float32).to(dtype)
        return t.contiguous(memory_format=torch.channels_last) if channels_last else t

    op = p["op"]
    if op == "layer_norm":
        x, g, b = randn(p["rows"], p["cols"]), randn(p["cols"]), randn(p["cols"])
        return [x, g, b], (lambda x, g, b: F.layer_norm(x, (p["cols"],), g, b, 1e-5)), randn(p["rows"], p["cols"])
    if op == "conv2d":
        nhwc = p["format"] == "NHWC"
        x = randn(p["n"], p["c"], p["h"], p["w"], channels_last=nhwc)
        w = randn(p["k"], p["c"] // p["groups"], p["r"], p["s"], channels_last=nhwc)

        def conv(x, w):
            return F.conv2d(x, w, None, p["stride"], p["pad"], 1, p["groups"])

        with torch.no_grad():
            y = conv(x, w)
        dy = randn(*y.shape, channels_last=nhwc)
        return [x, w], conv, dy
    if op == "attention":
        q = randn(p["batch"], p["heads"], p["seq"], p["head_dim"])
        k = randn(p["batch"], p["kv_heads"], p["seq"], p["head_dim"])
        v = randn(p["batch"], p["kv_heads"], p["seq"], p["head_dim"])
        gqa = p["kv_heads"] != p["heads"]

        def sdpa(q, k, v):
            if gqa:
                return F.scaled_dot_product_attention(q, k, v, is_causal=p["causal"], enable_gqa=True)
            return F.scaled_dot_product_attention(q, k, v, is_causal=p["causal"])

        return [q, k, v], sdpa, randn(*q.shape)
    raise ValueError("unknown op " + op)


class Timer:
    def __init__(self, device):
        self.cuda = device.startswith("cuda")

    def __call__(self, fn, before=None):
        """Milliseconds of one call of fn; before() runs first, untimed."""
        if before is not None:
            before()
        if self.cuda:
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            torch.cuda.synchronize()
            start.record()
            fn()
            end.record()
            end.synchronize()
            return start.elapsed_time(end)
        t0 = time.perf_counter()
        fn()
        return (time.perf_counter() - t0) * 1e3


def measure(p, dtype_name, device, timer, warmup, repeats):
    inputs, forward, dy = make_case(p, DTYPES[dtype_name], device)
    samples = {"forward": [], "backward": []}

    def fwd():
        with torch.no_grad():
            forward(*inputs)

    graph = {}

    def build():
        leaves = [t.detach().requires_grad_(True) for t in inputs]
        graph["leaves"] = leaves
        graph["out"] = forward(*leaves)

    def bwd():
        torch.autograd.grad(graph["out"], graph["leaves"], dy)

    for i in range(warmup + repeats):
        t = timer(fwd)
        if i >= warmup:
            samples["forward"].append(t)
    for i in range(warmup + repeats):
        t = timer(bwd, before=build)
        graph.clear()
        if i >= warmup:
            samples["backward"].append(t)
    return samples


def entry(p, dtype_name, direction, ms, meta):
    mean = statistics.fmean(ms)
    return {
        "jmhVersion": "external: bench/torch_gpu_baseline.py",
        "benchmark": "org.kernels4j.bench.Torch." + direction,
        "mode": "avgt",
        "threads": 1,
        "forks": 1,
        "warmupIterations": meta["warmup"],
        "measurementIterations": len(ms),
        "params": {"problem": p["name"], "backend": p["backend"], "dtype": dtype_name},
        "primaryMetric": {
            "score": mean,
            "scoreError": statistics.stdev(ms) if len(ms) > 1 else 0.0,
            "scoreConfidence": [min(ms), max(ms)],
            "scoreUnit": "ms/op",
            "rawData": [ms],
        },
        "secondaryMetrics": {},
        "torch": meta,
    }


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("problems")
    ap.add_argument("out")
    ap.add_argument("--quick", action="store_true", help="3 warm-up and 5 timed calls (default 5 and 20)")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    a = ap.parse_args(argv)
    if a.device.startswith("cuda"):
        torch.backends.cudnn.benchmark = True
    warmup, repeats = (3, 5) if a.quick else (5, 20)
    meta = {"version": torch.__version__, "device": a.device, "warmup": warmup,
            "name": torch.cuda.get_device_name() if a.device.startswith("cuda") else "cpu"}
    if a.device.startswith("cuda") and hasattr(torch.backends.cuda, "flash_sdp_enabled"):
        meta["sdpa_enabled"] = {"flash": torch.backends.cuda.flash_sdp_enabled(),
                                "mem_efficient": torch.backends.cuda.mem_efficient_sdp_enabled(),
                                "cudnn": getattr(torch.backends.cuda, "cudnn_sdp_enabled", lambda: None)(),
                                "math": torch.backends.cuda.math_sdp_enabled()}
    with open(a.problems) as f:
        problems = json.load(f)
    timer = Timer(a.device)
    out, failed = [], []
    for p in problems:
        for dt in p["dtypes"]:
            label = p["name"] + " " + dt
            try:
                s = measure(p, dt, a.device, timer, warmup, repeats)
            except Exception as e:  # one problem's failure (e.g. out of memory) must not lose the others
                failed.append(label + ": " + repr(e)[:200])
                print("torch baseline: " + label + " FAILED: " + repr(e)[:200], file=sys.stderr, flush=True)
                if a.device.startswith("cuda"):
                    torch.cuda.empty_cache()
                continue
            for direction in ("forward", "backward"):
                out.append(entry(p, dt, direction, s[direction], meta))
            print("torch baseline: %-32s fwd %9.3f ms  bwd %9.3f ms" % (label, statistics.median(s["forward"]),
                  statistics.median(s["backward"])), flush=True)
    with open(a.out, "w") as f:
        json.dump(out, f, indent=1)
    print("torch baseline: %d results, %d failed -> %s" % (len(out), len(failed), a.out))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
