#!/usr/bin/env bash
# kernels4j bench on the GPU machine (the CUDA backend over the GPU set), prepared here, run in a device call.
#
#   here:    bench/device-bench.sh prepare
#            Needs .gpu/ from bench/gpu/prepare.sh (the JRE, the kernels-* jars with the compiled CUDA kernels,
#            JCuda) and the autotune and bench jars (./mvnw -o -q -pl autotune,bench package -DskipTests).
#            Adds .gpu/bench/: those two jars and the bench module's runtime dependencies, without the CPU
#            peers (libtorch alone is 450 MB; the GPU run does not use them) and without our own modules.
#   device:  bash bench/device-bench.sh run [bench options]      (carry .gpu; results go to $OUT)
#            e.g. bash bench/device-bench.sh run --quick --filter 'ln-16k-4k|attn-fa-d128-(2k|16k)|conv-rn50-(c3|1x1)'
#            Runs bench/torch_gpu_baseline.py (PyTorch on the same problems, where torch with CUDA is installed)
#            and `kernels4j bench --backends cuda --no-peers --include <its JSON>` with the packed JRE; writes the
#            JMH JSON (PyTorch's figures merged in), the metadata, bench.log and torch-baseline.log into $OUT.
#            Commit the JSON and metadata under bench/results/<machine>/ afterwards.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
GPU=.gpu

prepare() {
  export JAVA_HOME=${JAVA_HOME:-/usr/lib/jvm/temurin-25-jdk-amd64}
  [[ -f $GPU/jre.tgz && -d $GPU/jars ]] || { echo "device-bench: run bench/gpu/prepare.sh first (no $GPU/jre.tgz or $GPU/jars)" >&2; exit 1; }
  rm -rf "$GPU/bench" && mkdir -p "$GPU/bench"
  local m jar
  for m in autotune bench; do
    jar=$(ls "$m"/target/kernels4j-"$m"-*.jar 2>/dev/null | grep -vE -- '-(sources|javadoc|tests)\.jar$' | head -n 1 || true)
    [[ -n "$jar" ]] || { echo "device-bench: no $m jar (./mvnw -o -q -pl autotune,bench package -DskipTests)" >&2; exit 1; }
    cp "$jar" "$GPU/bench/"
  done
  ./mvnw -o -q -pl bench dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory="$ROOT/$GPU/bench" \
    -DexcludeGroupIds=org.kernels4j,ai.djl,ai.djl.pytorch,com.microsoft.onnxruntime,org.webjars.npm,org.jcuda,org.jocl \
    -DexcludeArtifactIds=commons-compress,commons-codec,commons-io,gson,error_prone_annotations,jna,slf4j-api >/dev/null
  git rev-parse HEAD > "$GPU/bench/commit.txt"
  echo "device-bench: $GPU/bench: $(ls "$GPU/bench" | wc -l) files, $(du -sh "$GPU/bench" | cut -f1); .gpu in all: $(du -sh "$GPU" | cut -f1)"
}

run() {
  : "${OUT:?device-bench: run it in a device call (\$OUT is the folder that comes back)}"
  local java=java
  if [[ -f $GPU/jre.tgz ]]; then
    mkdir -p /tmp/k4j-jre && tar xzf "$GPU/jre.tgz" -C /tmp/k4j-jre && java=/tmp/k4j-jre/jre/bin/java
  fi
  local cp="" j
  for j in "$GPU"/jars/*/*.jar "$GPU"/lib/*.jar "$GPU"/bench/*.jar; do
    case "$j" in *-tests.jar) continue ;; esac
    cp="$cp${cp:+:}$j"
  done
  local commit
  commit=$(cat "$GPU/bench/commit.txt" 2>/dev/null || echo unknown)
  nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.mem --format=csv > "$OUT/nvidia-smi.csv" 2>&1 || true
  local k4j=("$java" --add-modules jdk.incubator.vector --enable-native-access=ALL-UNNAMED -cp "$cp" org.kernels4j.autotune.Main)
  # PyTorch's figures for the same problems, merged into the run (the peer on the GPU set)
  local include=() quick=() a
  for a in "$@"; do [[ "$a" == --quick ]] && quick=(--quick); done
  if python3 -c 'import torch; assert torch.cuda.is_available()' 2>/dev/null; then
    "${k4j[@]}" bench --print-problems --backends cuda "$@" > /tmp/k4j-problems.json
    if python3 bench/torch_gpu_baseline.py /tmp/k4j-problems.json /tmp/k4j-torch-gpu.json "${quick[@]}" 2>&1 \
        | tee "$OUT/torch-baseline.log"; then :; fi
    [[ -s /tmp/k4j-torch-gpu.json ]] && include=(--include /tmp/k4j-torch-gpu.json)
  else
    echo "device-bench: no PyTorch with CUDA here; kernels4j alone" | tee "$OUT/torch-baseline.log"
  fi
  "${k4j[@]}" bench --backends cuda --no-peers --results "$OUT" --commit "$commit" "${include[@]}" "$@" 2>&1 \
    | tee "$OUT/bench.log"
}

case "${1:-}" in
  prepare) prepare ;;
  run) shift; run "$@" ;;
  *) echo "usage: bench/device-bench.sh prepare | run [bench options]" >&2; exit 2 ;;
esac
