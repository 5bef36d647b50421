"""`lf`: the command line. Every command only calls lf_core.

The product's commands (align, invert, predict) use the core only. The research commands
(extract, train, evaluate, bench, train-generator, train-vqvae) import lf_core.lab inside
their functions, and their options, whose defaults come from lf_core.lab's configs, are
added to the parser only when that command runs (or when the whole parser is asked for).
"""

import argparse
import dataclasses
import inspect
import json
import os
import sys
from pathlib import Path

MLPS = ("mlp2", "mlp5")  # the options --members and --half apply to

EXIT_CODES = """exit codes:
  0  success
  1  error (message on stderr)
  2  bad command line
  3  bad input file (not an image/video, corrupt, too large, no decodable frame)
  4  no face found
  5  weights missing, unknown or unsafe, or a detector trained on another model's codes
  6  disk full (nothing half-written is left: free space and rerun to go on)
  130 interrupted
"""


def cmd_align(a):
    from .alignment import align
    from .io import load_image, save_image

    faces = align(load_image(a.image), max_faces=a.max_faces)
    out = Path(a.output)
    for i, f in enumerate(faces):
        p = out if i == 0 else out.with_name(f"{out.stem}_{i}{out.suffix}")
        save_image(f.crop, p)
        print(f"{p}\tface {i}: box={list(map(int, f.box))} score={f.score:.2f}")
    return 0


def cmd_invert(a):
    from . import inversion as inv
    from .alignment import align
    from .artifacts import atomic_savez
    from .io import load_image, save_image
    from .model import load_model

    passes = _passes(a)
    model = load_model(a.weights)
    face = align(load_image(a.image), max_faces=1)[0]
    r = inv.invert(model, face.crop, steps=a.steps, seed=a.seed, passes=passes)
    atomic_savez(a.output, w=r.w, steps=r.steps, psnr=r.psnr, weights=model.name)
    if a.recon:
        save_image(r.image, a.recon)
    print(f"{a.output}\tW+ {tuple(r.w.shape)}, {r.steps} steps, PSNR {r.psnr:.2f} dB, "
          f"{r.perceptual}")
    return 0


def cmd_predict(a):
    from .io import is_video
    from .model import load_model
    from .pipeline import predict_image, predict_video

    model = load_model(a.weights)
    if is_video(a.input):
        res = predict_video(a.input, every=a.every, steps=a.steps, prior_fake=a.prior,
                            model=model, detector=a.detector)
        if a.json:
            print(json.dumps(res.to_json(), indent=1))
        else:
            n = sum(1 for f in res.frames if f.faces)
            p = "n/a" if res.prob_fake is None else f"{res.prob_fake:.3f}"
            print(f"{a.input}: {res.verdict.upper()} (p_fake {p}, {n}/{len(res.frames)} "
                  f"frames with a face; {res.rule})")
        _say_notes(res.notes)
        return 4 if res.prob_fake is None else 0
    res = predict_image(a.input, steps=a.steps, prior_fake=a.prior, model=model,
                        detector=a.detector)
    _say_notes(res.notes)
    if a.json:
        print(json.dumps(res.to_json(), indent=1))
    else:
        for i, f in enumerate(res.faces):
            near = (f" most like {f.nearest_source}, distance to the training faces "
                    f"{f.domain_ratio:.2f} of the limit," if f.domain_ratio is not None else "")
            near += f" judged by {f.judged_by}," if f.judged_by else ""
            why = " (unlike the faces the detector was trained on: no verdict)" \
                if f.verdict == "unsure" else ""
            print(f"{a.input} face {i}: {f.verdict.upper()}{why} (p_fake {f.prob_fake:.3f}, "
                  f"LR {f.likelihood_ratio:.2f}, prior {a.prior},{near} codes after "
                  f"{f.verdict_steps} steps)")
    return 0


def _say_notes(notes):
    """What to know before reading a verdict (e.g. other inversion settings than the
    detector's), on stderr: stdout stays the result."""
    for n in notes:
        print(f"lf: note: {n}", file=sys.stderr)


def cmd_train_generator(a):
    from .lab.train_gen import TrainConfig, pack_faces, train, unpack_faces

    if a.pack_to:
        pack_faces(a.out, a.pack_to)
        print(f"wrote {a.pack_to} ({os.path.getsize(a.pack_to) / 2**20:.1f} MiB)")
        return 0
    if a.from_pack:
        unpack_faces(a.from_pack, a.out)
    train(TrainConfig(out=a.out, hours=a.hours, steps=a.steps, batch=a.batch, seed=a.seed,
                      threads=a.threads, lr=a.lr, lr_end=a.lr_end, cooldown=a.cooldown,
                      encoder_only=a.encoder_only, device=a.device or "",
                      diverge_db=a.diverge_db, ckpt_minutes=a.ckpt_minutes))
    return 0


