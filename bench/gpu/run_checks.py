"""Runs every ``bench/gpu/check_*.py`` on the GPU machine and merges their results into one JSON file.

Each check module exposes ``run(kernels_dir, out_dir, quick) -> dict`` and is run in a process of
its own, under its own timeout: a kernel fault is sticky (the CUDA context is unusable for the rest
of that process) and a hang must not eat the device call, so one broken check cannot take the others
with it.

What a check returns is its own business; these keys, when present, feed the summary printed last:
``ok`` (bool: every correctness check passed), ``correctness`` (a list of ``harness.verdict`` dicts),
``timings`` (a list of flat dicts, printed as a table).

Usage (from the repository root)::

    python3 bench/gpu/run_checks.py --kernels-dir .gpu/cuda-kernels --out $OUT/checks.json [--quick]
        [--only layernorm,conv] [--timeout-each 240] [--work-dir /tmp/k4j-checks]
"""

from __future__ import annotations

import argparse
import glob
import importlib.util
import json
import os
import subprocess
import sys
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))


def discover(only: list[str] | None) -> list[str]:
    names = sorted(os.path.basename(p)[len("check_"):-len(".py")] for p in glob.glob(os.path.join(HERE, "check_*.py")))
    if only:
        unknown = sorted(set(only) - set(names))
        if unknown:
            print(f"run_checks: asked for {unknown}, present: {names}", file=sys.stderr)
        names = [n for n in names if n in only]
    return names


def run_one(name: str, kernels_dir: str, out_dir: str, quick: bool, result_path: str) -> int:
    """Child process: imports check_<name>.py, runs it, writes its result (or the traceback)."""
    sys.path.insert(0, HERE)
    started = time.time()
    try:
        spec = importlib.util.spec_from_file_location(f"check_{name}", os.path.join(HERE, f"check_{name}.py"))
        module = importlib.util.module_from_spec(spec)
        # dataclasses (check_conv.py) look their module up in sys.modules while the class is built
        sys.modules[spec.name] = module
        spec.loader.exec_module(module)
        os.makedirs(out_dir, exist_ok=True)
        result = module.run(kernels_dir, out_dir, quick)
        if not isinstance(result, dict):
            raise TypeError(f"check_{name}.run returned {type(result).__name__}, expected dict")
        status = 0
    except BaseException:  # SystemExit and KeyboardInterrupt too: the parent must get a result file
        result = {"ok": False, "error": traceback.format_exc()}
        print(result["error"], file=sys.stderr, flush=True)
        status = 1
    result["elapsed_s"] = round(time.time() - started, 1)
    write_result(result_path, result)
    return status


def write_result(path: str, obj: dict) -> None:
    try:
        import harness  # its jsonable() knows torch/numpy scalars
        harness.write_json(path, obj)
    except ImportError:  # torch missing: the result is then an error text anyway
        with open(path, "w") as f:
            json.dump(obj, f, indent=2, default=str)


def device_info(result_path: str) -> int:
    sys.path.insert(0, HERE)
    try:
        import harness
        info, status = harness.device_info(), 0
    except BaseException:
        info, status = {"error": traceback.format_exc(limit=2)}, 1
    write_result(result_path, info)
    return status


def summarize(name: str, res: dict) -> dict:
    verdicts = res.get("correctness") or []
    passed = sum(1 for v in verdicts if isinstance(v, dict) and v.get("ok"))
    if "timeout_s" in res:
        status = "TIMEOUT"
    elif "error" in res:
        status = "ERROR"
    elif res.get("ok") is True:
        status = "ok"
    elif res.get("ok") is False:
        status = "FAIL"
    else:
        status = "done"  # the check did not say; read its JSON
    why = res.get("error", "").strip().splitlines()[-1:] if "error" in res else [
        v.get("name", "?") + ": " + (v.get("why") or "") for v in verdicts if isinstance(v, dict) and not v.get("ok")][:2]
    return {"check": name, "status": status, "correct": f"{passed}/{len(verdicts)}" if verdicts else "-",
            "seconds": res.get("elapsed_s"), "note": " | ".join(why)[:160] or None}


