"""One temperature for several sources: fitted on their pooled held-out faces, or with each
source weighing alike; test ECE per source against the ECE a calibrated detector would show.

    python benchmarks/experiments/bench_calibration.py weights/detector-default.safetensors \
        --codes dfdc_faces=runs/codes/dfdc-all-m ffhq_stylegan=runs/codes/ffhq-m

For each detector its net is kept and only the temperature T is refitted on the `val`
split of the sources with both classes (lf_core.domain.fit_temperature): "pooled" (every
face alike: the largest source decides T), "by source" (each source's mean log loss at its
own share of fakes, the sources alike). Test figures are read as bench_sources.py reads
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
    from lf_core.domain import ece, ece_floor, fit_temperature, logit, posterior
    from lf_core.lab.extract import load_codes
    from lf_core.lab.sources import split_rows

    data = {}
    for spec in a.codes:
        name, folder = spec.split("=", 1)
        c = load_codes(folder)
        data[name] = {s: split_rows(c, s, False) for s in ("val", "test")}

    print("| detector | T | " + " | ".join(f"{n}: test ECE (floor)" for n in data) + " |")
    print("|---|---|" + "---|" * len(data))
    for path in a.detectors:
        det = Detector.load(path)
        shipped, share = det.temperature, det.train_fake_share
        det.temperature = 1.0
        llr = {n: {s: logit(det.prob_fake(w, m)) - logit(share)
                   for s, (w, m, _, _) in d.items()} for n, d in data.items()}
        val_l = np.concatenate([llr[n]["val"] for n in data])
        val_y = np.concatenate([d["val"][2] for d in data.values()])
        val_g = np.concatenate([[n] * len(d["val"][2]) for n, d in data.items()])
        temps = {"as shipped": shipped, "pooled": fit_temperature(val_l, val_y),
                 "by source": fit_temperature(val_l, val_y, groups=val_g)}
        for how, T in temps.items():
            cells = []
            for n, d in data.items():
                y = d["test"][2]
                q = posterior(llr[n]["test"] / T, y.mean())
                cells.append(f"{ece(q, y):.3f} ({ece_floor(q):.3f})")
            print(f"| {Path(path).name} {how} | {T:.2f} | " + " | ".join(cells) + " |",
                  flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
