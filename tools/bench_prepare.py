"""Wall time of `gan-aug prepare` on all of HAM10000 at several sizes (target: <= 30 s at 64 px, 2 cores).

    python tools/bench_prepare.py --root ../shared/data/ham10000 [--sizes 32,64,128] [--repeats 2]

Runs the real command end to end in a subprocess (start-up, decoding, splitting, fingerprint, write)
and prints a Markdown table for BENCHMARKS.md. The output files go to a temp folder and are deleted.
"""

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", default=os.environ.get("GAN_AUG_HAM10000", "../shared/data/ham10000"))
    parser.add_argument("--sizes", default="32,64,128")
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for size in [int(s) for s in args.sizes.split(",")]:
            times = []
            for _ in range(args.repeats):
                out = os.path.join(tmp, f"ham{size}.npz")
                command = [sys.executable, "-m", "gan_aug.cli", "prepare", "--source", "ham10000",
                           "--root", args.root, "--size", str(size), "--out", out, "--force"]
                start = time.perf_counter()
                subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                times.append(time.perf_counter() - start)
            mb = os.path.getsize(out) / 2 ** 20
            rows.append((size, min(times), sum(times) / len(times), mb))
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores; python {platform.python_version()}")
    print("| size | best wall s | mean wall s | images/s (best) | file MiB |")
    print("| ---: | ---: | ---: | ---: | ---: |")
    for size, best, mean, mb in rows:
        print(f"| {size} | {best:.1f} | {mean:.1f} | {10015 / best:.0f} | {mb:.0f} |")


if __name__ == "__main__":
    main()
