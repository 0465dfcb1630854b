#!/usr/bin/env bash
# Builds, on this machine (no GPU), everything a device call needs into the git-ignored folder .gpu/,
# so that ONE `run` with carry [".gpu"] and `bash bench/gpu/device-check.sh` works the first time.
#
# Usage, from anywhere:  bench/gpu/prepare.sh [jre] [probe] [opencl] [project]   (default: all four)
#   jre      .gpu/jre.tgz             a jlinked Java 25 runtime (../shared/gpu/pack-jre.sh); kept if present
#                                     (K4J_FORCE_JRE=1 rebuilds it)
#   probe    .gpu/probe/              the probe's PTX (compute_80) + sm_90 cubin built by nvcc, probe.jar
#                                     (runs with `java -jar`), ptxas report; its jars go to .gpu/lib/;
#                                     then probe/selftest.sh runs it against a fake driver (no GPU needed)
#   opencl   .gpu/ocl/libOpenCL.so.1  Debian's ocl-icd loader, for a GPU image that has none
#   project  .gpu/jars/<module>/      each module's target/*.jar (main and tests; build them first), their
#                                     runtime and test dependencies (.gpu/lib/), the JUnit console launcher
#                                     (.gpu/junit/), and the compiled CUDA kernels (.gpu/cuda-kernels/)
#            K4J_MODULES="abstraction kernels-cpu kernels-opencl kernels-cuda" (default) picks the modules.
# Ends with the size of what travels: at most 64 MiB in all, the tracked files included.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT"
export JAVA_HOME=${JAVA_HOME:-/usr/lib/jvm/temurin-25-jdk-amd64}
JAVA_BIN="$JAVA_HOME/bin"
M2=${M2_REPO:-$HOME/.m2/repository}
GPU=.gpu
JCUDA_VERSION=$(sed -n 's:.*<jcuda.version>\(.*\)</jcuda.version>.*:\1:p' pom.xml)
JOCL_VERSION=$(sed -n 's:.*<jocl.version>\(.*\)</jocl.version>.*:\1:p' pom.xml)
JUNIT_VERSION=$(sed -n 's:.*<junit.version>\(.*\)</junit.version>.*:\1:p' pom.xml)
: "${JCUDA_VERSION:?no jcuda.version in pom.xml}" "${JOCL_VERSION:?no jocl.version in pom.xml}" "${JUNIT_VERSION:?no junit.version in pom.xml}"

say() { printf '[prepare] %s\n' "$*"; }
die() { printf '[prepare] ERROR: %s\n' "$*" >&2; exit 1; }

# The jar of group:artifact:version[:classifier] from the local repository, fetched from Maven Central
# (no transitive dependencies) when absent.
m2jar() {
  local g=$1 a=$2 v=$3 c=${4:-}
  local f="$M2/${g//.//}/$a/$v/$a-$v${c:+-$c}.jar"
  if [ ! -f "$f" ]; then
    say "fetching $g:$a:$v${c:+:$c}"
    ./mvnw -q dependency:get -Dartifact="$g:$a:$v:jar${c:+:$c}" -Dtransitive=false >&2 \
      || die "cannot fetch $g:$a:$v${c:+:$c}"
  fi
  echo "$f"
}

step_jre() {
  if [ -f "$GPU/jre.tgz" ] && [ "${K4J_FORCE_JRE:-0}" != 1 ]; then
    say "jre: $GPU/jre.tgz present ($(du -h "$GPU/jre.tgz" | cut -f1)); K4J_FORCE_JRE=1 rebuilds it"
    return
  fi
  local pack="$ROOT/../shared/gpu/pack-jre.sh"
  [ -x "$pack" ] || die "jre: $pack not found (it packs the runtime; see ../shared/gpu/README.md)"
  JDK_FOR_GPU="$JAVA_HOME" "$pack" "$GPU"
}

