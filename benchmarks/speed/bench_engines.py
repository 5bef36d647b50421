"""Faces/s of lf extract's two engines on this machine: local vs ray (lf_core.lab.engines).

For each setting (encoder only; 10 inversion steps) the same faces are extracted into a
fresh folder by the local engine (this process, torch on all the machine's threads, the
next chunk aligned on a second thread) and by the ray engine (a local Ray cluster of
--workers actors x 1 CPU, each with its own model and torch on one thread), then the
codes are compared. Printed per setting:

    local  faces/s over the whole extract call
    ray    faces/s from the first chunk a worker started to the last result (the
           throughput a long run sees), and the ratio ray / local
    start  ray's fixed start-up cost: ray.init (once) + the actors' start and model
           loading (each run), paid once per run whatever its size

    PYTHONPATH=. python benchmarks/speed/bench_engines.py [--faces 48] [--steps 0,10]

Needs the ray extra (pip install -e '.[ray]'). Other jobs on the machine skew both engines
alike only if they run for the whole benchmark: the load average is printed with it.

2-core CPU, load average 1.4 (2026-12-03, `--faces 32`, chunks of 8, Ray 2.60.0):

    encoder only:  local 8.45 faces/s | ray 7.82 faces/s after start-up (0.92x)
    10 steps:      local 0.48 faces/s | ray 0.50 faces/s after start-up (1.05x)
    start-up:      ray.init 6.3 s + the actors' start 6.8-10.4 s (8.6 s mean), per run
    codes:         ray - local within 7.6e-6 (encoder only), 1.9e-2 (10 steps: 1 vs 2
                   torch threads, amplified by the optimisation)

On a machine busy with other jobs the figures mean little: the same command at load
average 11 gave 0.78x and 4.0x.
"""

import argparse
import csv
import os
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def subset(manifest: Path, n: int, out: Path) -> Path:
    """The first n rows of `manifest` with absolute paths."""
    with open(manifest, newline="") as f:
        rows = list(csv.DictReader(f))[:n]
    with open(out, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["path", "label", "group"])
        for r in rows:
            w.writerow([str((manifest.parent / r["path"]).resolve()), r["label"], r["group"]])
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--manifest", default=str(ROOT.parent / "shared" / "data" / "dfdc_faces"
                                              / "manifest.csv"))
    ap.add_argument("--faces", type=int, default=48)
    ap.add_argument("--steps", default="0,10", help="inversion steps per setting")
    ap.add_argument("--batch", type=int, default=8, help="faces per chunk")
    ap.add_argument("--workers", type=int, default=2)
    a = ap.parse_args()
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    os.environ.setdefault("RAY_worker_niceness", "0")  # as lf_core.lab.engines' local cluster

    import ray
    import torch

    from lf_core.lab.engines import RayEngine
    from lf_core.lab.extract import extract, load_codes
    from lf_core.lab.projectors import StyleGANProjector
    from lf_core.model import load_model

    model = load_model()
    print(f"{time.strftime('%Y-%m-%d %H:%M')}  {os.cpu_count()} CPUs, load average "
          f"{' '.join(f'{x:.1f}' for x in os.getloadavg())}; {a.faces} faces, chunks of "
          f"{a.batch}; local: torch {torch.get_num_threads()} threads; ray: {a.workers} "
          "workers x 1 CPU")
    t = time.perf_counter()
    ray.init(num_cpus=a.workers, include_dashboard=False, log_to_driver=False,
             logging_level="error")
    init_s = time.perf_counter() - t
    rows = []
    with tempfile.TemporaryDirectory(prefix="lf-bench-engines-") as d:
        d = Path(d)
        man = subset(Path(a.manifest), a.faces, d / "manifest.csv")
        for steps in [int(s) for s in a.steps.split(",")]:
            proj = StyleGANProjector(model, steps=steps)
            t = time.perf_counter()
            extract(man, proj, d / f"local-{steps}", batch=a.batch, progress=False,
                    log=lambda m: None)
            local_s = time.perf_counter() - t
            engine = RayEngine(workers=a.workers)
            t = time.perf_counter()
            extract(man, proj, d / f"ray-{steps}", batch=a.batch, progress=False,
                    engine=engine, log=lambda m: None)
            ray_s = time.perf_counter() - t
            lc, rc = load_codes(d / f"local-{steps}"), load_codes(d / f"ray-{steps}")
            n = len(lc) + len(lc.failed)
            diff = float(np.abs(lc.codes - rc.codes).max()) if len(lc) else 0.0
            steady = n / (ray_s - engine.startup_s)
            rows.append((steps, n / local_s, steady, n / ray_s, engine.startup_s, diff))
            print(f"steps {steps:3d}: local {n / local_s:6.2f} faces/s ({local_s:5.1f} s) | ray "
                  f"{steady:6.2f} faces/s after start-up ({steady / (n / local_s):.2f}x local); "
                  f"{n / ray_s:.2f} faces/s end to end ({ray_s:.1f} s); actors' start "
                  f"{engine.startup_s:.1f} s | max |code diff| {diff:.1e}", flush=True)
    ray.shutdown()
    print(f"fixed start-up of the ray engine: ray.init {init_s:.1f} s (once per run of lf) + "
          f"actors' start {np.mean([r[4] for r in rows]):.1f} s (per extraction)")


if __name__ == "__main__":
    main()