def cmd_train_vqvae(a):
    from .lab.train_vqvae import train_vqvae

    train_vqvae(out=a.out, hours=a.hours, steps=a.steps, batch=a.batch, seed=a.seed,
                threads=a.threads, lr=a.lr, cache=a.cache)
    return 0


def cmd_extract(a):
    from .errors import LFError
    from .lab.extract import extract, load_codes
    from .lab.projectors import (
        PLANNED,
        CropProjector,
        PCAProjector,
        StyleGANProjector,
        VQVAEProjector,
        load_projector,
    )

    if a.projector in PLANNED:
        raise LFError(PLANNED[a.projector])
    if a.limit is not None and a.limit < 0:
        raise SystemExit(_usage_error(f"--limit must be >= 0, got {a.limit}"))
    if a.projector == "stylegan":
        from .model import load_model

        if a.steps < 0:
            raise SystemExit(_usage_error(f"--steps must be >= 0, got {a.steps}"))
        proj = StyleGANProjector(load_model(a.weights), steps=a.steps, passes=_passes(a))
    elif a.projector == "vqvae":
        proj = VQVAEProjector.from_file(a.projector_file)
    elif a.projector == "crops":
        proj = CropProjector(a.crop_size)
    elif a.pca:
        proj = load_projector(a.pca)
        if proj.kind != "pca":
            raise LFError(f"{a.pca} holds a {proj.kind} projector, not a PCA")
    else:
        proj = PCAProjector(n_components=a.components, size=a.pca_size)
    out = extract(a.manifest, proj, a.output, batch=a.batch, limit=a.limit, split=a.split,
                  prealigned=a.prealigned, fit_limit=a.fit_limit, overwrite=a.overwrite,
                  mirror=a.mirror, progress=not a.quiet, engine=_engine(a))
    c = load_codes(out, partial=True)
    print(f"{out}\t{len(c)} codes {tuple(c.codes.shape[1:])}"
          f"{' (+ their mirror images)' if c.mirror is not None else ''} "
          f"of {c.meta['n_items']} faces "
          f"({c.meta['n_failed']} did not align: {out / 'failed.csv'}); {c.projector['name']}")
    return 0


def cmd_train(a):
    from .lab.bench import CNNS
    from .lab.evaluate import train_detector

    if a.classifier in CNNS:
        return _train_cnn(a)
    if a.epochs is not None and a.classifier not in MLPS:
        raise SystemExit(_usage_error("--epochs is for the CNN baselines and the MLPs"))
    params = {k: v for k, v in (("n_trees", a.trees), ("max_features", a.max_features))
              if v is not None}
    if params and a.classifier != "rf":
        raise SystemExit(_usage_error("--trees and --max-features are for --classifier rf"))
    if a.epochs is not None:
        params["max_epochs"] = a.epochs
    if a.C is not None:
        if a.classifier != "lr":
            raise SystemExit(_usage_error("--C is for --classifier lr"))
        params["C"] = a.C
    if a.members is not None:
        if a.classifier not in MLPS:
            raise SystemExit(_usage_error("--members is for --classifier mlp2 or mlp5"))
        params["members"] = a.members
    if a.half and a.classifier not in MLPS:
        raise SystemExit(_usage_error("--half is for --classifier mlp2 or mlp5"))
    if a.regularise:
        if a.classifier not in MLPS:
            raise SystemExit(_usage_error("--regularise is for --classifier mlp2 or mlp5"))
        from .classifiers import CLASSIFIERS

        params.update(CLASSIFIERS[a.classifier].REGULARISED)
    for name in ("batch_size", "lr", "patience"):  # after --regularise: they override it
        if getattr(a, name) is not None:
            if a.classifier not in MLPS:
                raise SystemExit(_usage_error(f"--{name.replace('_', '-')} is for the MLPs"))
            params[name] = getattr(a, name)
    if len(a.codes) > 1 or a.real_only:
        return _train_sources(a, params)
    clf = train_detector(a.codes[0], a.classifier, a.output, split=a.split, channels=a.channels,
                         seed=a.seed, params=params or None, half=a.half)
    m = clf.metrics
    val = m.get("val")
    extra = (f"; val acc {val['accuracy']:.3f}, AUC "
             + ("n/a" if val["roc_auc"] is None else f"{val['roc_auc']:.3f}")) if val else ""
    c = clf.train_info_.get("C")
    how = f" (C={c:g})" if c else " (regularised)" if a.regularise else ""
    print(f"{a.output}\t{type(clf).__name__}{how} on {m['n_train']} faces"
          f"{' and their mirrors' if m.get('mirror') else ''} ({m['n_real']} real, "
          f"{m['n_fake']} fake, {m['split']} split) of {m['projector'].get('name')}{extra}")
    return 0


