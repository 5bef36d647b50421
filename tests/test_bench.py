"""lf bench end to end on a tiny DFDC manifest: every section runs, is cached, and the
report has Table 1, reconstruction CI, per-row accuracy and the few-shot curve."""

import csv
import json

import numpy as np
import pytest

from lf_core.errors import LFError
from lf_core.lab.data import read_manifest, split_of


@pytest.fixture(scope="module")
def tiny_manifest(data_dir, tmp_path_factory):
    items = read_manifest(data_dir / "dfdc_faces" / "manifest.csv")
    by_split = {"train": [], "val": [], "test": []}
    for it in items:
        s = split_of(it.group)
        if len([x for x in by_split[s] if x.label == it.label]) < (8 if s == "train" else 4):
            by_split[s].append(it)
    path = tmp_path_factory.mktemp("bench") / "tiny.csv"
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["path", "label", "group"])
        for rows in by_split.values():
            w.writerows([it.path, it.label, it.group] for it in rows)
    return path


def test_bench_refuses_an_unknown_classifier_at_once(tiny_manifest, tmp_path):
    from lf_core.lab.bench import BenchConfig, run_bench

    cfg = BenchConfig(manifest=str(tiny_manifest), work=str(tmp_path / "w"), classifiers=("lr-reg",))
    with pytest.raises(LFError, match="unknown bench classifier 'lr-reg'"):
        run_bench(cfg)
    assert not (tmp_path / "w" / "results.json").exists()


def test_sigterm_ends_a_bench_like_ctrl_c():
    """`kill` of a bench raises SystemExit inside, so its run is logged (see below)."""
    import os
    import signal
    import threading

    from lf_core.lab.bench import _sigterm_as_exit

    if threading.current_thread() is not threading.main_thread():  # no handler: it would kill
        pytest.skip("signal handlers need the main thread")
    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(SystemExit) as e, _sigterm_as_exit():
        os.kill(os.getpid(), signal.SIGTERM)
    assert e.value.code == 143 and signal.getsignal(signal.SIGTERM) is before


