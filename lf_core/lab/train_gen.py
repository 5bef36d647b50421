"""Train the embedded compact StyleGAN2 generator + W+ encoder on real faces only.

    lf train-generator --out runs/gen --hours 2          # resumes from runs/gen/last.pt

1. `build_cache`: align every real face of ../shared/data (FFHQ real, LFW, the real DFDC
   crops of the groups in the 'train' split of lf_core.lab.data.split_of) into a uint8 array
   (N, 256, 256, 3); faces that do not align are listed, not dropped unseen. A fixed
   validation set comes from the 'val' split (identities / groups never trained on).
2. `train`: encoder -> W+ -> generator as an auto-encoder. Loss per batch x:
       w = E(x); y = G(w)
       L = |y - x|^2 + a_ssim (1 - MS-SSIM(y, x)) + a_cyc |E(y) - w|^2 + a_reg |w - w_avg|^2
   The cycle term keeps codes in the generator's domain (E(G(w)) = w, as the In-Domain
   inversion recipe asks of its encoder); w_avg is a running mean of the codes.
   `encoder_only` freezes G and trains E alone (same loss).
   Checkpoints (full state) every few minutes; the shipped weights (fp16 safetensors) are
   exported from them. Deterministic for a seed (same data order, same init).
3. `pack_faces` / `unpack_faces`: the cache as one small file of WebP images (about 3 KB a
   face) to train on a machine without ../shared (a GPU box):
       lf train-generator --out runs/gen --pack-to faces.npz         # here
       lf train-generator --out runs/gpu --from-pack faces.npz ...   # there (CUDA if present)
"""

import json
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F

from .. import nets
from ..artifacts import (
    atomic_append,
    atomic_savez,
    atomic_write,
    atomic_write_bytes,
    atomic_write_safetensors,
)
from ..inversion import to_tensor
from ..loaders import load_checkpoint
from ..losses import ms_ssim_loss, psnr, ssim
from ..model import DEFAULT_WEIGHTS
from .data import data_dir, read_manifest, split_of


def real_faces(split):
    """[(path, source)] of the real faces of a split, from the three folders."""
    root, out = data_dir(), []
    for it in read_manifest(root / "ffhq_stylegan" / "manifest.csv"):
        if it.label == 0 and split_of(it.group) == split:  # the detectors' key too
            out.append((it.path, "ffhq"))
    for it in read_manifest(root / "lfw" / "manifest.csv"):
        if split_of("lfw/" + it.group) == split:  # group = identity
            out.append((it.path, "lfw"))
    for it in read_manifest(root / "dfdc_faces" / "manifest.csv"):
        if it.label == 0 and split_of(it.group) == split:
            out.append((it.path, "dfdc"))
    return out


def build_cache(out, split, limit=None, log=print):
    """Align the real faces of `split` into out/faces_{split}.npy (N, 256, 256, 3) uint8.
    Resumable: progress is kept in out/faces_{split}.partial/ chunk files."""
    from tqdm import tqdm

    from ..alignment import align
    from ..errors import LFError
    from ..io import load_image

    out = Path(out)
    final = out / f"faces_{split}.npy"
    if final.exists():
        return np.load(final, mmap_mode="r")
    items = real_faces(split)
    if limit:
        rng = np.random.default_rng(0)
        items = [items[i] for i in sorted(rng.permutation(len(items))[:limit])]
    part = out / f"faces_{split}.partial"
    part.mkdir(parents=True, exist_ok=True)
    chunk = 500
    missed = []
    for c0 in tqdm(range(0, len(items), chunk), desc=f"align {split}", unit="chunk"):
        f = part / f"{c0:06d}.npz"
        if f.exists():
            continue
        crops, paths = [], []
        for path, src in items[c0:c0 + chunk]:
            try:
                crops.append(align(load_image(path), max_faces=1)[0].crop)
                paths.append(str(path))
            except LFError as e:
                missed.append(f"{path}\t{e}")
        atomic_savez(f, crops=np.stack(crops) if crops else np.zeros((0, 256, 256, 3), np.uint8),
                     paths=np.array(paths))
    crops, paths = [], []
    for f in sorted(part.glob("[0-9]*.npz")):
        z = np.load(f)
        crops.append(z["crops"])
        paths += list(z["paths"])
    arr = np.concatenate(crops)
    # the lists first: the .npy marks the cache as done, and in_split needs its paths
    atomic_write_bytes(out / f"faces_{split}.paths.txt", ("\n".join(paths) + "\n").encode())
    atomic_write_bytes(out / f"faces_{split}.missed.txt", ("\n".join(missed) + "\n").encode())
    atomic_write(final, lambda fh: np.save(fh, arr))
    log(f"{split}: {len(arr)} faces aligned, {len(items) - len(arr)} missed "
        f"(listed in {out / f'faces_{split}.missed.txt'})")
    return np.load(final, mmap_mode="r")


