"""Detectors on several sources of faces: per-source test figures, leave-one-source-out.

    python benchmarks/experiments/bench_sources.py --codes dfdc_faces=runs/codes/dfdc-all-m \
        ffhq_stylegan=runs/codes/ffhq-m lfw=runs/codes/lfw-m utkface=runs/codes/utk-m \
        --real-only lfw --variants all --members 3 -o runs/sources
    python benchmarks/experiments/bench_sources.py ... --variants=-lfw,-utkface,-ffhq_stylegan
    python benchmarks/experiments/bench_sources.py ... --report --against OLD.safetensors
    python benchmarks/experiments/bench_sources.py ... --variants "" --detector SET.safetensors

A variant is the set of sources a detector is trained on (lf_core.sources.train_sources, the
default detector's recipe): "all", one source's name (that source alone) or "-NAME" (all
but NAME: its real test faces are then faces of a source the detector never saw). Each
variant's detector is kept in OUT (rerun: reused); `--detector` adds the figures of a
detector file as it is (a detector set of lf train-set too). For every source's test split: ROC AUC,
balanced accuracy and ECE (sources with fakes), the share of real faces called fake
(false-positive rate, at equal priors), the share of faces the detector abstains on
(outside its domain), and the rates among the faces it does judge. DFDC's figures are also
given on the test faces of manifest.csv (the original 6,000 source videos), paired with
`--against` (today's default) by a bootstrap over source videos.
"""

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--codes", nargs="+", required=True, metavar="NAME=CODES",
                    help="each source's codes folder (lf extract --mirror)")
    ap.add_argument("--real-only", default="", help="sources taken as real faces, comma-separated")
    ap.add_argument("--variants", default="all", help="comma-separated: all, NAME or -NAME")
    ap.add_argument("--members", type=int, default=1, help="MLP-2 nets per detector")
    ap.add_argument("--param", action="append", default=[], metavar="NAME=VALUE",
                    help="an MLP-2 parameter over the regularised recipe, e.g. batch_size=128")
    ap.add_argument("--floor", type=float, default=None,
                    help="repeat a two-class source's classes up to this share of the largest "
                         "(lf_core.lab.sources.FLOOR by default)")
    ap.add_argument("--detector", action="append", default=[], metavar="FILE",
                    help="also measure this detector file as it is (key: its file name)")
    ap.add_argument("--against", help="a detector to pair with on DFDC's original test faces")
    ap.add_argument("--bootstrap", type=int, default=2000)
    ap.add_argument("-o", "--out", default="runs/sources", help="folder for detectors and results")
    ap.add_argument("--report", action="store_true",
                    help="print the results of OUT (and of --more folders) as Markdown")
    ap.add_argument("--more", nargs="*", default=[], help="other OUT folders to report with")
    a = ap.parse_args(argv)

    from sklearn.metrics import roc_auc_score

    from lf_core.classifiers import MLP2
    from lf_core.detector import Detector
    from lf_core.domain import ece, ece_floor, logit, posterior
    from lf_core.lab.extract import load_codes
    from lf_core.lab.sources import source_name, train_sources

    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    folders = dict(s.split("=", 1) for s in a.codes)
    real_only = [n for n in a.real_only.split(",") if n]
    test = {}
    for name, f in folders.items():
        c = load_codes(f)
        assert source_name(c) == name, (name, source_name(c))
        t = c.where("test")
        y = np.zeros(len(t), int) if name in real_only else t.labels.astype(int)
        test[name] = {"w": t.codes, "m": t.mirror, "y": y, "g": t.groups.astype(str),
                      "orig": t.index < 12000}

    def figures(det):
        res = {}
        share = det.train_fake_share
        for name, d in test.items():
            p = det.prob_fake(d["w"], d["m"])
            fake = p >= 0.5 if share is None else logit(p) >= logit(share)
            near = det.where(d["w"], d["m"])
            inside = np.ones(len(p), bool) if near is None else near[1] <= 1
            y = d["y"]
            r = {"n": int(len(y)), "fpr_real": float(fake[y == 0].mean()),
                 "abstain": float((~inside).mean()),
                 "fpr_real_judged": (float(fake[(y == 0) & inside].mean())
                                     if ((y == 0) & inside).any() else None)}
            if near is not None:
                r["nearest"] = {k: int((near[0] == k).sum()) for k in sorted(set(near[0]))}
            if 0 < y.sum() < len(y):
                r["roc_auc"] = float(roc_auc_score(y, p))
                r["balanced_accuracy"] = float((fake[y == 1].mean() + (~fake[y == 0]).mean()) / 2)
                r["tpr_fake"] = float(fake[y == 1].mean())
                r["tpr_fake_judged"] = float(fake[(y == 1) & inside].mean())
                q = posterior(logit(p) - logit(share), y.mean())
                r["ece"], r["ece_floor"] = ece(q, y), ece_floor(q)
                if name == "dfdc_faces":
                    o = d["orig"]
                    bal = (fake[o & (y == 1)].mean() + (~fake[o & (y == 0)]).mean()) / 2
                    r["orig_test"] = {"n": int(o.sum()), "balanced_accuracy": float(bal),
                                      "roc_auc": float(roc_auc_score(y[o], p[o]))}
            res[name] = r
        return res

    results = {}
    rfile = out / "results.json"
    if rfile.exists():
        results = json.loads(rfile.read_text())
    names = list(folders)
    if a.report:
        return report(out, [Path(m) for m in a.more], test, figures, a)
    for v in [s for s in a.variants.split(",") if s]:
        key = f"{v}@{a.members}"
        path = out / f"{v.replace('-', 'no-')}-{a.members}.safetensors"
        if key in results and path.exists():
            continue
        srcs = (names if v == "all" else [v] if not v.startswith("-")
                else [n for n in names if n != v[1:]])
        t0 = time.time()
        if not path.exists():
            train_sources([folders[n] for n in srcs if n not in real_only], "mlp2", path,
                          real_only=[folders[n] for n in srcs if n in real_only],
                          params={**MLP2.REGULARISED, "members": a.members,
                                  **{k: json.loads(v) for k, v in
                                     (q.split("=", 1) for q in a.param)}}, half=True,
                          **({} if a.floor is None else {"floor": a.floor}))
        det = Detector.load(path)
        results[key] = {"sources": srcs, "members": a.members, "fit_s": round(time.time() - t0),
                        "floor": a.floor,
                        "train_fake_share": det.train_fake_share, "temperature": det.temperature,
                        "test": figures(det)}
        rfile.write_text(json.dumps(results, indent=1))
        print(key, json.dumps(results[key], indent=1), flush=True)

    for f in a.detector:
        det = Detector.load(f)
        key = Path(f).name
        results[key] = {"sources": [s["name"] for s in det.sources], "file": f,
                        "members": (f"set of {len(det.members)}" if hasattr(det, "members")
                                    else getattr(det.clf, "members", 1)),
                        "train_fake_share": det.train_fake_share, "test": figures(det)}
        rfile.write_text(json.dumps(results, indent=1))
        print(key, json.dumps(results[key], indent=1), flush=True)

    if a.against:
        from lf_core.stats import bootstrap_auc

        old = Detector.load(a.against)
        d = test["dfdc_faces"]
        o = d["orig"]
        results["against"] = {"detector": a.against, "test": figures(old)}
        base = old.prob_fake(d["w"][o], d["m"][o])
        for key, r in list(results.items()):
            if key == "against" or "dfdc_faces" not in r["sources"]:
                continue
            p = Detector.load(_file(key, dict(r, folder=out))).prob_fake(d["w"][o], d["m"][o])
            b = bootstrap_auc(d["y"][o], np.stack([p, base]), d["g"][o], a.bootstrap)
            diff = b[:, 0] - b[:, 1]
            r["paired_vs_against"] = {"auc_diff": float(roc_auc_score(d["y"][o], p)
                                                        - roc_auc_score(d["y"][o], base)),
                                      "ci95": [float(x) for x in np.percentile(diff, [2.5, 97.5])]}
        rfile.write_text(json.dumps(results, indent=1))
        print(json.dumps({k: v.get("paired_vs_against") for k, v in results.items()}, indent=1))
    return 0