def _train_sources(a, params):
    """lf train CODES CODES ... [--real-only CODES]: one detector on several sources."""
    from .lab.sources import train_sources

    if a.split != "train" or a.channels:
        raise SystemExit(_usage_error("several sources train on their train split, all rows"))
    det = train_sources(a.codes, a.classifier, a.output, real_only=a.real_only or (),
                        seed=a.seed, params=params or None, half=a.half)
    m, sm = det.meta, det.source_model
    temps = f"temperature {det.temperature:.2f}" if sm is None else "temperatures " + ", ".join(
        f"{k} {v:.2f}" for k, v in sm.temperatures.items())
    print(f"{a.output}\t{det.describe()}: {m['n_train']} faces and their mirrors "
          f"({m['n_real']} real, {m['n_fake']} fake); {temps}; "
          "held-out figures in its header (lf_core.Detector.heldout)")
    return 0


def _train_cnn(a):
    """lf train CROPS --classifier meso4|efficientnet_b0|xception: a CNN baseline from scratch."""
    from .lab.baselines import train_baseline
    from .lab.bench import BenchConfig

    for flag, v in (("--channels", a.channels), ("--trees", a.trees),
                    ("--max-features", a.max_features), ("--members", a.members),
                    ("--C", a.C), ("--half", a.half or None),
                    ("--regularise", a.regularise or None), ("--batch-size", a.batch_size),
                    ("--lr", a.lr), ("--patience", a.patience)):
        if v is not None:
            raise SystemExit(_usage_error(
                f"{flag} is for the latent classifiers, not {a.classifier}"))
    kw = {"arch_kw": a.xception} if a.classifier == "xception" else {}
    epochs = BenchConfig.cnn_epochs if a.epochs is None else a.epochs
    det = train_baseline(a.codes[0], a.classifier, a.output, split=a.split, seed=a.seed,
                         max_epochs=epochs, progress=True, **kw)
    m, info = det.metrics, det.train_info_
    print(f"{a.output}\t{det!r} on {m['n_train']} crops ({m['n_real']} real, {m['n_fake']} fake, "
          f"{m['split']} split); {info.get('epochs')} epochs, best held-out loss "
          f"{info.get('best_val_loss', float('nan')):.4f}")
    return 0


def cmd_evaluate(a):
    from .artifacts import has_lf_header
    from .lab.baselines import META_KEY
    from .lab.evaluate import evaluate_detector, report, write_predictions

    # a CNN baseline file (lf train --classifier meso4|...) rather than a latent classifier;
    # a file that is neither goes to the latent loader, which names the problem
    if has_lf_header(a.detector, META_KEY):
        from .lab.baselines import evaluate_baseline

        if a.engine != "local":
            print("lf: note: a CNN detector's crops are extracted here (--engine local)",
                  file=sys.stderr)
        res = evaluate_baseline(a.input, a.detector, split=a.split, prior_fake=a.prior,
                                bootstrap=a.bootstrap, work=a.work,
                                progress=not a.quiet and not a.json)
    else:
        res = evaluate_detector(a.input, a.detector, split=a.split, prior_fake=a.prior,
                                work=a.work, batch=a.batch, progress=not a.quiet and not a.json,
                                bootstrap=a.bootstrap, engine=_engine(a))
    if a.predictions:
        write_predictions(res, a.predictions)
    if a.json:
        print(json.dumps(res, indent=1))
    else:
        print(report(res))
    return 0


def _names(text):
    """'a,b' -> ('a', 'b'); '' -> () (an option's way to say none)."""
    return tuple(t.strip() for t in text.split(",") if t.strip())


def cmd_bench(a):
    import torch

    from .lab.bench import run_bench

    if a.threads:
        torch.set_num_threads(a.threads)
    print(run_bench(bench_config(a)))
    return 0


def bench_config(a):
    """The BenchConfig of parsed `lf bench` options."""
    from .lab.bench import BenchConfig

    return BenchConfig(
        manifest=a.manifest, name=a.name, work=a.work or f"runs/bench/{a.name}",
        out_dir=a.out_dir, projectors=_names(a.projectors), vqvae_file=a.vqvae,
        weights=a.weights, prealigned=a.prealigned, classifiers=_names(a.classifiers),
        cnns=_names(a.cnns), cnn_epochs=a.cnn_epochs,
        cnn_kw={"xception": a.xception},
        rf_trees=a.rf_trees, rf_max_features=a.rf_max_features, recon_faces=a.recon_faces,
        recon_steps=a.recon_steps, recon_steps_faces=a.recon_steps_faces,
        channel_rf_trees=a.channel_rf_trees,
        channel_classifiers=_names(a.channel_classifiers),
        fewshot_groups=a.fewshot,
        fewshot_draws=a.fewshot_draws, seeds=a.seeds,
        cnn_seeds=a.cnn_seeds,
        bootstrap=a.bootstrap, seed=a.seed, redo=_names(a.redo or ""), engine=a.engine,
        engine_options=_engine(a, options=True))


PASSES_HELP = ("encoder refinement passes before the steps, w += E(x) - E(G(w)): about "
               "+0.9 dB PSNR for 2 passes (~50 ms each); the default detector is trained "
               "on 0")


def _passes(a) -> int:
    if a.passes < 0:
        raise SystemExit(_usage_error(f"--passes must be >= 0, got {a.passes}"))
    return a.passes