def print_rows(rows: list[dict], title: str) -> None:
    if not rows:
        return
    cols: list[str] = []
    for r in rows:
        cols.extend(k for k in r if k not in cols)
    cells = [[_fmt(r.get(c)) for c in cols] for r in rows]
    widths = [max([len(c)] + [len(row[i]) for row in cells]) for i, c in enumerate(cols)]
    print(title)
    print("  ".join(c.ljust(w) for c, w in zip(cols, widths)))
    for row in cells:
        print("  ".join(v.ljust(w) for v, w in zip(row, widths)))
    print(flush=True)


def _fmt(v) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        if v == 0 or 1e-2 <= abs(v) < 1e3:
            return f"{v:.3g}"
        return f"{v:.0f}" if 1e3 <= abs(v) < 1e7 else f"{v:.2e}"
    return str(v)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--kernels-dir", default=".gpu/cuda-kernels")
    ap.add_argument("--out", default="checks.json", help="merged JSON result")
    ap.add_argument("--work-dir", default="/tmp/k4j-checks", help="each check's out_dir and raw result")
    ap.add_argument("--quick", action="store_true", help="fewer shapes and repeats (checks decide what)")
    ap.add_argument("--only", default="", help="comma-separated check names (layernorm,conv,attention)")
    ap.add_argument("--timeout-each", type=float, default=240.0, help="seconds per check process")
    ap.add_argument("--one", help=argparse.SUPPRESS)
    ap.add_argument("--info", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--result", help=argparse.SUPPRESS)
    a = ap.parse_args()

    if a.info:
        return device_info(a.result)
    if a.one:
        return run_one(a.one, a.kernels_dir, os.path.join(a.work_dir, a.one), a.quick, a.result)

    os.makedirs(a.work_dir, exist_ok=True)
    names = discover([n for n in a.only.split(",") if n])
    merged = {"kernels_dir": os.path.abspath(a.kernels_dir), "quick": a.quick,
              "kernels_present": sorted(os.listdir(a.kernels_dir)) if os.path.isdir(a.kernels_dir) else None,
              "checks": {}}
    info_path = os.path.join(a.work_dir, "device.json")
    try:
        subprocess.run([sys.executable, __file__, "--info", "--result", info_path], timeout=120, check=False)
    except subprocess.TimeoutExpired:
        pass
    merged["device"] = json.load(open(info_path)) if os.path.exists(info_path) else None
    if not names:
        print("run_checks: no bench/gpu/check_*.py present", flush=True)
    for name in names:
        result_path = os.path.join(a.work_dir, f"{name}.json")
        if os.path.exists(result_path):
            os.remove(result_path)
        cmd = [sys.executable, __file__, "--one", name, "--kernels-dir", a.kernels_dir,
               "--work-dir", a.work_dir, "--result", result_path] + (["--quick"] if a.quick else [])
        print(f"=== check_{name} (timeout {a.timeout_each:.0f} s)", flush=True)
        started = time.time()
        try:
            rc = subprocess.run(cmd, timeout=a.timeout_each, check=False).returncode
        except subprocess.TimeoutExpired:
            rc = None
        if rc is None:
            res = {"ok": False, "timeout_s": a.timeout_each, "error": f"timed out after {a.timeout_each:.0f} s"}
        elif os.path.exists(result_path):
            res = json.load(open(result_path))
        else:
            res = {"ok": False, "error": f"process exited with {rc} and wrote no result (crash?)"}
        res.setdefault("elapsed_s", round(time.time() - started, 1))
        merged["checks"][name] = res
        with open(a.out, "w") as f:  # rewritten after every check: a later hang keeps what is done
            json.dump(merged, f, indent=2)

    with open(a.out, "w") as f:
        json.dump(merged, f, indent=2)
    for name, res in merged["checks"].items():
        print_rows([r for r in res.get("timings") or [] if isinstance(r, dict)], f"--- {name}: timings")
    summary = [summarize(n, r) for n, r in merged["checks"].items()]
    print_rows(summary, "--- checks")
    if "error" in (merged["device"] or {"error": "no device information"}):
        print("run_checks: torch cannot see the GPU here:", (merged["device"] or {}).get("error", "").strip().splitlines()[-1:])
        return 1
    return 0 if all(s["status"] in ("ok", "done") for s in summary) else 1


if __name__ == "__main__":
    sys.exit(main())
