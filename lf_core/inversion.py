"""GAN inversion: aligned face -> W+ code (1, 14, 512), and back.

    r = invert(model, crop, steps=100)               # Inversion: r.w (1, 14, 512), r.image
    for p in invert_stream(model, crop, steps=100):  # the same, as a generator of Progress
        show(p.step, p.losses, p.image)              # the last Progress carries the Inversion

The encoder gives the first code; then `steps` Adam steps on w minimise
    L(w) = a_pix |G(w) - x|^2 + a_perc P(G(w), x) + a_dom |w - E(G(w))|^2
P is LPIPS when its backbone weights are on disk, otherwise 1 - MS-SSIM (see losses.py;
`Inversion.perceptual` names which). The last term is the In-Domain inversion regulariser
(only for models with an encoder), evaluated on steps 1, 1 + dom_every, ...; the losses
reported per step carry its last value. steps=0 means encoder only.

passes > 0 refines the encoder's code before any step, with no gradient:
    w <- w + E(x) - E(G(w))        (each pass: one forward of G and of E)
It moves w towards a code whose image the encoder reads as it reads x. Two passes lift
encoder-only PSNR by about 0.9 dB (about what 5 Adam steps give, for a quarter of their
time); see weights/README.md. The default detector was trained on passes = 0 codes.
"""

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from .artifacts import file_digest
from .losses import perceptual, psnr, ssim


@dataclass
class Inversion:
    w: np.ndarray  # (1, 14, 512) float32
    image: np.ndarray  # (256, 256, 3) uint8, G(w)
    steps: int
    perceptual: str  # what the perceptual term was ("LPIPS (vgg)" or the fallback)
    losses: list = field(default_factory=list)  # one dict of loss terms per step
    psnr: float = 0.0  # dB, G(w) against the input crop
    ssim: float = 0.0
    encode_s: float = 0.0
    optimize_s: float = 0.0


@dataclass
class Progress:
    step: int  # 0 = encoder only
    steps: int
    losses: dict  # {"pixel": ..., "perceptual": ..., "domain": ..., "total": ...}
    elapsed_s: float
    eta_s: float
    image: np.ndarray | None = None  # (256, 256, 3) uint8 G(w), every `every` steps and at the end
    result: Inversion | None = None  # set on the last Progress


def to_tensor(img):
    """(H, W, 3) or (N, H, W, 3) uint8 (array or tensor) -> (N, 3, H, W) float32 in [-1, 1]."""
    x = img.float() if torch.is_tensor(img) else torch.from_numpy(np.array(img, np.float32))
    if x.ndim == 3:
        x = x[None]
    return x.permute(0, 3, 1, 2) / 127.5 - 1


def image_scores(x, y):
    """PSNR (dB) and SSIM per image of uint8 batches x, y: (N, H, W, 3) -> ((N,), (N,))."""
    a, b = to_tensor(x), to_tensor(y)
    return psnr(b, a, reduce=False).numpy(), ssim(b, a, reduce=False).numpy()


