"""`lf bench`: the paper's experiments on one manifest, written to benchmarks/RESULTS.md.

    lf bench runs/det/dfdc_subset.csv --name dfdc --work runs/bench/dfdc
    lf bench ../shared/data/ffhq_stylegan/manifest.csv --name ffhq_stylegan --work runs/bench/ffhq

Per run (every result is cached in WORK/results.json, so a rerun after a kill goes on
where it stopped; --redo SECTION recomputes one). A copy of that cache is kept in
benchmarks/results/cache/NAME.json, to commit: on a fresh checkout (no runs/) the bench
starts from it and recomputes only what it lacks or what a changed projector made stale
(the codes are extracted again; Table 1 rows keep their test probabilities, so the paired
comparison needs no detector file):
  codes      lf extract per projector (stylegan encoder-only, pca, vqvae when its file is
             given, crops for the CNNs); the end-to-end time per face (decode + align +
             project) is the projector's inference time.
  table      Table 1: projector x classifier (rf, lr, mlp2, mlp5) and the CNN rows, trained
             on the train split, scored on the test split (group-disjoint, by source video).
  recon      reconstruction quality per projector on up to 250 test faces: PSNR, SSIM
             (and LPIPS only when its backbone is on disk), mean with a 95% CI.
  channels   accuracy of RF and MLP-5 trained on one W+ row at a time (the paper's Fig. 5).
  fewshot    test accuracy against the number of training groups (50, 100, 500, all) for
             every classifier on the best StyleGAN-latent row's codes (the method; any
             projector's when no StyleGAN row ran) and the best CNN, both picked on the
             validation split: which classifier suits few faces is not the full data's.
  seeds      the best latent row (--seeds) and the best CNN (--cnn-seeds) refitted with
             other seeds: how much of a difference between rows is one fit's luck.
  compare    (not cached) paired bootstrap over test groups, best latent row vs best CNN.

Each run writes benchmarks/results/NAME.json and its figures; RESULTS.md is rebuilt from
all the JSON files there, so the DFDC and ffhq_stylegan tables sit side by side.
"""

from __future__ import annotations

import json
import os
import platform
import shlex
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from ..artifacts import atomic_append, atomic_write, atomic_write_bytes, atomic_write_json
from ..errors import LFError

ROOT = Path(__file__).resolve().parents[2]
BENCH_DIR = ROOT / "benchmarks"
CLASSIFIERS = ("rf", "lr", "mlp2", "mlp5", "mlp2-reg")  # -reg: lf train --regularise
CNNS = ("meso4", "efficientnet_b0", "xception")
SECTIONS = ("codes", "table", "recon", "channels", "fewshot", "seeds")