def in_split(out, split):
    """(N,) bool: which cached faces of out/faces_{split}.npy belong to `split` today."""
    f = Path(out) / f"faces_{split}.paths.txt"
    if not f.exists():
        return None
    now = {str(p) for p, _ in real_faces(split)}
    return np.array([p in now for p in f.read_text().split("\n") if p])


def current(out, split, faces):
    """The cached faces of `split` that the split holds today (a cache built under an older
    split definition may hold others)."""
    keep = in_split(out, split)
    return faces if keep is None or keep.all() else np.asarray(faces)[keep]


def pack_faces(out, dst, quality=80):
    """out/faces_{train,val}.npy -> dst (.npz): each split as WebP bytes joined, with offsets.
    WebP at quality 80: 3.1 KB and 41.7 dB PSNR a face (200 training faces), far above what
    the models reconstruct."""
    import io

    from PIL import Image

    arrs = {}
    for split in ("train", "val"):  # aligned here first when out holds no cache yet
        limit = TrainConfig.val_size if split == "val" else None
        faces = current(out, split, build_cache(out, split, limit=limit))
        blobs = []
        for f in faces:
            b = io.BytesIO()
            Image.fromarray(np.asarray(f)).save(b, "WEBP", quality=quality)
            blobs.append(np.frombuffer(b.getvalue(), np.uint8))
        arrs[split] = np.concatenate(blobs)
        arrs[f"{split}_ends"] = np.cumsum([len(b) for b in blobs])
    atomic_savez(dst, **arrs)


