"""Standard-library helpers for device-check.sh (they must work where torch does not import):

    devtool.py env --out env.json [--setup FILE]        what the machine has: GPU, driver, toolkit, Python
                                                        packages, Java, and which native libraries exist
    devtool.py junit --reports DIR --backend cuda --out conformance.json
                                                        JUnit XML reports -> counts, failures, skip reasons
    devtool.py summary --out-dir $OUT --steps FILE      summary.md from every result file, and the final
                                                        table printed last (the device reply shows the tail)
"""

from __future__ import annotations

import argparse
import datetime
import glob
import json
import os
import re
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET

LIB_PATTERNS = ("libcuda.so*", "libnvidia-opencl.so*", "libOpenCL.so*", "libcublas.so*", "libcublasLt.so*",
                "libnvrtc.so*", "libcudart.so*")
LIB_DIRS = ("/usr/lib/x86_64-linux-gnu", "/usr/lib64", "/usr/lib", "/lib/x86_64-linux-gnu", "/usr/local/nvidia/lib64",
            "/usr/local/nvidia/lib", "/usr/local/cuda/lib64", "/usr/local/cuda/targets/x86_64-linux/lib")


def sh(cmd: list[str], timeout: float = 20) -> str:
    """A command's output, or why there is none (never raises: a missing tool is a fact to record)."""
    if shutil.which(cmd[0]) is None:
        return f"(not found: {cmd[0]})"
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        return (r.stdout + r.stderr).strip()
    except subprocess.TimeoutExpired:
        return f"(timed out after {timeout} s)"


def python_lib_dirs() -> list[str]:
    """nvidia-* wheels' library folders (site-packages/nvidia/*/lib), where torch's CUDA libraries live."""
    dirs = []
    for p in sys.path:
        dirs.extend(sorted(glob.glob(os.path.join(p, "nvidia", "*", "lib"))))
        dirs.extend(sorted(glob.glob(os.path.join(p, "nvidia", "cu*", "lib"))))
    return sorted(set(dirs))


def find_libs() -> dict:
    found: dict[str, list[str]] = {}
    for d in list(LIB_DIRS) + python_lib_dirs():
        for pat in LIB_PATTERNS:
            for f in sorted(glob.glob(os.path.join(d, pat))):
                found.setdefault(pat.split(".so")[0], []).append(f)
    return {k: sorted(set(v)) for k, v in found.items()}


def package_versions(names: list[str]) -> dict:
    from importlib import metadata
    out = {}
    for n in names:
        try:
            out[n] = metadata.version(n)
        except metadata.PackageNotFoundError:
            out[n] = None
    return out


def cmd_env(a) -> int:
    smi_fields = "name,driver_version,memory.total,clocks.sm,clocks.max.sm,clocks.mem,power.limit,temperature.gpu," \
                 "persistence_mode,compute_mode,mig.mode.current,ecc.mode.current"
    env = {
        "date_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "nvidia_smi_L": sh(["nvidia-smi", "-L"]),
        "nvidia_smi_query": sh(["nvidia-smi", f"--query-gpu={smi_fields}", "--format=csv"]),
        "nvcc": sh(["nvcc", "--version"]).splitlines()[-1:],
        "kernel": sh(["uname", "-r"]),
        "python": sys.version.split()[0],
        "python_executable": sys.executable,
        "packages": package_versions(["torch", "cupy-cuda13x", "triton", "numpy", "nvidia-cublas", "nvidia-cuda-nvrtc",
                                      "nvidia-cudnn-cu13"]),
        "libraries": find_libs(),
        "ldconfig": [l.strip() for l in sh(["ldconfig", "-p"]).splitlines()
                     if re.search(r"libcuda\.|libnvidia-opencl|libOpenCL|libcublas|libnvrtc", l)],
        "opencl_vendors_dir": {f: open(f).read().strip() for f in sorted(glob.glob("/etc/OpenCL/vendors/*.icd"))},
    }
    if a.setup and os.path.exists(a.setup):
        env["setup"] = dict(l.rstrip("\n").split("=", 1) for l in open(a.setup) if "=" in l)
    with open(a.out, "w") as f:
        json.dump(env, f, indent=2)
    print(env["nvidia_smi_L"])
    print(env["nvidia_smi_query"])
    print("nvcc:", " ".join(env["nvcc"]), "| python", env["python"], "|",
          ", ".join(f"{k} {v}" for k, v in env["packages"].items() if v))
    for k, v in env["libraries"].items():
        print(f"{k}: {' '.join(v)}")
    print("/etc/OpenCL/vendors:", env["opencl_vendors_dir"] or "none")
    return 0


