"""A compact two-level VQ-VAE-2 (Razavi et al. 2019) of aligned faces at 128 px: the
"vqvae" projector's network, trained here on the generator trainer's real faces.

    lf train-vqvae --out runs/vqvae --hours 1            # resumes from runs/vqvae/last.pt
    lf extract MANIFEST --projector vqvae --projector-file runs/vqvae/vqvae.safetensors -o CODES

Layout after rosinality's vq-vae-2-pytorch, with smaller channel counts for a CPU budget
(CONFIG: ch 48, residual 24, two codebooks of 512 x 64; 0.4 M parameters):

    x (B, 3, 128, 128) in [-1, 1]
    enc_b: stride 4      -> (B, ch, 32, 32)
    enc_t: stride 2      -> (B, ch, 16, 16) -> 1x1 conv -> quantize_t -> id_t (B, 16, 16)
    dec_t(quant_t)       -> (B, dim, 32, 32), concatenated with enc_b
                         -> 1x1 conv -> quantize_b -> id_b (B, 32, 32)
    dec(upsample(quant_t) ++ quant_b): stride 4 -> (B, 3, 128, 128)

Codebooks are learnt by exponential moving averages (no codebook loss); codes that go
unused are restarted from the batch's encoder outputs (as in Jukebox), so the codebook does
not collapse onto a few entries. Loss: |dec - x|^2 + beta |enc - sg(quant)|^2, beta 0.25.

`train_vqvae` reads the aligned real faces cached by lf_core.train_gen.build_cache
(runs/gen/faces_{train,val}.npy, (N, 256, 256, 3) uint8), keeps out/last.pt (full state,
resumable), logs validation PSNR to out/log.jsonl and exports the projector file
out/vqvae.safetensors (lf_core.projectors.VQVAEProjector). Deterministic for a seed (same
init, same data order, same flips) at a given thread count.
"""

import json
import os
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

SIZE = 128  # faces are area-downsampled from 256 to this
CONFIG = {"size": SIZE, "ch": 48, "res_ch": 24, "n_res": 2, "dim": 64, "n_embed": 512}


class Quantize(nn.Module):
    """Nearest-codebook-entry quantiser with an EMA codebook. input (..., dim)."""

    def __init__(self, dim, n_embed, decay=0.99, eps=1e-5, restart=1.0):
        super().__init__()
        self.dim, self.n_embed, self.decay, self.eps = dim, n_embed, decay, eps
        self.restart = restart  # EMA count under which an entry counts as dead
        self.register_buffer("embed", torch.randn(dim, n_embed))  # (dim, K)
        self.register_buffer("cluster_size", torch.zeros(n_embed))  # (K,) EMA counts
        self.register_buffer("embed_avg", self.embed.clone())  # (dim, K) EMA sums

    def forward(self, input):
        flat = input.reshape(-1, self.dim)  # (M, dim)
        dist = (flat.pow(2).sum(1, keepdim=True) - 2 * flat @ self.embed
                + self.embed.pow(2).sum(0, keepdim=True))  # (M, K)
        ind = dist.argmin(1)  # (M,)
        quant = self.embed_code(ind).view_as(input)
        if self.training:
            with torch.no_grad():
                count = torch.bincount(ind, minlength=self.n_embed).type(flat.dtype)  # (K,)
                total = torch.zeros_like(self.embed).index_add_(1, ind, flat.t())  # (dim, K)
                self.cluster_size.mul_(self.decay).add_(count, alpha=1 - self.decay)
                self.embed_avg.mul_(self.decay).add_(total, alpha=1 - self.decay)
                n = self.cluster_size.sum()
                size = (self.cluster_size + self.eps) / (n + self.n_embed * self.eps) * n
                self.embed.copy_(self.embed_avg / size[None])
                dead = self.cluster_size < self.restart  # (K,) used < ~once a step lately
                if dead.any():  # restart them on random encoder outputs of this batch
                    pick = flat[torch.randint(len(flat), (int(dead.sum()),), device=flat.device)]
                    self.embed[:, dead] = pick.t()
                    self.embed_avg[:, dead] = pick.t()
                    self.cluster_size[dead] = 1.0
        diff = (quant.detach() - input).pow(2).mean()  # commitment
        quant = input + (quant - input).detach()  # straight-through gradient
        return quant, diff, ind.view(input.shape[:-1])

    def embed_code(self, ind):
        """ind (...) long -> (..., dim)."""
        return F.embedding(ind, self.embed.t())


