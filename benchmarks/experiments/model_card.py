"""Numbers and pictures for weights/README.md (the embedded model's card).

    python benchmarks/experiments/model_card.py --cache runs/gen [--weights W] [--inv-faces 96] [--steps 100]

On the fixed validation faces (runs/gen/faces_val.npy, built by `lf train-generator`:
identities / groups the generator never trained on) it measures, at 256 px:
  - encoder-only reconstruction PSNR / SSIM (all validation faces), and after `--passes`
    encoder refinement passes (w += E(x) - E(G(w)); lf_core/inversion.py),
  - after `--steps` inversion steps (the first `--inv-faces` faces: CPU time), from the
    encoder's code and from the refined one,
  - the paper's PCA-512 baseline fitted on the same training faces (IncrementalPCA on
    64 x 64 crops, reconstructions resized back to 256 px), on the same faces, and each
    StyleGAN row minus PCA-512 face by face (paired differences, mean with a 95% CI),
and writes weights/card_recon.png (faces | encoder-only | refined | k steps | PCA-512) and
weights/card_mixing.png (style mixing: coarse, middle, fine rows of a second face).
Prints a Markdown table to paste into the card.
"""

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from lf_core import inversion as inv  # noqa: E402
from lf_core.explainers import mix  # noqa: E402
from lf_core.lab.projectors import PCAProjector  # noqa: E402
from lf_core.layout import GROUPS  # noqa: E402
from lf_core.model import load_model  # noqa: E402
from lf_core.stats import mean_ci95  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--cache", default="runs/gen")
    ap.add_argument("--weights", default=None)
    ap.add_argument("--inv-faces", type=int, default=96)
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--passes", type=int, default=2, help="encoder refinement passes")
    ap.add_argument("--pca-train", type=int, default=4000, help="training faces for PCA")
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    model = load_model(a.weights)
    cache = Path(a.cache)
    val = np.asarray(np.load(cache / "faces_val.npy", mmap_mode="r"))
    train = np.load(cache / "faces_train.npy", mmap_mode="r")
    print(f"model {model.name}; {len(val)} validation faces; {len(train)} training faces")

    t = time.perf_counter()
    enc = np.concatenate([inv.reconstruct(model, inv.encode(model, val[i:i + 16]))
                          for i in range(0, len(val), 16)])
    p_enc, s_enc = inv.image_scores(val, enc)
    print(f"encoder-only: {time.perf_counter() - t:.1f} s")

    t = time.perf_counter()
    ref = np.concatenate([inv.reconstruct(model, inv.encode(model, val[i:i + 16], a.passes))
                          for i in range(0, len(val), 16)])
    p_ref, s_ref = inv.image_scores(val, ref)
    print(f"encoder + {a.passes} passes: {time.perf_counter() - t:.1f} s")

    k = min(a.inv_faces, len(val))
    t = time.perf_counter()
    runs = [inv.invert(model, val[i], steps=a.steps) for i in range(k)]
    inv_img = np.stack([r.image for r in runs])
    p_inv, s_inv = inv.image_scores(val[:k], inv_img)
    print(f"{a.steps}-step inversion of {k} faces: {time.perf_counter() - t:.1f} s "
          f"(perceptual term: {runs[0].perceptual})")
    t = time.perf_counter()
    p_ri, s_ri = inv.image_scores(val[:k], np.stack([inv.invert(model, val[i], steps=a.steps,
                                                   passes=a.passes).image for i in range(k)]))
    print(f"the same from {a.passes} passes: {time.perf_counter() - t:.1f} s")

    rng = np.random.default_rng(0)
    idx = np.sort(rng.permutation(len(train))[:a.pca_train])
    t = time.perf_counter()
    pca = PCAProjector(512, size=64).fit(np.asarray(train[idx]))
    rec = pca.reconstruct(pca.project(val), full_size=True)
    p_pca, s_pca = inv.image_scores(val, rec)
    print(f"PCA-512 fit on {len(idx)} faces + projection: {time.perf_counter() - t:.1f} s")

    rows = [("StyleGAN encoder-only", p_enc, s_enc, len(val)),
            (f"StyleGAN encoder + {a.passes} refinement passes", p_ref, s_ref, len(val)),
            (f"StyleGAN + {a.steps} steps", p_inv, s_inv, k),
            (f"StyleGAN + {a.passes} passes + {a.steps} steps", p_ri, s_ri, k),
            ("PCA-512 (64 px, resized)", p_pca, s_pca, len(val)),
            (f"PCA-512 on the same {k} faces", p_pca[:k], s_pca[:k], k),
            (f"StyleGAN encoder-only, same {k} faces", p_enc[:k], s_enc[:k], k),
            (f"StyleGAN encoder + {a.passes} passes, same {k} faces", p_ref[:k], s_ref[:k], k)]
    print("\n| projector | faces | PSNR dB (95% CI) | SSIM (95% CI) |\n|---|---|---|---|")
    for name, p, s, n in rows:
        (pm, pc), (sm, sc) = mean_ci95(p), mean_ci95(s)
        print(f"| {name} | {n} | {pm:.2f} ± {pc:.2f} | {sm:.3f} ± {sc:.3f} |")

    # side by side: each face against its own PCA-512 reconstruction (paired differences)
    paired = [("encoder-only", p_enc, s_enc), (f"encoder + {a.passes} passes", p_ref, s_ref),
              (f"{a.steps} steps", p_inv, s_inv), (f"{a.passes} passes + {a.steps} steps", p_ri, s_ri)]
    print("\n| StyleGAN minus PCA-512, same faces | faces | PSNR dB (95% CI) | SSIM (95% CI) |"
          "\n|---|---|---|---|")
    for name, p, s in paired:
        (pm, pc), (sm, sc) = mean_ci95(p - p_pca[:len(p)]), mean_ci95(s - s_pca[:len(s)])
        print(f"| {name} | {len(p)} | {pm:+.2f} ± {pc:.2f} | {sm:+.3f} ± {sc:.3f} |")

    out = ROOT / "weights"
    n = min(6, k)
    cols = (val, enc, ref, inv_img, rec)  # one row of n faces each
    grid = np.concatenate([np.concatenate(list(g[:n]), 1) for g in cols], 0)
    Image.fromarray(grid).save(out / "card_recon.png")

    w = [r.w[0] for r in runs[:4]]  # (14, 512) each
    rows = []
    for i in range(0, len(w) - 1, 2):
        a_, b_ = w[i], w[i + 1]
        cells = [a_, b_] + [mix(a_[None], b_[None], GROUPS[g])[0] for g in ("coarse", "middle", "fine")]
        rows.append(np.concatenate(list(inv.reconstruct(model, np.stack(cells))), 1))
    Image.fromarray(np.concatenate(rows, 0)).save(out / "card_mixing.png")
    print(f"\nwrote {out / 'card_recon.png'} (faces | encoder-only | {a.passes} passes | "
          f"{a.steps} steps | PCA-512) "
          f"and {out / 'card_mixing.png'} (A | B | A with B's coarse | middle | fine rows)")


if __name__ == "__main__":
    main()