def unpack_faces(src, out):
    """A pack_faces file -> out/faces_{train,val}.npy (no paths.txt: the split is as packed)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    from lf_core.untrusted import read_pack_split  # checked: no pickle, 256 px faces only

    for split in ("train", "val"):
        if (out / f"faces_{split}.npy").exists():
            continue
        faces = read_pack_split(src, split)
        atomic_write(out / f"faces_{split}.npy", lambda f, faces=faces: np.save(f, faces))


@dataclass
class TrainConfig:
    out: str = "runs/gen"
    batch: int = 8
    lr: float = 1e-3
    cooldown: float = 0.5  # last share of this run's budget: lr falls (cosine) to lr_end
    lr_end: float = 1e-4
    a_ssim: float = 0.5
    a_cyc: float = 0.05
    a_reg: float = 1e-4
    hours: float = 1.0
    steps: int = 0  # stop at this total step count (resumed steps included); 0: `hours`
    val_every: int = 200
    ckpt_minutes: float = 5.0
    diverge_db: float = 3.0  # stop, saving nothing, when val PSNR falls this far below the run's best
    seed: int = 0
    threads: int = 0  # 0: torch default
    val_size: int = 96
    limit: int = 0  # cap the training set (tests)
    encoder_only: bool = False  # train E against a frozen G
    device: str = ""  # "": cuda when there is one, else cpu


def evaluate(G, E, val, batch=16):
    """Encoder-only reconstruction PSNR / SSIM on the validation faces."""
    ps, ss = [], []
    dev = next(E.parameters()).device
    with torch.no_grad():
        for i in range(0, len(val), batch):
            x = to_tensor(val[i:i + batch]).to(dev)
            y = G(E(x)).clamp(-1, 1)
            ps.append(psnr(y, x, reduce=False))
            ss.append(ssim(y, x, reduce=False))
    return {"psnr": float(torch.cat(ps).mean()), "ssim": float(torch.cat(ss).mean())}


def _device(name):
    dev = torch.device(name or ("cuda" if torch.cuda.is_available() else "cpu"))
    if dev.type == "cuda":  # TF32 convolutions and matmuls (fp32 storage), as for training
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
    return dev


def export(G, E, path, meta):
    """Shipped weights: fp16 safetensors with G.* and E.* tensors and JSON metadata."""
    t = {f"G.{k}": v.half().cpu().contiguous() for k, v in G.state_dict().items()}
    t.update({f"E.{k}": v.half().cpu().contiguous() for k, v in E.state_dict().items()})
    md = {"kind": "lf", "g_channels": json.dumps(nets.COMPACT_G_CHANNELS),
          "e_channels": json.dumps(nets.COMPACT_E_CHANNELS), "train": json.dumps(meta)}
    atomic_write_safetensors(path, t, md)


def stop_on_signals(log):
    """SIGTERM / SIGINT (kill, Ctrl-C, a background job's end) ask the loop to stop after
    the current step; it then saves as at the end of its budget."""
    import signal
    import threading

    ev = threading.Event()

    def handler(signum, frame):
        if not ev.is_set():
            log(f"signal {signum}: stopping after this step and saving the checkpoint")
        ev.set()
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, handler)
    return ev


def lr_scale(k, t, warmup, budget, cfg):
    """lr factor at step k / second t of this run: linear warm-up, then a cosine cool-down
    from 1 to lr_end / lr over the last `cooldown` share of the time budget."""
    f = min(1.0, (k + 1) / warmup) if warmup else 1.0
    if budget and cfg.cooldown:
        u = (t / budget - (1 - cfg.cooldown)) / cfg.cooldown  # 0 -> 1 in the cool-down
        if u > 0:
            end = cfg.lr_end / cfg.lr
            f *= end + (1 - end) * 0.5 * (1 + math.cos(math.pi * min(u, 1.0)))
    return f


def train(cfg: TrainConfig, log=print):
    from tqdm import tqdm

    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    faces = build_cache(out, "train", limit=cfg.limit or None, log=log)
    val = build_cache(out, "val", limit=cfg.val_size, log=log)
    n_cached = len(faces)
    faces, val = current(out, "train", faces), np.asarray(current(out, "val", val))
    if len(faces) < n_cached:
        log(f"{n_cached - len(faces)} cached faces are no longer in the train split: skipped")
    log(f"training faces: {len(faces)}; validation faces: {len(val)}")

    torch.manual_seed(cfg.seed)
    G, E = nets.compact_generator(), nets.compact_encoder()
    step, seen, elapsed = 0, 0, 0.0
    # linear lr warm-up over steps [warm_from, warm_from + warmup): a fresh Adam on trained
    # weights jolts them. Kept in the checkpoint, so a resumed run goes on with it.
    warm_from, warmup = 0, 0
    ckpt = out / "last.pt"
    s = torch.load(ckpt, weights_only=True, map_location="cpu") if ckpt.exists() else None
    if s is not None:
        G.load_state_dict(s["G"])
        E.load_state_dict(s["E"])
        step, seen, elapsed = s["step"], s["seen"], s["elapsed"]
        warm_from, warmup = s.get("warm_from", 0), s.get("warmup", 0)
        log(f"resumed from {ckpt} at step {step}")
    elif DEFAULT_WEIGHTS.exists():
        ld = load_checkpoint(DEFAULT_WEIGHTS)  # fp16 -> fp32, eval, frozen: made trainable below
        G, E = ld.G.train(), ld.E.train()
        meta = json.loads(ld.meta.get("train", "{}"))
        step, seen, elapsed = meta.get("step", 0), meta.get("seen", 0), meta.get("elapsed", 0.0)
        warm_from, warmup = step, 200
        log(f"resumed from {DEFAULT_WEIGHTS} (fp16 weights, fresh optimiser, {warmup} warm-up "
            f"steps) at step {step}")
    dev = _device(cfg.device)
    G, E = G.to(dev), E.to(dev)
    log(f"device: {dev}")
    # encoder_only: G frozen (its derived weights are then cached, see nets.frozen), E learns
    # to invert it; the amortisation gap (encoder-only vs + 100 steps) is E's to close
    G.requires_grad_(not cfg.encoder_only)
    E.requires_grad_(True)
    params = [p for p in (*G.parameters(), *E.parameters()) if p.requires_grad]
    opt = torch.optim.Adam(params, lr=cfg.lr, betas=(0.9, 0.99))
    if s is not None:
        if s.get("encoder_only", False) == cfg.encoder_only:
            opt.load_state_dict(s["opt"])
        else:  # switched between joint and encoder-only training: a fresh optimiser
            warm_from, warmup = step, 200
            log(f"{'encoder-only' if cfg.encoder_only else 'joint'} training from here: fresh "
                f"optimiser, {warmup} warm-up steps")

    n = len(faces)
    per_epoch = n // cfg.batch
    budget = cfg.hours * 3600  # for this run; `elapsed` keeps the total over all runs
    total = cfg.steps or None
    bar = tqdm(total=total, initial=step if total else 0, unit="step", dynamic_ncols=True)
    t0 = last_ckpt = run_start = time.time()

    def save(metrics=None):
        meta = {"step": step, "seen": seen, "elapsed": elapsed, "batch": cfg.batch,
                "n_train": n, "n_val": len(val), "config": asdict(cfg), "val": metrics or {},
                "threads": torch.get_num_threads()}
        state = {"G": G.state_dict(), "E": E.state_dict(), "opt": opt.state_dict(),
                 "step": step, "seen": seen, "elapsed": elapsed,
                 "warm_from": warm_from, "warmup": warmup, "encoder_only": cfg.encoder_only}
        atomic_write(ckpt, lambda f: torch.save(state, f))
        export(G, E, out / "lf-compact-256.safetensors", meta)
        return meta

    # the guard: a validation before every checkpoint, and training stops without saving once
    # val PSNR falls diverge_db below this run's best (a too high lr, or numerics: a GPU run
    # once diverged within 200 steps and would otherwise have kept training and saving)
    metrics = evaluate(G, E, val)
    best, saved = metrics["psnr"], (step if s is not None else None)  # last.pt's step
    log(f"validation at the start (step {step}): {json.dumps(metrics)}")

    def guard(m):
        nonlocal best
        if cfg.diverge_db and m["psnr"] < best - cfg.diverge_db:
            from ..errors import LFError
            raise LFError(f"training diverged at step {step}: validation PSNR {m['psnr']:.2f} dB, "
                          f"this run's best {best:.2f} dB. "
                          + (f"{ckpt} still holds step {saved}" if saved is not None
                             else f"Nothing was saved to {out}") + "; rerun with a lower --lr")
        best = max(best, m["psnr"])

    stop = stop_on_signals(log)
    while True:
        if cfg.steps and step >= cfg.steps:
            break
        if time.time() - run_start >= budget or stop.is_set():
            break
        epoch, k = divmod(step, per_epoch)
        order = np.random.default_rng(cfg.seed + epoch).permutation(n)
        idx = np.sort(order[k * cfg.batch:(k + 1) * cfg.batch])
        x = to_tensor(torch.from_numpy(faces[idx]).to(dev))  # (B, 3, 256, 256)
        flip = torch.from_numpy(np.random.default_rng(cfg.seed * 7919 + step).random(len(idx)) < 0.5)
        flip = flip.to(dev)
        x = torch.where(flip[:, None, None, None], x.flip(3), x)

        w = E(x)  # (B, 14, 512)
        y = G(w)  # (B, 3, 256, 256)
        l_mse = F.mse_loss(y, x)
        l_ssim = ms_ssim_loss(y, x).mean()
        l_reg = (w - E.w_avg).pow(2).mean()
        loss = l_mse + cfg.a_ssim * l_ssim + cfg.a_reg * l_reg
        if cfg.a_cyc and step % 4 == 0:
            l_cyc = F.mse_loss(E(y.clamp(-1, 1)), w.detach())
            loss = loss + cfg.a_cyc * l_cyc
        lr = cfg.lr * lr_scale(step - warm_from, time.time() - run_start, warmup,
                               budget if not cfg.steps else None, cfg)
        for g in opt.param_groups:
            g["lr"] = lr
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        with torch.no_grad():  # running mean code, the encoder's zero point
            E.w_avg.lerp_(w.detach().mean(0), 0.01)
        step += 1
        seen += len(idx)
        bar.update(1)
        bar.set_postfix(mse=f"{l_mse.item():.4f}", ssim=f"{1 - l_ssim.item():.3f}", ep=epoch,
                        lr=f"{lr:.1e}")

        if step % cfg.val_every == 0:
            metrics = evaluate(G, E, val)
            log(json.dumps({"step": step, "seen": seen, **metrics,
                            "elapsed_h": round((elapsed + time.time() - t0) / 3600, 3)}))
            atomic_append(out / "log.jsonl", json.dumps({"step": step, "seen": seen, **metrics}) + "\n")
            guard(metrics)  # after the log: a divergence is on record
        if time.time() - last_ckpt > cfg.ckpt_minutes * 60:
            elapsed += time.time() - t0
            if step % cfg.val_every:  # not validated at this very step
                metrics = evaluate(G, E, val)
                guard(metrics)
            t0 = last_ckpt = time.time()
            save(metrics)
            saved = step
    elapsed += time.time() - t0
    t0 = time.time()
    metrics = evaluate(G, E, val)
    guard(metrics)
    meta = save(metrics)
    bar.close()
    log(f"stopped at step {step}: {json.dumps(metrics)}")
    return meta