class ResBlock(nn.Module):
    def __init__(self, ch, res_ch):
        super().__init__()
        self.conv = nn.Sequential(nn.ReLU(), nn.Conv2d(ch, res_ch, 3, padding=1),
                                  nn.ReLU(inplace=True), nn.Conv2d(res_ch, ch, 1))

    def forward(self, x):
        return x + self.conv(x)


class Encoder(nn.Module):
    """(B, cin, H, W) -> (B, ch, H / stride, W / stride); stride 4 or 2."""

    def __init__(self, cin, ch, n_res, res_ch, stride):
        super().__init__()
        if stride == 4:
            blocks = [nn.Conv2d(cin, ch // 2, 4, stride=2, padding=1), nn.ReLU(inplace=True),
                      nn.Conv2d(ch // 2, ch, 4, stride=2, padding=1), nn.ReLU(inplace=True),
                      nn.Conv2d(ch, ch, 3, padding=1)]
        else:
            blocks = [nn.Conv2d(cin, ch // 2, 4, stride=2, padding=1), nn.ReLU(inplace=True),
                      nn.Conv2d(ch // 2, ch, 3, padding=1)]
        blocks += [ResBlock(ch, res_ch) for _ in range(n_res)] + [nn.ReLU(inplace=True)]
        self.blocks = nn.Sequential(*blocks)

    def forward(self, x):
        return self.blocks(x)


class Decoder(nn.Module):
    """(B, cin, H, W) -> (B, cout, H * stride, W * stride); stride 4 or 2."""

    def __init__(self, cin, cout, ch, n_res, res_ch, stride):
        super().__init__()
        blocks = [nn.Conv2d(cin, ch, 3, padding=1)]
        blocks += [ResBlock(ch, res_ch) for _ in range(n_res)] + [nn.ReLU(inplace=True)]
        if stride == 4:
            blocks += [nn.ConvTranspose2d(ch, ch // 2, 4, stride=2, padding=1),
                       nn.ReLU(inplace=True),
                       nn.ConvTranspose2d(ch // 2, cout, 4, stride=2, padding=1)]
        else:
            blocks += [nn.ConvTranspose2d(ch, cout, 4, stride=2, padding=1)]
        self.blocks = nn.Sequential(*blocks)

    def forward(self, x):
        return self.blocks(x)


class VQVAE(nn.Module):
    def __init__(self, size=SIZE, ch=48, res_ch=24, n_res=2, dim=64, n_embed=512):
        super().__init__()
        self.config = {"size": size, "ch": ch, "res_ch": res_ch, "n_res": n_res, "dim": dim,
                       "n_embed": n_embed}  # VQVAE(**config) rebuilds it
        self.size, self.n_embed = size, n_embed
        self.enc_b = Encoder(3, ch, n_res, res_ch, stride=4)
        self.enc_t = Encoder(ch, ch, n_res, res_ch, stride=2)
        self.quantize_conv_t = nn.Conv2d(ch, dim, 1)
        self.quantize_t = Quantize(dim, n_embed)
        self.dec_t = Decoder(dim, dim, ch, n_res, res_ch, stride=2)
        self.quantize_conv_b = nn.Conv2d(dim + ch, dim, 1)
        self.quantize_b = Quantize(dim, n_embed)
        self.upsample_t = nn.ConvTranspose2d(dim, dim, 4, stride=2, padding=1)
        self.dec = Decoder(dim + dim, 3, ch, n_res, res_ch, stride=4)

    @property
    def code_sizes(self):
        """(top, bottom) side of the code grids: 16, 32 at 128 px."""
        return self.size // 8, self.size // 4

    def forward(self, x):
        """x (B, 3, S, S) -> reconstruction (B, 3, S, S), commitment loss ()."""
        quant_t, quant_b, diff, _, _ = self.encode(x)
        return self.decode(quant_t, quant_b), diff

    def encode(self, x):
        enc_b = self.enc_b(x)  # (B, ch, S/4, S/4)
        enc_t = self.enc_t(enc_b)  # (B, ch, S/8, S/8)
        quant_t = self.quantize_conv_t(enc_t).permute(0, 2, 3, 1)  # (B, S/8, S/8, dim)
        quant_t, diff_t, id_t = self.quantize_t(quant_t)
        quant_t = quant_t.permute(0, 3, 1, 2)  # (B, dim, S/8, S/8)
        enc_b = torch.cat([self.dec_t(quant_t), enc_b], 1)  # (B, dim + ch, S/4, S/4)
        quant_b = self.quantize_conv_b(enc_b).permute(0, 2, 3, 1)  # (B, S/4, S/4, dim)
        quant_b, diff_b, id_b = self.quantize_b(quant_b)
        quant_b = quant_b.permute(0, 3, 1, 2)  # (B, dim, S/4, S/4)
        return quant_t, quant_b, diff_t + diff_b, id_t, id_b

    def decode(self, quant_t, quant_b):
        """(B, dim, S/8, S/8), (B, dim, S/4, S/4) -> (B, 3, S, S)."""
        return self.dec(torch.cat([self.upsample_t(quant_t), quant_b], 1))

    def decode_code(self, id_t, id_b):
        """codebook indices (B, S/8, S/8), (B, S/4, S/4) long -> (B, 3, S, S)."""
        quant_t = self.quantize_t.embed_code(id_t).permute(0, 3, 1, 2)
        quant_b = self.quantize_b.embed_code(id_b).permute(0, 3, 1, 2)
        return self.decode(quant_t, quant_b)


# --------------------------------------------------------------------------- training


def to_input(crops, size=SIZE):
    """(N, 256, 256, 3) uint8 -> (N, 3, size, size) float32 in [-1, 1] (area downsampling)."""
    from .projectors import downsample

    x = torch.from_numpy(downsample(crops, size)).view(len(crops), size, size, 3)
    return x.permute(0, 3, 1, 2).mul(2).sub(1).contiguous()


def evaluate(net, val, batch=32):
    """PSNR (dB) of the reconstructions of the validation faces, and the share of each
    codebook in use (top, bottom)."""
    from .losses import psnr

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

    from .projectors import VQVAEProjector
    from .train_gen import _stop_on_signals, build_cache, current, in_split

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
        from .errors import LFError

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
            from .errors import LFError

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
        tmp = out / "last.tmp.pt"
        torch.save({"net": net.state_dict(), "opt": opt.state_dict(), "rng": torch.get_rng_state(),
                    "step": step, "seen": seen, "elapsed": elapsed, "config": config}, tmp)
        os.replace(tmp, ckpt)
        info = {"step": step, "seen": seen, "elapsed_h": round(elapsed / 3600, 3), "batch": batch,
                "lr": lr, "beta": beta, "seed": seed, "n_train": n, "n_val": len(val),
                "val": metrics}
        VQVAEProjector(net, info=info).save(out / "vqvae.safetensors")

    def validate():
        rec = {"step": step, "seen": seen, **evaluate(net, val),
               "elapsed_h": round((elapsed + time.time() - t0) / 3600, 3)}
        with open(out / "log.jsonl", "a") as f:
            f.write(json.dumps(rec) + "\n")
        return rec

    net.train()
    stop = _stop_on_signals(log)
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
