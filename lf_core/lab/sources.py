"""A detector trained on several sources of faces, that knows where they lie.

    det = train_sources(["codes/dfdc", "codes/ffhq", "codes/lfw"], "mlp2", "det.safetensors",
                        real_only=["codes/lfw"], params=MLP2.REGULARISED | {"members": 3})

Each CODES folder (lf extract) is a source, named after its manifest's folder
(dfdc_faces, ffhq_stylegan, lfw, utkface, ...). `real_only` folders are taken as real
faces whatever their manifest says (LFW's manifest has no label column). On the `train`
split of every source:

- Sources with both classes are balanced: each class is repeated (whole copies) up to
  max(its count, the other class's, `floor` x the largest two-class source's size), so a
  small source such as FFHQ/StyleGAN (900 training faces beside DFDC's 18,000) is not
  drowned, and within every such source fakes and reals weigh alike.
- The detector's training share of fakes (the prior its likelihood ratio is read under)
  is the share among the two-class sources after balancing (about 0.5): faces from a
  real-only source then count as evidence for "real" only where they look like them, and
  looking like DFDC does not count as evidence for "fake".
- On the `val` split: a `CodeDomain` (where the training codes lie: the "unsure" verdict),
  the temperature that calibrates the likelihood ratio (two-class sources, pooled) and,
  with two two-class sources or more, each one's own temperature, given to a face by a
  `SourceModel` of which source it looks like (fitted on the train split). A real-only
  source's calibration cannot be measured: its faces take the softest of the measured
  temperatures, so the detector is least sure where it cannot check itself. Also the
  typical real face (the attribution baseline), and per-source held-out figures.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from ..classifiers import CLASSIFIERS, mean_logit
from ..decision import prior_threshold
from ..detector import Detector
from ..domain import CodeDomain, SourceModel, ece, fit_temperature, logit, posterior
from ..errors import LFError

WHAT = {"dfdc_faces": "DFDC video frames (face swaps)",
        "ffhq_stylegan": "FFHQ photos and StyleGAN faces",
        "lfw": "LFW news photos", "utkface": "UTKFace photos (all ages and ethnicities)"}
FLOOR = 0.05  # a two-class source's classes are repeated to at least this share of the largest
DOMAIN_ROWS = 5000  # faces per source that the domain's Gaussians are estimated from


def source_name(codes) -> str:
    """A codes folder's source: its manifest's folder name (else the codes folder's)."""
    m = codes.meta.get("manifest")
    return Path(m).parent.name if m else Path(codes.folder).name


def split_rows(codes, split, real_only):
    """(w, w_mirror, y, groups) of a split; real_only: every face labelled real."""
    c = codes.where(split)
    y = np.zeros(len(c), np.int64) if real_only else c.labels.astype(np.int64)
    keep = y >= 0
    if c.mirror is None:
        raise LFError(f"{codes.folder}: extract with --mirror (the detector scores both views)")
    return c.codes[keep], c.mirror[keep], y[keep], c.groups[keep].astype(str)


def repeats(n_real: int, n_fake: int, floor: int) -> tuple[int, int]:
    """Whole-copy repeats (real, fake) that bring both classes of a source nearest to
    max(n_real, n_fake, floor) faces: (1, 1) for a balanced source."""
    target = max(n_real, n_fake, floor)
    return max(1, round(target / max(n_real, 1))), max(1, round(target / max(n_fake, 1)))


def heldout_figures(p, y, share) -> dict:
    """Figures of scores p on held-out faces y: AUC, balanced accuracy and ECE (both
    classes), the false-positive rate on real faces, at the equal-prior decision."""
    from sklearn.metrics import roc_auc_score

    fake = p >= prior_threshold(0.5, share)
    out = {"n": int(len(y)), "fpr_real": float(fake[y == 0].mean()) if (y == 0).any() else None,
           "roc_auc": None, "balanced_accuracy": None, "ece": None}
    if 0 < y.sum() < len(y):
        out["roc_auc"] = float(roc_auc_score(y, p))
        out["balanced_accuracy"] = float((fake[y == 1].mean() + (~fake[y == 0]).mean()) / 2)
        llr = logit(p) - logit(share)
        out["ece"] = ece(posterior(llr, y.mean()), y)
    return out


def train_sources(paths, kind: str, out, real_only=(), seed: int = 0, params: dict | None = None,
                  half: bool = False, floor: float = FLOOR, log=None) -> Detector:
    """Fit a `kind` classifier on the train split of several codes folders (both views);
    save it with its domain, temperature, typical real face and figures. Returns the Detector."""
    from .extract import load_codes

    log = log or (lambda m: print(m, file=sys.stderr))
    if kind not in CLASSIFIERS:
        raise LFError(f"unknown classifier {kind!r}; use one of {', '.join(CLASSIFIERS)}")
    real_only = {str(Path(p).resolve()) for p in real_only}
    paths = list(dict.fromkeys([*paths, *sorted(real_only)]))
    srcs = []
    for p in paths:
        c = load_codes(p)
        name, ro = source_name(c), str(Path(p).resolve()) in real_only
        tr, va = split_rows(c, "train", ro), split_rows(c, "val", ro)
        c.codes = c.mirror = None  # the splits are copies: free the test rows' codes
        srcs.append({"name": name, "codes": c, "train": tr, "val": va, "real_only": ro})
        log(f"{name}: {len(tr[2])} train faces ({int((tr[2] == 0).sum())} real, "
            f"{int(tr[2].sum())} fake), {len(va[2])} val")
    if len({s["name"] for s in srcs}) < len(srcs):
        raise LFError("two codes folders come from the same source; give each source once")
    projs = {s["codes"].projector.get("weights_sha256") for s in srcs}
    if len(projs) > 1:
        raise LFError("the codes folders come from different generators; extract them with one")
    two = [s for s in srcs if 0 < s["train"][2].sum() < len(s["train"][2])]
    if not two:
        raise LFError("no source has both real and fake faces in its train split")
    big = max(len(s["train"][2]) for s in two)
    X, Y, G, n_fake2, n_all2 = [], [], [], 0, 0
    for s in srcs:
        w, m, y, g = s["train"]
        reps = repeats(int((y == 0).sum()), int(y.sum()), int(floor * big)) if s in two else (1, 1)
        s["repeats"] = reps
        for cls, r in ((0, reps[0]), (1, reps[1])):
            k = y == cls
            for _ in range(r):
                X += [w[k], m[k]]
                Y += [y[k]] * 2
                G += [np.char.add(s["name"] + ":", g[k])] * 2
            if s in two:
                n_fake2 += int(k.sum()) * r * cls
                n_all2 += int(k.sum()) * r
    X, Y, G = np.concatenate(X), np.concatenate(Y), np.concatenate(G)  # X (2N', 14, 512)
    clf = CLASSIFIERS[kind](seed=seed, **(params or {}))
    log(f"training {type(clf).__name__} on {len(Y) // 2} faces and their mirrors "
        f"({', '.join(s['name'] + ' x' + '/'.join(map(str, s['repeats'])) for s in srcs)})")
    clf.fit(X, Y, groups=G)
    del X
    clf.train_fake_share_ = n_fake2 / n_all2  # see the module docstring

    # where the training codes lie (limits on val), calibration, typical real face; the
    # domain's Gaussians from at most DOMAIN_ROWS faces per source (both views)
    rng = np.random.default_rng(seed)
    feats, names = [], []
    for s in srcs:
        w, m, _, _ = s["train"]
        k = np.sort(rng.choice(len(w), min(len(w), DOMAIN_ROWS), replace=False))
        feats += [clf.features(w[k]), clf.features(m[k])]
        names += [s["name"]] * (2 * len(k))
    held = [clf.features(s["val"][0]) for s in srcs]
    held_names = np.concatenate([[s["name"]] * len(s["val"][2]) for s in srcs])
    domain = CodeDomain(seed=seed).fit(np.concatenate(feats), np.array(names),
                                       np.concatenate(held), held_names)
    del feats, held
    share = clf.train_fake_share_
    p_val = {s["name"]: mean_logit(clf.predict_proba(s["val"][0])[:, 1],
                                   clf.predict_proba(s["val"][1])[:, 1]) for s in srcs}
    y2 = np.concatenate([s["val"][2] for s in two])
    T = fit_temperature((logit(np.concatenate([p_val[s["name"]] for s in two])) - logit(share)), y2)
    sm = None
    if len(two) > 1:  # each two-class source its own temperature; real-only: the softest
        temps = {s["name"]: fit_temperature(logit(p_val[s["name"]]) - logit(share), s["val"][2])
                 for s in two}
        sm = SourceModel(temps, default=max(temps.values()), seed=seed).fit(
            np.concatenate([s["train"][0] for s in srcs]),
            np.concatenate([[s["name"]] * len(s["train"][2]) for s in srcs]))
        log("temperatures: " + ", ".join(f"{k} {v:.2f}" for k, v in sm.temperatures.items()))
    reals = np.concatenate([s["train"][0][s["train"][2] == 0] for s in srcs])
    det = Detector(clf, domain=domain, temperature=T, real_mean=reals.mean(0), source_model=sm)
    cal = {s["name"]: posterior((logit(p_val[s["name"]]) - logit(share))  # det.prob_fake's
                                / (T if sm is None else sm.temperature(*s["val"][:2])), share)
           for s in srcs}
    c0 = srcs[0]["codes"]
    det.clf.metrics = {
        "projector": c0.projector, "mirror": True, "classifier": kind, "seed": seed,
        "split": "train", "n_train": int(sum(len(s["train"][2]) for s in srcs)),
        "n_real": int(sum((s["train"][2] == 0).sum() for s in srcs)),
        "n_fake": int(sum(s["train"][2].sum() for s in srcs)),
        "sources": [{"name": s["name"], "what": WHAT.get(s["name"], s["name"]),
                     "codes": str(Path(s["codes"].folder).resolve()),
                     "manifest": s["codes"].meta.get("manifest"),
                     "manifest_sha256": s["codes"].meta.get("manifest_sha256"),
                     "real_only": s["real_only"], "repeats": list(s["repeats"]),
                     "n_real": int((s["train"][2] == 0).sum()), "n_fake": int(s["train"][2].sum())}
                    for s in srcs],
        "heldout": {s["name"]: heldout_figures(cal[s["name"]], s["val"][2], share) for s in srcs},
        "heldout_split": "val",
    }
    for k, v in det.heldout.items():
        auc = "n/a" if v["roc_auc"] is None else f"{v['roc_auc']:.3f}"
        fpr = "n/a" if v["fpr_real"] is None else f"{v['fpr_real']:.3f}"
        log(f"val {k}: AUC {auc}, real called fake {fpr}")
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    det.save(out, half=half)
    return det


def build_set(paths, routes: dict, out, real_only=(), seed: int = 0, log=None):
    """A DetectorSet file `out` whose SourceModel is fitted on the train split of the codes
    folders `paths` (both views), with each two-class source's temperature fitted on its
    `val` split as judged by its member (a real-only source: the softest of them); routes:
    {source name or "*": member detector file beside `out`}. Returns the DetectorSet."""
    from ..detector import Detector, DetectorSet
    from .extract import load_codes

    log = log or (lambda m: print(m, file=sys.stderr))
    out, real_only = Path(out), {str(Path(p).resolve()) for p in real_only}
    W, names, val = [], [], {}
    for p in dict.fromkeys([*paths, *sorted(real_only)]):
        c = load_codes(p)
        ro = str(Path(p).resolve()) in real_only
        w, _, y, _ = split_rows(c, "train", ro)
        W.append(w)
        names += [source_name(c)] * len(y)
        val[source_name(c)] = split_rows(c, "val", ro)
        c.codes = c.mirror = None
    sources = list(dict.fromkeys(names))
    other = routes.get("*")
    unknown = set(routes) - set(sources) - {"*"}
    if unknown:
        raise LFError(f"no codes folder of source(s) {sorted(unknown)}; the sources are "
                      f"{', '.join(sources)}")
    files = {s: routes.get(s, other) for s in sources}
    if None in files.values():
        raise LFError("a route for every source is needed (or '*=FILE' for the rest): "
                      f"missing {[s for s, f in files.items() if f is None]}")
    members, by_file = {}, {}
    for f in dict.fromkeys(files.values()):
        if Path(f).name != f:
            raise LFError(f"a member is named by its file name beside {out.name}, not {f!r}")
        name = Path(f).stem.removeprefix("detector-")
        members[name], by_file[f] = Detector.load(out.parent / f), name
    temps = {}
    for s, (w, m, y, _) in val.items():
        if 0 < y.sum() < len(y):
            d = members[by_file[files[s]]]
            temps[s] = fit_temperature(logit(d.prob_fake(w, m)) - logit(d.train_fake_share), y)
    sm = SourceModel(temps, default=max(temps.values(), default=1.0), seed=seed).fit(
        np.concatenate(W), np.array(names))
    ds = DetectorSet(sm, {s: by_file[f] for s, f in files.items()}, members,
                     files={n: f for f, n in by_file.items()})
    log("temperatures: " + ", ".join(f"{k} {v:.2f}" for k, v in sm.temperatures.items()))
    ds.save(out)
    log(f"{out}: " + ds.describe())
    return ds