step_probe() {
  command -v nvcc >/dev/null || die "probe: nvcc not on PATH"
  local out="$GPU/probe" src=bench/gpu/probe
  rm -rf "$out" && mkdir -p "$out/classes" "$GPU/lib"
  # PTX for compute_80 runs on every sm_80+ GPU through the driver's JIT; the cubin is Hopper machine code.
  nvcc -ptx -arch=compute_80 -o "$out/probe.ptx" "$src/probe.cu"
  nvcc -cubin -arch=sm_90 -Xptxas -v -o "$out/probe.sm_90.cubin" "$src/probe.cu" 2> "$out/ptxas.txt"
  if grep -E '[1-9][0-9]* bytes spill' "$out/ptxas.txt"; then die "probe: register spills (see $out/ptxas.txt)"; fi
  say "probe: nvcc $(nvcc --version | sed -n 's/.*release \([0-9.]*\).*/\1/p'): probe.ptx ($(sed -n 's/^\.version //p' "$out/probe.ptx" | head -1) PTX ISA), probe.sm_90.cubin"

  local jcuda natives jcublas jcublas_natives jocl
  jcuda=$(m2jar org.jcuda jcuda "$JCUDA_VERSION")
  natives=$(m2jar org.jcuda jcuda-natives "$JCUDA_VERSION" linux-x86_64)
  jcublas=$(m2jar org.jcuda jcublas "$JCUDA_VERSION")
  jcublas_natives=$(m2jar org.jcuda jcublas-natives "$JCUDA_VERSION" linux-x86_64)
  jocl=$(m2jar org.jocl jocl "$JOCL_VERSION")
  cp "$jcuda" "$natives" "$jcublas" "$jcublas_natives" "$jocl" "$GPU/lib/"

  # Which libcuda functions JCuda's driver library imports: the probe reports those this driver lacks.
  local tmp; tmp=$(mktemp -d)
  unzip -q -o "$natives" "lib/libJCudaDriver-*" -d "$tmp"
  nm -D --undefined-only "$tmp"/lib/libJCudaDriver-*.so | awk '$2 ~ /^cu/ {sub(/@.*/, "", $2); print $2}' | sort -u \
    > "$tmp/jcuda-driver-imports.txt"
  mkdir -p "$out/classes/org/kernels4j/gpuprobe"
  cp "$tmp/jcuda-driver-imports.txt" "$out/classes/org/kernels4j/gpuprobe/"

  "$JAVA_BIN/javac" --release 25 -Xlint:all,-deprecation,-restricted,-serial -Werror -d "$out/classes" \
    -cp "$jcuda:$jcublas:$jocl" $(find "$src/src" -name '*.java')
  local cp_manifest="lib/$(basename "$jcuda") lib/$(basename "$natives") lib/$(basename "$jcublas") lib/$(basename "$jcublas_natives") lib/$(basename "$jocl")"
  printf 'Main-Class: org.kernels4j.gpuprobe.GpuProbe\nClass-Path: %s\nEnable-Native-Access: ALL-UNNAMED\n' \
    "$(echo "$cp_manifest" | sed 's:lib/:../lib/:g')" > "$tmp/manifest.txt"
  "$JAVA_BIN/jar" --create --file "$out/probe.jar" --manifest "$tmp/manifest.txt" -C "$out/classes" .
  rm -rf "$out/classes"

  # Every libcuda symbol the probe checks must be one JCuda really imports, or the check proves nothing.
  local unknown
  unknown=$("$JAVA_BIN/java" -cp "$out/probe.jar" org.kernels4j.gpuprobe.GpuProbe --list-symbols true \
            | grep -vxF -f "$tmp/jcuda-driver-imports.txt" || true)
  rm -rf "$tmp"
  [ -z "$unknown" ] || die "probe: symbols the probe checks that libJCudaDriver does not import: $unknown"
  say "probe: $out/probe.jar (+ $(ls "$GPU/lib" | wc -l) jars in $GPU/lib)"
  if command -v gcc >/dev/null; then
    bench/gpu/probe/selftest.sh | sed 's/^/[prepare] /'
  else
    say "probe: no gcc, so the self-test against the fake driver did not run"
  fi
}

step_opencl() {
  local tmp; tmp=$(mktemp -d)
  (cd "$tmp" && apt-get download ocl-icd-libopencl1 >/dev/null 2>&1) \
    || { rm -rf "$tmp"; die "opencl: apt-get download ocl-icd-libopencl1 failed"; }
  dpkg -x "$tmp"/ocl-icd-libopencl1_*.deb "$tmp/x"
  mkdir -p "$GPU/ocl"
  # a real file, not the package's symlink: links do not travel reliably
  cp -L "$tmp"/x/usr/lib/x86_64-linux-gnu/libOpenCL.so.1 "$GPU/ocl/libOpenCL.so.1"
  basename "$tmp"/ocl-icd-libopencl1_*.deb > "$GPU/ocl/VERSION"
  rm -rf "$tmp"
  say "opencl: $GPU/ocl/libOpenCL.so.1 from $(cat "$GPU/ocl/VERSION")"
}

