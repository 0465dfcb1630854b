#!/usr/bin/env bash
# Runs the built probe (.gpu/probe/probe.jar) against fake_libcuda.c, a CPU stand-in for the driver,
# so that the probe's whole CUDA path is exercised here before the one real device call: a correct
# run must pass; a fake that computes one wrong element or copies one wrong float must fail; one that
# finds no device must be reported as unavailable (exit status 3).
# Called by prepare.sh after it builds the probe; needs gcc and python3. Timings here mean nothing.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)
cd "$ROOT"
JAVA=${JAVA_HOME:-/usr/lib/jvm/temurin-25-jdk-amd64}/bin/java
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# a failing stub (CUDA_ERROR_NOT_SUPPORTED) for every other function libJCudaDriver imports, so
# that the library loads as the real one would
gcc -shared -fPIC -O1 -o "$tmp/impl.so" bench/gpu/probe/fake_libcuda.c -lm
nm -D --defined-only "$tmp/impl.so" | awk '{print $3}' | sort -u > "$tmp/implemented"
unzip -p .gpu/probe/probe.jar org/kernels4j/gpuprobe/jcuda-driver-imports.txt | sort -u \
  | comm -23 - "$tmp/implemented" | awk '{print "int " $1 "(void) { return 801; }"}' > "$tmp/stubs.c"
gcc -shared -fPIC -O1 -o "$tmp/libcuda.so.1" bench/gpu/probe/fake_libcuda.c "$tmp/stubs.c" -lm

probe() { # expected-exit-status json-name [env...]
  local want=$1 name=$2; shift 2
  local rc=0
  env "$@" LD_LIBRARY_PATH="$tmp" "$JAVA" -jar .gpu/probe/probe.jar --kernels .gpu/probe --out "$tmp/$name.json" \
    --copy-mib 8 --repeats 5 > "$tmp/$name.log" 2>&1 || rc=$?
  if [ "$rc" != "$want" ]; then
    cat "$tmp/$name.log"
    echo "[selftest] FAILED: probe with the fake driver ($name) exited $rc, expected $want" >&2
    exit 1
  fi
}

probe 0 good
python3 - "$tmp/good.json" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))["sections"]
assert s["cuda.device"]["status"] == "ok" and s["cuda.device"]["multiprocessors"] == 2, s["cuda.device"]
assert str(s["cuda.device"]["attributes"]["gpu_overlap"]).startswith("error"), "a refused attribute is reported"
runs = s["cuda.kernel"]["runs"]
assert [r["status"] for r in runs] == ["correct", "correct"], runs
assert all(r["bit_exact_mismatches"] == 0 and r["median_ms"] > 0 for r in runs), runs
cfg = s["cuda.copy_bandwidth"]["kernel_configs"]
assert len(cfg) == 8 and all(c["correct"] for c in cfg), cfg
assert s["cublas"]["status"] in ("unavailable", "ok"), s["cublas"]
PY
probe 1 axpy FAKE_CUDA_BREAK=axpy
grep -q '"bit_exact_mismatches": 1' "$tmp/axpy.json" || { echo "[selftest] FAILED: one wrong element not counted" >&2; exit 1; }
probe 1 copy FAKE_CUDA_BREAK=copy
grep -q '"correct": false' "$tmp/copy.json" || { echo "[selftest] FAILED: wrong copy not detected" >&2; exit 1; }
probe 3 init FAKE_CUDA_BREAK=init
grep -q 'cuInit failed: CUDA_ERROR_NO_DEVICE' "$tmp/init.json" || { echo "[selftest] FAILED: no device not reported" >&2; exit 1; }
echo "[selftest] probe against the fake driver: a correct run passes; a wrong element, a wrong copy and no device are reported"
