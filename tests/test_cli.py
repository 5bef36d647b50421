"""`lf` on good and bad input: one-line errors, documented exit codes, no half-written files."""

import json
import os
import struct
import subprocess
import sys
import zlib

import numpy as np
import pytest
from PIL import Image

from lf_core.cli import main


def png_header_only(path, w, h):
    """A PNG that declares w x h pixels (a decompression bomb's header)."""
    def chunk(t, d):
        return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d))
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr)
                     + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b""))


@pytest.fixture(scope="module")
def face_jpg(dfdc_pairs):
    return dfdc_pairs[0][0]


def bad_files(tmp, face_jpg):
    raw = face_jpg.read_bytes()
    (tmp / "empty.jpg").write_bytes(b"")
    (tmp / "truncated.jpg").write_bytes(raw[: len(raw) // 3])
    (tmp / "text.jpg").write_text("this is not an image\n")
    png_header_only(tmp / "huge.png", 30000, 30000)
    (tmp / "novideo.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 200)
    return ["empty.jpg", "truncated.jpg", "text.jpg", "huge.png", "novideo.mp4"]


def test_bad_inputs_give_one_line_errors(tmp_path, face_jpg, detector_path, capsys):
    for name in bad_files(tmp_path, face_jpg):
        out = tmp_path / f"{name}.npz"
        code = main(["invert", str(tmp_path / name), "--steps", "0", "-o", str(out)])
        err = capsys.readouterr().err.strip()
        assert code == 3, (name, code, err)
        assert len(err.splitlines()) == 1 and err.startswith("lf: error:"), (name, err)
        assert "Traceback" not in err
        assert not list(tmp_path.glob(f"{name}.npz*")), f"{name}: something was written"
        code = main(["predict", str(tmp_path / name), "--detector", str(detector_path)])
        err = capsys.readouterr().err.strip()
        assert code == 3 and len(err.splitlines()) == 1, (name, code, err)


def test_no_face(tmp_path, detector_path, capsys):
    Image.fromarray(np.full((300, 300, 3), 128, np.uint8)).save(tmp_path / "grey.png")
    code = main(["predict", str(tmp_path / "grey.png"), "--detector", str(detector_path)])
    assert code == 4 and "No face" in capsys.readouterr().err


@pytest.mark.parametrize("mode", ["CMYK", "L", "RGBA", "I;16", "GIF"])
def test_converted_modes_predict(tmp_path, face_jpg, detector_path, capsys, mode):
    im = Image.open(face_jpg).convert("RGB")
    if mode == "GIF":  # animated: the first frame is used
        p = tmp_path / "anim.gif"
        im.save(p, save_all=True, append_images=[im.rotate(10), im.rotate(20)], duration=100)
    elif mode == "I;16":
        a = np.asarray(im.convert("L"), np.uint16) * 257
        p = tmp_path / "grey16.png"
        Image.fromarray(a).save(p)
    else:
        p = tmp_path / f"face_{mode}.{'jpg' if mode == 'CMYK' else 'png'}"
        im.convert(mode).save(p)
    code = main(["predict", str(p), "--json", "--detector", str(detector_path)])
    out = capsys.readouterr()
    assert code == 0, out.err
    js = json.loads(out.out)
    assert js["faces"] and 0 <= js["faces"][0]["prob_fake"] <= 1


def test_align_invert_predict_json(tmp_path, face_jpg, detector_path, capsys):
    assert main(["align", str(face_jpg), "-o", str(tmp_path / "a.png")]) == 0
    assert Image.open(tmp_path / "a.png").size == (256, 256)
    assert main(["invert", str(face_jpg), "--steps", "2", "-o", str(tmp_path / "w.npz"),
                 "--recon", str(tmp_path / "r.png")]) == 0
    assert np.load(tmp_path / "w.npz")["w"].shape == (1, 14, 512)
    for passes in ("0", "2"):  # refinement passes: another code, no gradient step
        assert main(["invert", str(face_jpg), "--steps", "0", "--passes", passes,
                     "-o", str(tmp_path / f"p{passes}.npz")]) == 0
    p0, p2 = np.load(tmp_path / "p0.npz"), np.load(tmp_path / "p2.npz")
    assert int(p2["steps"]) == 0 and np.abs(p2["w"] - p0["w"]).mean() > 1e-3
    with pytest.raises(SystemExit) as e:
        main(["invert", str(face_jpg), "--passes", "-1", "-o", str(tmp_path / "x.npz")])
    assert e.value.code == 2 and "--passes" in capsys.readouterr().err
    capsys.readouterr()
    assert main(["predict", str(face_jpg), "--steps", "1", "--prior", "0.2", "--json",
                 "--detector", str(detector_path)]) == 0
    out = capsys.readouterr()
    res = json.loads(out.out)
    face = res["faces"][0]
    assert face["verdict"] in ("real", "fake") and face["steps"] == 1
    # the detector was trained on encoder-only codes: its verdict is taken on those codes,
    # whatever the reconstruction's steps, and the JSON says so
    assert face["verdict_steps"] == 0 and res["notes"] == [] and out.err == ""
    assert set(face["timings"]) >= {"align", "encode", "invert", "classify"}


def test_subprocess_exit_code_and_help(tmp_path, detector_path):
    (tmp_path / "x.jpg").write_text("nope")
    env = {**os.environ, "LF_DETECTOR": str(detector_path)}
    r = subprocess.run([sys.executable, "-m", "lf_core.cli", "predict", str(tmp_path / "x.jpg")],
                       capture_output=True, text=True, timeout=300, env=env)
    assert r.returncode == 3 and "Traceback" not in r.stderr and r.stderr.count("\n") == 1
    assert r.stderr.startswith("lf: error: ")  # lf's own messages pass the native-log filter
    r = subprocess.run([sys.executable, "-m", "lf_core.cli", "--help"], capture_output=True,
                       text=True, timeout=120)
    assert "exit codes" in r.stdout


def test_align_says_nothing_else(tmp_path, face_jpg):
    """mediapipe's C++ log lines (TFLite delegate, absl, feedback tensors, the mesh's first
    face) stay out of a command's stderr: it holds only what lf itself says."""
    env = {k: v for k, v in os.environ.items() if k != "LF_NATIVE_LOGS"}
    r = subprocess.run([sys.executable, "-m", "lf_core.cli", "align", str(face_jpg), "-o",
                        str(tmp_path / "a.png")], capture_output=True, text=True, timeout=300,
                       env=env)
    assert r.returncode == 0 and (tmp_path / "a.png").exists() and "face 0" in r.stdout
    assert r.stderr == ""


@pytest.mark.parametrize("flag", [["--members", "3"], ["--half"]])
def test_mlp_only_train_options_refused_for_forest(tmp_path, capsys, flag):
    with pytest.raises(SystemExit) as e:
        main(["train", str(tmp_path / "no-codes"), "--classifier", "rf", *flag, "-o", str(tmp_path / "d")])
    assert e.value.code == 2 and "mlp2 or mlp5" in capsys.readouterr().err


def test_train_help_follows_the_classes(capsys):
    """`lf train --help` states LogReg's C grid as text (so that --help needs no torch):
    it must follow the class."""
    from lf_core.classifiers import LogReg

    with pytest.raises(SystemExit):
        main(["train", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert f"{min(LogReg.CS):g} ... {max(LogReg.CS):g}" in text
    assert f"{LogReg.FOLDS}-fold" in text
    # so does --regularise, the MLPs' recipe
    from lf_core.classifiers import MLP2

    r = MLP2.REGULARISED
    assert (f"dropout {r['dropout'][0]:g} on the code and {r['dropout'][1]:g} after" in text
            and f"AdamW (lr {r['lr']:g}, weight decay {r['weight_decay']:g})" in text
            and f"after {r['patience']} epochs without progress" in text)


@pytest.mark.parametrize("argv", [
    ["predict", "x.jpg", "--every", "0"], ["predict", "x.jpg", "--steps", "-1"],
    ["invert", "x.jpg", "--steps", "-1", "-o", "c.npz"], ["align", "x.jpg", "--max-faces", "0"],
    ["train", "c", "--classifier", "xception", "--xception", "1", "-o", "d"],
    ["train", "c", "--classifier", "rf", "--trees", "0", "-o", "d"],
    ["train", "c", "--classifier", "meso4", "--epochs", "0", "-o", "d"],
    ["bench", "m.csv", "--fewshot", "a"],
    ["extract", "m.csv", "-o", "c", "--engine", "ray", "--workers", "0"],
    ["extract", "m.csv", "-o", "c", "--engine", "ray", "--cpus-per-worker", "0"]])
def test_bad_numbers_are_usage_errors(argv, capsys):
    """Out-of-range numbers stop at the command line (exit 2, what was wrong), not deep
    inside as an internal error."""
    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert "must be >" in err or "use " in err or "not an integer" in err


def test_research_defaults_come_from_the_code():
    """lf bench and lf train-generator without options run with the defaults of the
    configs the code uses (written once: BenchConfig, TrainConfig)."""
    import dataclasses

    from lf_core.cli import bench_config, parser
    from lf_core.lab.bench import BenchConfig
    from lf_core.lab.train_gen import TrainConfig

    got = bench_config(parser("bench").parse_args(["bench", "m.csv"]))
    want = BenchConfig(manifest="m.csv")
    # where a run writes follows the working directory and --name, not the code's defaults
    differ = {f.name for f in dataclasses.fields(BenchConfig)
              if getattr(got, f.name) != getattr(want, f.name)}
    assert differ <= {"out_dir"} and got.work == f"runs/bench/{want.name}"
    a = parser("train-generator").parse_args(["train-generator"])
    t = TrainConfig()
    assert ((a.out, a.hours, a.steps, a.batch, a.seed, a.threads, a.lr, a.lr_end, a.cooldown,
             a.diverge_db) == (t.out, t.hours, t.steps, t.batch, t.seed, t.threads, t.lr,
                               t.lr_end, t.cooldown, t.diverge_db))



def test_ray_engine_without_ray_says_how_to_install(tmp_path, monkeypatch, capsys):
    """--engine ray without the optional extra: one line that gives the install command,
    before anything is written."""
    monkeypatch.setitem(sys.modules, "ray", None)  # as if Ray were not installed
    (tmp_path / "m.csv").write_text("path,label\nx.jpg,real\n")
    for argv in (["extract", str(tmp_path / "m.csv"), "-o", str(tmp_path / "codes")],
                 ["evaluate", str(tmp_path / "m.csv"), "--detector", "d.safetensors"]):
        code = main([*argv, "--engine", "ray", "-q"])
        err = capsys.readouterr().err.strip()
        assert code == 1 and len(err.splitlines()) == 1, err
        assert "pip install -e '.[ray]'" in err, err
    assert not (tmp_path / "codes").exists()


def test_ray_options_need_the_ray_engine(tmp_path, capsys):
    (tmp_path / "m.csv").write_text("path,label\nx.jpg,real\n")
    code = main(["extract", str(tmp_path / "m.csv"), "-o", str(tmp_path / "codes"),
                 "--workers", "4"])
    err = capsys.readouterr().err.strip()
    assert code == 1 and "--workers: options of the ray engine" in err, err
