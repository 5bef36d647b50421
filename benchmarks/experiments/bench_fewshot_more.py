"""The few-shot curve past lf bench's last point: a latent classifier fitted on more and
more training videos of a codes folder, tested on the original test faces.

    python benchmarks/experiments/bench_fewshot_more.py runs/codes/dfdc-all-m \\
        --sizes 1000,2000,4172,0 --draws 3 --classifiers mlp2-reg,lr -o runs/fewshot-more \
        [--param batch_size=128 --param lr=3e-4 ...]

lf bench's few-shot section stops at the 4,172 training videos of DFDC's manifest.csv;
manifest-all.csv has about twice as many. Here each size is `--draws` random draws of
training groups (draw d: groups and fit seed d; every classifier gets the same groups in
a draw), on the codes of the faces alone (one view, as lf bench), tested on the test
split of the rows that are manifest.csv's too (`--orig-rows`, the first 12,000 rows of
manifest-all.csv) and on the whole test split. Size 0: every training group, one fit.
Results accumulate in OUT/results.json (a rerun skips the fits it has); --report prints
them as Markdown.
"""

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("codes", help="a codes folder (lf extract)")
    ap.add_argument("--sizes", default="1000,2000,4172,0", help="training groups; 0 = all")
    ap.add_argument("--draws", type=int, default=3, help="draws per size below all")
    ap.add_argument("--classifiers", default="mlp2-reg,lr",
                    help="lr, rf, mlp2, mlp5; -reg: the regularised MLP recipe")
    ap.add_argument("--param", action="append", default=[], metavar="NAME=VALUE",
                    help="an MLP parameter over the regularised recipe, e.g. batch_size=128 "
                    "(the row is then named NAME-reg*)")
    ap.add_argument("--orig-rows", type=int, default=12000,
                    help="the rows of the smaller manifest (its test split is reported apart)")
    ap.add_argument("-o", "--out", required=True, help="folder of results.json")
    ap.add_argument("--report", action="store_true", help="print OUT's results as Markdown")
    a = ap.parse_args(argv)

    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    rfile = out / "results.json"
    results = json.loads(rfile.read_text()) if rfile.exists() else {}
    if a.report:
        return report(results)

    from sklearn.metrics import roc_auc_score

    from lf_core.classifiers import CLASSIFIERS
    from lf_core.lab.extract import load_codes

    c = load_codes(a.codes)
    tr, te = c.where("train", labelled=True), c.where("test", labelled=True)
    orig = te.index < a.orig_rows
    groups = np.unique(tr.groups)
    print(f"{len(tr)} training faces of {len(groups)} groups; test {len(te)} faces "
          f"({int(orig.sum())} in the first {a.orig_rows} rows)", flush=True)
    extra = {k: json.loads(v) for k, v in (q.split("=", 1) for q in a.param)}
    if extra:  # another recipe: its rows get their own name
        a.classifiers = ",".join(c + "*" if "-reg" in c else c for c in a.classifiers.split(","))
    for n in (int(s) for s in a.sizes.split(",")):
        for d in range(a.draws if 0 < n < len(groups) else 1):
            keep = np.random.default_rng(d).permutation(groups)[:n] if n else groups
            sub = tr.take(np.isin(tr.groups, keep))
            for name in a.classifiers.split(","):
                key = f"{name}/{len(keep)}/draw{d}"
                if key in results:
                    continue
                kind, _, variant = name.rstrip("*").partition("-")
                params = {**CLASSIFIERS[kind].REGULARISED, **extra} if variant else {}
                t0 = time.perf_counter()
                clf = CLASSIFIERS[kind](seed=d, **params).fit(sub.codes, sub.labels,
                                                              groups=sub.groups)
                p = clf.predict_proba(te.codes)[:, 1]
                results[key] = {
                    "classifier": name, "groups": int(len(keep)), "draw": d,
                    "n_train": int(len(sub)), "fit_s": round(time.perf_counter() - t0, 1),
                    "roc_auc_orig": float(roc_auc_score(te.labels[orig], p[orig])),
                    "roc_auc_all": float(roc_auc_score(te.labels, p))}
                rfile.write_text(json.dumps(results, indent=1))
                print(key, json.dumps(results[key]), flush=True)
    return report(results)


def report(results: dict) -> int:
    """Mean test AUC per classifier and size, with each draw's."""
    rows = {}
    for r in results.values():
        rows.setdefault((r["classifier"], r["groups"]), []).append(r)
    print("| classifier | training videos | draws | train faces | ROC AUC, manifest.csv test "
          "| ROC AUC, all test | AUC of each draw (manifest.csv test) |")
    print("|---|---:|---:|---:|---:|---:|---|")
    for (name, n), rs in sorted(rows.items()):
        mean = {k: np.mean([r[k] for r in rs]) for k in ("n_train", "roc_auc_orig", "roc_auc_all")}
        each = ", ".join(f"{r['roc_auc_orig']:.3f}" for r in sorted(rs, key=lambda r: r["draw"]))
        print(f"| {name} | {n} | {len(rs)} | {mean['n_train']:.0f} | {mean['roc_auc_orig']:.3f} "
              f"| {mean['roc_auc_all']:.3f} | {each} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