def _engine_args(s):
    """--engine and the ray engine's options (lf_core.lab.engines)."""
    g = s.add_argument_group("engine", "where the faces are aligned and projected; the "
                             "chunk files are written by this process either way, so a run "
                             "started with one engine can be finished with the other")
    g.add_argument("--engine", choices=["local", "ray"], default="local",
                   help="local: this process; ray: the actors of a Ray cluster (pip install "
                   "-e '.[ray]'; see docs/cluster.md)")
    g.add_argument("--address", metavar="ADDR", help="ray: the cluster (auto: the one this "
                   "machine belongs to); default: a local one for this run")
    g.add_argument("--workers", type=_at_least(1), metavar="N", help="ray: actors, each with "
                   "its own model (default: the cluster's CPUs / --cpus-per-worker)")
    g.add_argument("--cpus-per-worker", type=_positive, metavar="C", help="ray: CPUs (torch "
                   "threads) per actor (default 1)")
    g.add_argument("--gpus-per-worker", type=_positive, metavar="G", help="ray: GPUs reserved "
                   "per actor (default 0)")


def _engine(a, options=False):
    """The engine of --engine (options=True: its options only, checked, for lf bench)."""
    from .lab.engines import make_engine

    kw = {"address": a.address, "workers": a.workers, "cpus_per_worker": a.cpus_per_worker,
          "gpus_per_worker": a.gpus_per_worker}
    engine = make_engine(a.engine, **kw)
    return {k: v for k, v in kw.items() if v is not None} if options else engine


def _positive(text):
    """An argparse type: a number > 0."""
    try:
        x = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not x > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
    return x


def _run_args(s, d):
    """The options every resumable training command shares; defaults from `d`."""
    s.add_argument("--out", default=d["out"], help="run folder (checkpoint, log, exported file)")
    s.add_argument("--hours", type=float, default=d["hours"], help="this run's time budget")
    s.add_argument("--steps", type=_at_least(0), default=d["steps"],
                   help="stop at this total step count, resumed steps included (0: --hours)")
    s.add_argument("--batch", type=_at_least(1), default=d["batch"])
    s.add_argument("--seed", type=_at_least(0), default=d["seed"])
    s.add_argument("--threads", type=_at_least(0), default=d["threads"],
                   help="torch threads (0: torch's default)")
    s.add_argument("--lr", type=float, default=d["lr"])


def defaults(obj) -> dict:
    """Default values of a dataclass's fields or of a function's keyword arguments: the
    parser takes them from the code that uses them, so they are written once."""
    if dataclasses.is_dataclass(obj):
        return {f.name: f.default if f.default is not dataclasses.MISSING else f.default_factory()
                for f in dataclasses.fields(obj)
                if (f.default, f.default_factory) != (dataclasses.MISSING,) * 2}
    return {k: p.default for k, p in inspect.signature(obj).parameters.items()
            if p.default is not inspect.Parameter.empty}


def _train_generator_args(s):
    from .lab.train_gen import TrainConfig

    d = defaults(TrainConfig)
    _run_args(s, d)
    s.add_argument("--lr-end", type=float, default=d["lr_end"],
                   help="lr at the end of this run (cosine cool-down)")
    s.add_argument("--cooldown", type=float, default=d["cooldown"],
                   help="share of this run's --hours spent cooling the lr down (0: constant)")
    s.add_argument("--encoder-only", action="store_true",
                   help="freeze the generator and train the encoder alone (its inversions)")
    s.add_argument("--device", help="cpu, cuda, cuda:1 ... (default: cuda when there is one)")
    s.add_argument("--diverge-db", type=float, default=d["diverge_db"],
                   help="stop, saving nothing, when validation PSNR falls this many dB below "
                        "the run's best (default %(default)g; 0: never)")
    s.add_argument("--ckpt-minutes", type=float, default=d["ckpt_minutes"],
                   help="minutes between checkpoints (default %(default)g; 0: after every step)")
    s.add_argument("--pack-to", metavar="FILE",
                   help="write OUT's face caches as one WebP .npz (~3 KB a face) and exit")
    s.add_argument("--from-pack", metavar="FILE",
                   help="train on a --pack-to file (a machine without ../shared)")


def _train_vqvae_args(s):
    from .lab.train_vqvae import train_vqvae

    d = defaults(train_vqvae)
    _run_args(s, d)
    s.add_argument("--cache", default=d["cache"], help="folder of the aligned face cache")


