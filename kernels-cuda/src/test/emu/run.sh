#!/usr/bin/env bash
# Builds and runs the CPU-emulator checks of the CUDA kernels that use no inline PTX (see
# include/cuda_emu.h). Usage: run.sh <build-dir> [dtype]. Needs a C++17 compiler (g++ or clang++).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cuda_src=$(cd "$here/../../main/cuda" && pwd)
out=${1:?usage: run.sh <build-dir> [f32|f16|bf16]}
mkdir -p "$out"
cxx=${CXX:-$(command -v g++ || command -v clang++ || true)}
[ -n "$cxx" ] || { echo "run.sh: no C++ compiler (g++ or clang++) found" >&2; exit 2; }
# `extern __shared__` arrays (dynamic shared memory) become pointers to the emulator's per-launch buffer;
# everything else compiles unchanged.
for f in "$cuda_src"/kernels4j_cuda.cuh; do cp "$f" "$out/"; done
sed -E 's/extern __shared__ ([A-Za-z0-9_]+) ([A-Za-z0-9_]+)\[\];/\1* \2 = (\1*)emu::dynamic_smem();/' \
    "$cuda_src/layernorm.cu" > "$out/layernorm_emu.cu"
"$cxx" -std=c++17 -O1 -g -w -I"$here/include" -I"$out" -o "$out/layernorm_emu_test" "$here/layernorm_emu_test.cpp"
"$out/layernorm_emu_test" "${2:-}"