step_project() {
  local modules=${K4J_MODULES:-abstraction kernels-cpu kernels-opencl kernels-cuda}
  rm -rf "$GPU/jars" "$GPU/cuda-kernels" "$GPU/junit"
  mkdir -p "$GPU/jars" "$GPU/lib" "$GPU/junit"
  local m n
  for m in $modules; do
    n=$(ls "$m"/target/*.jar 2>/dev/null | grep -vE -- '-(sources|javadoc)\.jar$' | wc -l)
    if [ "$n" = 0 ]; then
      say "project: $m has no target/*.jar (build it: ./mvnw -o -q -pl $m package -DskipTests); skipped"
      continue
    fi
    mkdir -p "$GPU/jars/$m"
    ls "$m"/target/*.jar | grep -vE -- '-(sources|javadoc)\.jar$' | xargs -I{} cp {} "$GPU/jars/$m/"
    # test scope too (a test-jar may need more than JUnit), without JUnit itself (the console
    # launcher brings it) and without our own modules (their freshly built jars are copied above)
    if ! ./mvnw -o -q -pl "$m" dependency:copy-dependencies -DoutputDirectory="$ROOT/$GPU/lib" -DincludeScope=test \
         -DexcludeGroupIds=org.kernels4j,org.junit,org.junit.jupiter,org.junit.platform,org.opentest4j,org.apiguardian \
         >/tmp/k4j-prepare-deps.log 2>&1; then
      say "project: copy-dependencies failed for $m (is kernels4j-abstraction installed in ~/.m2?):"
      grep -E 'ERROR' /tmp/k4j-prepare-deps.log | head -5
      exit 1
    fi
    say "project: $m: $(ls "$GPU/jars/$m" | tr '\n' ' ')"
  done
  # The compiled kernels travel inside the kernels-cuda jar only (zipped they are a quarter of their
  # size); device-check.sh unpacks them for the python checks.
  if ! ls "$GPU"/jars/kernels-cuda/*.jar >/dev/null 2>&1; then
    say "project: no kernels-cuda jar (./mvnw -o -q -pl kernels-cuda package -DskipTests); the python checks will say so"
  fi
  # JUnit 5.x.y's platform is 1.x.y; from JUnit 6 on they share the version
  local platform=$JUNIT_VERSION
  case $JUNIT_VERSION in 5.*) platform="1.${JUNIT_VERSION#5.}" ;; esac
  cp "$(m2jar org.junit.platform junit-platform-console-standalone "$platform")" "$GPU/junit/"
  say "project: $GPU/junit/junit-platform-console-standalone-$platform.jar"
}

report_size() {
  local gpu tracked untracked total limit=$((64 << 20))
  gpu=$(du -sb "$GPU" | cut -f1)
  tracked=$(git ls-files -z | xargs -0 stat -c %s 2>/dev/null | awk '{s += $1} END {print s + 0}')
  untracked=$(git ls-files -z --others --exclude-standard | xargs -0 -r stat -c %s 2>/dev/null | awk '{s += $1} END {print s + 0}')
  total=$((gpu + tracked + untracked))
  say "size: .gpu $((gpu >> 20)) MiB + tracked $((tracked >> 20)) MiB + untracked $((untracked >> 20)) MiB = $((total >> 20)) MiB of 64 MiB that may travel"
  du -sh "$GPU"/* | sed 's/^/[prepare]   /'
  [ "$total" -le "$limit" ] || die "over 64 MiB: the device call would be refused"
}

mkdir -p "$GPU"
# pack-jre.sh adds /.gpu/ to .git/info/exclude; .gitignore has it too
steps=("$@")
[ ${#steps[@]} -gt 0 ] || steps=(jre probe opencl project)
for s in "${steps[@]}"; do
  case $s in
    jre | probe | opencl | project) "step_$s" ;;
    *) die "unknown step '$s' (jre, probe, opencl, project)" ;;
  esac
done
report_size