def _extract_args(s):
    from .lab.extract import extract
    from .lab.projectors import CropProjector, PCAProjector

    d, pca, crops = defaults(extract), defaults(PCAProjector), defaults(CropProjector)
    s.add_argument("manifest")
    s.add_argument("--projector", choices=["stylegan", "pca", "vqvae", "crops"], default="stylegan",
                   help="stylegan: W+ (14, 512); pca: pixels' principal components, fitted on "
                   "the real train-split faces; vqvae: codebook indices (1280,) of a VQ-VAE-2 "
                   "trained by lf train-vqvae; crops: the aligned faces themselves, for the CNN "
                   "baselines (lf train --classifier meso4|efficientnet_b0|xception)")
    s.add_argument("--steps", type=_at_least(0), default=0,
                   help="stylegan: inversion steps (0 = encoder only)")
    s.add_argument("--passes", type=_at_least(0), default=0, help="stylegan: " + PASSES_HELP)
    s.add_argument("--weights", help="stylegan: generator checkpoint (default: embedded model)")
    s.add_argument("--components", type=_at_least(1), default=pca["n_components"],
                   help="pca: number of components")
    s.add_argument("--pca-size", type=_at_least(1), default=pca["size"],
                   help="pca: crops downsampled to this size")
    s.add_argument("--pca", help="pca: a fitted projector .safetensors to use instead of fitting")
    s.add_argument("--crop-size", type=_at_least(1), default=crops["size"],
                   help="crops: side in pixels (16-256)")
    s.add_argument("--fit-limit", type=_at_least(1), default=d["fit_limit"],
                   help="pca: fit on at most N faces")
    s.add_argument("--projector-file", help="vqvae: the trained projector (default "
                   "runs/vqvae/vqvae.safetensors, from lf train-vqvae)")
    s.add_argument("--limit", type=_at_least(1),
                   help="first N faces only (rerun without it to go on)")
    s.add_argument("--split", choices=["train", "val", "test", "all"], default="all",
                   help="only the faces of this group split")
    s.add_argument("--batch", type=_at_least(1), default=d["batch"], help="faces per chunk file")
    s.add_argument("--prealigned", action="store_true",
                   help="images are FFHQ-aligned already: resize to 256 px, no face detection")
    s.add_argument("--overwrite", action="store_true", help="discard codes already in CODES")
    s.add_argument("--mirror", action="store_true", help="also the codes of every face flipped "
                   "left-right: lf train then fits on both views, and the detector averages "
                   "a face and its mirror (twice the projection time)")
    s.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    s.add_argument("-o", "--output", required=True, help="CODES folder")
    _engine_args(s)


def _train_set_args(s):
    s.add_argument("codes", nargs="+", help="CODES folders, one per source")
    s.add_argument("--real-only", action="append", metavar="CODES",
                   help="a further source of real faces only (as lf train)")
    s.add_argument("--route", action="append", required=True, metavar="SOURCE=FILE",
                   help="faces like SOURCE (a codes folder's source name, or * for the rest) "
                   "go to detector FILE, a file name beside OUTPUT; repeatable")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("-o", "--output", required=True, help="the set file (.safetensors)")


def cmd_train_set(a):
    from .lab.sources import build_set

    routes = {}
    for r in a.route:
        src, sep, f = r.partition("=")
        if not sep or not src or not f:
            raise SystemExit(_usage_error(f"--route takes SOURCE=FILE, got {r!r}"))
        routes[src] = f
    build_set(a.codes, routes, a.output, real_only=a.real_only or (), seed=a.seed)
    return 0


def _train_args(s):
    from .classifiers import CLASSIFIERS
    from .lab.bench import CNNS, BenchConfig

    cfg = BenchConfig(manifest="")
    xception = _xception_text(cfg.cnn_kw["xception"])
    s.add_argument("codes", nargs="+", help="CODES folder from lf extract (a crops folder for "
                   "the CNNs); several: one detector on all these sources (lf extract --mirror), "
                   "with a domain record for its 'unsure' verdict")
    s.add_argument("--real-only", action="append", metavar="CODES",
                   help="a further source whose faces are all real whatever its manifest says "
                        "(e.g. LFW, which has no label column); repeatable")
    s.add_argument("--classifier", choices=[*CLASSIFIERS, *CNNS], default="lr",
                   help="a latent classifier, or a CNN baseline trained from scratch on the "
                   "aligned crops of lf extract --projector crops")
    s.add_argument("--split", choices=["train", "val", "test", "all"], default="train",
                   help="train on the faces of this group split")
    s.add_argument("--channels", help="W+ rows to use, e.g. 8-11 or 0,3 (default: all)")
    s.add_argument("--trees", type=_at_least(1),
                   help="random forest size (default 1500, the paper's)")
    s.add_argument("--max-features", type=max_features, metavar="{sqrt/2,sqrt,log2,N}",
                   help="features tried per forest split (default sqrt/2: half of sklearn's "
                   "sqrt, twice as fast; see README, classifier training time)")
    s.add_argument("--C", type=_lr_C, metavar="{auto,C}", help="logistic regression: the "
                   "inverse regularisation strength, or auto (default): picked among "
                   "0.0001 ... 0.1 "
                   "by 3-fold cross-validation over the training groups")
    s.add_argument("--members", type=_at_least(1), help="MLPs: average this many nets, fitted with "
                   "seeds SEED, SEED+1, ... (default 1, the paper's single net)")
    s.add_argument("--half", action="store_true", help="MLPs: store the weights as float16 "
                   "(half the file; probabilities move by ~1e-4)")
    s.add_argument("--regularise", action="store_true", help="MLPs: dropout 0.2 on the code and "
                   "0.5 after each hidden layer, AdamW (lr 0.0001, weight decay 0.01) instead of "
                   "the paper's plain SGD (lr 5e-4), and early stopping after 8 epochs "
                   "without progress "
                   "(not 3): the default detector's recipe")
    s.add_argument("--batch-size", type=_at_least(1), help="MLPs: faces per step (default 32)")
    s.add_argument("--lr", type=float, help="MLPs: learning rate (default 5e-4; 1e-4 with "
                   "--regularise)")
    s.add_argument("--patience", type=_at_least(1), help="MLPs: epochs without progress on "
                   "the held-out groups before stopping (default 3; 8 with --regularise)")
    s.add_argument("--epochs", type=_at_least(1), help="CNNs and MLPs: at most this many "
                   f"epochs (CNN default {cfg.cnn_epochs}, MLP 60; "
                   "early stopping on 10%% of the training groups). A checkpoint OUTPUT.ckpt "
                   "is written after each epoch: the same command resumes a killed fit, and "
                   "one with more epochs trains on")
    s.add_argument("--xception", type=_xception_arg, default=xception,
                   help="CNNs: Xception width,middle blocks (default %(default)s, lf bench's "
                   "compact variant; 1,8: the full network)")
    s.add_argument("--seed", type=_at_least(0), default=0)
    s.add_argument("-o", "--output", required=True, help="detector .safetensors")


