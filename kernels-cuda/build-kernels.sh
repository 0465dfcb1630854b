#!/usr/bin/env bash
# Compiles the CUDA kernels of kernels4j-kernels-cuda at build time (Maven runs it in generate-resources;
# it also runs by hand). No CUDA toolkit is needed at run time: the jar carries the results.
#
#   build-kernels.sh <cuda-src-dir> <out-dir> <work-dir> [<dialect-src-dir> <dialect-header-dir>]
#
# Inputs
#   <cuda-src-dir>/*.cu         CUDA-only sources; each is one module named after the file. A source may
#                               name its own targets with a line `// kernels4j-archs: sm_80 sm_86 sm_90a`.
#   <cuda-src-dir>/*.cuh        headers the sources share (part of the fingerprint of each source that includes them).
#   <cuda-src-dir>/dialect-kernels.txt
#                               portable-dialect (.cl) sources from <dialect-src-dir>, compiled through the
#                               shim <dialect-header-dir>/kernels4j.h: lines `<module> <file.cl> [-DNAME=VALUE...]`.
# Outputs (<out-dir>, packed into the jar as org/kernels4j/cuda/kernels/)
#   <module>.sm_XY.cubin        machine code per target architecture (default sm_80 sm_86 sm_89 sm_90)
#   <module>.ptx                PTX for compute_80, which the driver compiles for any newer GPU
#   manifest.txt                the modules, their targets and every entry point with its parameter types
#                               and the targets it exists for
#   ptxas-report.txt            registers, stack, spills and shared memory per kernel per architecture
# <work-dir> keeps logs and per-module fingerprints: a module whose sources, flags and compiler are
# unchanged is not compiled again.
#
# Where nvcc is absent the script writes nothing, says so and succeeds; the backend then reports
# "built without CUDA kernels". A compile error fails the build.
#
# Environment: NVCC (compiler path), KERNELS4J_CUDA_ARCHS (default "sm_80 sm_86 sm_89 sm_90"),
# KERNELS4J_CUDA_PTX (default compute_80), KERNELS4J_CUDA_JOBS (parallel compilations; default: CPU count),
# KERNELS4J_CUDA_SKIP=1 (build without kernels on purpose).
set -euo pipefail

src=${1:?usage: build-kernels.sh <cuda-src-dir> <out-dir> <work-dir> [<dialect-src-dir> <dialect-header-dir>]}
out=${2:?out-dir}
work=${3:?work-dir}
dialect_src=${4:-}
dialect_inc=${5:-}

say() { echo "[kernels4j-cuda] $*"; }

archs_default=${KERNELS4J_CUDA_ARCHS:-sm_80 sm_86 sm_89 sm_90}
ptx_arch=${KERNELS4J_CUDA_PTX:-compute_80}
jobs=${KERNELS4J_CUDA_JOBS:-$(getconf _NPROCESSORS_ONLN 2>/dev/null || echo 2)}

nvcc=${NVCC:-}
if [ -z "$nvcc" ]; then
    nvcc=$(command -v nvcc || true)
    [ -z "$nvcc" ] && [ -x /usr/local/cuda/bin/nvcc ] && nvcc=/usr/local/cuda/bin/nvcc
fi
if [ "${KERNELS4J_CUDA_SKIP:-0}" = 1 ] || [ -z "$nvcc" ]; then
    # Stale outputs of an earlier build with nvcc would contradict "built without CUDA kernels".
    rm -rf "$out"
    if [ "${KERNELS4J_CUDA_SKIP:-0}" = 1 ]; then
        say "KERNELS4J_CUDA_SKIP=1: building without CUDA kernels"
    else
        say "nvcc not found (set NVCC or put it on the PATH): building without CUDA kernels;"
        say "the cuda backend will report 'built without CUDA kernels'"
    fi
    exit 0
fi
ptxas=$(dirname "$nvcc")/ptxas
[ -x "$ptxas" ] || ptxas=$(command -v ptxas || true)
[ -n "$ptxas" ] || { say "ptxas not found next to $nvcc or on the PATH"; exit 1; }
nvcc_version=$("$nvcc" --version | sed -n 's/.*release \([0-9.]*\), V\([0-9.]*\).*/\2/p')
[ -n "$nvcc_version" ] || { say "cannot read the version of $nvcc"; exit 1; }

