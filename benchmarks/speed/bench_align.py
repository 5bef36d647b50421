"""Face-found rate and speed of lf_core.alignment on the shared data sets.

    python benchmarks/speed/bench_align.py --limit 300        # a random 300 per set
    python benchmarks/speed/bench_align.py                    # everything (~12k DFDC crops)

Prints, per set: images, faces found, rate, median and p90 wall ms per image, and median
CPU ms (all threads; the cost on one core, less sensitive to a busy machine). Align only,
decoding excluded. Writes the paths of misses to --misses (one per line, set first).
"""

import argparse
import random
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from lf_core.alignment import align  # noqa: E402
from lf_core.errors import NoFaceError  # noqa: E402
from lf_core.io import load_image  # noqa: E402

SETS = ["ffhq_stylegan/real", "ffhq_stylegan/fake", "dfdc_faces/real", "dfdc_faces/fake", "lfw"]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    ap.add_argument("--limit", type=int, default=None, help="random sample of N per set (default: all)")
    ap.add_argument("--sets", nargs="+", default=SETS)
    ap.add_argument("--misses", type=Path, default=Path("/tmp/bench_align_misses.txt"))
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    try:  # build the mediapipe graphs outside the timings
        align(np.full((64, 64, 3), 128, np.uint8))
    except NoFaceError:
        pass

    misses = []
    print(f"{'set':<20} {'n':>6} {'found':>6} {'rate':>7} {'med ms':>7} {'p90 ms':>7} {'cpu ms':>7}")
    for s in args.sets:
        paths = sorted((args.data / s).glob("*.jpg"))
        if not paths:
            sys.exit(f"no images in {args.data / s}; pass --data DIR (the shared data folder)")
        if args.limit and args.limit < len(paths):
            paths = sorted(random.Random(args.seed).sample(paths, args.limit))
        found, ms, cpu = 0, [], []
        for p in paths:
            img = load_image(p)
            t, c = time.perf_counter(), time.process_time()
            try:
                align(img)
                found += 1
            except NoFaceError:
                misses.append(f"{s}\t{p}")
            ms.append((time.perf_counter() - t) * 1e3)
            cpu.append((time.process_time() - c) * 1e3)
        n = len(paths)
        print(f"{s:<20} {n:>6} {found:>6} {found / n:>7.2%} {np.median(ms):>7.1f} "
              f"{np.percentile(ms, 90):>7.1f} {np.median(cpu):>7.1f}", flush=True)
    args.misses.write_text("\n".join(misses) + "\n")
    print(f"{len(misses)} misses listed in {args.misses}")


if __name__ == "__main__":
    main()