def _evaluate_args(s):
    from .lab.evaluate import evaluate_detector

    d = defaults(evaluate_detector)
    s.add_argument("input", metavar="MANIFEST_OR_CODES")
    s.add_argument("--detector", required=True, help="detector .safetensors (lf train)")
    s.add_argument("--split", choices=["train", "val", "test", "all"], default="test")
    s.add_argument("--prior", type=prior, default=0.5, help="expected share of fakes, in (0, 1)")
    s.add_argument("--work", help="manifest input: keep the extracted codes here (resumable)")
    s.add_argument("--batch", type=_at_least(1), default=d["batch"])
    s.add_argument("--predictions", help="also write path,label,group,prob_fake,pred CSV here")
    s.add_argument("--json", action="store_true", help="everything as JSON, with predictions")
    s.add_argument("--bootstrap", type=_at_least(0), default=0, metavar="B",
                   help="95%% interval of the AUC from B resamples of the source videos")
    s.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    _engine_args(s)


def _bench_args(s):
    from .lab.bench import BenchConfig

    c = BenchConfig(manifest="")
    s.add_argument("manifest")
    s.add_argument("--name", default=c.name, help="the section of RESULTS.md")
    s.add_argument("--work", help="cache folder (default runs/bench/NAME)")
    s.add_argument("--out-dir", default="benchmarks", help="where results/ and RESULTS.md go")
    s.add_argument("--projectors", default=",".join(c.projectors),
                   help="'' for none; stylegan-K: StyleGAN codes after K inversion steps")
    s.add_argument("--vqvae", default=None, help="VQ-VAE-2 projector file (lf train-vqvae); "
                   "without it the vqvae rows are skipped")
    s.add_argument("--weights", help="generator checkpoint (default: embedded model)")
    s.add_argument("--prealigned", action="store_true", help="FFHQ-aligned images: no detection")
    s.add_argument("--classifiers", default=",".join(c.classifiers),
                   help="latent classifiers (mlp2-reg: MLP-2 trained as lf train --regularise)")
    s.add_argument("--cnns", default=",".join(c.cnns), help="'' for none")
    s.add_argument("--cnn-epochs", type=_at_least(1), default=c.cnn_epochs)
    s.add_argument("--xception", type=_xception_arg, default=_xception_text(c.cnn_kw["xception"]),
                   help="Xception width,middle blocks (1,8: full)")
    s.add_argument("--rf-trees", type=_at_least(1), default=c.rf_trees)
    s.add_argument("--rf-max-features", type=max_features, default=c.rf_max_features,
                   help="forest features per split (default sqrt, sklearn's: the paper's "
                   "replication)")
    s.add_argument("--recon-faces", type=_at_least(1), default=c.recon_faces)
    s.add_argument("--recon-steps", type=_at_least(0), default=c.recon_steps)
    s.add_argument("--recon-steps-faces", type=_at_least(1), default=c.recon_steps_faces,
                   help="faces for the k-step reconstruction row (at 100 steps ~9 s each "
                        "on 2 cores)")
    s.add_argument("--channel-rf-trees", type=_at_least(1), default=c.channel_rf_trees)
    s.add_argument("--channel-classifiers", default=",".join(c.channel_classifiers),
                   help="classifiers of the per-row accuracy ('' for none)")
    s.add_argument("--fewshot", type=_group_counts, default=",".join(map(str, c.fewshot_groups)),
                   help="training groups; 0 = all")
    s.add_argument("--fewshot-draws", type=_at_least(1), default=c.fewshot_draws,
                   help="draws of the groups per few-shot size (all groups: one fit)")
    s.add_argument("--seeds", type=_at_least(1), default=c.seeds,
                   help="fits of the best latent row for its seed spread (1: none)")
    s.add_argument("--cnn-seeds", type=_at_least(1), default=c.cnn_seeds,
                   help="fits of the best CNN for its seed spread (1: none; each costs a "
                   "CNN training)")
    s.add_argument("--bootstrap", type=_at_least(0), default=c.bootstrap,
                   help="resamples of the test groups: AUC intervals, latent vs CNN (0: none)")
    s.add_argument("--redo", help="sections to recompute: codes,table,recon,channels,fewshot,seeds")
    s.add_argument("--seed", type=_at_least(0), default=c.seed)
    s.add_argument("--threads", type=_at_least(0), default=0)
    _engine_args(s)