mkdir -p "$out" "$work"
# Builds of one checkout run one at a time: they share <out-dir> and <work-dir>.
if command -v flock > /dev/null; then
    exec 9> "$work/.lock"
    flock 9
fi
common_flags=(-std=c++17 -O3)

# module <name> <source> <archs> <extra flags...> lines, built from the .cu files and the dialect list
modules=()
declare -A mod_src mod_archs mod_flags mod_kind
for f in "$src"/*.cu; do
    [ -e "$f" ] || continue
    name=$(basename "$f" .cu)
    archs=$(sed -n 's@^// *kernels4j-archs: *@@p' "$f" | head -n 1)
    modules+=("$name")
    mod_src[$name]=$f
    mod_archs[$name]=${archs:-$archs_default}
    mod_flags[$name]="-I$src"
    mod_kind[$name]=cuda
done
list="$src/dialect-kernels.txt"
if [ -f "$list" ]; then
    if [ -z "$dialect_src" ] || [ ! -f "$dialect_inc/kernels4j.h" ]; then
        say "dialect-kernels.txt lists portable sources, but no dialect folder and shim header were given: skipped"
    else
        while read -r name file defines; do
            case "$name" in ''|\#*) continue ;; esac
            if [ ! -f "$dialect_src/$file" ]; then
                say "dialect-kernels.txt: $file is not in $dialect_src"
                exit 1
            fi
            modules+=("$name")
            mod_src[$name]="$dialect_src/$file"
            mod_archs[$name]=$archs_default
            mod_flags[$name]="-x cu -I$dialect_inc -I$src $defines"
            mod_kind[$name]=dialect
        done < "$list"
    fi
fi

# The files of <cuda-src-dir> a source includes with #include "...", transitively.
local_includes() {
    local file=$1 inc
    for inc in $(sed -n 's/^[[:space:]]*#[[:space:]]*include[[:space:]]*"\([^"]*\)".*/\1/p' "$file"); do
        if [ -f "$src/$inc" ] && [[ " $seen " != *" $inc "* ]]; then
            seen="$seen $inc"
            echo "$src/$inc"
            local_includes "$src/$inc"
        fi
    done
}

fingerprint() {  # everything a module's outputs depend on
    local name=$1 seen=""
    {
        echo "$nvcc_version ${mod_archs[$name]} $ptx_arch ${common_flags[*]} ${mod_flags[$name]}"
        cat "${mod_src[$name]}" "$0"
        local_includes "${mod_src[$name]}" | xargs -r cat
        if [ "${mod_kind[$name]}" = dialect ]; then cat "$dialect_inc/kernels4j.h"; fi
    } | sha256sum | cut -d' ' -f1
}

outputs_of() {
    local name=$1 a
    echo "$out/$name.ptx"
    for a in ${mod_archs[$name]}; do echo "$out/$name.$a.cubin"; echo "$work/$name.$a.ptx"; done
}

# One compilation: <module> <target> where target is an architecture (cubin) or "ptx". A cubin is made
# as nvcc -cubin makes it, in two visible steps: PTX for that architecture (kept in <work-dir>: the
# manifest reads each target's entry points and parameters from it, since a source may define kernels
# for some architectures only), then ptxas -v (its report is the resource-use report).
compile_one() {
    local name=$1 target=$2 log="$work/$1.$2.log" t0=$SECONDS
    compile_target "$name" "$target" || return 1
    echo $((SECONDS - t0)) > "$work/$name.$target.seconds"
}

