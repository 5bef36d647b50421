"""Hostile input: mutated and hand-made files through the readers, zip bombs, hostile
manifests, and a malicious example of every kind of file the project reads (SECURITY.md).
The long fuzz run is benchmarks/fuzz_inputs.py (figures in benchmarks/RELIABILITY.md)."""

import importlib.util
import io
import json
import os
import pickle
import stat
import struct
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from lf_core.errors import BadInputError, LFError, WeightsError

ROOT = Path(__file__).resolve().parents[1]


def _fuzz():
    spec = importlib.util.spec_from_file_location("fuzz_inputs", ROOT / "benchmarks" / "fuzz_inputs.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("fuzz_inputs", mod)
    spec.loader.exec_module(mod)
    return mod


def _jpeg(size=(64, 64), colour=(120, 90, 60)) -> bytes:
    b = io.BytesIO()
    Image.new("RGB", size, colour).save(b, "JPEG")
    return b.getvalue()


# --------------------------------------------------------------------------- fuzzed readers


def test_fuzz_sample_gives_only_project_errors(data_dir):
    """160 mutated files of every kind (fixed seed) plus the small hand-made bombs, each in
    its own process: read, or a one-line LFError; no other exception, crash or hang."""
    F = _fuzz()
    seeds = F.make_seeds(data_dir)
    crafted = [x for x in F.crafted_inputs() if "49 MP" not in x[2]]  # the big ones: benchmark
    inputs = crafted + F.build_inputs(seeds, 160, seed=12345)
    F.preload(F.KINDS)
    res = F.run_many(inputs, timeout=10, mem_mb=1536, jobs=2, wall_timeout=300)
    bad = [r for r in res if r["outcome"] not in ("ok", "error")]
    assert not bad, bad[:5]
    assert {r["kind"] for r in res} == set(F.KINDS)
    assert sum(r["outcome"] == "error" for r in res) > 40  # the mutations did break files
    assert max(r["cpu_s"] for r in res) < 10, sorted(res, key=lambda r: -r["cpu_s"])[:3]


def _png_bomb(w, h):
    return _fuzz()._png(w, h)


def test_pixel_bombs_are_refused_before_decoding():
    from lf_core.io import load_image

    t = time.process_time()
    with pytest.raises(BadInputError, match="too large .*limit 50 MP"):
        load_image(_fuzz()._png(8000, 7000, b"\x08\x02"))  # 56 MP
    with pytest.raises(BadInputError, match="far too many pixels") as e:
        load_image(_fuzz()._png(20000, 20000, b"\x08\x00")[:4096])  # 400 MP, header only
    assert "\n" not in str(e.value)
    assert time.process_time() - t < 10


def test_alpha_composite_is_exact_and_lean():
    """The integer composite equals round(rgb * a + 255 * (1 - a)) for every (value, alpha)."""
    from lf_core.io import _on_white

    v, a = np.meshgrid(np.arange(256), np.arange(256))
    rgba = np.stack([v, v, v, a], -1).astype(np.uint8)
    ref = np.rint(v * (a / 255.0) + 255.0 * (1 - a / 255.0)).astype(np.uint8)
    assert (_on_white(rgba)[..., 0] == ref).all()


def test_gif_with_thousands_of_frames_reads_its_first_frame_quickly():
    from lf_core.io import load_image

    rng = np.random.default_rng(0)
    frames = [Image.fromarray(rng.integers(0, 255, (8, 8), np.uint8), "L").convert("P")
              for _ in range(3000)]
    b = io.BytesIO()
    frames[0].save(b, "GIF", save_all=True, append_images=frames[1:], duration=10)
    t = time.process_time()
    a = load_image(b.getvalue())
    assert a.shape == (8, 8, 3)
    assert time.process_time() - t < 1.0  # the frames are not counted


# --------------------------------------------------------------------------- the zip


def _zip(tmp_path, entries, name="faces.zip", method=zipfile.ZIP_DEFLATED) -> Path:
    p = tmp_path / name
    with zipfile.ZipFile(p, "w", method) as zf:
        for e in entries:
            if isinstance(e, zipfile.ZipInfo):
                zf.writestr(e, b"x" if not e.filename.endswith(".jpg") else _jpeg())
            else:
                zf.writestr(e[0], e[1])
    return p


def test_zip_ok_and_nested_zip_not_opened(tmp_path):
    from lf_core.quicktrain import read_zip

    inner = _zip(tmp_path, [("real/x.jpg", _jpeg())], "inner.zip").read_bytes()
    p = _zip(tmp_path, [("real/a.jpg", _jpeg()), ("fake/b.jpg", _jpeg()), ("fake/more.zip", inner)])
    images, labels, skipped = read_zip(p)
    assert labels == [0, 1]
    assert any("more.zip" in s and "not opened" in s for s in skipped)


@pytest.mark.parametrize("name", ["../real/evil.jpg", "real/../../evil.jpg", "/tmp/real/evil.jpg",
                                  "C:/real/evil.jpg", "..\\real\\evil.jpg"])
def test_zip_with_a_path_outside_is_refused(tmp_path, name):
    from lf_core.quicktrain import read_zip

    p = _zip(tmp_path, [("real/a.jpg", _jpeg()), zipfile.ZipInfo(name)])
    with pytest.raises(BadInputError, match="outside the zip"):
        read_zip(p)
    assert not (tmp_path.parent / "evil.jpg").exists()


def test_zip_with_a_symlink_is_refused(tmp_path):
    from lf_core.quicktrain import read_zip

    link = zipfile.ZipInfo("real/face.jpg")
    link.external_attr = (stat.S_IFLNK | 0o777) << 16
    p = tmp_path / "l.zip"
    with zipfile.ZipFile(p, "w") as zf:
        zf.writestr(link, "/etc/passwd")
    with pytest.raises(BadInputError, match="symbolic link"):
        read_zip(p)


def test_zip_bomb_by_ratio_is_refused(tmp_path):
    from lf_core.quicktrain import read_zip

    p = _zip(tmp_path, [("real/a.jpg", _jpeg()), ("fake/bomb.png", b"\0" * (20 * 2**20))])
    assert p.stat().st_size < 100_000
    with pytest.raises(BadInputError, match="zip bomb"):
        read_zip(p)


def test_zip_declaring_a_huge_size_is_refused_unread(tmp_path, monkeypatch):
    from lf_core.quicktrain import read_zip

    p = _zip(tmp_path, [("real/a.jpg", _jpeg()), ("fake/b.jpg", _jpeg())], method=zipfile.ZIP_STORED)
    b = bytearray(p.read_bytes())
    i = b.rfind(b"PK\x01\x02")  # the last entry's central directory record
    b[i + 24:i + 28] = struct.pack("<I", 0xFFFFFFF0)  # "4 GB once uncompressed"
    p.write_bytes(bytes(b))
    monkeypatch.setattr(zipfile.ZipFile, "read", lambda *a, **k: pytest.fail("read before check"))
    with pytest.raises(BadInputError, match="more than 200 MB"):
        read_zip(p)


def test_zip_with_100k_entries_is_refused_unparsed(tmp_path, monkeypatch):
    from lf_core.quicktrain import read_zip

    p = tmp_path / "many.zip"
    with zipfile.ZipFile(p, "w", zipfile.ZIP_STORED) as zf:
        for i in range(100_000):
            zf.writestr(zipfile.ZipInfo(f"r/{i}"), b"")
    parsed = []
    orig = zipfile.ZipFile._RealGetContents
    monkeypatch.setattr(zipfile.ZipFile, "_RealGetContents",
                        lambda self: parsed.append(1) or orig(self))
    t = time.process_time()
    with pytest.raises(BadInputError, match="100,000 entries"):
        read_zip(p)
    assert not parsed and time.process_time() - t < 1.0


def test_zip_mutations_give_only_project_errors(tmp_path):
    """Every truncation of a small zip, in process: BadInputError or a result."""
    from lf_core.quicktrain import read_zip

    src = _zip(tmp_path, [("real/a.jpg", _jpeg()), ("fake/b.jpg", _jpeg())]).read_bytes()
    p = tmp_path / "t.zip"
    for n in list(range(0, len(src), 37)) + [len(src) - 1]:
        p.write_bytes(src[:n])
        try:
            read_zip(p)
        except BadInputError as e:
            assert "\n" not in str(e)


# --------------------------------------------------------------------------- manifests


def _manifest(tmp_path, text, name="m.csv"):
    d = tmp_path / "data"
    d.mkdir(exist_ok=True)
    (d / name).write_text(text)
    return d / name


@pytest.mark.parametrize("path", ["../secret.jpg", "real/../../secret.jpg", "/etc/passwd"])
def test_manifest_path_outside_is_refused(tmp_path, path, monkeypatch):
    from lf_core.data import read_manifest

    monkeypatch.setenv("LF_DATA", str(tmp_path / "elsewhere"))
    m = _manifest(tmp_path, f"path,label\nreal/a.jpg,real\n{path},fake\n")
    with pytest.raises(LFError, match=r"row 3 points outside the manifest's folder") as e:
        read_manifest(m)
    assert "LF_MANIFEST_ROOTS" in str(e.value)


def test_manifest_absolute_paths_inside_allowed_folders(tmp_path, monkeypatch):
    from lf_core.data import read_manifest

    monkeypatch.setenv("LF_DATA", str(tmp_path / "shared"))
    other = tmp_path / "other"
    m = _manifest(tmp_path, f"path,label\n{tmp_path / 'shared' / 'x.jpg'},real\n"
                  f"{tmp_path / 'data' / 'sub' / 'y.jpg'},fake\nsub/./z.jpg,fake\n"
                  f"{other / 'w.jpg'},real\n")
    with pytest.raises(LFError, match="row 5"):
        read_manifest(m)
    monkeypatch.setenv("LF_MANIFEST_ROOTS", str(other))
    items = read_manifest(m)
    assert [it.path.name for it in items] == ["x.jpg", "y.jpg", "z.jpg", "w.jpg"]
    assert items[2].path == tmp_path / "data" / "sub" / "z.jpg"


@pytest.mark.parametrize("text, match", [
    ("file,label\na.jpg,real\n", "needs a header with a 'path' column"),
    ("", "needs a header"),
    ("path,label\na.jpg,real\n,fake\n", "row 3 has no path"),
    ("path,label,group\na.jpg,real,g1\nb.jpg,fake,g1\na.jpg,fake,g2\n", "rows 2 and 4 list the same file"),
    ("path,label\n./a.jpg,real\na.jpg,real\n", "rows 2 and 3 list the same file"),
])
def test_manifest_malformed(tmp_path, text, match):
    from lf_core.data import read_manifest

    with pytest.raises(LFError, match=match):
        read_manifest(_manifest(tmp_path, text))


def test_manifest_binary_or_not_csv(tmp_path):
    from lf_core.data import read_manifest

    m = tmp_path / "m.csv"
    for data in (b"path,label\na\x00b.jpg,real\n", b"path,label\n\xff\xfe\xfa.jpg,real\n",
                 b"path,label\n" + b"x" * 200_000 + b",real\n", _jpeg()):
        m.write_bytes(data)
        with pytest.raises(LFError) as e:
            read_manifest(m)
        assert "\n" not in str(e.value)


def test_manifest_with_a_million_rows(tmp_path):
    import resource

    from lf_core.data import read_manifest

    m = tmp_path / "big.csv"
    with open(m, "w") as f:
        f.write("path,label,group\n")
        f.writelines(f"real/{i:07d}.jpg,{'real' if i % 2 else 'fake'},g{i // 2}\n"
                     for i in range(1_000_000))
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t = time.process_time()
    items = read_manifest(m)
    cpu = time.process_time() - t
    grew_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert len(items) == 1_000_000 and items[-1].label == 0 and items[-2].label == 1
    assert cpu < 60 and grew_mb < 1000, (cpu, grew_mb)  # about 17 s and 600 MB


def test_manifest_over_the_row_limit_is_refused(tmp_path, monkeypatch):
    import lf_core.untrusted as U
    from lf_core.data import read_manifest

    monkeypatch.setattr(U, "MAX_MANIFEST_ROWS", 10)
    m = _manifest(tmp_path, "path\n" + "".join(f"{i}.jpg\n" for i in range(11)))
    with pytest.raises(LFError, match="more than 10 rows"):
        read_manifest(m)


# --------------------------------------------------------------------------- files from strangers


class _Boom:
    """Unpickling this runs a shell command (creates a marker file)."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_checkpoint_pickle_that_runs_code_is_refused(tmp_path):
    import torch

    from lf_core.loaders import load_checkpoint

    marker = tmp_path / "ran"
    for name, write in (("g.pkl", lambda p: p.write_bytes(pickle.dumps({"G_ema": _Boom(marker)}, 2))),
                        ("g.pt", lambda p: torch.save({"g_ema": _Boom(marker)}, p))):
        p = tmp_path / name
        write(p)
        with pytest.raises(WeightsError):
            load_checkpoint(p)
    assert not marker.exists()


def test_detector_that_is_a_pickle_is_not_opened(tmp_path):
    from lf_core.classifiers import load_classifier

    marker = tmp_path / "ran"
    p = tmp_path / "det.safetensors"
    p.write_bytes(pickle.dumps(_Boom(marker), 2))
    with pytest.raises(WeightsError, match="was not opened"):
        load_classifier(p)
    assert not marker.exists()


def _st(header: dict, data: bytes = b"", length=None) -> bytes:
    h = json.dumps(header).encode()
    return struct.pack("<Q", len(h) if length is None else length) + h + data


@pytest.mark.parametrize("blob", [
    _st({"w": {"dtype": "F32", "shape": [1 << 40], "data_offsets": [0, 1 << 42]}}),  # lies about its data
    _st({"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}, b"\0" * 8, length=1 << 60),
    _st({"w": {"dtype": "F32", "shape": [4], "data_offsets": [0, 8]}}, b"\0" * 8),  # shape vs bytes
    _st({"__metadata__": {"latentforensics.classifier": "{not json"}}),
    _st({"__metadata__": {"latentforensics.classifier": json.dumps(
        {"format": "latentforensics.classifier", "version": 1, "kind": "__import__('os').system"})}}),
])
def test_detector_with_lying_header_or_hostile_metadata(tmp_path, blob):
    from lf_core.classifiers import load_classifier

    p = tmp_path / "d.safetensors"
    p.write_bytes(blob)
    with pytest.raises(WeightsError) as e:
        load_classifier(p)
    assert "\n" not in str(e.value)


def test_detector_with_hostile_params_is_refused(tmp_path):
    from lf_core.classifiers import LogReg, load_classifier

    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(20, 4, 8)).astype(np.float32), np.r_[np.zeros(10), np.ones(10)].astype(int)
    p = LogReg(seed=0).fit(X, y).save(tmp_path / "d.safetensors")
    from safetensors.numpy import load_file, save_file
    from safetensors import safe_open

    with safe_open(str(p), "np") as f:
        meta = f.metadata()
    key = next(iter(meta))
    for change in ({"params": {"__class__": "os.system"}}, {"input_shape": [10**9, 10**9]},
                   {"n_features": 7}, {"train_fake_share": "nan"}):
        m = json.loads(meta[key])
        m.update(change)
        q = tmp_path / "h.safetensors"
        save_file(load_file(p), q, metadata={key: json.dumps(m)})
        with pytest.raises(WeightsError):
            load_classifier(q)


def _codes_folder(tmp_path, meta, chunk=None):
    d = tmp_path / "codes"
    (d / "chunks").mkdir(parents=True, exist_ok=True)
    (d / "meta.json").write_text(json.dumps(meta))
    if chunk is not None:
        np.savez(d / "chunks" / "00000000.npz", **chunk)
    return d


GOOD_META = {"format": "latentforensics.codes", "complete": True, "batch": 2, "n_items": 2,
             "projector": {"kind": "stylegan", "code_shape": [3]}}


@pytest.mark.parametrize("change", [
    {"batch": 0}, {"batch": 1, "n_items": 10**12}, {"n_items": "2"}, {"batch": 2.5},
    {"projector": {"kind": "stylegan", "code_shape": "../../etc"}},
    {"projector": {"kind": "stylegan", "code_shape": [10**12]}}, {"projector": None},
])
def test_codes_meta_hostile_is_refused_quickly(tmp_path, change):
    from lf_core.extract import load_codes

    t = time.process_time()
    with pytest.raises(LFError, match="meta.json"):
        load_codes(_codes_folder(tmp_path, {**GOOD_META, **change}))
    assert time.process_time() - t < 1.0


def test_codes_meta_naming_a_file_outside_is_never_opened(tmp_path):
    """meta.json's manifest is a record only: chunk names come from numbers, inside the folder."""
    from lf_core.extract import load_codes

    chunk = dict(start=0, stop=2, codes=np.ones((2, 3), np.float32), labels=np.array([0, 1], np.int8),
                 groups=np.array(["a", "b"]), paths=np.array(["../../x", "/etc/passwd"]),
                 index=np.array([0, 1]))
    c = load_codes(_codes_folder(tmp_path, {**GOOD_META, "manifest": "../../../etc/passwd"}, chunk))
    assert c.codes.shape == (2, 3)


@pytest.mark.parametrize("bad", [
    {"groups": np.array([{"__reduce__": 1}, None], dtype=object)},  # an object array: a pickle
    {"codes": np.ones((2, 5), np.float32)},  # another shape than meta says
    {"codes": np.ones((9, 3), np.float32)},  # more rows than the chunk holds
    {"labels": None},  # missing
])
def test_codes_chunk_hostile_is_refused(tmp_path, bad):
    from lf_core.extract import load_codes

    chunk = dict(start=0, stop=2, codes=np.ones((2, 3), np.float32), labels=np.array([0, 1], np.int8),
                 groups=np.array(["a", "b"]), paths=np.array(["x", "y"]), index=np.array([0, 1]))
    chunk.update(bad)
    chunk = {k: v for k, v in chunk.items() if v is not None}
    with pytest.raises(LFError, match="00000000.npz"):
        load_codes(_codes_folder(tmp_path, GOOD_META, chunk))


def _pack(tmp_path, **arrays):
    p = tmp_path / "pack.npz"
    np.savez(p, **arrays)
    return p


def test_face_pack_hostile_is_refused(tmp_path):
    from lf_core.train_gen import unpack_faces

    face = io.BytesIO()
    Image.new("RGB", (256, 256), (200, 150, 100)).save(face, "WEBP")
    fb = np.frombuffer(face.getvalue(), np.uint8)
    ok = dict(train=fb, train_ends=np.array([len(fb)]), val=fb, val_ends=np.array([len(fb)]))
    unpack_faces(_pack(tmp_path, **ok), tmp_path / "ok")
    assert np.load(tmp_path / "ok" / "faces_train.npy").shape == (1, 256, 256, 3)
    bomb = np.frombuffer(_fuzz()._png(20000, 20000, b"\x08\x00")[:4096], np.uint8)
    small = io.BytesIO()
    Image.new("RGB", (64, 64)).save(small, "PNG")
    sb = np.frombuffer(small.getvalue(), np.uint8)
    for i, bad in enumerate([
        {**ok, "train": np.array([object()], dtype=object)},  # a pickle inside
        {**ok, "train_ends": np.array([len(fb) + 10**9])},  # offsets past the bytes
        {**ok, "train_ends": np.array([5, 3])},
        {**ok, "train": bomb, "train_ends": np.array([len(bomb)])},  # a pixel bomb
        {**ok, "train": sb, "train_ends": np.array([len(sb)])},  # not a 256 px face
        {k: v for k, v in ok.items() if k != "val_ends"},
    ]):
        with pytest.raises(LFError):
            unpack_faces(_pack(tmp_path, **bad), tmp_path / f"out{i}")
        assert not (tmp_path / f"out{i}" / "faces_train.npy").exists() or i == 5


@pytest.mark.parametrize("text", [
    "#EXTM3U\n#EXT-X-TARGETDURATION:10\n#EXTINF:10.0,\n{video}\n#EXT-X-ENDLIST\n",
    "ffconcat version 1.0\nfile {video}\n",
])
def test_video_that_names_another_file_is_refused(tmp_path, data_dir, text):
    """FFmpeg detects formats by content: a playlist named .mp4 would open the files it
    names (frames of a video elsewhere on the server, shown in the demo's gallery)."""
    from lf_core.io import read_video, video_info

    video = next((data_dir / "videos").glob("*/*.mp4"))
    p = tmp_path / "upload.mp4"
    p.write_text(text.format(video=video))
    for read in (video_info, read_video):
        with pytest.raises(BadInputError, match="not an MP4, MOV, AVI, MKV or WebM"):
            read(p)
