"""Detector metrics, and training / evaluating detectors on extracted codes.

    m = metrics(labels, prob_fake, groups=groups, paths=paths)
    m["accuracy"], m["balanced_accuracy"], m["roc_auc"], m["eer"], m["confusion"], m["group"]

    det = train_detector("runs/codes/sg0", "lr", "runs/det/lr.safetensors")   # train split
    res = evaluate_detector("runs/codes/sg0", "runs/det/lr.safetensors")      # test split
    res = evaluate_detector("dfdc_faces/manifest.csv", det)   # extracts the test split first

Splits are by group (lf_core.lab.data.split_of on the DFDC source video): a source video and
all its deepfakes fall on one side, so no source video is on both sides. Evaluating a
detector on rows of the split it was trained on (same manifest) is refused.

Decision: the paper's prior rule (classify.decide): fake when
p(x|fake)/p(x|real) >= pi_real/pi_fake, which is a threshold on prob_fake; with
prior_fake = 0.5 and a balanced training set it is prob_fake >= 0.5. Accuracy, balanced
accuracy and the confusion matrix use it; ROC AUC and EER do not depend on a threshold.

Group-level figures ("video level"): the unit is (group, label), scored by the mean
prob_fake of its faces. A DFDC group holds a real video and its deepfakes, so it gives one
real unit and one fake unit; with one face per video (dfdc_faces) the group figures equal
the face figures up to the pooling of a group's fakes.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

import numpy as np

from ..classifiers import prior_threshold
from ..errors import LFError
from ..stats import bootstrap_auc, percentile_ci95
from .data import split_of
from .extract import check_split, is_codes_folder, load_codes

METRIC_KEYS = ("n", "n_real", "n_fake", "threshold", "accuracy", "balanced_accuracy", "roc_auc",
               "eer", "eer_threshold", "confusion", "group")


# --------------------------------------------------------------------------- metrics


def eer(labels, prob_fake) -> tuple[float | None, float | None]:
    """(equal error rate, threshold at it): where the false-positive rate (reals called
    fake) equals the false-negative rate (fakes called real), linearly interpolated on
    the ROC curve. (None, None) when a class is missing."""
    from sklearn.metrics import roc_curve

    y, p = np.asarray(labels), np.asarray(prob_fake, np.float64)
    if len(np.unique(y)) < 2:
        return None, None
    fpr, tpr, thr = roc_curve(y, p)
    fnr = 1.0 - tpr
    d = fpr - fnr  # rises from <= 0 to >= 0 along the curve
    i = int(np.argmax(d >= 0))
    if i == 0 or d[i] == 0:
        t = thr[i] if np.isfinite(thr[i]) else 1.0
        return float((fpr[i] + fnr[i]) / 2), float(t)
    a = d[i - 1] / (d[i - 1] - d[i])  # fraction of the way from i-1 to i
    rate = fpr[i - 1] + a * (fpr[i] - fpr[i - 1])
    t0 = thr[i - 1] if np.isfinite(thr[i - 1]) else 1.0
    return float(rate), float(t0 + a * (thr[i] - t0))


def _basic(y, p, threshold):
    from sklearn.metrics import roc_auc_score

    y = np.asarray(y).astype(int)
    p = np.asarray(p, np.float64)
    pred = (p >= threshold).astype(int)
    tn = int(((y == 0) & (pred == 0)).sum())
    fp = int(((y == 0) & (pred == 1)).sum())
    fn = int(((y == 1) & (pred == 0)).sum())
    tp = int(((y == 1) & (pred == 1)).sum())
    recalls = [r for r in (tn / (tn + fp) if tn + fp else None,
                           tp / (tp + fn) if tp + fn else None) if r is not None]
    two = len(np.unique(y)) == 2
    e, et = eer(y, p)
    return {
        "n": int(len(y)), "n_real": int((y == 0).sum()), "n_fake": int((y == 1).sum()),
        "threshold": float(threshold),
        "accuracy": float((pred == y).mean()) if len(y) else None,
        "balanced_accuracy": float(np.mean(recalls)) if recalls else None,
        "roc_auc": float(roc_auc_score(y, p)) if two else None,
        "eer": e, "eer_threshold": et,
        "confusion": {"tn": tn, "fp": fp, "fn": fn, "tp": tp,
                      "matrix": [[tn, fp], [fn, tp]],
                      "rows": "true real, true fake", "cols": "called real, called fake"},
    }


def group_scores(labels, prob_fake, groups):
    """Per (group, label) unit: (labels (G,), mean prob_fake (G,), names [(group, label)])."""
    y = np.asarray(labels).astype(int)
    p = np.asarray(prob_fake, np.float64)
    g = np.asarray(groups).astype(str)
    keys = {}
    for i, k in enumerate(zip(g.tolist(), y.tolist())):
        keys.setdefault(k, []).append(i)
    names = sorted(keys)
    return (np.array([k[1] for k in names], int),
            np.array([p[keys[k]].mean() for k in names]), names)


def add_auc_interval(res: dict, labels, p, groups, resamples: int) -> dict:
    """With resamples = B > 0: res["roc_auc_ci95"], the AUC's 95% interval over B resamples
    of the source videos (bootstrap_auc), and res["bootstrap"]. Unlabelled rows are left out."""
    if resamples:
        known = np.asarray(labels) >= 0
        b = bootstrap_auc(np.asarray(labels)[known], np.asarray(p)[known],
                          np.asarray(groups)[known], resamples)
        res["roc_auc_ci95"] = percentile_ci95(b[:, 0])
        res["bootstrap"] = {"resamples": len(b), "unit": "group (source video)"}
    return res


def metrics(labels, prob_fake, groups=None, paths=None, threshold: float = 0.5,
            predictions: bool = True) -> dict:
    """Accuracy, balanced accuracy, ROC AUC, EER, confusion matrix (+ group level when
    `groups` is given, + a `predictions` list when `paths` is given) from labels (0 real,
    1 fake) and prob_fake. Rows with an unknown label (-1) are left out of the figures
    (counted in n_unlabelled) but kept in predictions."""
    y = np.asarray(labels).astype(int).reshape(-1)
    p = np.asarray(prob_fake, np.float64).reshape(-1)
    if y.shape != p.shape:
        raise LFError(f"labels {y.shape} and prob_fake {p.shape} differ in length")
    if not np.all((p >= 0) & (p <= 1)):
        raise LFError("prob_fake must lie in [0, 1]")
    known = y >= 0
    out = _basic(y[known], p[known], threshold)
    out["n_unlabelled"] = int((~known).sum())
    if groups is not None:
        g = np.asarray(groups).astype(str).reshape(-1)
        if g.shape != y.shape:
            raise LFError(f"groups {g.shape} and labels {y.shape} differ in length")
        gy, gp, names = group_scores(y[known], p[known], g[known])
        out["group"] = {"unit": "(group, label), mean prob_fake",
                        "n_groups": int(len(np.unique(g[known]))), **_basic(gy, gp, threshold)}
    else:
        out["group"] = None
    if paths is not None and predictions:
        ps = np.asarray(paths).astype(str).reshape(-1)
        gs = np.asarray(groups).astype(str).reshape(-1) if groups is not None else [None] * len(y)
        out["predictions"] = [
            {"path": ps[i], "label": int(y[i]), "group": gs[i], "prob_fake": round(float(p[i]), 6),
             "pred": int(p[i] >= threshold)} for i in range(len(y))]
    return out


# --------------------------------------------------------------------------- train / evaluate


def parse_channels(spec):
    """'8-11' / '8,9,10' / '3' / None -> list of W+ rows (or None = all)."""
    if spec is None or spec == "" or spec == "all":
        return None
    if isinstance(spec, (list, tuple, range)):
        return [int(c) for c in spec]
    out = []
    try:
        for part in str(spec).split(","):
            if "-" in part:
                a, b = part.split("-")
                out += list(range(int(a), int(b) + 1))
            else:
                out.append(int(part))
    except ValueError as e:
        raise LFError(f"channels must look like 8-11 or 0,3,5, got {spec!r}") from e
    return out


def _latent_codes(codes):
    if codes.projector.get("kind") == "crops":
        raise LFError("these are aligned crops, not latent codes: they train the CNN baselines "
                      "(lf train CROPS --classifier meso4|efficientnet_b0|xception); for a "
                      "latent classifier extract with --projector stylegan, pca or vqvae")


def train_detector(codes_path, kind: str, out, split: str = "train", channels=None,
                   seed: int = 0, params: dict | None = None, validate: bool = True, log=None,
                   half: bool = False):
    """Fit a `kind` classifier (rf, lr, mlp2, mlp5) on the `split` rows of a codes folder,
    with source-video groups (the MLPs hold out whole groups for early stopping). Saved
    at `out` with metrics: projector (kind, steps, weights...), projector_file, data
    (codes folder, manifest, sha256), split, n_train, n_real, n_fake, n_groups, and, when
    training on 'train', the figures on the 'val' split. half: an MLP's weights as float16
    (`LatentClassifier.save`). Returns the classifier."""
    from ..classifiers import CLASSIFIERS

    log = log or (lambda m: print(m, file=sys.stderr))
    if kind not in CLASSIFIERS:
        raise LFError(f"unknown classifier {kind!r}; use one of {', '.join(CLASSIFIERS)}")
    split = check_split(split)
    codes = load_codes(codes_path)
    _latent_codes(codes)
    tr = codes.where(split, labelled=True)
    if len(tr) == 0 or len(np.unique(tr.labels)) < 2:
        raise LFError(f"{codes_path}: the {split or 'whole'} split has {len(tr)} labelled faces "
                      f"({int((tr.labels == 0).sum())} real, {int((tr.labels == 1).sum())} "
                      "fake); training needs both classes")
    channels = parse_channels(channels)
    if channels is not None and tr.codes.ndim != 3:
        raise LFError(f"--channels needs W+ codes (N, 14, 512); these are {tr.codes.shape[1:]}")
    clf = CLASSIFIERS[kind](channels=channels, seed=seed, **(params or {}))
    mirror = tr.mirror is not None  # lf extract --mirror: each face and its mirror image
    log(f"training {type(clf).__name__} on {len(tr)} faces{' and their mirrors' * mirror} "
        f"({split or 'all'} split, {len(np.unique(tr.groups))} groups) of "
        f"{codes.projector.get('name')}")
    if mirror:  # both views of a face share its group (one source video, one side)
        clf.fit(np.concatenate([tr.codes, tr.mirror]), np.concatenate([tr.labels] * 2),
                groups=np.concatenate([tr.groups] * 2))
    else:
        clf.fit(tr.codes, tr.labels, groups=tr.groups)
    m = {
        "projector": codes.projector,
        "projector_file": str((codes.folder / "projector.safetensors").resolve()),
        "data": {"codes": str(Path(codes_path).resolve()), "manifest": codes.meta.get("manifest"),
                 "manifest_sha256": codes.meta.get("manifest_sha256"),
                 "codes_split": codes.meta.get("split")},
        "split": split or "all", "n_train": int(len(tr)), "n_real": int((tr.labels == 0).sum()),
        "n_fake": int((tr.labels == 1).sum()), "n_groups": int(len(np.unique(tr.groups))),
        "channels": channels, "classifier": kind, "seed": seed, "mirror": mirror,
    }
    if validate and split == "train":
        va = codes.where("val", labelled=True)
        if len(va):
            p = predict_views(clf, va, mirror)
            v = metrics(va.labels, p, va.groups, threshold=prior_threshold(0.5, clf.train_fake_share_))
            m["val"] = {k: v[k] for k in ("n", "accuracy", "balanced_accuracy", "roc_auc", "eer")}
            log(f"val split: {_summary(v)}")
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    clf.save(out, metrics=m, half=half)
    return clf


def predict_views(det, codes, mirror=None) -> np.ndarray:
    """p_fake of a detector on Codes: for a detector trained on both views (lf extract
    --mirror; mirror=None reads it from the detector's metrics), the mean of the face's and
    its mirror's logits, so that a face and its mirror image get the same score; else the
    face's alone."""
    from ..classifiers import mean_logit, two_views

    if not (two_views(det) if mirror is None else mirror):
        return det.predict_proba(codes.codes)[:, 1]
    if codes.mirror is None:
        raise LFError("this detector scores a face and its mirror image together: extract "
                      "the codes with lf extract --mirror")
    return mean_logit(det.predict_proba(codes.codes)[:, 1], det.predict_proba(codes.mirror)[:, 1])


def _summary(m):
    f = lambda v: "n/a" if v is None else f"{v:.3f}"  # noqa: E731
    return (f"n={m['n']} acc={f(m['accuracy'])} bal_acc={f(m['balanced_accuracy'])} "
            f"auc={f(m['roc_auc'])} eer={f(m['eer'])}")


def _identity_matches(det_proj: dict, codes_proj: dict) -> bool:
    """The codes come from the projector the detector was trained on."""
    keys = {"stylegan": ("kind", "steps", "weights_sha256", "code_shape", "invert_kw"),
            "pca": ("kind", "n_components", "size", "fit_sha256"),
            "vqvae": ("kind", "code_shape", "config", "weights_sha256")}.get(
        det_proj.get("kind"), ("kind", "code_shape"))
    # only what the detector recorded (older detectors name just kind and steps); codes
    # from before invert_kw was recorded had none
    same = lambda k: (det_proj[k] == codes_proj.get(k)  # noqa: E731
                      or k == "invert_kw" and not det_proj[k] and not codes_proj.get(k))
    return all(same(k) for k in keys if k in det_proj)


def refuse_training_faces(det_metrics: dict, codes, ev) -> None:
    """No source video on both sides: LFError when `ev` (rows of `codes`) holds faces of the
    detector's training split of the same manifest."""
    trained = (det_metrics.get("data") or {}).get("manifest_sha256")
    tsplit = det_metrics.get("split")
    if not (trained and tsplit and trained == codes.meta.get("manifest_sha256")):
        return
    leak = ev.splits == tsplit if tsplit != "all" else np.ones(len(ev.splits), bool)
    if not leak.any():
        return
    fix = ("it trained on every split of this manifest: evaluate it on another one, or "
           "retrain it with --split train" if tsplit == "all" else
           f"evaluate on another split (--split {'val' if tsplit == 'test' else 'test'})")
    raise LFError(f"{int(leak.sum())} of the faces to evaluate come from source videos of the "
                  f"detector's training split ({tsplit}); {fix}")


def _projector_for(det_metrics: dict, model=None):
    """Rebuild the projector a detector was trained with, from its metrics."""
    from .projectors import StyleGANProjector, load_projector

    proj = det_metrics.get("projector") or {}
    kind = proj.get("kind", "stylegan")
    if kind == "stylegan":
        if model is None:
            from ..model import load_model

            wp = proj.get("weights_path")
            model = load_model(wp if wp and Path(wp).exists() else None)
        p = StyleGANProjector(model, steps=int(proj.get("steps", 0)),
                              **(proj.get("invert_kw") or {}))
        if proj.get("weights_sha256") and p.meta()["weights_sha256"] != proj["weights_sha256"]:
            raise LFError(f"the detector was trained on codes of weights "
                          f"{proj.get('weights')} (sha256 {proj['weights_sha256']}); "
                          f"{Path(model.path).name} is {p.meta()['weights_sha256']}: "
                          "retrain the detector or give the same --weights")
        return p
    f = det_metrics.get("projector_file")
    if not f or not Path(f).exists():
        raise LFError(f"the detector's {kind} projector file is missing ({f}); evaluate on "
                      "the codes folder instead, or re-extract")
    return load_projector(f)


def evaluate_detector(manifest_or_codes, detector, split: str = "test", prior_fake: float = 0.5,
                      work=None, batch: int = 32, progress: bool = False, model=None,
                      predictions: bool = True, bootstrap: int = 0, log=None,
                      engine=None) -> dict:
    """Metrics of `detector` (a path or a LatentClassifier) on the `split` rows of a codes
    folder, or of a manifest (faces are then extracted with the detector's own projector
    into `work`, default a temporary folder; pass a folder to keep and resume it).

    Returns metrics() plus: detector, data, split, prior_fake, n_failed (faces that did not
    align, not scored; listed in `failed`), `predictions` (path, label, group,
    prob_fake, pred) and, with bootstrap = B > 0, roc_auc_ci95: the 95% interval of the
    AUC over B resamples of the source videos (bootstrap_auc). engine: where a manifest's
    faces are aligned and projected (lf_core.lab.engines; None: here)."""
    from ..artifacts import has_lf_header
    from ..classifiers import LatentClassifier, load_classifier
    from ..detector import SET_KEY, DetectorSet, detector_path
    from .extract import extract

    log = log or (lambda m: print(m, file=sys.stderr))
    split = check_split(split)
    det_path, dset = None, None
    if not isinstance(detector, LatentClassifier):
        detector = detector_path(detector)  # a shipped detector's name, or a path
        det_path = str(detector)
        if has_lf_header(detector, SET_KEY):  # a set: each face scored by its member
            dset = DetectorSet.load(detector)
            detector = dset.first.clf
        else:
            detector = load_classifier(detector)
    dm = detector.metrics or {}
    src = Path(manifest_or_codes)
    tmp = None
    try:
        if is_codes_folder(src):
            codes = load_codes(src)
        elif src.is_file():
            proj = _projector_for(dm, model)
            if work is None:
                tmp = tempfile.TemporaryDirectory(prefix="lf-eval-")
                work = Path(tmp.name) / "codes"
            extract(src, proj, work, batch=batch, split=split, progress=progress,
                    mirror=bool(dm.get("mirror")), log=log, engine=engine)
            codes = load_codes(work)
        else:
            raise LFError(f"{src}: neither a manifest CSV nor a codes folder (lf extract)")
        _latent_codes(codes)
        if dm.get("projector") and not _identity_matches(dm["projector"], codes.projector):
            raise LFError(f"{src} holds codes of {codes.projector.get('name')}, but the detector "
                          f"was trained on {dm['projector'].get('name')} codes: extract with the "
                          "same projector (and weights)")
        ev = codes.where(split)
        failed = [r for r in codes.failed if split is None or split_of(r["group"]) == split]
        for m in [detector] if dset is None else [d.clf for d in dset.members.values()]:
            refuse_training_faces(m.metrics or {}, codes, ev)
        if len(ev) == 0:
            raise LFError(f"{src}: no face of the {split or 'whole'} split to evaluate")
        if dset is None:
            p, share = predict_views(detector, ev), detector.train_fake_share_
        elif ev.mirror is None:
            raise LFError("this detector set scores a face and its mirror image together: "
                          "extract the codes with lf extract --mirror")
        else:
            p, share = dset.prob_fake(ev.codes, ev.mirror), dset.train_fake_share
        t = prior_threshold(prior_fake, share)
        res = metrics(ev.labels, p, ev.groups, ev.paths, threshold=t, predictions=predictions)
        add_auc_interval(res, ev.labels, p, ev.groups, bootstrap)
    finally:
        if tmp is not None:
            tmp.cleanup()
    return {"detector": det_path or type(detector).__name__,
            "classifier": type(detector if dset is None else dset).__name__, "projector": codes.projector.get("name"),
            "data": str(src), "split": split or "all", "prior_fake": prior_fake,
            "n_failed": len(failed), "failed": failed, **res}


def report(res: dict) -> str:
    """A few human-readable lines of evaluate_detector's result."""
    c = res["confusion"]
    lines = [f"{res['classifier']} on {res['projector']} - {res['data']} ({res['split']} split, "
             f"prior_fake {res['prior_fake']}, threshold {res['threshold']:.3f})",
             f"faces:  {_summary(res)}  ({res['n_real']} real, {res['n_fake']} fake; "
             f"{res['n_failed']} did not align)",
             *([f"        AUC 95% interval [{res['roc_auc_ci95'][0]:.3f}, "
                f"{res['roc_auc_ci95'][1]:.3f}] ({res['bootstrap']['resamples']} resamples "
                "of the source videos)"] if res.get("roc_auc_ci95") else []),
             f"        confusion [real->real {c['tn']}, real->fake {c['fp']}; "
             f"fake->real {c['fn']}, fake->fake {c['tp']}]"]
    if res.get("group"):
        g = res["group"]
        lines.append(f"groups: {_summary(g)}  ({g['n_groups']} source videos, "
                     f"{g['n']} (group, label) units)")
    return "\n".join(lines)


def write_predictions(res: dict, path):
    """predictions as CSV: path,label,group,prob_fake,pred (atomic)."""
    import csv
    import io

    from ..artifacts import atomic_write_bytes

    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["path", "label", "group", "prob_fake", "pred"])
    for r in res.get("predictions", []):
        w.writerow([r["path"], r["label"], r["group"], r["prob_fake"], r["pred"]])
    atomic_write_bytes(path, buf.getvalue().encode())


def to_json(res: dict) -> str:
    return json.dumps(res, indent=1)


__all__ = ["METRIC_KEYS", "add_auc_interval", "eer", "evaluate_detector",
           "group_scores", "metrics", "parse_channels", "predict_views",
           "report", "train_detector", "write_predictions"]