compile_target() {
    local name=$1 target=$2 log="$work/$1.$2.log"
    # shellcheck disable=SC2086
    if [ "$target" = ptx ]; then
        "$nvcc" "${common_flags[@]}" ${mod_flags[$name]} -ptx -arch="$ptx_arch" \
            -o "$out/$name.ptx" "${mod_src[$name]}" > "$log" 2>&1
    else
        local cc=${target#sm_}
        "$nvcc" "${common_flags[@]}" ${mod_flags[$name]} -ptx -gencode "arch=compute_$cc,code=compute_$cc" \
            -o "$work/$name.$target.ptx" "${mod_src[$name]}" > "$log" 2>&1 &&
        "$ptxas" -arch="$target" -m64 -v -o "$out/$name.$target.cubin" "$work/$name.$target.ptx" >> "$log" 2>&1
    fi
}

ptx_of() {  # the PTX a target was built from
    if [ "$2" = ptx ]; then echo "$out/$1.ptx"; else echo "$work/$1.$2.ptx"; fi
}

todo=()
declare -A fp_of   # taken before compiling: a source edited meanwhile is compiled again next time
for name in "${modules[@]}"; do
    fp=$(fingerprint "$name")
    fp_of[$name]=$fp
    fresh=1
    [ "$(cat "$work/$name.fingerprint" 2>/dev/null)" = "$fp" ] || fresh=0
    while read -r o; do [ -f "$o" ] || fresh=0; done < <(outputs_of "$name")
    if [ $fresh = 1 ]; then
        say "$name: up to date"
        continue
    fi
    rm -f "$work/$name.fingerprint"
    todo+=("$name ptx")
    for a in ${mod_archs[$name]}; do todo+=("$name $a"); done
done

# Compile in parallel, at most $jobs at a time; every failure is reported with its log.
failed=0
if [ ${#todo[@]} -gt 0 ]; then
    say "nvcc $nvcc_version: ${#todo[@]} compilations, $jobs at a time"
    declare -A pid_of
    running=0
    for t in "${todo[@]}"; do
        if [ $running -ge "$jobs" ]; then
            wait -n || true
            running=$((running - 1))
        fi
        # shellcheck disable=SC2086
        compile_one $t &
        pid_of[$!]=$t
        running=$((running + 1))
    done
    for pid in "${!pid_of[@]}"; do
        if ! wait "$pid"; then
            failed=1
            t=${pid_of[$pid]}
            say "FAILED: ${t% *} for ${t#* }:"
            cat "$work/${t// /.}.log" >&2
        fi
    done
fi
[ $failed = 0 ] || { say "CUDA kernel compilation failed"; exit 1; }
if [ ${#todo[@]} -gt 0 ]; then
    # What the build costs, per module (seconds summed over its targets): CI has 2 cores.
    say "compile seconds per module (all targets): $(for t in "${todo[@]}"; do
        echo "${t% *} $(cat "$work/${t// /.}.seconds" 2>/dev/null || echo 0)"; done |
        awk '{s[$1] += $2} END {for (m in s) printf "%s=%d ", m, s[m]}')"
fi

# ptxas -v report of one log: module arch kernel registers stack spill_stores spill_loads smem
report_of() {
    local name=$1 arch=$2
    awk -v mod="$name" -v arch="$arch" '
        /Compiling entry function/ { fn = $0; sub(/.*entry function ./, "", fn); sub(/. for .*/, "", fn);
                                     stack = ss = sl = 0; next }
        /bytes stack frame/ { for (i = 1; i <= NF; i++) { if ($(i+1) == "bytes" && $(i+2) == "stack") stack = $i;
                                                           if ($(i+2) == "spill" && $(i+3) == "stores,") ss = $i;
                                                           if ($(i+2) == "spill" && $(i+3) == "loads") sl = $i } next }
        /Used [0-9]+ registers/ && fn != "" {
            regs = 0; smem = 0;
            for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^registers/) regs = $i; if ($(i+1) == "bytes" && $(i+2) ~ /^smem/) smem = $i }
            printf "%s %s %s registers=%s stack=%s spill_stores=%s spill_loads=%s smem=%s\n", mod, arch, fn, regs, stack, ss, sl, smem;
            fn = "" }
    ' "$work/$name.$arch.log"
}

# Entry points and parameter types from the PTX of each target: "entry <module> <kernel> <types> <targets>"
# where a type is u64/s64/b64 (pointers and 64-bit integers), u32/s32/b32, f32, f64, or bN:<bytes> for a
# struct passed by value, and <targets> lists where the kernel exists (ptx, sm_80, ...).
entries_of() {
    local name=$1 t
    for t in ptx ${mod_archs[$name]}; do
        awk -v tgt="$t" '
            /^\.(visible )?\.entry / { fn = $0; sub(/^\.(visible )?\.entry /, "", fn); sub(/\(.*/, "", fn); params = ""; inside = 1;
                                       if ($0 ~ /\(\)/) { print fn, "-", tgt; inside = 0 } next }
            inside && /\.param/ {
                t = ""; size = "";
                for (i = 1; i <= NF; i++) if ($i ~ /^\.(u|s|b|f)(8|16|32|64)$/) t = substr($i, 2);
                if ($NF ~ /\[[0-9]+\]/) { match($NF, /\[[0-9]+\]/); size = substr($NF, RSTART + 1, RLENGTH - 2); t = t ":" size }
                params = params (params == "" ? "" : ",") t; next }
            inside && /^\)/ { print fn, (params == "" ? "-" : params), tgt; inside = 0 }
        ' "$(ptx_of "$name" "$t")"
    done | awk -v mod="$name" '
        { if (!($1 in params)) { order[++n] = $1; params[$1] = $2; targets[$1] = $3 }
          else if (params[$1] != $2) { printf "entry %s of %s has parameters %s for one target and %s for %s\n", $1, mod, params[$1], $2, $3 > "/dev/stderr"; bad = 1 }
          else targets[$1] = targets[$1] "," $3 }
        END { for (i = 1; i <= n; i++) print "entry", mod, order[i], params[order[i]], targets[order[i]]; exit bad }'
}

for name in "${modules[@]}"; do
    for a in ${mod_archs[$name]}; do
        [ -f "$work/$name.$a.log" ] && [ -f "$work/$name.$a.ptx" ] ||
            { say "no ptxas log or PTX for $name $a; delete $work to rebuild"; exit 1; }
    done
    echo "${fp_of[$name]}" > "$work/$name.fingerprint"
done

{
    echo "# ptxas -v resource use per kernel and architecture, written by build-kernels.sh with nvcc $nvcc_version"
    echo "# module arch kernel registers stack(bytes) spill_stores(bytes) spill_loads(bytes) smem(static bytes)"
    for name in "${modules[@]}"; do
        for a in ${mod_archs[$name]}; do report_of "$name" "$a"; done
    done
} > "$out/ptxas-report.txt"

{
    echo "# kernels4j CUDA kernels, written by build-kernels.sh; read by org.kernels4j.cuda.KernelManifest"
    echo "format 1"
    echo "nvcc $nvcc_version"
    for name in "${modules[@]}"; do
        echo "module $name ${mod_kind[$name]} ptx=$ptx_arch cubins=$(echo ${mod_archs[$name]} | tr ' ' ',')"
    done
    for name in "${modules[@]}"; do entries_of "$name"; done
} > "$work/manifest.tmp"

# CUDA-only entry points are looked up by name alone, so they must be unique across modules.
dups=$(awk '$1 == "module" { kind[$2] = $3 } $1 == "entry" && kind[$2] == "cuda" { print $3 }' "$work/manifest.tmp" | sort | uniq -d)
if [ -n "$dups" ]; then
    say "entry points defined by more than one .cu module: $dups"
    exit 1
fi
mv "$work/manifest.tmp" "$out/manifest.txt"

# The build log shows resource use; spills are also a test failure (KernelResourcesTest).
say "ptxas resource use (registers / stack / spill stores / spill loads / static smem):"
awk '!/^#/ { gsub(/[a-z_]+=/, ""); printf "  %-12s %-6s %-36s %4s regs  %4s stack  %4s/%-4s spill  %6s smem\n", $1, $2, $3, $4, $5, $6, $7, $8 }' \
    "$out/ptxas-report.txt"
spills=$(awk '!/^#/ && ($6 != "spill_stores=0" || $7 != "spill_loads=0")' "$out/ptxas-report.txt" | wc -l)
if [ "$spills" -gt 0 ]; then say "WARNING: $spills kernel(s) spill registers (KernelResourcesTest fails on this)"; fi
say "$(grep -c '^entry' "$out/manifest.txt") entry points in ${#modules[@]} modules -> $out"
