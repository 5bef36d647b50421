"""Training the compact VQ-VAE-2 of the "vqvae" projector (lf_core.lab.vqvae).

    lf train-vqvae --out runs/vqvae --hours 1            # resumes from runs/vqvae/last.pt

`train_vqvae` reads the aligned real faces cached by lf_core.lab.train_gen.build_cache
(runs/gen/faces_{train,val}.npy, (N, 256, 256, 3) uint8), keeps out/last.pt (full state,
resumable), logs validation PSNR to out/log.jsonl and exports the projector file
out/vqvae.safetensors (lf_core.lab.projectors.VQVAEProjector). Deterministic for a seed (same
init, same data order, same flips) at a given thread count.
"""

import json
import time
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F

from ..artifacts import atomic_append, atomic_write
from .projectors import VQVAEProjector, to_input
from .vqvae import CONFIG, VQVAE


def evaluate(net, val, batch=32):
    """PSNR (dB) of the reconstructions of the validation faces, and the share of each
    codebook in use (top, bottom)."""
    from ..losses import psnr

    was = net.training
    net.eval()
    ps, used_t, used_b = [], set(), set()
    with torch.no_grad():
        for i in range(0, len(val), batch):
            x = to_input(np.asarray(val[i:i + batch]), net.size)
            quant_t, quant_b, _, id_t, id_b = net.encode(x)
            ps.append(psnr(net.decode(quant_t, quant_b), x, reduce=False))
            used_t.update(id_t.unique().tolist())
            used_b.update(id_b.unique().tolist())
    net.train(was)
    return {"psnr": round(float(torch.cat(ps).mean()), 3),
            "used_t": round(len(used_t) / net.n_embed, 3),
            "used_b": round(len(used_b) / net.n_embed, 3)}


def train_vqvae(out="runs/vqvae", hours=1.0, steps=0, batch=16, seed=0, threads=0, lr=3e-4,
                beta=0.25, cache="runs/gen", val_every=200, ckpt_minutes=5.0, val_size=96,
                config=None, log=print):
    """Train (or resume) the VQ-VAE-2 on the cached real faces; returns the last metrics.

    out: run folder (last.pt, log.jsonl, vqvae.safetensors); hours: this run's time budget
    (steps=0) or steps: stop at this total step count; cache: the generator trainer's
    folder of aligned faces (built there by train_gen.build_cache when missing);
    config: network sizes (default CONFIG).
    """
    from tqdm import tqdm

    from .train_gen import build_cache, current, in_split, stop_on_signals

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if threads:
        torch.set_num_threads(threads)
    faces = build_cache(cache, "train", log=log)  # (N, 256, 256, 3) uint8 memmap
    val = build_cache(cache, "val", limit=val_size, log=log)
    # a cache built under an older split definition: keep only what the split says now
    keep = in_split(cache, "train")
    rows = np.arange(len(faces)) if keep is None else np.flatnonzero(keep)  # no copy of faces
    val = np.asarray(current(cache, "val", val))[:val_size]
    n = len(rows)
    if n < batch:
        from ..errors import LFError

        raise LFError(f"{cache}: {n} training faces, fewer than one batch of {batch}")
    log(f"training faces: {n}; validation faces: {len(val)}")

    config = {**CONFIG, **(config or {})}
    torch.manual_seed(seed)
    net = VQVAE(**config)
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    step, seen, elapsed = 0, 0, 0.0
    ckpt = out / "last.pt"
    if ckpt.exists():
        s = torch.load(ckpt, weights_only=True)
        if s.get("config", config) != config:
            from ..errors import LFError

            raise LFError(f"{ckpt} is a VQ-VAE of another size ({s['config']}); use another --out")
        net.load_state_dict(s["net"])
        opt.load_state_dict(s["opt"])
        torch.set_rng_state(s["rng"])
        step, seen, elapsed = s["step"], s["seen"], s["elapsed"]
        log(f"resumed from {ckpt} at step {step}")

    per_epoch = n // batch
    budget = hours * 3600
    bar = tqdm(total=steps or None, initial=step if steps else 0, unit="step", dynamic_ncols=True)
    t0 = last_ckpt = run_start = time.time()
    metrics = {}

    def save():
        state = {"net": net.state_dict(), "opt": opt.state_dict(), "rng": torch.get_rng_state(),
                 "step": step, "seen": seen, "elapsed": elapsed, "config": config}
        atomic_write(ckpt, lambda f: torch.save(state, f))
        info = {"step": step, "seen": seen, "elapsed_h": round(elapsed / 3600, 3), "batch": batch,
                "lr": lr, "beta": beta, "seed": seed, "n_train": n, "n_val": len(val),
                "val": metrics}
        VQVAEProjector(net, info=info).save(out / "vqvae.safetensors")

    def validate():
        rec = {"step": step, "seen": seen, **evaluate(net, val),
               "elapsed_h": round((elapsed + time.time() - t0) / 3600, 3)}
        atomic_append(out / "log.jsonl", json.dumps(rec) + "\n")
        return rec

    net.train()
    stop = stop_on_signals(log)
    while (not (steps and step >= steps) and time.time() - run_start < budget
           and not stop.is_set()):
        epoch, k = divmod(step, per_epoch)
        order = np.random.default_rng(seed + epoch).permutation(n)
        idx = np.sort(order[k * batch:(k + 1) * batch])
        x = to_input(faces[rows[idx]], net.size)  # (B, 3, 128, 128)
        flip = torch.from_numpy(np.random.default_rng(seed * 7919 + step).random(len(idx)) < 0.5)
        x = torch.where(flip[:, None, None, None], x.flip(3), x)

        y, diff = net(x)  # (B, 3, 128, 128), ()
        l_mse = F.mse_loss(y, x)
        loss = l_mse + beta * diff
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        step += 1
        seen += len(idx)
        bar.update(1)
        bar.set_postfix(mse=f"{l_mse.item():.4f}", commit=f"{diff.item():.4f}", ep=epoch)

        if step % val_every == 0:
            rec = validate()
            metrics = {k: rec[k] for k in ("psnr", "used_t", "used_b")}
            bar.write(json.dumps(rec))
        if time.time() - last_ckpt > ckpt_minutes * 60:
            elapsed += time.time() - t0
            t0 = last_ckpt = time.time()
            save()
    bar.close()
    if not metrics or step % val_every:
        rec = validate()
        metrics = {k: rec[k] for k in ("psnr", "used_t", "used_b")}
    elapsed += time.time() - t0
    save()
    log(f"stopped at step {step}: {json.dumps(metrics)}; projector: {out / 'vqvae.safetensors'}")
    return metrics
