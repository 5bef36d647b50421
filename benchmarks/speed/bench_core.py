"""Per-stage time of the core pipeline on this CPU, median over several runs.

    python benchmarks/speed/bench_core.py [--runs 7] [--threads 2] [--image PATH]

Stages: decode (JPEG -> RGB), align (mediapipe + FFHQ warp), encode (encoder, 1 face),
refine pass (one encoder refinement pass, w += E(x) - E(G(w)): `--passes`), generate (G
forward, 1 code), perceptual term (the inversion's perceptual loss alone,
forward + backward: 1 - MS-SSIM, or LPIPS where its backbone is installed), invert step
(one Adam step: G forward + backward + the perceptual term, the domain term on every 4th
step; mean of 8), classify (the detector on one code), and the step per face of a batched
inversion (inversion.run_batch, as `lf extract --steps K` runs).
"""

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from lf_core import inversion as inv  # noqa: E402
from lf_core.alignment import align  # noqa: E402
from lf_core.classifiers import LogReg  # noqa: E402
from lf_core.io import load_image  # noqa: E402
from lf_core.lab.bench import machine_line  # noqa: E402
from lf_core.lab.data import data_dir  # noqa: E402
from lf_core.losses import perceptual  # noqa: E402
from lf_core.model import load_model  # noqa: E402


def timeit(fn, runs):
    fn()  # warm-up
    ts = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t)
    return statistics.median(ts) * 1000


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--image", default=str(data_dir() / "dfdc_faces" / "real" / "aabqcugcpc.jpg"))
    ap.add_argument("--weights", default=None)
    ap.add_argument("--batch", type=int, default=4, help="faces per batched inversion (1: skip)")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    model = load_model(a.weights)
    img = load_image(a.image)
    crop = align(img, max_faces=1)[0].crop
    w = inv.encode(model, crop[None])
    det = LogReg().fit(np.concatenate([w, w + 0.1]), np.array([0, 1]))

    k = 8  # the domain term runs on every 4th step: average over two cycles

    def steps():
        for _ in inv.invert_stream(model, crop, steps=k, every=10**9):
            pass

    def encode_only():
        inv.encode(model, crop[None])

    perc, x = perceptual(), inv.to_tensor(crop)  # x: (1, 3, 256, 256)
    y0 = x.flip(-1)  # a stand-in for G(w): another image of the same size

    def perceptual_term():  # the step's perceptual term alone, forward + backward
        y = y0.clone().requires_grad_(True)
        perc(y, x).sum().backward()

    enc = timeit(encode_only, a.runs)
    rows = {
        "decode": timeit(lambda: load_image(a.image), a.runs),
        "align": timeit(lambda: align(img, max_faces=1), a.runs),
        "encode": enc,
        "refine pass": max(0.0, timeit(lambda: inv.encode(model, crop[None], 2), a.runs) - enc) / 2,
        "generate": timeit(lambda: inv.reconstruct(model, w), a.runs),
        "perceptual term": timeit(perceptual_term, a.runs),
        # one inversion step = ((encode + k steps + final render) - (encode + final render)) / k
        "invert step": max(0.0, timeit(steps, a.runs) - timeit(
            lambda: [None for _ in inv.invert_stream(model, crop, steps=0)], a.runs)) / k,
        "classify (LR)": timeit(lambda: det.predict_proba(w), a.runs),
    }
    if a.batch > 1:  # lf extract --steps K: run_batch, per face and step
        crops = np.repeat(crop[None], a.batch, 0)
        rows[f"step/face, batch {a.batch}"] = max(0.0, timeit(
            lambda: inv.run_batch(model, crops, steps=k, chunk=a.batch), max(1, a.runs // 5))
            - timeit(lambda: inv.run_batch(model, crops, steps=0, chunk=a.batch),
                     max(1, a.runs // 5))) / k / a.batch
    print(f"model: {model.name}; image: {a.image} {img.shape[1]}x{img.shape[0]}; "
          f"median of {a.runs} runs\n{machine_line()}")
    for k, v in rows.items():
        print(f"{k:>14}: {v:8.1f} ms")


if __name__ == "__main__":
    main()