def test_bench_tiny(tiny_manifest, tmp_path, monkeypatch):
    from lf_core.lab.bench import BenchConfig, run_bench

    cfg = BenchConfig(manifest=str(tiny_manifest), name="tiny", work=str(tmp_path / "work"),
                      out_dir=str(tmp_path / "out"), projectors=("stylegan", "stylegan-2", "pca"),
                      pca_components=8, classifiers=("lr", "mlp2-reg"), cnns=("meso4",),
                      cnn_epochs=1, rf_trees=5, recon_faces=6, recon_steps=2,
                      recon_steps_faces=1, channel_classifiers=("lr",), fewshot_groups=(4, 0),
                      fewshot_draws=2)
    md = run_bench(cfg)
    res = json.loads((tmp_path / "out" / "results" / "tiny.json").read_text())
    assert set(res["table"]) == {"stylegan/lr", "stylegan/mlp2-reg", "stylegan-2/lr",
                                 "stylegan-2/mlp2-reg", "pca/lr", "pca/mlp2-reg", "cnn/meso4"}
    assert res["codes"]["stylegan-2"]["name"].startswith("stylegan (2 inversion steps")
    for row in res["table"].values():
        assert 0 <= row["accuracy"] <= 1 and row["n_train"] > 0 and row["infer_s_per_face"] > 0
    rec = res["recon"]
    assert rec["encoder-only"]["n"] == 6 and rec["encoder + 2 steps"]["n"] == 1
    assert 5 < rec["encoder-only"]["psnr"][0] < 60 and rec["pca"]["ssim"][1] >= 0
    assert len(res["channels"]["lr"]) == 14
    assert all(len(pts) == 2 for pts in res["fewshot"].values())
    # every classifier on the method's best latent row (a StyleGAN one) and the CNN, never a
    # baseline projector's row
    lat = [k for k in res["fewshot"] if not k.startswith("cnn/")]
    assert len({k.split("/")[0] for k in lat}) == 1 and lat[0].startswith("stylegan")
    assert sorted(k.split("/")[1] for k in lat) == ["lr", "mlp2-reg"] and "cnn/meso4" in res["fewshot"]
    for row, pts in res["fewshot"].items():  # all groups: Table 1's own fit, not a second one
        assert pts[-1]["roc_auc"] == res["table"][row]["roc_auc"]
        # 4 groups drawn twice (other groups, other seed): the point is the draws' mean
        d = pts[0]["draws"]
        assert len(d) == 2 and pts[0]["roc_auc"] == pytest.approx(np.mean([x["roc_auc"] for x in d]))
    from lf_core.lab.bench import fewshot_paired
    pairs = fewshot_paired(res["fewshot"])  # each latent row minus the CNN, draw by draw
    assert [p["latent"] for p in pairs] == lat
    for pair in pairs:
        assert pair["groups"] == 4 and len(pair["diffs"]) == 2 and pair["cnn"] == "cnn/meso4"
    other = json.loads(json.dumps(res["fewshot"]))  # drawn from other pools: not paired
    other["cnn/meso4"][0]["pool"] = "another"
    assert fewshot_paired(other) == []
    text = md.read_text()
    assert "| stylegan (2 steps) | lr |" in text
    assert "mlp2-reg (not in the paper): the same MLP-2 with dropout 0.2" in text
    assert "Paired by draw (the same training groups)" in text
    for heading in ("Table 1", "Reconstruction quality", "per W+ row", "Few-shot"):
        assert heading.lower() in text.lower()
    assert "LPIPS" in text  # either a column or the plain statement that it is not reported
    # each face against its own PCA reconstruction: the k-step row pairs with the first k
    d = np.subtract(rec["encoder-only"]["psnr_each"], rec["pca"]["psnr_each"])
    assert f"| stylegan encoder-only minus pca | 6 | {d.mean():+.2f} ± " in text
    assert "| stylegan encoder + 2 steps minus pca | 1 | " in text
    # a CNN whose held-out loss was still falling at the epoch cap is said to be so
    assert res["table"]["cnn/meso4"]["best_epoch"] == 1
    assert "meso4's held-out loss was lowest at its last epoch (1)" in text
    auc = [r["roc_auc"] for r in res["channels"]["lr"]]
    mid, rest = np.mean(auc[8:12]), np.mean(auc[:8] + auc[12:])
    assert f"the other rows: LR {mid:.3f} vs {rest:.3f}" in text  # the paper's rows 8-11
    assert (tmp_path / "out" / "figures" / "tiny_channels.png").stat().st_size > 1000
    # beyond chance: the best latent row over 3 seeds (seed 0 is Table 1's fit) and a
    # paired bootstrap over test groups against the CNN
    sd, cmp = res["seeds"], res["compare"]
    assert [p["seed"] for p in sd["fits"]] == [0, 1, 2] and sd["row"].startswith("stylegan")
    assert sd["fits"][0]["roc_auc"] == res["table"][sd["row"]]["roc_auc"]
    cs = sd["cnn"]  # the CNN's spread too: seeds 1 and 2 are new fits, not Table 1's
    assert cs["row"] == "cnn/meso4" and [p["seed"] for p in cs["fits"]] == [0, 1, 2]
    assert cs["fits"][0]["roc_auc"] == res["table"]["cnn/meso4"]["roc_auc"]
    # the refits' checkpoints (kept only while one runs) are gone; the table fit's stays
    dets = tmp_path / "work" / "detectors"
    assert (dets / "cnn-meso4.ckpt").is_file() and not list(dets.glob("*seed*.ckpt"))
    assert "Seed spread of the CNN: cnn/meso4 refitted with 3 seeds" in text
    assert (cmp["latent"], cmp["cnn"]) == (sd["row"], "cnn/meso4") and cmp["resamples"] > 1000
    assert cmp["auc_latent"] == pytest.approx(res["table"][cmp["latent"]]["roc_auc"], abs=1e-4)
    lo, hi = cmp["diff_ci"]
    assert lo <= hi and cmp["diff"] == pytest.approx(cmp["auc_latent"] - cmp["auc_cnn"])
    assert "### Beyond chance?" in text and f"{cmp['diff']:+.3f} [{lo:+.3f}, {hi:+.3f}]" in text

    # a rerun is served from WORK/results.json: nothing is recomputed
    before = (tmp_path / "work" / "results.json").stat().st_mtime_ns
    run_bench(cfg)
    assert (tmp_path / "work" / "results.json").stat().st_mtime_ns == before
    res = json.loads((tmp_path / "out" / "results" / "tiny.json").read_text())
    # and the header still counts the first run's time (the runs' wall times are not
    # compared: on a loaded machine a rerun's report and bootstrap can outlast the first run)
    first = res["runs"][0]["wall_s"]
    assert len(res["runs"]) == 2 and res["runs"][1]["resumed"] and not res["runs"][0]["resumed"]
    assert f"2 runs over this cache, {first + res['wall_s']:.0f} s in all" in md.read_text()

    # a run stopped midway (Ctrl-C, kill) is logged too, and the next report counts it
    import lf_core.lab.bench as bench

    def stop(*args):
        raise KeyboardInterrupt

    monkeypatch.setattr(bench, "section_recon", stop)
    with pytest.raises(KeyboardInterrupt):
        run_bench(cfg)
    monkeypatch.undo()
    run_bench(cfg)
    runs = json.loads((tmp_path / "out" / "results" / "tiny.json").read_text())["runs"]
    assert [(r["resumed"], r["finished"]) for r in runs[2:]] == [(True, False), (True, True)]
    assert "4 runs over this cache (1 stopped before the end)" in md.read_text()

    # other generator weights: the stylegan codes and what is made of them are redone
    store = json.loads((tmp_path / "work" / "results.json").read_text())
    store["codes/stylegan"]["identity"]["weights_sha256"] = "older"
    (tmp_path / "work" / "results.json").write_text(json.dumps(store))
    run_bench(cfg)
    store = json.loads((tmp_path / "work" / "results.json").read_text())
    assert store["codes/stylegan"]["identity"]["weights_sha256"] != "older"
    assert "table/stylegan/lr" in store and "table/pca/lr" in store

    # a redone table row: the few-shot curve's all-groups point is that row, not a stale copy
    store["table/cnn/meso4"]["roc_auc"] = 0.123
    (tmp_path / "work" / "results.json").write_text(json.dumps(store))
    run_bench(cfg)
    res = json.loads((tmp_path / "out" / "results" / "tiny.json").read_text())
    assert res["fewshot"]["cnn/meso4"][-1]["roc_auc"] == 0.123

    # a fresh checkout has no WORK (runs/ is not in git): the copy kept in
    # out/results/cache/ brings every result back, only the codes are made again, and the
    # paired comparison reads the rows' kept test probabilities (no detector file is left)
    import shutil
    kept = json.loads((tmp_path / "out" / "results" / "cache" / "tiny.json").read_text())
    assert kept["data"]["table/cnn/meso4"]["roc_auc"] == 0.123  # synced at the end of a run
    shutil.rmtree(tmp_path / "work")
    run_bench(cfg)
    again = json.loads((tmp_path / "out" / "results" / "tiny.json").read_text())
    for sec in ("table", "recon", "channels", "fewshot", "seeds", "compare"):
        assert again[sec] == res[sec], sec
    assert len(again["runs"]) == len(res["runs"]) + 1
    assert not (tmp_path / "work" / "detectors").exists()
    # a kept copy made on another manifest is not used
    from lf_core.lab.bench import _Store
    other = _Store(tmp_path / "work.json", keep=tmp_path / "out" / "results" / "cache" / "tiny.json",
                   manifest="another.csv")
    assert other.data == {}

    # RESULTS.md names the generator's sha256 and says when a run's StyleGAN rows were made
    # with weights other than the shipped ones
    from lf_core.lab.bench import write_report
    assert "Stale" not in md.read_text() and ", sha256 " in md.read_text()
    res["codes"]["stylegan"]["identity"]["weights_sha256"] = "older"
    (tmp_path / "out" / "results" / "tiny.json").write_text(json.dumps(res))
    text = write_report(tmp_path / "out").read_text()
    assert "Stale for the shipped generator:** the StyleGAN rows (stylegan) " in text


def test_wall_says_when_the_first_logged_run_went_on_from_unlogged_ones():
    from lf_core.lab.bench import _wall

    runs = [{"date": "d0", "wall_s": 10.0, "resumed": True, "finished": False},
            {"date": "d1", "wall_s": 20.0, "resumed": True, "finished": True}]
    text = _wall({"wall_s": 20.0, "runs": runs})
    assert "2 runs over this cache (1 stopped before the end), 30 s in all (ended d0 to d1)" in text
    assert text.endswith("the first went on from the results of earlier runs that were not logged")
    runs[0]["resumed"] = False
    assert "not logged" not in _wall({"wall_s": 20.0, "runs": runs})
