"""How often and how strongly the inversion's domain term runs: quality and time.

    python benchmarks/experiments/bench_domain.py [--faces 6] [--steps 100] [--every 1 4] [--a-dom 0.5]
                                      [--weights FILE] [--threads 1]

The domain term a_dom |w - E(G(w))|^2 costs an encoder forward + backward, a third of a
step. For each `dom_every` and each weight `a_dom`, inverts the same validation faces (the
fixed `val` split of `lf train-generator`, aligned into runs/gen/faces_val.npy if not
there yet) and prints the mean PSNR / SSIM of G(w) against the face, the final domain
distance, the time, and the PSNR paired against the first setting (mean ± 95% CI).
"""

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from lf_core import inversion as inv  # noqa: E402
from lf_core.lab.train_gen import build_cache  # noqa: E402
from lf_core.model import load_model  # noqa: E402
from lf_core.stats import mean_ci95  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--faces", type=int, default=6)
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--every", type=int, nargs="+", default=[1, 4])
    ap.add_argument("--a-dom", type=float, nargs="+", default=[0.5],
                    help="weights of the domain term (0: none; lf_core.inversion's default 0.5)")
    ap.add_argument("--cache", default="runs/gen")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--weights", default=None)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    model = load_model(a.weights)
    val = build_cache(Path(a.cache), "val", limit=96)
    faces = [np.array(val[i]) for i in np.linspace(0, len(val) - 1, a.faces).astype(int)]
    print(f"model {model.name}; {len(faces)} validation faces x {a.steps} steps; "
          f"torch threads {a.threads}")
    first = None
    for every in a.every:
        for a_dom in a.a_dom:
            ps, ss, ds, t = [], [], [], time.perf_counter()
            for face in faces:
                r = inv.invert(model, face, steps=a.steps, dom_every=every, a_dom=a_dom)
                ps.append(r.psnr)
                ss.append(r.ssim)
                with torch.no_grad():
                    w = torch.from_numpy(r.w)
                    ds.append(float((w - model.E(model.G(w))).pow(2).mean()))
            first = np.array(ps) if first is None else first
            d, ci = mean_ci95(np.array(ps) - first)
            print(f"dom_every={every} a_dom={a_dom:g}: PSNR {np.mean(ps):.2f} dB, SSIM "
                  f"{np.mean(ss):.4f}, domain {np.mean(ds):.4f}, {time.perf_counter() - t:.0f} s; "
                  f"PSNR minus the first setting {d:+.2f} ± {ci:.2f} dB", flush=True)


if __name__ == "__main__":
    main()