def _file(key, r):
    """The detector file of a result: as given (--detector), else the variant's in its folder."""
    return r.get("file") or (Path(r["folder"]) / f"{key.split('@')[0].replace('-', 'no-')}-"
                             f"{key.split('@')[1]}.safetensors")


def _f(v, d=3):
    return "-" if v is None else f"{v:.{d}f}"


def report(out, more, test, figures, a):
    """Markdown: per-source figures of every detector, leave-one-source-out, the paired
    gain on DFDC's original test faces, and the default's reliability curves."""
    from lf_core.detector import Detector
    from lf_core.domain import ece, ece_floor, logit, posterior, reliability
    from lf_core.stats import bootstrap_auc

    res = {}
    for d in [out, *more]:
        f = d / "results.json"
        if f.is_file():
            res.update({k: dict(v, folder=str(d)) for k, v in json.loads(f.read_text()).items()
                        if k != "against"})
    names = list(test)
    print("| detector (trained on) | nets | " + " | ".join(
        f"{n}: AUC / bal. acc. / ECE / real called fake / unsure" for n in names) + " |")
    print("|---|---|" + "---|" * len(names))
    for k, r in res.items():
        cells = []
        for n in names:
            t = r["test"].get(n, {})
            cells.append(f"{_f(t.get('roc_auc'))} / {_f(t.get('balanced_accuracy'))} / "
                         f"{_f(t.get('ece'))} / {_f(t.get('fpr_real'))} / {_f(t.get('abstain'))}")
        print(f"| {k.split('@')[0]} ({', '.join(r['sources'])}) | {r['members']} | "
              + " | ".join(cells) + " |")
    left = [k for k in res if k.startswith("-")]
    if left:
        print("\nLeave one source out (the left-out source's real test faces, at equal "
              "priors):\n")
        print("| left out | its real faces called fake | unsure | called fake among judged | "
              "DFDC fakes caught | DFDC AUC |")
        print("|---|---|---|---|---|---|")
    for k in left:
        r = res[k]
        t, d = r["test"][k.split("@")[0][1:]], r["test"].get("dfdc_faces", {})
        print(f"| {k.split('@')[0][1:]} | {_f(t['fpr_real'])} | {_f(t['abstain'])} | "
              f"{_f(t.get('fpr_real_judged'))} | {_f(d.get('tpr_fake'))} | "
              f"{_f(d.get('roc_auc'))} |")
    if a.against:
        old = Detector.load(a.against)
        d = test["dfdc_faces"]
        o = d["orig"]
        base = old.prob_fake(d["w"][o], d["m"][o])
        from sklearn.metrics import roc_auc_score

        print(f"\nOn the {int(o.sum())} test faces of manifest.csv, paired with `{a.against}` "
              f"(AUC {roc_auc_score(d['y'][o], base):.3f}), {a.bootstrap} resamples of the "
              "source videos:\n")
        for k, r in res.items():
            if "dfdc_faces" not in r["sources"]:
                continue
            p = Detector.load(_file(k, r)).prob_fake(d["w"][o], d["m"][o])
            b = bootstrap_auc(d["y"][o], np.stack([p, base]), d["g"][o], a.bootstrap)
            lo, hi = np.percentile(b[:, 0] - b[:, 1], [2.5, 97.5])
            auc = roc_auc_score(d["y"][o], p)
            print(f"- {k}: AUC {auc:.3f}, {auc - roc_auc_score(d['y'][o], base):+.3f} "
                  f"[{lo:+.3f}, {hi:+.3f}]")
    best = [k for k in res if k == "detector-default.safetensors"] or [
        k for k in res if k.startswith("all@")]
    if best:
        det = Detector.load(_file(best[-1], res[best[-1]]))
        print("\nReliability of the default (test faces; mean p(fake) -> share of fakes per bin, "
              "p at each source's own share of fakes):\n")
        for n in names:
            d = test[n]
            if not 0 < d["y"].sum() < len(d["y"]):
                continue
            p = det.prob_fake(d["w"], d["m"])
            q = posterior(logit(p) - logit(det.train_fake_share), d["y"].mean())
            bins = ", ".join(f"{b['mean_p']:.2f}->{b['fake_share']:.2f} (n {b['n']})"
                             for b in reliability(q, d["y"]))
            print(f"- {n} (ECE {ece(q, d['y']):.3f}; a calibrated detector would show "
                  f"{ece_floor(q):.3f} on these {len(q)} faces): {bins}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
