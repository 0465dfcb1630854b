#!/usr/bin/env bash
# ONE script for a device call (GPU machine; prepare everything first with bench/gpu/prepare.sh and
# carry ".gpu"). Each step runs under its own timeout inside an overall budget, so one hang cannot
# eat the call; each step writes its result under $OUT as soon as it ends; the summary table is
# printed last, because the reply shows only the tail of the output.
#
#   bash bench/gpu/device-check.sh [--budget SECONDS] [--quick] [STEP...]
#
# STEP: env probe ceilings checks conformance (= conformance-cuda conformance-opencl), or all
# (default: all). env always runs first. --budget (default 540) must be a little under the call's
# timeout_s: a step that would not fit in what is left is skipped, not started.
#
# $OUT receives at most 8 files: device-check.log (everything printed), env.json, probe.json,
# ceilings.json, checks.json, conformance.json, summary.md, logs.tgz (per-step logs, JUnit XML).
set -u
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT"
OUT=${OUT:-/tmp/k4j-out}
WORK=${K4J_WORK:-/tmp/k4j-work}
BUDGET=540
QUICK=
steps=()
while [ $# -gt 0 ]; do
  case $1 in
    --budget) BUDGET=$2; shift 2 ;;
    --quick) QUICK=--quick; shift ;;
    all) steps+=(probe ceilings checks conformance-cuda conformance-opencl); shift ;;
    conformance) steps+=(conformance-cuda conformance-opencl); shift ;;
    env) shift ;;
    probe | ceilings | checks | java-bench | java-bench-wgmma | java-bench-defaults | tune | device-bench | conformance-cuda | conformance-opencl) steps+=("$1"); shift ;;
    *) echo "device-check: unknown argument '$1' (steps: env probe ceilings checks java-bench java-bench-wgmma java-bench-defaults tune device-bench conformance[-cuda|-opencl] all; --budget S; --quick)" >&2; exit 2 ;;
  esac
done
[ ${#steps[@]} -gt 0 ] || steps=(probe ceilings checks conformance-cuda conformance-opencl)

mkdir -p "$OUT"
rm -rf "$WORK" && mkdir -p "$WORK/logs"
LOG=$OUT/device-check.log
STEPS=$WORK/steps.tsv
SETUP=$WORK/setup.txt
: > "$LOG"; : > "$STEPS"; : > "$SETUP"
START=$(date +%s)
export PYTHONUNBUFFERED=1
unset LD_BIND_NOW # JCuda's natives must bind lazily: this driver may lack functions JCuda imports

say() { echo "$*" | tee -a "$LOG"; }
fact() { echo "$1=$2" >> "$SETUP"; say "  $1: $2"; }
record() { printf '%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "${4:-}" >> "$STEPS"; }
# replaces the note of step NAME (conformance: the test counts say more than the launcher's last line)
amend_note() { awk -F'\t' -v OFS='\t' -v n="$1" -v t="$2" '$1 == n {$4 = t} {print}' "$STEPS" > "$STEPS.new" && mv "$STEPS.new" "$STEPS"; }

# run_step [--quiet] NAME TIMEOUT COMMAND...: runs COMMAND under min(TIMEOUT, budget left - 30 s),
# output to the console (--quiet: only its last lines), the log and logs/NAME.log; records
# ok / FAIL(rc) / TIMEOUT / unavailable (rc 3), with the output's last line as the note unless ok.
run_step() {
  local quiet=
  [ "$1" = --quiet ] && { quiet=1; shift; }
  local name=$1 want=$2; shift 2
  local left=$((BUDGET - ($(date +%s) - START) - 30))
  local t=$((want < left ? want : left))
  if [ "$left" -lt 20 ]; then
    say "=== $name: skipped, only $((left + 30)) s of the budget left"
    record "$name" skipped 0 "budget"
    return
  fi
  say "=== $name (timeout ${t} s) $(date -u +%H:%M:%S)"
  local s0=$(date +%s)
  local rc
  if [ -n "$quiet" ]; then
    timeout -k 10 "$t" "$@" > "$WORK/logs/$name.log" 2>&1
    rc=$?
    cat "$WORK/logs/$name.log" >> "$LOG"
    tail -n 15 "$WORK/logs/$name.log"
  else
    timeout -k 10 "$t" "$@" 2>&1 | tee -a "$LOG" "$WORK/logs/$name.log"
    rc=${PIPESTATUS[0]}
  fi
  local secs=$(($(date +%s) - s0)) status note=
  case $rc in
    0) status=ok ;;
    3) status=unavailable ;;
    124 | 137) status=TIMEOUT ;;
    *) status="FAIL($rc)" ;;
  esac
  [ "$status" = ok ] || note=$(grep -v '^[[:space:]]*$' "$WORK/logs/$name.log" | tail -n 1 | cut -c1-140 | tr '\t' ' ')
  record "$name" "$status" "$secs" "$note"
  say "=== $name: $status in ${secs} s"
}

