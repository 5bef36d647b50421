"""Is the latent detector lighter? Per face on this CPU, side by side in one run.

    python benchmarks/speed/bench_light.py [--runs 15] [--steps 10] [--threads 2] [--json OUT]

For the latent pipeline (align + encoder + the default detector on the face and its mirror;
and with `--steps` inversion steps) and for the CNN baselines (Meso-4, EfficientNet-B0,
the compact Xception of `lf bench`, untrained: the cost does not depend on the weights):
parameters, multiply-accumulates (MACs, counted on the convolutions and linear layers by
forward hooks), median latency per face (batch 1, after a warm-up), the peak resident
memory of a process that runs only that model, the size of its weights on disk (the
shipped files, or float32 for the CNNs as `lf train` writes them), and the training time
to its Table 1 accuracy from `benchmarks/results/dfdc_full.json` (the latent row: codes
extraction + its classifier fit). Each model runs in its own process, one after the other.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))


def macs(module, *inputs) -> int:
    """Multiply-accumulates of one forward pass of `module` (conv and linear layers)."""
    import torch

    total = [0]

    def conv(m, i, o):
        k = m.weight.shape[1] * m.weight.shape[2] * m.weight.shape[3]  # Cin/groups x kh x kw
        total[0] += o.numel() * k

    def linear(m, i, o):
        total[0] += o.numel() * m.in_features

    hooks = []
    for m in module.modules():
        if isinstance(m, torch.nn.Conv2d | torch.nn.ConvTranspose2d):
            hooks.append(m.register_forward_hook(conv))
        elif isinstance(m, torch.nn.Linear):
            hooks.append(m.register_forward_hook(linear))
    with torch.no_grad():
        module(*inputs)
    for h in hooks:
        h.remove()
    return total[0]


def median_s(fn, runs) -> float:
    fn()
    ts = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t)
    return statistics.median(ts)


def peak_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def one(name, runs, steps, threads) -> dict:
    """Measure one model in this process (called in a child per model)."""
    import numpy as np
    import torch

    torch.set_num_threads(threads)
    from lf_core.alignment import align
    from lf_core.io import load_image
    from lf_core.lab.data import data_dir

    img = load_image(data_dir() / "dfdc_faces" / "real" / "aabqcugcpc.jpg")
    crop = align(img)[0].crop
    if name.startswith("latent"):
        from lf_core import inversion as inv
        from lf_core.detector import DEFAULT_DETECTOR, load_detector
        from lf_core.model import DEFAULT_WEIGHTS, load_model
        from lf_core.pipeline import verdict_codes

        model, det = load_model(), load_detector()
        k = steps if name == "latent+steps" else 0
        one = det.expert(*verdict_codes(model, crop, det))  # of a set: the member that judges

        def run():
            face = align(img)[0]
            w, wm = verdict_codes(model, face.crop, det)
            det.prob_fake(w, wm)
            if k:
                inv.invert(model, face.crop, steps=k)

        x = torch.from_numpy(np.stack([crop, crop])).permute(0, 3, 1, 2).float() / 127.5 - 1
        m_enc = macs(model.E, x)  # the face and its mirror
        m_clf = macs(one.clf.net_, torch.zeros(2, one.clf.n_features))
        m_g = macs(model.G, torch.zeros(1, 14, 512)) if k else 0
        params = (sum(p.numel() for p in model.E.parameters())
                  + sum(p.numel() for p in one.clf.net_.parameters())
                  + (sum(p.numel() for p in model.G.parameters()) if k else 0))
        files = {DEFAULT_DETECTOR, *(m.path for m in getattr(det, "members", {}).values())}
        size = sum(f.stat().st_size for f in files) + DEFAULT_WEIGHTS.stat().st_size
        # a step: G forward + backward (~3x forward), the encoder every 4th step
        total = m_enc + m_clf + k * (3 * m_g + 3 * m_enc // 2 // 4)
        return {"params": params, "macs": total, "latency_s": median_s(run, runs),
                "file_mb": size / 2**20, "peak_mb": peak_mb()}
    from lf_core.lab.baselines import build

    net, size = build(name, **({"width": 0.5, "middle": 4} if name == "xception" else {}))
    net.eval()
    x = torch.zeros(1, 3, size, size)

    def run():
        from lf_core.lab.baselines import _to_input

        with torch.no_grad():
            net(_to_input(align(img)[0].crop[None], size, "cpu"))

    params = sum(p.numel() for p in net.parameters())
    return {"params": params, "macs": macs(net, x), "latency_s": median_s(run, runs),
            "file_mb": params * 4 / 2**20, "peak_mb": peak_mb()}


def train_seconds() -> dict:
    """Training time to each row's Table 1 figure on the dfdc_full bench (its kept results)."""
    path = ROOT / "benchmarks" / "results" / "dfdc_full.json"
    if not path.is_file():
        return {}
    res = json.loads(path.read_text())
    t, codes = res.get("table", {}), res.get("codes", {})
    extract = {k: v.get("s_per_face", 0) * v.get("n", 0)  # decode + align + project
               for k, v in codes.items() if isinstance(v, dict)}
    out = {}
    for key, name in (("stylegan/mlp2-reg", "latent"), ("cnn/meso4", "meso4"),
                      ("cnn/efficientnet_b0", "efficientnet_b0"), ("cnn/xception", "xception")):
        if key in t:
            src = key.split("/")[0] if name == "latent" else "crops"
            out[name] = {"train_s": t[key].get("train_s"), "roc_auc": t[key].get("roc_auc"),
                         "extract_s": extract.get(src)}
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=15, help="timed runs per model (median)")
    ap.add_argument("--steps", type=int, default=10, help="inversion steps of the second "
                    "latent row")
    ap.add_argument("--threads", type=int, default=2, help="torch threads")
    ap.add_argument("--only", help=argparse.SUPPRESS)  # a child process: one model
    ap.add_argument("--json", help="also write the figures here")
    a = ap.parse_args(argv)
    if a.only:
        print(json.dumps(one(a.only, a.runs, a.steps, a.threads)))
        return 0
    from lf_core.lab.bench import machine_line

    names = ["latent", "latent+steps", "meso4", "efficientnet_b0", "xception"]
    rows, trained = {}, train_seconds()
    for n in names:
        r = subprocess.run([sys.executable, __file__, "--only", n, "--runs", str(a.runs),
                            "--steps", str(a.steps), "--threads", str(a.threads)],
                           capture_output=True, text=True, env={**os.environ})
        if r.returncode:
            sys.exit(f"{n}: {r.stderr.strip().splitlines()[-1]}")
        rows[n] = json.loads(r.stdout.strip().splitlines()[-1])
    print(machine_line())
    print("| model | parameters | MACs per face | latency per face | peak memory | file | "
          "training to Table 1 (dfdc_full) |")
    print("|---|---|---|---|---|---|---|")
    label = {"latent": "latent: align + encoder + default detector (2 views)",
             "latent+steps": f"latent + {a.steps} inversion steps", "meso4": "Meso-4",
             "efficientnet_b0": "EfficientNet-B0", "xception": "Xception (compact)"}
    for n in names:
        r, t = rows[n], trained.get(n.split("+")[0], {})
        tr = (f"{(t.get('train_s') or 0) + (t.get('extract_s') or 0):,.0f} s to AUC "
              f"{t['roc_auc']:.3f}" if t.get("roc_auc") else "-")
        size = (f"{r['params'] / 1e6:.1f} M" if r["params"] >= 1e5
                else f"{r['params'] / 1e3:.0f} k")
        print(f"| {label[n]} | {size} | {r['macs'] / 1e9:.2f} G | "
              f"{r['latency_s'] * 1000:.0f} ms | {r['peak_mb']:.0f} MB | {r['file_mb']:.1f} MB | "
              f"{tr if n != 'latent+steps' else '-'} |")
    if a.json:
        Path(a.json).write_text(json.dumps({"rows": rows, "trained": trained}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