class DefaultsShown(argparse.ArgumentDefaultsHelpFormatter):
    """--help with each option's default, unless it has none or its help says it."""

    def _get_help_string(self, action):
        if action.default is None or action.default is False or "default" in (action.help or ""):
            return action.help
        return super()._get_help_string(action)


def parser(cmd=None):
    """The `lf` parser. A research command's options are added only when `cmd` is that
    command, or None (the whole parser): they import lf_core.lab for their defaults."""
    p = argparse.ArgumentParser(
        prog="lf", formatter_class=argparse.RawDescriptionHelpFormatter,
        description="LatentForensics: real or deepfake, from a face's StyleGAN latent code.",
        epilog=EXIT_CODES)
    sub = p.add_subparsers(dest="cmd", required=True)

    s = sub.add_parser("align", help="detect and FFHQ-align faces (256 x 256)")
    s.add_argument("image")
    s.add_argument("-o", "--output", required=True, help="PNG/JPEG; extra faces get _1, _2...")
    s.add_argument("--max-faces", type=_at_least(1), default=1)
    s.set_defaults(fn=cmd_align)

    s = sub.add_parser("invert", help="invert the largest face into W+ (1, 14, 512)")
    s.add_argument("image")
    s.add_argument("--steps", type=_at_least(0), default=100, help="0 = encoder only")
    s.add_argument("--passes", type=_at_least(0), default=0, help=PASSES_HELP)
    s.add_argument("-o", "--output", required=True, help=".npz with w (1, 14, 512)")
    s.add_argument("--recon", help="also write the reconstruction G(w) here")
    s.add_argument("--weights", help="generator checkpoint (default: embedded model)")
    s.add_argument("--seed", type=_at_least(0), default=0)
    s.set_defaults(fn=cmd_invert)

    s = sub.add_parser("predict", help="real, fake or unsure, for an image or a video",
                       formatter_class=DefaultsShown,
                       description="The verdict is computed on the codes the detector was "
                       "trained on; --steps only sets the inversion of the reconstruction.")
    s.add_argument("input", help="image or video (mp4, mov, avi, mkv, webm)")
    s.add_argument("--steps", type=_at_least(0), default=0,
                   help="inversion steps of the reconstruction (0 = encoder only)")
    s.add_argument("--prior", type=prior, default=0.5, help="expected share of fakes, in (0, 1)")
    s.add_argument("--every", type=_at_least(1), default=10, help="video: score every Nth frame")
    s.add_argument("--json", action="store_true",
                   help="print the whole result as JSON (per face: verdict, p_fake, likelihood "
                        "ratio, nearest training source, the member of a set that judged it, "
                        "timings)")
    s.add_argument("--weights", help="generator checkpoint (default: the embedded model)")
    s.add_argument("--detector", help="detector .safetensors, or a shipped one: default "
                   "(any face: a set of the next two), faceswap (video frames; blind to "
                   "whole-face StyleGAN synthesis) or all (one net for every face). Default: "
                   "$LF_DETECTOR, else default")
    s.set_defaults(fn=cmd_predict)

    research = [
        ("train-generator", _train_generator_args, cmd_train_generator,
         {"help": "train the embedded compact generator + encoder"}),
        ("train-vqvae", _train_vqvae_args, cmd_train_vqvae,
         {"help": "train the VQ-VAE-2 projector on the cached real faces",
          "description": "Train the compact VQ-VAE-2 of the vqvae projector on the real faces "
          "aligned by train-generator (CACHE/faces_train.npy); resumes from OUT/last.pt and "
          "writes OUT/vqvae.safetensors."}),
        ("extract", _extract_args, cmd_extract,
         {"help": "align + project the faces of a manifest into codes",
          "description": "Align every face of MANIFEST (path,label[,group]) and project it "
          "into a code; writes the CODES folder (chunk files, meta.json, failed.csv). Rerun "
          "the same command to resume."}),
        ("train", _train_args, cmd_train, {"help": "train a detector on extracted codes"}),
        ("train-set", _train_set_args, cmd_train_set,
         {"help": "a set of detectors and which one judges a face",
          "description": "Fit which-source-is-this-face on the train split of CODES folders "
          "(lf extract --mirror) and write a detector set: each source's faces go to the "
          "detector its --route names. The members' files lie beside OUTPUT."}),
        ("evaluate", _evaluate_args, cmd_evaluate,
         {"help": "accuracy, AUC, EER... of a detector on a split",
          "description": "Metrics of DETECTOR on the faces of a split. A manifest is first "
          "extracted with the detector's own projector."}),
        ("bench", _bench_args, cmd_bench,
         {"help": "the paper's experiments on a manifest -> benchmarks/RESULTS.md",
          "description": "Extract codes per projector, Table 1 (projector x classifier and "
          "CNN rows), reconstruction quality with 95% CIs, accuracy per W+ row, few-shot "
          "curve. Cached in WORK/results.json (a rerun resumes); writes "
          "benchmarks/results/NAME.json and rebuilds benchmarks/RESULTS.md."}),
    ]
    for name, add_args, fn, kw in research:
        s = sub.add_parser(name, **kw)
        if cmd in (None, name):
            add_args(s)
        s.set_defaults(fn=fn)
    return p