def to_image(x):
    """(N, 3, H, W) in [-1, 1] -> (N, H, W, 3) uint8."""
    x = ((x.detach().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return x.permute(0, 2, 3, 1).cpu().numpy()


def encode(model, crops, passes=0):
    """Encoder-only codes. crops: (N, 256, 256, 3) uint8 -> (N, 14, 512) float32; then
    `passes` refinement passes w <- w + E(x) - E(G(w)) (see the module docstring)."""
    if passes < 0:
        raise ValueError("passes must be >= 0")
    x = to_tensor(crops)
    with torch.no_grad():
        if model.E is None:  # no encoder: the mean code, nothing to refine
            return model.w_avg[None].expand(len(x), -1, -1).numpy().copy()
        ex = model.E(x)  # (N, 14, 512)
        w = ex
        for _ in range(passes):
            w = w + ex - model.E(model.G(w))
        return w.numpy()


def reconstruct(model, w):
    """G(w). w: (14, 512) or (N, 14, 512) -> (N, 256, 256, 3) uint8."""
    w = torch.as_tensor(np.asarray(w, dtype=np.float32))
    if w.ndim == 2:
        w = w[None]
    with torch.no_grad():
        return to_image(model.G(w))


def code_name(model, steps=0, invert_kw=None) -> str:
    """How W+ codes were made, e.g. 'stylegan (encoder only, lf-compact-256.safetensors)'."""
    how = "encoder only" if steps == 0 else f"{steps} inversion steps"
    k = (invert_kw or {}).get("passes", 0)
    how += f", {k} refinement passes" if k else ""
    return f"stylegan ({how}, {Path(model.path).name})"


def code_meta(model, steps=0, invert_kw=None) -> dict:
    """What made the W+ codes of `model` after `steps` steps with `invert_kw` (run_batch's
    options; passes=0 left out): the record that a codes folder and a detector's metrics
    carry as "projector", and that detect.check_detector reads. Codes from another weights
    file (sha256 prefix) or other settings are not comparable."""
    kw = {k: v for k, v in sorted((invert_kw or {}).items()) if (k, v) != ("passes", 0)}
    return {"kind": "stylegan", "name": code_name(model, steps, kw),
            "code_shape": [model.n_latent, int(model.w_avg.shape[1])], "steps": int(steps),
            "weights": Path(model.path).name, "weights_path": str(model.path),
            "weights_sha256": file_digest(model.path) or "unknown", "model_kind": model.kind,
            "encoder": model.E is not None, "invert_kw": kw}


def invert_stream(model, crop, steps=100, lr=0.01, a_pix=1.0, a_perc=1.0, a_dom=0.5, dom_every=4,
           every=10, seed=0, should_stop=None, passes=0):
    """Generator of Progress; returns (and attaches to the last Progress) an Inversion.

    crop: (256, 256, 3) uint8 aligned face. should_stop: callable -> True to stop early
    (the result then holds the code reached so far). The domain term is evaluated on every
    `dom_every`-th step only (its encoder pass costs a third of a step), as in training.
    passes: encoder refinement passes before the first step (step 0 shows their code).
    """
    if steps < 0:
        raise ValueError("steps must be >= 0")
    torch.manual_seed(seed)
    perc = perceptual()
    x = to_tensor(crop)  # (1, 3, 256, 256)
    t0 = time.perf_counter()
    w0 = torch.from_numpy(encode(model, crop[None], passes))  # (1, 14, 512)
    encode_s = time.perf_counter() - t0

    history = []
    w = w0.clone().requires_grad_(steps > 0)
    opt = torch.optim.Adam([w], lr=lr) if steps else None
    t1 = time.perf_counter()
    with torch.no_grad():
        y = model.G(w0)
    yield Progress(0, steps, {}, time.perf_counter() - t0, 0.0, image=to_image(y)[0])
    step = 0
    dom = None  # the domain term's last value (float)
    for step in range(1, steps + 1):
        a = _dom_weight(model, step, a_dom, dom_every)
        dom_now = bool(a)
        y, loss, terms = _step(model, w, x, opt, perc, a_pix, a_perc, a)
        losses = {k: v.item() for k, v in terms.items()} | {"total": loss.item()}
        if dom_now:
            dom = losses["domain"]
        elif dom is not None:  # between encoder passes: its last value, in the total too
            losses["domain"], losses["total"] = dom, losses["total"] + a_dom * dom
        history.append(losses)
        took = time.perf_counter() - t1
        show = step % every == 0 or step == steps
        stop = should_stop is not None and should_stop()
        if not (show or stop):
            eta = took / step * (steps - step)
            yield Progress(step, steps, losses, time.perf_counter() - t0, eta)
            continue
        if stop:
            break
        # G(w) of this step's forward (before its update): no extra pass through G
        yield Progress(step, steps, losses, time.perf_counter() - t0,
                       took / step * (steps - step), image=to_image(y)[0])

    with torch.no_grad():
        y = model.G(w)
        p, s = float(psnr(y, x)), float(ssim(y.clamp(-1, 1), x))
    result = Inversion(w.detach().numpy().copy(), to_image(y)[0], len(history), perc.name,
                       history, p, s, encode_s, time.perf_counter() - t1)
    yield Progress(len(history), steps, history[-1] if history else {},
                   time.perf_counter() - t0, 0.0, image=result.image, result=result)
    return result


def _dom_weight(model, step, a_dom, dom_every):
    """The domain term's weight at `step` (from 1): a_dom on steps 1, 1 + dom_every, ...
    (models with an encoder), else 0."""
    return a_dom if a_dom and model.E is not None and (step - 1) % dom_every == 0 else 0


def _step(model, w, x, opt, perc, a_pix, a_perc, a_dom):
    """One Adam step on w (N, 14, 512) towards x (N, 3, 256, 256). The loss is the sum over
    faces of each face's own loss, so a batch gives every face the gradient it gets alone
    (and Adam's update is per element): batched codes equal one-at-a-time codes.
    Returns (G(w) before the step, the loss, {term: (N,) per face}); a_dom = 0: no domain."""
    y = model.G(w)
    terms = {"pixel": (y - x).pow(2).mean([1, 2, 3]), "perceptual": perc(y, x)}
    loss = a_pix * terms["pixel"] + a_perc * terms["perceptual"]
    if a_dom:
        terms["domain"] = (w - model.E(y)).pow(2).mean([1, 2])
        loss = loss + a_dom * terms["domain"]
    loss = loss.sum()
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    return y, loss, terms


def run_batch(model, crops, steps=100, lr=0.01, a_pix=1.0, a_perc=1.0, a_dom=0.5,
              dom_every=4, seed=0, chunk=4, passes=0) -> np.ndarray:
    """Codes of several faces, inverted `chunk` at a time: (N, 256, 256, 3) uint8 ->
    (N, 14, 512). The same optimisation as invert_stream() per face (see _step) with one batched
    pass of G per step. Per face and step on the 2-core CPU: 160 ms alone, 135 ms in twos,
    128 ms in fours, 188 ms in sixteens (the maps outgrow the caches):
    benchmarks/speed/bench_core.py --batch N."""
    if steps < 0:
        raise ValueError("steps must be >= 0")
    if len(crops) > chunk:
        return np.concatenate([run_batch(model, crops[i:i + chunk], steps, lr, a_pix, a_perc,
                                         a_dom, dom_every, seed, chunk, passes)
                               for i in range(0, len(crops), chunk)])
    torch.manual_seed(seed)
    w0 = torch.from_numpy(encode(model, crops, passes))  # (N, 14, 512)
    if steps == 0:
        return w0.numpy()
    perc, x = perceptual(), to_tensor(crops)  # x: (N, 3, 256, 256)
    w = w0.clone().requires_grad_(True)
    opt = torch.optim.Adam([w], lr=lr)
    for step in range(1, steps + 1):
        _step(model, w, x, opt, perc, a_pix, a_perc, _dom_weight(model, step, a_dom, dom_every))
    return w.detach().numpy().copy()


def invert(model, crop, **kw) -> Inversion:
    """invert_stream() to the end: the Inversion of an aligned crop (256, 256, 3)."""
    for p in invert_stream(model, crop, **kw):  # noqa: B007 (the last Progress holds the result)
        pass
    return p.result