def cmd_junit(a) -> int:
    files = sorted(glob.glob(os.path.join(a.reports, "*.xml")))
    res = {"reports": len(files), "tests": 0, "failures": 0, "errors": 0, "skipped": 0,
           "failed": [], "skip_reasons": {}}
    for f in files:
        try:
            root = ET.parse(f).getroot()
        except ET.ParseError as e:
            res.setdefault("unreadable", []).append(f"{os.path.basename(f)}: {e}")
            continue
        for case in root.iter("testcase"):
            res["tests"] += 1
            name = f"{case.get('classname', '?')}.{case.get('name', '?')}"
            for kind in ("failure", "error"):
                el = case.find(kind)
                if el is not None:
                    res["failures" if kind == "failure" else "errors"] += 1
                    msg = (el.get("message") or el.text or "").strip().splitlines()
                    res["failed"].append({"test": name, kind: msg[0][:300] if msg else ""})
            sk = case.find("skipped")
            if sk is not None:
                res["skipped"] += 1
                reason = (sk.get("message") or sk.text or "").strip().splitlines()
                key = reason[0][:200] if reason else "(no reason)"
                res["skip_reasons"][key] = res["skip_reasons"].get(key, 0) + 1
    res["passed"] = res["tests"] - res["failures"] - res["errors"] - res["skipped"]
    res["failed"] = res["failed"][:50]
    merged = json.load(open(a.out)) if os.path.exists(a.out) else {}
    merged[a.backend] = res
    with open(a.out, "w") as f:
        json.dump(merged, f, indent=2)
    print(f"conformance {a.backend}: {res['tests']} tests, {res['passed']} passed, {res['failures']} failed, "
          f"{res['errors']} errors, {res['skipped']} skipped")
    for r, n in list(res["skip_reasons"].items())[:3]:
        print(f"  skipped x{n}: {r}")
    for fl in res["failed"][:10]:
        print(f"  FAILED {fl['test']}: {fl.get('failure') or fl.get('error')}")
    return 0 if res["tests"] and not res["failures"] and not res["errors"] else 1


def load(path: str):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def fmt(v, unit: str = "") -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return (f"{v:.0f}" if abs(v) >= 100 else f"{v:.3g}") + unit
    return f"{v}{unit}"