def command(argv) -> str | None:
    """The subcommand named in argv (its first non-option word), if any."""
    return next((t for t in argv if not t.startswith("-")), None)


def _xception_text(kw) -> str:
    """{"width": 0.5, "middle": 4} -> '0.5,4' (the --xception syntax)."""
    return f"{kw['width']:g},{kw['middle']}"


def prior(text):
    """argparse type: the expected share of fakes, strictly between 0 and 1."""
    p = float(text)
    if not 0 < p < 1:
        raise argparse.ArgumentTypeError(f"must be in (0, 1), got {text}")
    return p


def _at_least(lo):
    """An argparse type: an integer >= lo (a usage error, exit 2, otherwise)."""
    def parse(text):
        try:
            n = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
        if n < lo:
            raise argparse.ArgumentTypeError(f"must be >= {lo}, got {n}")
        return n
    return parse


def _xception_arg(text):
    """--xception 'width,middle' -> {"width", "middle"}: width > 0, middle blocks >= 1."""
    try:
        w, m = text.split(",")
        kw = {"width": float(w), "middle": int(m)}
    except ValueError:
        kw = None
    if kw is None or not (kw["width"] > 0 and kw["middle"] >= 1):
        raise argparse.ArgumentTypeError(f"use WIDTH,MIDDLE (e.g. 0.5,4; 1,8: full), got {text!r}")
    return kw


def _group_counts(text):
    """--fewshot '50,100,0' -> (50, 100, 0): training-group counts, 0 = all."""
    try:
        ns = [int(t) for t in text.split(",") if t.strip()]
    except ValueError:
        ns = None
    if not ns or min(ns) < 0:
        raise argparse.ArgumentTypeError(f"use counts like 50,100,500,0 (0 = all), got {text!r}")
    return tuple(ns)


def _lr_C(text):
    """--C: 'auto' or a positive number."""
    if text == "auto":
        return text
    try:
        c = float(text)
    except ValueError:
        c = 0.0
    if not c > 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not 'auto' or a positive number")
    return c


def max_features(text):
    """--max-features: 'sqrt/2', 'sqrt', 'log2' or a positive count."""
    if text in ("sqrt/2", "sqrt", "log2"):
        return text
    if text.isdigit() and int(text) > 0:
        return int(text)
    raise argparse.ArgumentTypeError(f"use sqrt/2, sqrt, log2 or a positive count, got {text!r}")


def _usage_error(msg):
    print(f"lf: error: {msg}", file=sys.stderr)
    return 2


def main(argv=None):
    """`lf ARGS...`. The command line itself (argv None) runs with C++ libraries' log lines
    hidden (LF_NATIVE_LOGS=1 shows them); lf's own messages go to stderr as usual."""
    if argv is not None:
        return _main(argv)
    from .io import native_stderr_hidden

    with native_stderr_hidden(keep_python=True):
        return _main(None)


def _main(argv):
    from .errors import DiskFullError, LFError

    argv = sys.argv[1:] if argv is None else list(argv)
    a = parser(command(argv)).parse_args(argv)
    try:
        return a.fn(a)
    except LFError as e:
        print(f"lf: error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("lf: interrupted", file=sys.stderr)
        return 130
    except Exception as e:  # never a traceback for a user; LF_DEBUG=1 shows it
        full = DiskFullError.of(e)  # a full disk under a write that is not lf_core's own
        if full is not None:
            print(f"lf: error: {full}", file=sys.stderr)
            return full.exit_code
        if os.environ.get("LF_DEBUG"):
            raise
        print(f"lf: internal error: {type(e).__name__}: {e} (rerun with LF_DEBUG=1 and "
              "report it)", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