setup_java() {
  [ ${#JAVA_CMD[@]} -gt 0 ] && return 0
  local java
  if [ -f .gpu/jre.tgz ]; then
    mkdir -p /tmp/k4j-jre && tar xzf .gpu/jre.tgz -C /tmp/k4j-jre && java=/tmp/k4j-jre/jre/bin/java
  elif command -v java >/dev/null; then
    java=$(command -v java)
  else
    fact java "none: no .gpu/jre.tgz (run bench/gpu/prepare.sh) and no java on PATH"
    return 1
  fi
  fact java "$java ($("$java" -version 2>&1 | head -1))"
  # the library folders found below reach the JVM only: torch must keep resolving its own CUDA libraries
  JAVA_CMD=(env "LD_LIBRARY_PATH=${JAVA_LD_PATH}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}")
  [ -n "$ICD_DIR" ] && JAVA_CMD+=("OCL_ICD_VENDORS=$ICD_DIR")
  JAVA_CMD+=("$java" --enable-native-access=ALL-UNNAMED)
}

java_ld_add() { JAVA_LD_PATH=$1${JAVA_LD_PATH:+:$JAVA_LD_PATH}; }

# candidate native libraries, listed once (a full-disk search would cost seconds per name)
list_libs() {
  timeout 30 find /usr /opt /lib /lib64 /etc/OpenCL \( -name 'libnvidia-opencl.so*' -o -name 'libcublas.so*' \
    -o -name 'libOpenCL.so*' -o -name 'libcuda.so*' \) 2>/dev/null | sort -u > "$WORK/libs.txt"
}

# NVIDIA's OpenCL driver is libnvidia-opencl.so.1; the ICD loader finds it through an .icd file.
# The image may have neither the loader nor the .icd: we carry Debian's loader and write the .icd
# into our own vendors folder (OCL_ICD_VENDORS), leaving /etc alone.
setup_opencl() {
  local nv
  nv=$(ldconfig -p 2>/dev/null | awk '/libnvidia-opencl\.so\.1 /{print $NF; exit}')
  [ -z "$nv" ] && nv=$(grep -m1 '/libnvidia-opencl\.so\.1$' "$WORK/libs.txt")
  fact nvidia_opencl_library "${nv:-not found}"
  if grep -qs nvidia /etc/OpenCL/vendors/*.icd; then
    fact opencl_icd "system: $(grep -ls nvidia /etc/OpenCL/vendors/*.icd | tr '\n' ' ')"
  elif [ -n "$nv" ]; then
    mkdir -p "$WORK/icd" && echo "$nv" > "$WORK/icd/nvidia.icd"
    ICD_DIR=$WORK/icd
    java_ld_add "$(dirname "$nv")"
    fact opencl_icd "wrote $WORK/icd/nvidia.icd -> $nv (OCL_ICD_VENDORS for the JVM)"
  else
    fact opencl_icd "none: NVIDIA's OpenCL driver is not on this machine"
  fi
  if ldconfig -p 2>/dev/null | grep -q 'libOpenCL\.so\.1 '; then
    fact opencl_loader "system $(ldconfig -p | awk '/libOpenCL\.so\.1 /{print $NF; exit}')"
  elif [ -f .gpu/ocl/libOpenCL.so.1 ]; then
    java_ld_add "$ROOT/.gpu/ocl"
    fact opencl_loader "carried $ROOT/.gpu/ocl/libOpenCL.so.1 ($(cat .gpu/ocl/VERSION 2>/dev/null))"
  else
    fact opencl_loader "none (no system libOpenCL.so.1, none carried in .gpu/ocl)"
  fi
}

# JCublas 12.6 needs libcublas.so.12; a CUDA 13 image probably has only .so.13 (torch's wheels).
setup_cublas() {
  local f
  f=$(ldconfig -p 2>/dev/null | awk '/libcublas\.so\.12 /{print $NF; exit}')
  [ -z "$f" ] && f=$(grep -m1 '/libcublas\.so\.12$' "$WORK/libs.txt")
  if [ -n "$f" ]; then
    java_ld_add "$(dirname "$f")"
    fact libcublas_so_12 "$f (its folder added to the JVM's LD_LIBRARY_PATH)"
  else
    fact libcublas_so_12 "not found; present: $(grep '/libcublas\.so\.[0-9]*$' "$WORK/libs.txt" | tr '\n' ' ')"
  fi
}

conformance() { # backend module
  local backend=$1 module=$2
  local jar tests junit cp missing=()
  jar=$(ls .gpu/jars/"$module"/*.jar 2>/dev/null | grep -v -- '-tests\.jar$' | head -1)
  tests=$(ls .gpu/jars/abstraction/*-tests.jar 2>/dev/null | head -1)
  junit=$(ls .gpu/junit/junit-platform-console-standalone-*.jar 2>/dev/null | head -1)
  [ -n "$jar" ] || missing+=("the $module jar")
  [ -n "$tests" ] || missing+=("the abstraction test-jar")
  [ -n "$junit" ] || missing+=("the JUnit console launcher")
  if [ ${#missing[@]} -gt 0 ]; then
    say "=== conformance-$backend: skipped: .gpu lacks ${missing[*]} (build the modules, then bench/gpu/prepare.sh project)"
    record "conformance-$backend" skipped 0 "jars not prepared"
    return
  fi
  setup_java || { record "conformance-$backend" skipped 0 "no Java"; return; }
  cp=$(ls .gpu/jars/abstraction/*.jar .gpu/jars/"$module"/*.jar .gpu/lib/*.jar | tr '\n' ':')
  # required=true: on the GPU machine an unavailable backend is a failure, not a skip
  run_step --quiet "conformance-$backend" "${K4J_TIMEOUT_CONFORMANCE:-240}" "${JAVA_CMD[@]}" \
    --add-modules jdk.incubator.vector -Xss8m \
    -Dkernels4j.conformance.backend="$backend" -Dkernels4j.conformance.required=true \
    -jar "$junit" execute --disable-banner --details=summary --fail-if-no-tests \
    --class-path "$cp" --select-package org.kernels4j.conformance --reports-dir "$WORK/junit-$backend"
  python3 bench/gpu/devtool.py junit --reports "$WORK/junit-$backend" --backend "$backend" \
    --out "$OUT/conformance.json" 2>&1 | tee -a "$LOG" "$WORK/logs/conformance-$backend.counts"
  amend_note "conformance-$backend" "$(head -n 1 "$WORK/logs/conformance-$backend.counts" | cut -c1-140)"
}

unpack_kernels() { # the cubins and PTX the kernels-cuda jar carries, for the python checks
  local jar
  jar=$(ls .gpu/jars/kernels-cuda/*.jar 2>/dev/null | grep -v -- '-tests\.jar$' | head -1)
  [ -n "$jar" ] || { say "checks: no kernels-cuda jar in .gpu/jars"; return; }
  python3 - "$jar" <<'PY'
import sys, zipfile, os
prefix = "org/kernels4j/cuda/kernels/"
os.makedirs(".gpu/cuda-kernels", exist_ok=True)
with zipfile.ZipFile(sys.argv[1]) as z:
    names = [n for n in z.namelist() if n.startswith(prefix) and not n.endswith("/")]
    for n in names:
        with open(os.path.join(".gpu/cuda-kernels", n[len(prefix):]), "wb") as f:
            f.write(z.read(n))
print(f"[device-check] unpacked {len(names)} kernel files from {sys.argv[1]}")
PY
}

say "device-check: steps env ${steps[*]}; budget ${BUDGET} s; OUT=$OUT; $(date -u +%Y-%m-%dT%H:%M:%SZ)"
say "=== env"
JAVA_CMD=()
JAVA_LD_PATH=
ICD_DIR=
list_libs
setup_opencl
setup_cublas
setup_java
fact java_ld_library_path "${JAVA_LD_PATH:-none added}"
run_step env 60 python3 bench/gpu/devtool.py env --out "$OUT/env.json" --setup "$SETUP"

for step in "${steps[@]}"; do
  case $step in
    probe)
      if setup_java; then
        run_step probe "${K4J_TIMEOUT_PROBE:-150}" "${JAVA_CMD[@]}" \
          -jar .gpu/probe/probe.jar --kernels .gpu/probe --out "$OUT/probe.json"
      else
        record probe skipped 0 "no Java"
      fi ;;
    ceilings)
      run_step ceilings "${K4J_TIMEOUT_CEILINGS:-240}" python3 bench/gpu/ceilings.py \
        --probe-kernels .gpu/probe --out "$OUT/ceilings.json" $QUICK ;;
    checks)
      unpack_kernels
      run_step checks "${K4J_TIMEOUT_CHECKS:-300}" python3 bench/gpu/run_checks.py \
        --kernels-dir .gpu/cuda-kernels --out "$OUT/checks.json" --work-dir "$WORK/checks" \
        --timeout-each "${K4J_TIMEOUT_EACH_CHECK:-200}" $QUICK ;;
    java-bench | java-bench-wgmma | java-bench-defaults)
      # the GPU benchmark set through the public Java API (CUDA events), beside the python checks;
      # java-bench-wgmma routes the tensor-core convolutions to the Hopper wgmma engine;
      # java-bench-defaults puts kernels4j-autotune on the class path with an empty tuning cache (or the one
      # K4J_JAVA_BENCH_CACHE names, e.g. the tune step's $WORK/tune-cache), so every kernel takes the shipped
      # defaults for this device (or the tuned parameters) where there are some, to compare with java-bench,
      # where kernels take the planner's choice; the distinct resolutions go to logs/java-bench-resolutions.txt
      engine=()
      extra_cp=
      quiet=()
      bench_cache=${K4J_JAVA_BENCH_CACHE:-$WORK/empty-cache}
      [ "$step" = java-bench-wgmma ] && engine=(-Dkernels4j.cuda.conv.engine=wgmma)
      if [ "$step" = java-bench-defaults ]; then
        engine=(-Dkernels4j.debug=2)
        quiet=(--quiet)
        extra_cp=$(ls .gpu/bench/*.jar | grep -v -- 'kernels4j-bench\|jmh\|jopt\|commons-math' | tr '\n' :)
        mkdir -p "$bench_cache"
      fi
      if setup_java; then
        run_step "${quiet[@]}" "$step" "${K4J_TIMEOUT_JAVA_BENCH:-200}" env KERNELS4J_CACHE="$bench_cache" \
          "${JAVA_CMD[@]}" --add-modules jdk.incubator.vector "${engine[@]}" \
          -cp "$extra_cp$(ls .gpu/jars/abstraction/*.jar .gpu/jars/kernels-cuda/*.jar .gpu/lib/*.jar | grep -v -- '-tests\.jar$' | tr '\n' :)" \
          org.kernels4j.cuda.CudaDeviceCheck $QUICK --out "$WORK/$step.json"
        if [ "$step" = java-bench-defaults ]; then
          grep -o 'tuning cuda\..*' "$WORK/logs/$step.log" | sort | uniq -c > "$WORK/logs/java-bench-resolutions.txt"
          rm -f "$WORK/logs/$step.log" # every launch logged: too large to keep
        fi
      else
        record "$step" skipped 0 "no Java"
      fi ;;
    tune)
      # issue 6 on the GPU: tune the CUDA kernels over the GPU set into a fresh cache, then export that
      # cache as shipped defaults (autotune/src/main/resources/org/kernels4j/autotune/defaults/cuda/);
      # K4J_TUNE_ARGS adds tune options (e.g. "--ops conv2d")
      if setup_java; then
        tune_cp=$(ls .gpu/jars/*/*.jar .gpu/lib/*.jar .gpu/bench/*.jar 2>/dev/null | grep -v -- '-tests\.jar$' | tr '\n' :)
        run_step tune "${K4J_TIMEOUT_TUNE:-150}" env KERNELS4J_CACHE="$WORK/tune-cache" "${JAVA_CMD[@]}" \
          --add-modules jdk.incubator.vector -cp "$tune_cp" org.kernels4j.autotune.Main \
          tune --backend cuda --shapes gpu --budget "${K4J_TUNE_BUDGET:-120s}" ${K4J_TUNE_ARGS:-}
        KERNELS4J_CACHE="$WORK/tune-cache" "${JAVA_CMD[@]}" --add-modules jdk.incubator.vector -cp "$tune_cp" \
          org.kernels4j.autotune.Main cache export --as-defaults "$WORK/tune-defaults" 2>&1 | tee -a "$LOG"
      else
        record tune skipped 0 "no Java"
      fi ;;
    device-bench)
      # issue 7 on the GPU: JMH through kernels4j bench with PyTorch's baseline merged (bench/device-bench.sh)
      run_step device-bench "${K4J_TIMEOUT_DEVICE_BENCH:-150}" env OUT="$WORK/device-bench" \
        bash -c 'mkdir -p "$OUT" && bash bench/device-bench.sh run --quick --filter "${K4J_DEVICE_BENCH_FILTER:-ln-16k-4k|attn-fa-d128-2k|conv-rn50-c3}"' ;;
    conformance-cuda) conformance cuda kernels-cuda ;;
    conformance-opencl) conformance opencl kernels-opencl ;;
  esac
done

command -v nvidia-smi >/dev/null &&
  say "=== after: SM clock, memory clock, temperature, power: $(nvidia-smi --query-gpu=clocks.sm,clocks.mem,temperature.gpu,power.draw --format=csv,noheader 2>&1 | head -1)"
# logs.tgz: step logs, JUnit XML and what the checks wrote, without large files (8 files come back)
find "$WORK" -type f -size +8M -printf 'left out of logs.tgz (over 8 MB): %p\n' | tee -a "$LOG"
tar czf "$OUT/logs.tgz" -C "$WORK" --exclude='*.so*' $(cd "$WORK" && find . -type f -size -8M -printf '%P\n') 2>&1 | tee -a "$LOG"
python3 bench/gpu/devtool.py summary --out-dir "$OUT" --steps "$STEPS" 2>&1 | tee -a "$LOG"
awk -F'\t' '$2 != "ok" && $2 != "skipped" {bad = 1} END {exit bad}' "$STEPS"
