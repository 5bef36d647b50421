"""One temperature for several sources, or one each: test ECE per source against the ECE a
calibrated detector would show.

    python benchmarks/experiments/bench_calibration.py weights/detector-default.safetensors \
        --codes dfdc_faces=runs/codes/dfdc-all-m ffhq_stylegan=runs/codes/ffhq-m

For each detector its net is kept and only the temperature T is refitted on the `val`
split of the sources with both classes (lf_core.domain.fit_temperature): "pooled" (every
face alike: the largest source decides T), "by source" (each source's mean log loss at its
own share of fakes, the sources alike), "per source" (each source its own T, given to a
face by a lf_core.domain.SourceModel fitted on the sources' train split: as lf train does
with two two-class sources or more). Test figures are read as bench_sources.py reads
them (p(fake) at each source's own share of fakes). "floor" is lf_core.domain.ece_floor:
the mean ECE of a perfectly calibrated detector with the same scores on the same number
of faces; a measured ECE near it is as calibrated as that many faces can show.
"""

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("detectors", nargs="+", help="detector files (lf train)")
    ap.add_argument("--codes", nargs="+", required=True, metavar="NAME=CODES",
                    help="codes folders (lf extract --mirror) of sources with real and fake faces")
    a = ap.parse_args(argv)

    from lf_core.detector import Detector
    from lf_core.domain import SourceModel, ece, ece_floor, fit_temperature, logit, posterior
    from lf_core.lab.extract import load_codes
    from lf_core.lab.sources import split_rows

    data = {}
    for spec in a.codes:
        name, folder = spec.split("=", 1)
        c = load_codes(folder)
        data[name] = {s: split_rows(c, s, False) for s in ("train", "val", "test")}

    print("| detector | T | " + " | ".join(f"{n}: test ECE (floor)" for n in data) + " |")
    print("|---|---|" + "---|" * len(data))
    for path in a.detectors:
        det = Detector.load(path)
        shipped, share = det.temperature, det.train_fake_share
        det.temperature = 1.0
        llr = {n: {s: logit(det.prob_fake(w, m)) - logit(share)
                   for s, (w, m, _, _) in d.items() if s != "train"} for n, d in data.items()}
        val_l = np.concatenate([llr[n]["val"] for n in data])
        val_y = np.concatenate([d["val"][2] for d in data.values()])
        val_g = np.concatenate([[n] * len(d["val"][2]) for n, d in data.items()])
        pooled = fit_temperature(val_l, val_y)
        own = {n: fit_temperature(llr[n]["val"], d["val"][2]) for n, d in data.items()}
        sm = SourceModel(own, default=pooled).fit(
            np.concatenate([d["train"][0] for d in data.values()]),
            np.concatenate([[n] * len(d["train"][2]) for n, d in data.items()]))
        temps = {"as shipped": shipped, "pooled": pooled,
                 "by source": fit_temperature(val_l, val_y, groups=val_g), "per source": sm}
        for how, T in temps.items():
            cells = []
            for n, d in data.items():
                w, m, y, _ = d["test"]
                t = T.temperature(w, m) if how == "per source" else T
                q = posterior(llr[n]["test"] / t, y.mean())
                cells.append(f"{ece(q, y):.3f} ({ece_floor(q):.3f})")
            t = ", ".join(f"{v:.2f}" for v in own.values()) if how == "per source" else f"{T:.2f}"
            print(f"| {Path(path).name} {how} | {t} | " + " | ".join(cells) + " |",
                  flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
