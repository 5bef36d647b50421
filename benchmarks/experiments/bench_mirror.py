"""Does a latent detector give the same verdict for a face and its mirror image?

    python benchmarks/experiments/bench_mirror.py runs/bench/dfdc_full            # the default detector
    python benchmarks/experiments/bench_mirror.py runs/bench/dfdc_full --augment  # + a mirror-trained one
    python benchmarks/experiments/bench_mirror.py runs/bench/dfdc_full --photos 200 --also OLD.safetensors

Reads an `lf bench` work folder (its codes-stylegan, encoder-only, and codes-crops, the
aligned faces those codes were made from), encodes every face mirrored left-right (about
2 min for 12,000 faces; cached per generator in WORK/mirror-codes-SHA.npy), and prints on
the test split: ROC AUC on the faces, on their mirrors, and on the mean of the two logits
(test-time augmentation), with how often the verdict (p_fake >= 0.5) differs between a
face and its mirror. A mirrored face is the same face: a sound detector should not change
its mind. A detector made with `lf extract --mirror` scores the mean of both views, so its verdict
is the same for a face and its mirror by construction; the single views show what each
alone would say. --augment also fits the detector's recipe (MLP-2, --members nets) on the train faces
plus their mirrors and reports the same figures, with paired bootstrap intervals (over
test videos) against the given detector. --photos N runs the whole pipeline (lf predict,
encoder only) on the first N test photos of the manifest and on the photos mirrored: the
mirrored photo is detected and aligned again, so even a two-view detector can move a
little there; --also DET does the same for a second detector.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from lf_core.artifacts import file_digest  # noqa: E402
from lf_core.classifiers import MLP2, load_classifier, mean_logit, two_views  # noqa: E402
from lf_core.lab.bench import machine_line  # noqa: E402
from lf_core.lab.extract import load_codes  # noqa: E402
from lf_core.model import load_model  # noqa: E402
from lf_core.pipeline import mirror_code  # noqa: E402
from lf_core.stats import bootstrap_auc, percentile_ci95  # noqa: E402


def mirror_codes(work: Path, crops, batch=32) -> np.ndarray:
    """(N, 14, 512) encoder-only codes of the crops flipped left-right (cached per generator:
    other weights make other codes)."""
    model = load_model()
    path = work / f"mirror-codes-{file_digest(model.path)}.npy"
    if path.exists():
        return np.load(path)
    t, out = time.perf_counter(), []
    for i in range(0, len(crops), batch):
        out.append(mirror_code(model, crops[i:i + batch]))
    codes = np.concatenate(out).astype(np.float32)
    print(f"encoded {len(codes)} mirrored faces in {time.perf_counter() - t:.0f} s")
    np.save(path, codes)
    return codes


def report(name, pa, pb, y):
    from sklearn.metrics import roc_auc_score

    tta = mean_logit(pa, pb)
    flips = float(((pa >= 0.5) != (pb >= 0.5)).mean())
    print(f"{name}: AUC faces {roc_auc_score(y, pa):.3f}, mirrors {roc_auc_score(y, pb):.3f}, "
          f"mean of both {roc_auc_score(y, tta):.3f}; verdict differs for {flips:.1%} of the "
          f"faces (mean |p - p_mirror| {np.abs(pa - pb).mean():.3f})")
    return tta


def photos(codes, n, detectors):
    """lf predict on n test photos and on the same photos mirrored, per detector."""
    from lf_core.detector import load_detector
    from lf_core.errors import NoFaceError
    from lf_core.io import load_image
    from lf_core.pipeline import predict_image

    te = codes.where("test", labelled=True)
    model, ps, lost = load_model(), {d: [] for d in detectors}, 0
    for path in te.paths[:n]:
        img = load_image(path)
        try:  # every detector on both views, or the photo is left out
            row = {d: [predict_image(x, model=model, detector=load_detector(d), max_faces=1)
                       .faces[0].prob_fake for x in (img, np.ascontiguousarray(img[:, ::-1]))]
                   for d in detectors}
        except NoFaceError:  # the mirrored photo did not align
            lost += 1
            continue
        for d, pair in row.items():
            ps[d].append(pair)
    print(f"{lost} of {min(n, len(te))} photos left out: a view did not align")
    for d, v in ps.items():
        v = np.array(v)
        print(f"{Path(d).name}, {len(v)} photos and their mirrors end to end: verdict differs "
              f"for {((v[:, 0] >= 0.5) != (v[:, 1] >= 0.5)).mean():.1%} (mean |p - p_mirror| "
              f"{np.abs(v[:, 0] - v[:, 1]).mean():.3f})")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("work", type=Path, help="an lf bench work folder (runs/bench/NAME)")
    ap.add_argument("--detector", default="weights/detector-default.safetensors")
    ap.add_argument("--augment", action="store_true",
                    help="also fit MLP-2s on the train faces and their mirrors")
    ap.add_argument("--members", type=int, default=3)
    ap.add_argument("--bootstrap", type=int, default=2000)
    ap.add_argument("--photos", type=int, default=0, help="end to end on N test photos")
    ap.add_argument("--also", help="--photos: a second detector to compare")
    a = ap.parse_args(argv)
    print(machine_line())
    sg, cr = load_codes(a.work / "codes-stylegan"), load_codes(a.work / "codes-crops")
    if sg.projector.get("steps", 0) or not (sg.paths == cr.paths).all():
        sys.exit("needs encoder-only stylegan codes and crops of the same faces (lf bench)")
    if a.photos:
        photos(sg, a.photos, [a.detector] + ([a.also] if a.also else []))
    mir = mirror_codes(a.work, cr.codes)
    split, y = sg.splits, sg.labels
    te = (split == "test") & (y >= 0)
    det = load_classifier(a.detector)
    pa, pb = det.predict_proba(sg.codes[te])[:, 1], det.predict_proba(mir[te])[:, 1]
    print(f"{te.sum()} test faces, {len(np.unique(sg.groups[te]))} videos")
    report(Path(a.detector).name, pa, pb, y[te])
    if two_views(det):
        print("  it was trained on both views (lf extract --mirror) and scores their mean: "
              "a face and its mirror get the same verdict")
    if not a.augment:
        return
    tr = (split == "train") & (y >= 0)
    t = time.perf_counter()
    aug = MLP2(members=a.members).fit(np.concatenate([sg.codes[tr], mir[tr]]),
                                      np.concatenate([y[tr], y[tr]]),
                                      groups=np.concatenate([sg.groups[tr]] * 2))
    print(f"MLP-2 x {a.members} on {2 * tr.sum()} train faces and mirrors: "
          f"{time.perf_counter() - t:.0f} s")
    qa, qb = aug.predict_proba(sg.codes[te])[:, 1], aug.predict_proba(mir[te])[:, 1]
    tta = report("mirror-augmented", qa, qb, y[te])
    s = bootstrap_auc(y[te], [pa, qa, tta], sg.groups[te], a.bootstrap)
    for i, name in ((1, "augmented, faces only"), (2, "augmented, mean of both")):
        d = s[:, i] - s[:, 0]
        lo, hi = percentile_ci95(d)
        print(f"{name} vs {Path(a.detector).name} on the faces: {d.mean():+.3f} "
              f"[{lo:+.3f}, {hi:+.3f}] (95%, {len(s)} resamples of test videos)")


if __name__ == "__main__":
    main()