def cmd_summary(a) -> int:
    o = a.out_dir
    env, probe, ceil, checks, conf = (load(os.path.join(o, f)) for f in
                                      ("env.json", "probe.json", "ceilings.json", "checks.json", "conformance.json"))
    steps = [l.rstrip("\n").split("\t") for l in open(a.steps)] if os.path.exists(a.steps) else []
    md = []
    ps = (probe or {}).get("sections", {})
    dev = ps.get("cuda.device", {})
    gpu = dev.get("name") or ((ceil or {}).get("device") or {}).get("name") or "unknown GPU"
    md.append(f"# Device check: {gpu}, {(env or {}).get('date_utc', '')}\n")
    md.append("| step | result | seconds | note |\n|---|---|---|---|")
    md.extend(f"| {s[0]} | {s[1]} | {s[2]} | {s[3] if len(s) > 3 else ''} |" for s in steps)

    if env:
        md.append("\n## Machine\n")
        md.append("```\n" + env.get("nvidia_smi_L", "") + "\n" + env.get("nvidia_smi_query", "") + "\n```")
        md.append(f"- nvcc: {' '.join(env.get('nvcc') or [])}; kernel {env.get('kernel')}; python {env.get('python')}")
        md.append("- packages: " + ", ".join(f"{k} {v}" for k, v in (env.get("packages") or {}).items() if v))
        for k, v in (env.get("setup") or {}).items():
            md.append(f"- {k}: {v}")
        for k, v in (env.get("libraries") or {}).items():
            md.append(f"- {k}: {', '.join(v)}")

    if ps:
        md.append("\n## What loads (Java probe)\n")
        md.append("| step | status | detail |\n|---|---|---|")
        for name, s in ps.items():
            md.append(f"| {name} | {s.get('status')} | {str(s.get('reason') or s.get('summary') or '')[:300]} |")
        lib = ps.get("cuda.library", {})
        if lib.get("jcuda_driver_imports_missing"):
            md.append(f"\nJCuda driver imports this libcuda lacks: {', '.join(lib['jcuda_driver_imports_missing'])}")
        if dev.get("status") == "ok":
            keys = ["compute_capability", "multiprocessors", "total_memory_bytes", "l2_cache_bytes",
                    "shared_memory_per_block_bytes", "shared_memory_per_block_optin_bytes",
                    "shared_memory_per_multiprocessor_bytes", "registers_per_multiprocessor", "max_threads_per_multiprocessor"]
            md.append("\n| property | value |\n|---|---|")
            md.extend(f"| {k} | {dev.get(k)} |" for k in keys)
            md.append(f"| driver API | {ps.get('cuda.init', {}).get('driver_api_version_text')} |")
        for run in ps.get("cuda.kernel", {}).get("runs", []):
            md.append(f"- kernel {run.get('module')}: {run.get('status')}, load {fmt(run.get('load_ms'), ' ms')}, "
                      f"{run.get('registers')} registers, binary version {run.get('binary_version')}")

    md.append("\n## Ceilings\n")
    rows = []
    cb = ps.get("cuda.copy_bandwidth", {})
    if cb.get("status") == "ok":
        rows.append(("copy, our kernel (Java/JCuda)", fmt(cb.get("best_kernel_gb_per_s"), " GB/s"), cb.get("best_kernel_config")))
        rows.append(("copy, cuMemcpyDtoDAsync (Java/JCuda)", fmt(cb.get("cuMemcpyDtoDAsync_gb_per_s"), " GB/s"), ""))
    if ceil:
        c = ceil.get("copy") or {}
        copy_err = (c.get("error") or "").strip().splitlines()[-1:] or [""]
        rows.append(("copy, torch copy_", fmt(c.get("torch_gb_per_s"), " GB/s"), "read + written " + copy_err[0]))
        rows.append(("copy, our kernel (cupy)", fmt(c.get("ours_best_gb_per_s"), " GB/s"), ""))
        mm = ceil.get("matmul") or {}
        for r in mm.get("rows", []):
            rows.append((f"matmul {mm.get('m=n=k')}^3 {r.get('dtype')}", fmt(r.get("TFLOP/s"), " TFLOP/s"),
                         f"rel err {fmt(r.get('rel_error_vs_fp64'))}" if "error" not in r else r["error"].splitlines()[-1]))
        s = ceil.get("sdpa") or {}
        if s:
            rows.append((f"SDPA bf16 {s.get('shape')} choice", str(s.get("torch_fused_sdp_choice")),
                         f"kernels: {s.get('default_backend_from_kernels')}; causal: {s.get('default_causal_backend_from_kernels')}"))
            for r in s.get("rows", []):
                if "error" in r:
                    rows.append((f"SDPA {r['backend']} causal={r['causal']}", "-", r["error"][:120]))
                else:
                    rows.append((f"SDPA {r['backend']} causal={r['causal']}", fmt(r.get("fwd_TFLOP/s"), " TFLOP/s fwd"),
                                 f"fwd+bwd {fmt(r.get('fwd_bwd_TFLOP/s'), ' TFLOP/s')}"))
    md.append("| ceiling | value | note |\n|---|---|---|")
    md.extend(f"| {a_} | {b} | {c_} |" for a_, b, c_ in rows)
    if not rows:
        md.append("| (none measured: see the probe and ceilings steps) | | |")

    if checks:
        md.append("\n## Python checks (bench/gpu/check_*.py)\n")
        md.append("| check | ok | seconds | error |\n|---|---|---|---|")
        for n, r in (checks.get("checks") or {}).items():
            err = (r.get("error") or "").strip().splitlines()[-1:] or [""]
            md.append(f"| {n} | {r.get('ok')} | {r.get('elapsed_s')} | {err[0][:200]} |")
    if conf:
        md.append("\n## Java conformance suite\n")
        md.append("| backend | tests | passed | failed | errors | skipped |\n|---|---|---|---|---|---|")
        for b, r in conf.items():
            md.append(f"| {b} | {r['tests']} | {r['passed']} | {r['failures']} | {r['errors']} | {r['skipped']} |")
        for b, r in conf.items():
            for fl in r.get("failed", [])[:10]:
                md.append(f"- {b} FAILED {fl['test']}: {fl.get('failure') or fl.get('error')}")
    text = "\n".join(md) + "\n"
    with open(os.path.join(o, "summary.md"), "w") as f:
        f.write(text)

    # the final table: the last thing printed, so the reply's tail always carries it
    print("\n==== device-check summary ====")
    w = max([len(s[0]) for s in steps] + [4])
    for s in steps:
        print(f"{s[0].ljust(w)}  {s[1]:<12} {s[2]:>6}s  {(s[3] if len(s) > 3 else '')[:110]}")
    if rows:
        print()
        w = max(len(r[0]) for r in rows)
        for r in rows:
            print(f"{r[0].ljust(w)}  {str(r[1]):<20} {(r[2] or '')[:90]}")
    print(f"\nfiles under $OUT: {' '.join(sorted(os.listdir(o)))}")
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    e = sub.add_parser("env")
    e.add_argument("--out", required=True)
    e.add_argument("--setup")
    j = sub.add_parser("junit")
    j.add_argument("--reports", required=True)
    j.add_argument("--backend", required=True)
    j.add_argument("--out", required=True)
    s = sub.add_parser("summary")
    s.add_argument("--out-dir", required=True)
    s.add_argument("--steps", required=True)
    a = ap.parse_args()
    return {"env": cmd_env, "junit": cmd_junit, "summary": cmd_summary}[a.cmd](a)


if __name__ == "__main__":
    sys.exit(main())