def machine() -> dict:
    """What a timing was measured on: CPU model, the vector ISA torch's kernels use (AVX2 or
    AVX512; `ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2` emulates an AVX2 machine),
    CPUs, torch threads and the 1-minute load average."""
    import torch

    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            model = next(ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return {"cpu": model, "isa": torch.backends.cpu.get_cpu_capability(),
            "cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "load": round(os.getloadavg()[0], 1)}


def machine_line() -> str:
    m = machine()
    return (f"{m['cpu']} ({m['isa']}), {m['cpus']} CPUs, torch threads {m['torch_threads']}, "
            f"load {m['load']}")


@dataclass
class BenchConfig:
    manifest: str
    name: str = "dfdc"
    work: str = "runs/bench/dfdc"
    out_dir: str = str(BENCH_DIR)
    projectors: tuple = ("stylegan", "pca", "vqvae")
    vqvae_file: str | None = None  # trained VQ-VAE-2 projector (lf train-vqvae)
    weights: str | None = None  # generator (default: the embedded model)
    prealigned: bool = False  # FFHQ-aligned images (ffhq_stylegan): resize only, no detection
    pca_components: int = 512
    classifiers: tuple = CLASSIFIERS
    cnns: tuple = CNNS
    cnn_epochs: int = 10
    cnn_kw: dict = field(default_factory=lambda: {"xception": {"width": 0.5, "middle": 4}})
    rf_trees: int = 1500
    rf_max_features: str = "sqrt"  # sklearn's default, the closest to the paper (lf train: sqrt/2)
    recon_faces: int = 250
    recon_steps: int = 100  # inversion steps for the "+ k steps" reconstruction row
    recon_steps_faces: int = 250  # faces for that row (2-core CPU: ~9 s per face at 100 steps)
    channel_classifiers: tuple = ("rf", "mlp5")
    channel_rf_trees: int = 300  # per-row forests (14 of them): fewer trees, stated
    fewshot_groups: tuple = (50, 100, 500, 0)  # 0: all training groups
    fewshot_draws: int = 5  # draws of the groups (and fit seed) per size below all
    seeds: int = 3  # fits of the best latent row (seed, seed + 1, ...) for its seed spread
    cnn_seeds: int = 3  # the same for the best CNN (each fit costs a CNN training)
    bootstrap: int = 2000  # resamples of the test groups for the AUC intervals
    seed: int = 0
    redo: tuple = ()
    engine: str = "local"  # where the codes are extracted: lf_core.lab.engines.make_engine's
    engine_options: dict = field(default_factory=dict)  # name and options


# --------------------------------------------------------------------------- helpers


class _Store:
    """WORK/results.json: one JSON-able value per key, written atomically after each.

    `keep` (benchmarks/results/cache/NAME.json, committed) is a copy written beside it: a
    fresh checkout has no WORK (runs/ is not in git), so a missing WORK/results.json starts
    from that copy when it was made on the same manifest, and only what it lacks (or what
    a changed projector makes stale, see section_codes) is computed again."""

    def __init__(self, path: Path, redo=(), keep: Path | None = None, manifest: str = ""):
        self.path, self.keep, self.manifest = path, keep, manifest
        self.data, self.seeded = {}, False
        if path.exists():
            self.data = json.loads(path.read_text())
        elif keep is not None and keep.exists():
            k = json.loads(keep.read_text())
            if k.get("manifest") == manifest:
                self.data, self.seeded = k["data"], True
                _log(f"no {path}: starting from the kept copy {keep} ({len(self.data)} results)")
            else:
                _log(f"{keep} was made on {k.get('manifest')}, not {manifest}: not used")
        for sec in redo:
            self.drop(lambda k, sec=sec: k == sec or k.startswith(sec + "/"))

    def drop(self, which):
        for k in [k for k in self.data if which(k)]:
            del self.data[k]

    def get(self, key, make):
        if key not in self.data:
            self.data[key] = make()
            self.save()
        return self.data[key]

    def save(self):
        atomic_write_json(self.path, self.data)
        self.save_keep()

    def save_keep(self):
        if self.keep is not None:
            self.keep.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_json(self.keep, {"manifest": self.manifest, "data": self.data})


def _log(msg):
    print(f"[bench] {msg}", file=sys.stderr, flush=True)


def _fingerprint(names, n: int) -> str:
    """First n hex digits of the sha256 of the names, one per line."""
    from ..artifacts import digest

    return digest("\n".join(names).encode(), n)


def _faces_digest(paths) -> str:
    """A fingerprint of face paths, in order, by their last two parts (fake/x.jpg): the same
    on any machine."""
    return _fingerprint(("/".join(Path(p).parts[-2:]) for p in paths), 16)


def _test_record(m: dict) -> dict:
    """A Table 1 row's test probabilities, in its codes' test order, with a digest of those
    faces: the paired comparison then needs no detector file (a fresh checkout has none)."""
    pr = m["predictions"]
    return {"test_p": [round(float(r["prob_fake"]), 5) for r in pr],
            "test_faces": _faces_digest([r["path"] for r in pr])}


def _row_metrics(m: dict) -> dict:
    keys = ("n", "accuracy", "balanced_accuracy", "roc_auc", "eer")
    return {k: m.get(k) for k in keys}


# --------------------------------------------------------------------------- sections


def _steps(kind: str) -> int:
    """Inversion steps of a projector name: 'stylegan' 0, 'stylegan-20' 20."""
    k = kind.partition("-")[2]
    if k and not k.isdigit():
        raise LFError(f"projector {kind!r}: write stylegan-K for K inversion steps, "
                      "e.g. stylegan-20")
    return int(k or 0)


def _base(kind: str) -> str:
    """The projector family of a name: 'stylegan-20' -> 'stylegan'."""
    return kind.partition("-")[0] if kind.startswith("stylegan") else kind


def _label(kind: str) -> str:
    return f"stylegan ({_steps(kind)} steps)" if _steps(kind) else kind


def _projector(kind, cfg):
    from .projectors import VQVAEProjector, make_projector

    if kind == "vqvae":  # trained beforehand; a missing file names `lf train-vqvae`
        return VQVAEProjector.from_file(cfg.vqvae_file)
    if _base(kind) == "stylegan":
        from ..model import load_model

        return make_projector("stylegan", model=load_model(cfg.weights), steps=_steps(kind))
    if kind == "pca":
        return make_projector("pca", n_components=cfg.pca_components, size=64)
    return make_projector(kind, size=256)  # crops; ProjectorError for an unknown kind


def section_codes(cfg, store, work):
    """lf extract per projector; returns {kind: folder}."""
    from .extract import extract, load_codes

    out = {}
    for kind in [*cfg.projectors, *(("crops",) if cfg.cnns else ())]:
        if kind == "vqvae" and not cfg.vqvae_file:
            _log("vqvae: no --vqvae file given; skipped")
            continue
        folder = work / f"codes-{kind}"
        proj = _projector(kind, cfg)
        # a PCA is fitted in extraction: its identity is known only then (it is refitted
        # only with --redo codes); the others are fixed by their weights files
        ident = None if proj.needs_fit else json.loads(json.dumps(proj.identity(), default=str))
        old = store.data.get(f"codes/{kind}")
        if ident is not None and old is not None and old.get("identity", ident) != ident:
            # new generator (or VQ-VAE) weights: its codes and every figure made from them
            # (its few-shot points too: fewshot/KIND/...; the CNNs' do not depend on it)
            _log(f"{kind}: the projector changed since the cached results; recomputing them")
            store.drop(lambda k, kind=kind: kind in k.split("/"))
        elif old is not None and not (Path(old["folder"]) / "meta.json").exists():
            # a kept cache on a fresh checkout: the codes are made again, the results
            # computed from them stay (the same projector; a PCA is refitted on the same faces)
            _log(f"{kind}: the cached codes folder {old['folder']} is gone; extracting again")
            store.drop(lambda k, kind=kind: k == f"codes/{kind}")

        def run(kind=kind, folder=folder, proj=proj, ident=ident,
                fresh="codes" in cfg.redo or (ident is not None and old is not None)):
            from .engines import make_engine

            t = time.perf_counter()
            extract(cfg.manifest, proj, folder, progress=True, log=_log,
                    prealigned=cfg.prealigned, overwrite=fresh,
                    engine=make_engine(cfg.engine, **cfg.engine_options))
            c = load_codes(folder)
            s = time.perf_counter() - t
            # per face from the extraction's own clock: a folder completed earlier (a
            # resume) takes no time here; a PCA's fit is training, not inference
            work_s, faces = c.meta.get("work_s"), c.meta.get("work_faces")
            return {"folder": str(folder), "identity": ident, "n": len(c), "n_failed": len(c.failed),
                    "seconds": round(s, 1), "name": c.projector.get("name"),
                    "s_per_face": work_s / faces if faces else s / max(1, len(c) + len(c.failed))}
        out[kind] = store.get(f"codes/{kind}", run)
    return out


def section_table(cfg, store, work, codes):
    """Table 1 rows: {row_name: {...}}."""
    from .baselines import evaluate_baseline, train_baseline
    from .evaluate import evaluate_detector, train_detector

    rows = {}
    for kind, info in codes.items():
        if kind == "crops":
            continue
        for clf in cfg.classifiers:
            def run(kind=kind, clf=clf, info=info):
                path = work / "detectors" / f"{kind}-{clf}.safetensors"
                ckind, params = _kind_params(cfg, clf)
                t = time.perf_counter()
                det = train_detector(info["folder"], ckind, path, seed=cfg.seed, params=params,
                                     log=_log)
                fit_s = time.perf_counter() - t
                t = time.perf_counter()
                m = evaluate_detector(info["folder"], det, split="test", log=_log)
                clf_s = (time.perf_counter() - t) / max(1, m["n"])
                return {"projector": kind, "classifier": clf, "detector": str(path),
                        "n_train": det.metrics["n_train"], "train_s": round(fit_s, 2),
                        "infer_s_per_face": info["s_per_face"] + clf_s,
                        "val": (det.metrics or {}).get("val"), **_row_metrics(m),
                        **_test_record(m)}
            rows[f"{kind}/{clf}"] = store.get(f"table/{kind}/{clf}", run)
    if "crops" in codes:
        for arch in cfg.cnns:
            def run(arch=arch):
                path = work / "detectors" / f"cnn-{arch}.safetensors"
                det = train_baseline(codes["crops"]["folder"], arch, path, seed=cfg.seed,
                                     max_epochs=cfg.cnn_epochs, arch_kw=cfg.cnn_kw.get(arch),
                                     log=_log)
                fit_s = det.train_info_["fit_seconds"]  # resumed epochs included
                t = time.perf_counter()
                m = evaluate_baseline(codes["crops"]["folder"], det, split="test")
                per = (time.perf_counter() - t) / max(1, m["n"])
                return {"projector": "pixels (CNN)", "classifier": arch, "detector": str(path),
                        "n_train": det.metrics["n_train"], "train_s": round(fit_s, 2),
                        "infer_s_per_face": codes["crops"]["s_per_face"] + per,
                        "n_parameters": det.n_parameters, "epochs": det.train_info_.get("epochs"),
                        "best_epoch": det.train_info_.get("best_epoch"),
                        "val_loss": det.train_info_.get("best_val_loss"), **_row_metrics(m),
                        **_test_record(m)}
            rows[f"cnn/{arch}"] = store.get(f"table/cnn/{arch}", run)
    return rows


def section_recon(cfg, store, work, codes):
    """PSNR / SSIM (/ LPIPS) of each projector's reconstructions at 256 px."""
    from .. import inversion as inv
    from ..inversion import image_scores
    from ..losses import perceptual
    from ..stats import mean_ci95
    from .extract import load_codes
    from .projectors import load_projector

    if "crops" not in codes:
        return {}
    crops = load_codes(codes["crops"]["folder"]).where("test")
    rng = np.random.default_rng(cfg.seed)
    pick = np.sort(rng.permutation(len(crops))[:cfg.recon_faces])
    x = crops.codes[pick]  # (n, 256, 256, 3) uint8
    lp = perceptual()
    out = {}

    def summary(y, x=x):  # each face's scores too: rows on the same faces are paired
        p, s = image_scores(x, y)
        r = {"n": len(x), "psnr": mean_ci95(p), "ssim": mean_ci95(s),
             "psnr_each": np.round(p, 3).tolist(), "ssim_each": np.round(s, 4).tolist()}
        if lp.is_lpips:
            import torch

            with torch.no_grad():
                d = lp(inv.to_tensor(y), inv.to_tensor(x)).numpy()
            r["lpips"] = mean_ci95(d)
        return r

    for kind in codes:
        if kind == "crops" or _steps(kind):  # k-step codes: the "encoder + k steps" row below
            continue

        def run(kind=kind):
            proj = load_projector(Path(codes[kind]["folder"]) / "projector.safetensors")
            if kind == "stylegan":
                model = proj.model
                y = np.concatenate([inv.reconstruct(model, inv.encode(model, x[i:i + 16]))
                                    for i in range(0, len(x), 16)])
                return {"encoder-only": summary(y)}
            y = np.concatenate([_resize(proj.reconstruct(proj.project(x[i:i + 64])), 256)
                                for i in range(0, len(x), 64)])
            return {kind: summary(y)}
        out.update(store.get(f"recon/{kind}", run))
    if "stylegan" in codes and cfg.recon_steps and cfg.recon_steps_faces:
        k = min(cfg.recon_steps_faces, len(x))  # the first k of the faces above

        def run():
            proj = load_projector(Path(codes["stylegan"]["folder"]) / "projector.safetensors")
            _log(f"reconstruction: {k} faces x {cfg.recon_steps} inversion steps")
            y = inv.reconstruct(proj.model, inv.run_batch(proj.model, x[:k], steps=cfg.recon_steps))
            return {f"encoder + {cfg.recon_steps} steps": summary(y, x[:k])}
        out.update(store.get(f"recon/stylegan/{cfg.recon_steps}-steps/{k}-faces", run))
    out["_perceptual"] = lp.name
    return out


def _recon_paired(rec, ours) -> list[str]:
    """Report lines: each StyleGAN row minus each other projector, face by face (the rows
    score the same faces in the same order; a k-face row pairs with the first k)."""
    from ..stats import mean_ci95

    rows = []
    for a in [k for k in ours if "psnr_each" in rec.get(k, {})]:
        for b in [k for k in rec if k not in ours and "psnr_each" in rec[k]]:
            n = min(rec[a]["n"], rec[b]["n"])
            d = {m: mean_ci95(np.subtract(rec[a][f"{m}_each"][:n], rec[b][f"{m}_each"][:n]))
                 for m in ("psnr", "ssim")}
            rows.append(f"| stylegan {a} minus {b} | {n} | {d['psnr'][0]:+.2f} ± "
                        f"{d['psnr'][1]:.2f} | {d['ssim'][0]:+.3f} ± {d['ssim'][1]:.3f} |")
    if not rows:
        return []
    return ["", "Side by side: each face against its own reconstruction by another projector "
            "(paired differences over the same faces, mean ± 95% CI):", "",
            "| | faces | PSNR dB | SSIM |", "|---|---|---|---|", *rows]


def _resize(imgs, size):
    """(N, h, w, 3) uint8 -> (N, size, size, 3) uint8, bicubic (PCA / VQ-VAE work below 256 px)."""
    if imgs.shape[1] == size:
        return imgs
    from torch.nn import functional as F

    from .. import inversion as inv

    x = F.interpolate(inv.to_tensor(imgs), size=(size, size), mode="bicubic", align_corners=False)
    return inv.to_image(x)


def _rf_params(cfg, trees):
    return {"n_trees": trees, "max_features": cfg.rf_max_features}


def _kind_params(cfg, name, trees=None) -> tuple[str, dict | None]:
    """A bench classifier name -> (lf_core classifier kind, its parameters). 'mlp2-reg' and
    'mlp5-reg': the MLP with its REGULARISED recipe (lf train --regularise)."""
    from ..classifiers import CLASSIFIERS as KINDS

    kind, _, variant = name.partition("-")
    known = kind in KINDS and (not variant or variant == "reg" and hasattr(KINDS[kind], "REGULARISED"))
    if not known:
        raise LFError(f"unknown bench classifier {name!r}; use {', '.join(KINDS)}, mlp2-reg "
                      "or mlp5-reg")
    if kind == "rf":
        return kind, _rf_params(cfg, trees or cfg.rf_trees)
    return kind, (dict(KINDS[kind].REGULARISED) if variant else None)


def _fit_score(kind, tr, te, channels=None, seed=0, params=None):
    from ..classifiers import CLASSIFIERS

    clf = CLASSIFIERS[kind](channels=channels, seed=seed, **(params or {}))
    return _test_metrics(clf.fit(tr.codes, tr.labels, groups=tr.groups), te)


def _test_metrics(det, te):
    """Row metrics of a fitted detector (latent classifier or CNN) on the rows `te`."""
    from ..classifiers import prior_threshold
    from .evaluate import metrics

    p = det.predict_proba(te.codes)[:, 1]
    return _row_metrics(metrics(te.labels, p, te.groups,
                                threshold=prior_threshold(0.5, det.train_fake_share_)))


def section_channels(cfg, store, codes):
    """Accuracy per W+ row, for RF and MLP-5."""
    from .extract import load_codes

    if "stylegan" not in codes:
        return {}
    c = load_codes(codes["stylegan"]["folder"])
    tr, te = c.where("train", labelled=True), c.where("test", labelled=True)
    out = {}
    for name in cfg.channel_classifiers:
        kind, params = _kind_params(cfg, name, cfg.channel_rf_trees)

        def run(name=name, kind=kind, params=params):
            rows = []
            for r in range(tr.codes.shape[1]):
                _log(f"per-row accuracy, {name}: W+ row {r} ({r + 1} of {tr.codes.shape[1]})")
                rows.append(_fit_score(kind, tr, te, channels=[r], seed=cfg.seed, params=params))
            return rows
        out[name] = store.get(f"channels/stylegan/{name}", run)
    return out


def _best(rows, pred):
    cand = [(k, r) for k, r in rows.items() if pred(k)]
    if not cand:
        return None
    def key(kr):  # validation split only: the test split never picks a winner
        r = kr[1]
        if r.get("val_loss") is not None:  # CNNs: early-stopping loss on held-out groups
            return -r["val_loss"]
        return (r.get("val") or {}).get("roc_auc") or 0.0
    return max(cand, key=key)[0]


def _best_latent(table):
    """The method's latent row (encoder-only or k-step StyleGAN codes) that validates best,
    else the best other projector's."""
    return (_best(table, lambda k: _base(k.split("/")[0]) == "stylegan")
            or _best(table, lambda k: not k.startswith("cnn/")))


def _take_groups(tr, n, seed):
    groups = np.unique(tr.groups)
    if n >= len(groups):
        return tr
    keep = np.random.default_rng(seed).permutation(groups)[:n]
    return tr.take(np.isin(tr.groups, keep))


def section_fewshot(cfg, store, codes, table):
    """Test accuracy against the number of training groups: every classifier on the best
    latent row's codes, and the best CNN. Each size below all is drawn `fewshot_draws`
    times (draw d: groups and fit seed cfg.seed + d); every row gets the same groups in a
    draw, so they compare draw by draw."""
    out = {}
    best_lat = _best_latent(table)
    lat = [k for k in table if best_lat and k.split("/")[0] == best_lat.split("/")[0]]
    best_cnn = _best(table, lambda k: k.startswith("cnn/"))
    for row in lat + ([best_cnn] if best_cnn else []):
        tr, te = _train_test(codes, row)
        pool = _groups_sha(tr.groups)  # which groups the draws come from (the pairing checks it)
        pts = []
        for n in cfg.fewshot_groups:
            if n == 0:  # all groups: Table 1's row as it stands (not a cached copy, which
                # a redone table row would leave stale), the same fit (data, seed, epochs)
                pts.append({"groups": int(len(np.unique(tr.groups))),
                            **_point(table[row], ("eer", "n", "n_train"))})
                continue

            def run(n=n, row=row, tr=tr, te=te, seed=cfg.seed):
                sub = _take_groups(tr, n, seed)
                if len(np.unique(sub.labels)) < 2:
                    return None
                return {"groups": int(len(np.unique(sub.groups))), "n_train": len(sub),
                        **_refit(cfg, row, sub, te, seed)}
            # draw 0 keeps the key it had before draws existed (caches stay valid)
            draws = [store.get(f"fewshot/{row}/{n}" + (f"/draw{d}" if d else ""),
                               lambda d=d, run=run: run(seed=cfg.seed + d))
                     for d in range(max(1, cfg.fewshot_draws))]
            draws = [p for p in draws if p]
            if draws:
                pts.append({**_mean_point(draws), "pool": pool})
        if any(pts):
            out[row] = [p for p in pts if p]
    return out


def _mean_point(draws: list[dict]) -> dict:
    """Draws of one few-shot size -> their mean figures, with every draw's kept."""
    mean = {k: float(np.mean([d[k] for d in draws if d.get(k) is not None]))
            for k in ("accuracy", "balanced_accuracy", "roc_auc", "n_train")
            if any(d.get(k) is not None for d in draws)}
    return {"groups": draws[0]["groups"], **mean, "n_train": int(round(mean["n_train"])),
            "draws": [{k: d.get(k) for k in ("n_train", "accuracy", "roc_auc")} for d in draws]}


def _groups_sha(groups) -> str:
    """A short fingerprint of a set of group names."""
    return _fingerprint(map(str, np.unique(groups)), 12)


def fewshot_paired(fewshot: dict) -> list[dict]:
    """Each latent row minus the CNN row, draw by draw, per few-shot size: only where both
    drew from the same pool of training groups (then draw d gave both the same groups)."""
    cnn = [r for r in fewshot if r.startswith("cnn/")]
    if not cnn:
        return []
    by_n = {p["groups"]: p for p in fewshot[cnn[0]]}
    out = []
    for row, p in ((r, p) for r in fewshot if not r.startswith("cnn/") for p in fewshot[r]):
        q = by_n.get(p["groups"])
        if not (q and p.get("draws") and q.get("draws") and p.get("pool")
                and p["pool"] == q.get("pool")):
            continue
        d = [a["roc_auc"] - b["roc_auc"] for a, b in zip(p["draws"], q["draws"])
             if a.get("roc_auc") is not None and b.get("roc_auc") is not None]
        if d:
            out.append({"groups": p["groups"], "latent": row, "cnn": cnn[0], "diffs": d,
                        "mean": float(np.mean(d)), "ahead": int(sum(x > 0 for x in d))})
    return out


def _train_test(codes, row):
    """The labelled train and test rows of a Table 1 row's codes (crops for a CNN row)."""
    from .extract import load_codes

    proj = row.split("/")[0]
    c = load_codes(codes["crops" if proj == "cnn" else proj]["folder"])
    return c.where("train", labelled=True), c.where("test", labelled=True)


def _refit(cfg, row, tr, te, seed, ckpt=None):
    """Test metrics of a Table 1 row's classifier fitted again on `tr` with `seed`. ckpt: a
    CNN's checkpoint file (a killed bench goes on from it; removed once the fit is done)."""
    proj, clf = row.split("/")
    if proj == "cnn":
        from .baselines import CNNDetector

        det = CNNDetector(clf, seed=seed, max_epochs=cfg.cnn_epochs, arch_kw=cfg.cnn_kw.get(clf))
        m = _test_metrics(det.fit(tr.codes, tr.labels, tr.groups, log=_log, checkpoint=ckpt), te)
        if ckpt:
            Path(ckpt).unlink(missing_ok=True)
        return m
    kind, params = _kind_params(cfg, clf)
    return _fit_score(kind, tr, te, seed=seed, params=params)


def _point(row: dict, extra=()) -> dict:
    """A Table 1 row's test figures, as a point of a curve or a seed's fit."""
    return {k: row[k] for k in ("accuracy", "balanced_accuracy", "roc_auc", *extra)}


def _test_probs(row: dict, folder) -> dict:
    """{path: (label, group, p_fake)} of a Table 1 row on the test split: its kept
    probabilities, or (rows from before they were kept) its saved detector's."""
    from .baselines import evaluate_baseline
    from .evaluate import evaluate_detector
    from .extract import load_codes

    if "test_p" in row:
        ev = load_codes(folder, with_codes=False).where("test")
        if _faces_digest(ev.paths) == row["test_faces"]:
            return {p: (int(y), g, q) for p, y, g, q in
                    zip(ev.paths, ev.labels, ev.groups, row["test_p"]) if y >= 0}
        _log(f"{row['projector']}/{row['classifier']}: its kept test probabilities are of "
             f"other faces than {folder}'s; scoring its detector again")
    if not Path(row["detector"]).is_file():
        raise LFError(f"{row['detector']} is gone and its Table 1 row keeps no test "
                      "probabilities: rerun with --redo table (or delete that row from "
                      "WORK/results.json) to fit it again")
    if row["projector"] == "pixels (CNN)":
        m = evaluate_baseline(folder, row["detector"], split="test")
    else:
        m = evaluate_detector(folder, row["detector"], split="test", log=_log)
    return {r["path"]: (r["label"], r["group"], r["prob_fake"]) for r in m["predictions"]
            if r["label"] >= 0}


def section_compare(cfg, codes, table):
    """The best latent row (by validation) against the best CNN, beyond chance: test AUCs
    with 95% intervals from a bootstrap over test groups (source videos, resampled with
    replacement, both detectors on the same resample), and their paired difference. Not
    cached: it reads the saved detectors of the table as it stands."""
    from sklearn.metrics import roc_auc_score

    from ..stats import bootstrap_auc, percentile_ci95

    best_lat = _best_latent(table)
    best_cnn = _best(table, lambda k: k.startswith("cnn/"))
    if not (best_lat and best_cnn and cfg.bootstrap):
        return {}
    _log(f"bootstrap over test groups: {best_lat} vs {best_cnn}")
    a = _test_probs(table[best_lat], codes[best_lat.split("/")[0]]["folder"])
    b = _test_probs(table[best_cnn], codes["crops"]["folder"])
    paths = sorted(set(a) & set(b))  # faces that aligned in both extractions
    y = np.array([a[k][0] for k in paths])
    g = np.array([a[k][1] for k in paths])
    pa, pb = np.array([a[k][2] for k in paths]), np.array([b[k][2] for k in paths])
    s = bootstrap_auc(y, [pa, pb], g, cfg.bootstrap, cfg.seed)  # (B, 2): latent, CNN
    if not len(s):  # every resample had one class only (a tiny test split)
        return {}
    d = s[:, 0] - s[:, 1]
    auc_a, auc_b = roc_auc_score(y, pa), roc_auc_score(y, pb)
    return {"latent": best_lat, "cnn": best_cnn, "n": len(paths), "groups": len(np.unique(g)),
            "resamples": len(s), "auc_latent": auc_a, "auc_latent_ci": percentile_ci95(s[:, 0]),
            "auc_cnn": auc_b, "auc_cnn_ci": percentile_ci95(s[:, 1]), "diff": auc_a - auc_b,
            "diff_ci": percentile_ci95(d), "p_latent_not_better": float((d <= 0).mean())}


def section_seeds(cfg, store, codes, table):
    """Test AUC of the best latent row, and of the best CNN, refitted with other seeds
    (the table's fit is seed cfg.seed): how much of a difference between rows is the luck
    of one fit. {row, fits, auc_mean, auc_sd} of the latent row, the CNN's under "cnn"."""
    out = {}
    best_lat = _best_latent(table)
    if best_lat and cfg.seeds >= 2:
        out = _seed_spread(cfg, store, codes, table, best_lat, cfg.seeds)
    best_cnn = _best(table, lambda k: k.startswith("cnn/"))
    if best_cnn and cfg.cnn_seeds >= 2:
        out["cnn"] = _seed_spread(cfg, store, codes, table, best_cnn, cfg.cnn_seeds)
    return out


def _seed_spread(cfg, store, codes, table, row, n):
    tr, te = _train_test(codes, row)
    pts = [{"seed": cfg.seed, **_point(table[row])}]
    for seed in range(cfg.seed + 1, cfg.seed + n):
        def run(seed=seed):
            _log(f"seed spread: {row}, seed {seed}")
            ck = store.path.parent / "detectors" / f"{row.replace('/', '-')}-seed{seed}.ckpt"
            return {"seed": seed, **_point(_refit(cfg, row, tr, te, seed, ck))}
        pts.append(store.get(f"seeds/{row}/{seed}", run))
    auc = np.array([p["roc_auc"] for p in pts], float)
    return {"row": row, "fits": pts, "auc_mean": float(auc.mean()),
            "auc_sd": float(auc.std(ddof=1))}


# --------------------------------------------------------------------------- run + report


class _sigterm_as_exit:
    """Within: SIGTERM (`kill`, `pkill`) raises SystemExit, so `finally` blocks run (run_bench
    logs the run in one) as for Ctrl-C. Only in the main thread, where Python allows handlers."""

    def __enter__(self):
        import signal
        import threading

        self.old = None
        if threading.current_thread() is threading.main_thread():
            self.old = signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    def __exit__(self, *exc):
        import signal

        if self.old is not None:
            signal.signal(signal.SIGTERM, self.old)


def run_bench(cfg: BenchConfig) -> Path:
    """Run every section (cached), write results/NAME.json, figures and RESULTS.md."""
    work = Path(cfg.work)
    work.mkdir(parents=True, exist_ok=True)
    if not Path(cfg.manifest).is_file():
        raise LFError(f"manifest not found: {cfg.manifest}")
    for clf in (*cfg.classifiers, *cfg.channel_classifiers):
        _kind_params(cfg, clf)  # an unknown name fails now, not hours in
    store = _Store(work / "results.json", cfg.redo, manifest=str(cfg.manifest),
                   keep=Path(cfg.out_dir) / "results" / "cache" / f"{cfg.name}.json")
    log = work / "runs.jsonl"  # every invocation over this cache (below)
    last = Path(cfg.out_dir) / "results" / f"{cfg.name}.json"  # the last finished run's
    if store.seeded and last.exists() and not log.exists():  # its runs go on counting
        runs = json.loads(last.read_text()).get("runs") or []
        atomic_write_bytes(log, "".join(json.dumps(r) + "\n" for r in runs).encode())
    t0, resumed, done = time.perf_counter(), bool(store.data), False
    try:
        with _sigterm_as_exit():
            codes = section_codes(cfg, store, work)
            table = section_table(cfg, store, work, codes)
            recon = section_recon(cfg, store, work, codes)
            channels = section_channels(cfg, store, codes)
            fewshot = section_fewshot(cfg, store, codes, table)
            seeds = section_seeds(cfg, store, codes, table)
            compare = section_compare(cfg, codes, table)
        done = True
    finally:
        # WORK/runs.jsonl: every invocation over this cache, stopped ones too (Ctrl-C,
        # kill), so that a cached rerun does not hide what the whole took
        atomic_append(log, json.dumps({"date": time.strftime("%Y-%m-%d %H:%M"),
                                       "wall_s": round(time.perf_counter() - t0, 1),
                                       "resumed": resumed, "finished": done}) + "\n")
    store.save_keep()  # WORK/results.json edited by hand (a row deleted, say) is kept too

    runs = [json.loads(x) for x in log.read_text().splitlines() if x.strip()]
    res = {"name": cfg.name, "manifest": str(cfg.manifest), "config": asdict(cfg),
           "command": "lf " + shlex.join(sys.argv[1:]) if sys.argv and "lf" in Path(sys.argv[0]).name
           else None,
           "machine": machine(),
           "date": time.strftime("%Y-%m-%d"), "wall_s": runs[-1]["wall_s"],
           "codes": codes, "recon": recon, "channels": channels,
           "table": {k: {f: v for f, v in r.items() if f != "test_p"} for k, r in table.items()},
           "fewshot": fewshot, "seeds": seeds, "compare": compare, "runs": runs}
    out_dir = Path(cfg.out_dir)
    (out_dir / "results").mkdir(parents=True, exist_ok=True)
    atomic_write_json(out_dir / "results" / f"{cfg.name}.json", res)
    return write_report(out_dir)


def _f(v, d=3):
    return "–" if v is None else f"{v:.{d}f}"


def _ci(v, d=2):
    return "–" if not v else f"{v[0]:.{d}f} ± {v[1]:.{d}f}"


def _save(fig, axes, path: Path) -> Path:
    import matplotlib.pyplot as plt

    axes[0].legend(fontsize=8)
    fig.tight_layout()
    atomic_write(path, lambda f: fig.savefig(f, dpi=110, format=path.suffix[1:]))
    plt.close(fig)
    return path


METRICS = (("accuracy", "test accuracy"), ("roc_auc", "test ROC AUC"))  # one panel each


def _figures(res, fig_dir: Path) -> dict:
    """Per-row bars and few-shot curves: a panel for accuracy and one for ROC AUC."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figs = {}
    ch = res.get("channels") or {}
    if ch:
        fig, axes = plt.subplots(2, 1, figsize=(7, 5.6), sharex=True)
        from ..layout import channel_labels

        labels = channel_labels()
        n = len(next(iter(ch.values())))
        for ax, (key, name) in zip(axes, METRICS):
            for i, (kind, pts) in enumerate(ch.items()):
                ax.bar(np.arange(n) + (i - 0.5) * 0.4, [p.get(key) or np.nan for p in pts], 0.4,
                       label=kind.upper())
            ax.axhline(0.5, color="grey", lw=0.8, ls="--")
            ax.axvspan(7.5, 11.5, color="orange", alpha=0.1, label="rows 8-11")
            ax.set_ylabel(name)
        axes[-1].set_xticks(range(n), labels[:n], rotation=60, fontsize=7)
        axes[0].set_title(f"{res['name']}: one W+ row at a time")
        figs["channels"] = _save(fig, axes, fig_dir / f"{res['name']}_channels.png")
    fs = {k: v for k, v in (res.get("fewshot") or {}).items() if v}
    if fs:
        fig, axes = plt.subplots(1, 2, figsize=(9, 3.2))
        for ax, (key, name) in zip(axes, METRICS):
            for row, pts in fs.items():
                x = [p["groups"] for p in pts]
                y = [p.get(key) or np.nan for p in pts]
                ax.plot(x, y, "o-", label=row)
                # every draw's own figure, where a size was drawn more than once
                many = [(p["groups"], d) for p in pts if len(p.get("draws", ())) > 1
                        for d in p["draws"]]
                ax.plot([g for g, _ in many], [d.get(key) or np.nan for _, d in many], ".",
                        color=ax.lines[-1].get_color(), alpha=0.5)
            ax.set_xscale("log")
            ax.axhline(0.5, color="grey", lw=0.8, ls="--")
            ax.set_xlabel("training groups (source videos, or images if ungrouped)")
            ax.set_ylabel(name)
        axes[0].set_title(f"{res['name']}: few-shot")
        figs["fewshot"] = _save(fig, axes, fig_dir / f"{res['name']}_fewshot.png")
    return figs


def _ordered(table: dict) -> list[dict]:
    """Rows in the paper's order: StyleGAN (encoder-only, then by steps), PCA, VQ-VAE, then
    the CNNs; RF, LR, MLP-2, MLP-5."""
    proj = ["stylegan", "pca", "vqvae", "pixels (CNN)"]
    clf = [*CLASSIFIERS, *CNNS]

    def rank(r):
        p = _base(r["projector"])
        return (proj.index(p) if p in proj else 99, _steps(r["projector"]) if p == "stylegan" else 0,
                clf.index(r["classifier"]) if r["classifier"] in clf else 99)
    return sorted(table.values(), key=rank)


def _rows_8_11(ch: dict) -> str:
    """The paper's claim about W+ rows 8-11, checked: their mean AUC against the others'."""
    out = []
    for k, rows in ch.items():
        auc = np.array([r.get("roc_auc") or np.nan for r in rows], float)
        mid = np.zeros(len(auc), bool)
        mid[8:12] = True
        out.append(f"{k.upper()} {np.nanmean(auc[mid]):.3f} vs {np.nanmean(auc[~mid]):.3f}")
    return ("Mean AUC of rows 8-11 (the paper's most telling channels) vs the other rows: "
            + "; ".join(out) + ".")


def _cpu(m) -> str:  # results written before machine() had the model and ISA: nothing
    return f"{m['cpu']} ({m['isa']}), " if "isa" in m else ""


def _wall(res) -> str:
    runs = res.get("runs") or []
    # "resumed" is logged since 2026-11-28; a stopped run left no line before that
    unlogged = (" went on from the results of earlier runs that were not logged"
                if runs and runs[0].get("resumed") else "")
    this = f"this run {res['wall_s']:.0f} s (cached sections count 0)"
    if len(runs) < 2:
        return (f"{this}; it{unlogged}" if unlogged else
                f"whole run {res['wall_s']:.0f} s (cached sections count 0)")
    stopped = sum(r.get("finished") is False for r in runs)
    return (f"{this}; {len(runs)} runs over this cache"
            + (f" ({stopped} stopped before the end)" if stopped else "")
            + f", {sum(r['wall_s'] for r in runs):.0f} s in all (ended {runs[0]['date']} to "
            f"{runs[-1]['date']})" + (f"; the first{unlogged}" if unlogged else ""))


def _stale_generator(res) -> list[str]:
    """The StyleGAN code kinds of a run made with other weights than the shipped default."""
    from ..artifacts import file_digest
    from ..model import DEFAULT_WEIGHTS

    now = file_digest(DEFAULT_WEIGHTS)
    return [k for k, c in res["codes"].items()
            if (c.get("identity") or {}).get("kind") == "stylegan" and now
            and DEFAULT_WEIGHTS.name in (c.get("name") or "")
            and c["identity"].get("weights_sha256") != now]


def _section_md(res, out_dir: Path) -> list[str]:
    fig_dir = out_dir / "figures"
    fig_dir.mkdir(exist_ok=True)
    figs = _figures(res, fig_dir)
    L = [f"## {res['name']}", "",
         f"Manifest `{res['manifest']}`; {res['date']}; {_cpu(res['machine'])}"
         f"{res['machine']['cpus']} CPUs, {res['machine']['torch_threads']} torch threads; "
         f"{_wall(res)}. Times come from the run that computed each row: rows "
         "computed beside other jobs (e.g. a generator training) show slower times.", ""]
    if res.get("command"):
        L += ["```bash", res["command"], "```", ""]
    stale = _stale_generator(res)
    if stale:
        from ..model import DEFAULT_WEIGHTS

        L += [f"**Stale for the shipped generator:** the StyleGAN rows ({', '.join(stale)}) "
              f"were computed with an earlier `weights/{DEFAULT_WEIGHTS.name}`; rerun the "
              "command above to refresh them (the other rows do not depend on it).", ""]
    L += ["### Codes", "", "| projector | faces | not aligned | s / face (decode + align + project) |",
          "|---|---|---|---|"]
    for k, c in res["codes"].items():
        sha = (c.get("identity") or {}).get("weights_sha256")
        name = c.get("name") or k
        if sha:  # "stylegan (encoder only, FILE)" -> "stylegan (encoder only, FILE, sha256 ...)"
            name = (f"{name[:-1]}, sha256 {sha[:8]})" if name.endswith(")")
                    else f"{name} (sha256 {sha[:8]})")
        L.append(f"| {name} | {c['n']} | {c['n_failed']} | {c['s_per_face']:.3f} |")
    L += ["", "### Table 1: test split (group-disjoint)", "",
          "| projector | classifier | accuracy | balanced acc. | ROC AUC | EER | train faces "
          "| train time (s) | inference (ms / face) |", "|---|---|---|---|---|---|---|---|---|"]
    for r in _ordered(res["table"]):
        clf = r["classifier"] + (f" ({r['epochs']} epochs)" if r.get("epochs") else "")
        L.append(f"| {_label(r['projector'])} | {clf} | {_f(r['accuracy'])} | "
                 f"{_f(r['balanced_accuracy'])} | {_f(r['roc_auc'])} | {_f(r['eer'])} | "
                 f"{r['n_train']} | {r['train_s']:.1f} | {r['infer_s_per_face'] * 1000:.0f} |")
    cfg = res["config"]
    from ..classifiers import LogReg

    note = (f"RF: {cfg['rf_trees']} trees (gini, max_features "
            f"{cfg.get('rf_max_features', 'sqrt')}). LR: C picked among "
            f"{', '.join(f'{c:g}' for c in LogReg.CS)} by {LogReg.FOLDS} group folds of the "
            "training faces. MLPs: SGD, lr 5e-4, BCE, early stopping on "
            "held-out groups (3 epochs without progress).")
    if any(c.endswith("-reg") for c in cfg.get("classifiers", ())):
        from ..classifiers import MLP2

        r = MLP2.REGULARISED
        note += (f" mlp2-reg (not in the paper): the same MLP-2 with dropout {r['dropout'][0]:g} "
                 f"on the code and {r['dropout'][1]:g} after the hidden layer, AdamW (lr "
                 f"{r['lr']:g}, weight decay {r['weight_decay']:g}), early stopping after "
                 f"{r['patience']} epochs without progress (lf train --regularise; the "
                 "default detector's recipe).")
    if cfg.get("cnns"):
        note += (" CNNs: trained from scratch (no ImageNet weights offline; EfficientNet-B0 is "
                 "torchvision's architecture, Xception and Meso-4 are written in "
                 "lf_core/lab/baselines.py), early stopping on held-out groups, epochs as run.")
        if "xception" in cfg["cnns"]:
            note += (f" Xception args {cfg['cnn_kw'].get('xception')} (a compact variant for "
                     "the CPU).")
        for r in _ordered(res["table"]):
            if r.get("best_epoch") and r["best_epoch"] == r.get("epochs") == cfg["cnn_epochs"]:
                note += (f" {r['classifier']}'s held-out loss was lowest at its last epoch "
                         f"({r['epochs']}), so more epochs might lift it; this run does not test that.")
            if r.get("fit_command"):
                note += (f" The {r['classifier']} row's fit was made by `{r['fit_command']}` "
                         "(the same recipe and seed) and cached into this run.")
    L += ["", note, ""]
    rec = {k: v for k, v in (res.get("recon") or {}).items() if not k.startswith("_")}
    if rec:
        has_lp = any("lpips" in v for v in rec.values())
        L += ["### Reconstruction quality (test faces, 256 px, mean ± 95% CI)", "",
              "| projector | faces | PSNR dB | SSIM |" + (" LPIPS |" if has_lp else ""),
              "|---|---|---|---|" + ("---|" if has_lp else "")]
        first = ["encoder-only"] + [k for k in rec if k.startswith("encoder +")]
        for k in sorted(rec, key=lambda k: (first.index(k) if k in first else 9, k)):
            v = rec[k]
            name = f"stylegan {k}" if k in first else k
            L.append(f"| {name} | {v['n']} | {_ci(v['psnr'])} | {_ci(v['ssim'], 3)} |"
                     + (f" {_ci(v.get('lpips'), 3)} |" if has_lp else ""))
        L += _recon_paired(rec, first)
        if not has_lp:
            L += ["", f"LPIPS: not reported; the inversion used {res['recon'].get('_perceptual')}. "
                  "PSNR and SSIM need no download."]
        L.append("")
    if "channels" in figs:
        ch = res["channels"]
        L += ["### Accuracy and AUC per W+ row (one row alone)", "",
              f"![per-row accuracy and AUC](figures/{figs['channels'].name})", "",
              "| row | " + " | ".join(f"{k.upper()} acc. | {k.upper()} AUC" for k in ch) + " |",
              "|---|" + "---|---|" * len(ch)]
        from ..layout import channel_labels

        for i, lab in enumerate(channel_labels()[:len(next(iter(ch.values())))]):
            L.append(f"| {lab} | " + " | ".join(f"{_f(ch[k][i]['accuracy'])} | "
                                                f"{_f(ch[k][i].get('roc_auc'))}" for k in ch) + " |")
        L += ["", _rows_8_11(ch) + (f" Per-row forests have {cfg['channel_rf_trees']} trees."
                                    if "rf" in ch else ""), ""]
    if "fewshot" in figs:
        L += ["### Few-shot", "", f"![few-shot](figures/{figs['fewshot'].name})", "",
              "| detector | groups | draws | train faces | accuracy | ROC AUC | AUC of each draw |",
              "|---|---|---|---|---|---|---|"]
        for row, pts in res["fewshot"].items():
            for p in pts:
                each = ", ".join(_f(d.get("roc_auc")) for d in p.get("draws", ()))
                L.append(f"| {row} | {p['groups']} | {len(p.get('draws', ())) or 1} | "
                         f"{p['n_train']} | {_f(p['accuracy'])} | {_f(p['roc_auc'])} | "
                         f"{each or 'Table 1'} |")
        L += ["", "Below all groups, each size is drawn several times (other groups and fit "
              "seed per draw; accuracy and AUC are the draws' means). All groups: Table 1's fit."]
        paired = fewshot_paired(res["fewshot"])
        if paired:
            L += ["", f"Paired by draw (the same training groups), minus {paired[0]['cnn']}, "
                  "test AUC:", ""]
            for row in dict.fromkeys(d["latent"] for d in paired):
                L.append(f"- {row}: " + "; ".join(
                    f"{d['groups']} groups {d['mean']:+.3f} (ahead in {d['ahead']} of "
                    f"{len(d['diffs'])} draws)" for d in paired if d["latent"] == row) + ".")
        L.append("")
    L += _chance_md(res)
    return L


def _spread_md(d) -> str:
    aucs = ", ".join(f"{p['roc_auc']:.3f}" for p in d["fits"])
    return (f"{d['row']} refitted with {len(d['fits'])} seeds has test AUC {aucs} "
            f"(mean {d['auc_mean']:.3f}, sd {d['auc_sd']:.3f})")


def _chance_md(res) -> list[str]:
    """The 'is it more than luck?' paragraph: seed spread and the group bootstrap."""
    sd, cmp = res.get("seeds") or {}, res.get("compare") or {}
    if not (sd or cmp):
        return []
    L = ["### Beyond chance?", ""]
    lat, cnn_sd = {k: v for k, v in sd.items() if k != "cnn"}, sd.get("cnn")
    if lat:
        L.append(f"- Seed spread: {_spread_md(lat)}.")
    if cnn_sd:
        L.append(f"- Seed spread of the CNN: {_spread_md(cnn_sd)}.")
    elif lat:
        cnn = res["table"].get(cmp.get("cnn"), {})
        took = (f"; {cmp['cnn']} took {cnn['train_s'] / 60:.0f} min to fit here"
                if cnn.get("train_s") else "")
        L.append("- The CNN rows are one fit each: their seed spread is not measured "
                 f"(`--cnn-seeds`{took}).")
    if cmp:
        lo, hi = cmp["diff_ci"]
        L.append(f"- Bootstrap over the {cmp['groups']} test groups ({cmp['resamples']} "
                 f"resamples, {cmp['n']} faces scored by both): {cmp['latent']} AUC "
                 f"{cmp['auc_latent']:.3f} [{cmp['auc_latent_ci'][0]:.3f}, "
                 f"{cmp['auc_latent_ci'][1]:.3f}], {cmp['cnn']} {cmp['auc_cnn']:.3f} "
                 f"[{cmp['auc_cnn_ci'][0]:.3f}, {cmp['auc_cnn_ci'][1]:.3f}]; difference "
                 f"{cmp['diff']:+.3f} [{lo:+.3f}, {hi:+.3f}] (95%), below zero in "
                 f"{cmp['p_latent_not_better']:.1%} of the resamples. "
                 + ("The interval excludes zero." if lo > 0 or hi < 0 else
                    "The interval includes zero: on this test set the two are not told apart."))
    return L + [""]


def write_report(out_dir=BENCH_DIR) -> Path:
    """RESULTS.md from every benchmarks/results/*.json, then the sections of
    benchmarks/results/*.md (experiments made by other scripts, each with its command)."""
    out_dir = Path(out_dir)
    runs = [json.loads(p.read_text()) for p in sorted((out_dir / "results").glob("*.json"))]
    L = ["# Benchmark results", "",
         "Written by `lf bench` (lf_core/lab/bench.py) from benchmarks/results/*.json; rerun the "
         "command under each heading to reproduce it. Numbers are from this project's own "
         "compact generator and data, not the paper's. The sections after the `lf bench` "
         "runs come from benchmarks/results/*.md, each made by the script it names.", ""]
    for r in runs:
        L += _section_md(r, out_dir)
    for p in sorted((out_dir / "results").glob("*.md")):
        L += [p.read_text(encoding="utf-8").strip(), ""]
    path = out_dir / "RESULTS.md"
    atomic_write_bytes(path, ("\n".join(L) + "\n").encode("utf-8"))
    return path
