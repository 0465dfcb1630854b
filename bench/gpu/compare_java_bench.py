"""Prints two CudaDeviceCheck results side by side (the same shapes, dtypes and passes), with the ratio.

    python3 bench/gpu/compare_java_bench.py BASE.json OTHER.json

device-check.sh's java-bench step takes the planner's launch parameters, java-bench-defaults the shipped
defaults: this shows, from one call on one card, what each shipped entry buys.
"""
import json
import sys


def rows(path):
    with open(path) as f:
        return {(t["shape"], t["dtype"], t["pass"]): t["ms"] for t in json.load(f)["timings"]}


def main():
    base, other = sys.argv[1], sys.argv[2]
    a, b = rows(base), rows(other)
    print(f"{'shape':<16} {'dtype':<9} {'pass':<6} {'base ms':>9} {'other ms':>9} {'base/other':>10}")
    for key in a:
        if key in b:
            print(f"{key[0]:<16} {key[1]:<9} {key[2]:<6} {a[key]:>9.4f} {b[key]:>9.4f} {a[key] / b[key]:>10.3f}")


if __name__ == "__main__":
    main()
