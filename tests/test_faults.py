"""Faults in the long jobs: `lf extract`, `lf train` (a CNN's epochs), `lf train-generator`
and `lf bench` killed with SIGKILL at several points of their progress, then rerun, end as
an uninterrupted run ends (the same codes, bit for bit; the same weights: both resumable
fits document that they go on to the weights of a fit never stopped); after every kill,
each file a reader opens is whole (a killed writer leaves only temporary names, which no
reader opens, and which the rerun removes); a full disk is one line, exit code 6, and
leaves no damaged file: the next run with space finishes the job.

Each command runs in its own process with OMP_NUM_THREADS=1, the uninterrupted run and the
interrupted ones alike (the same settings give the same floating-point results); the
uninterrupted run goes alongside the interrupted ones. Kill points follow the run's own
progress (a file appearing or being rewritten), so a slow machine moves them in time, not
in the work done.
"""

import csv
import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from lf_core import cli
from lf_core.artifacts import atomic_write_json, is_temp_name
from lf_core.errors import DiskFullError, LFError
from lf_core.lab.extract import extract, load_codes
from lf_core.lab.projectors import CropProjector

ROOT = Path(__file__).resolve().parents[1]
TIMEOUT_S = 900  # per command, wall: a loaded 2-core machine runs these several times slower


@pytest.fixture(scope="module")
def lf(data_dir, tmp_path_factory):
    """lf(*args) -> Run: the command in its own process, on this checkout's lf_core and one
    thread, in an empty folder."""
    path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)
    env = dict(os.environ, PYTHONPATH=path, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1",
               LF_DATA=str(data_dir))
    cwd = tmp_path_factory.mktemp("cwd")
    return lambda *args: Run(env, cwd, *args)


@pytest.fixture(scope="module")
def manifest(pair_items, tmp_path_factory):
    """12 DFDC crops: the real and fake crop of 4 train-split and 2 test-split videos."""
    path = tmp_path_factory.mktemp("faults") / "tiny.csv"
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["path", "label", "group"])
        for r, fk in pair_items:
            w.writerows([str(it.path), it.label, it.group] for it in (r, fk))
    return path


@pytest.fixture(scope="module")
def crops(manifest, tmp_path_factory):
    """The manifest's aligned crops (256 px), 4 to a chunk: input of the CNN and of the
    generator, and the uninterrupted extraction the full-disk runs are compared with."""
    return extract(manifest, CropProjector(256), tmp_path_factory.mktemp("crops") / "crops",
                   batch=4, progress=False)


# --------------------------------------------------------------------------- helpers


class Run:
    """`lf ARGS` in its own process; its output (stdout and stderr) is collected as it
    comes."""

    def __init__(self, env, cwd, *args):
        self.p = subprocess.Popen([sys.executable, "-m", "lf_core.cli", *map(str, args)],
                                  env=env, cwd=cwd, stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT)
        self.out = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for chunk in iter(lambda: self.p.stdout.read1(1 << 16), b""):
            self.out.append(chunk)

    @property
    def output(self) -> str:
        return b"".join(self.out).decode(errors="replace")

    def wait(self) -> int:
        try:
            rc = self.p.wait(TIMEOUT_S)
        finally:
            self.stop()
        self.reader.join()
        return rc

    def finish(self):
        rc = self.wait()
        assert rc == 0, f"exit {rc}:\n{self.output[-3000:]}"

    def kill_when(self, ready):
        """SIGKILL as soon as ready() is true; the command must not have ended before."""
        deadline = time.monotonic() + TIMEOUT_S
        while self.p.poll() is None and time.monotonic() < deadline:
            if ready():
                os.kill(self.p.pid, signal.SIGKILL)
                break
            time.sleep(0.01)
        rc = self.wait()
        assert rc == -signal.SIGKILL, \
            f"the command ended (exit {rc}) before its kill point:\n{self.output[-3000:]}"

    def stop(self):
        if self.p.poll() is None:
            os.kill(self.p.pid, signal.SIGKILL)
            self.p.wait()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


def files(folder, glob="*") -> dict:
    """{name: mtime_ns} of the files matching `glob` in `folder`, temporary names left out."""
    folder = Path(folder)
    if not folder.is_dir():
        return {}
    return {p.name: p.stat().st_mtime_ns for p in folder.glob(glob)
            if p.is_file() and not is_temp_name(p.name)}


def appeared(folder, glob="*", n=1):
    """A kill point, armed before the run starts: n files matching `glob` appeared in
    `folder` or were rewritten since."""
    def arm():
        before = files(folder, glob)

        def ready():
            now = files(folder, glob)
            return sum(before.get(k) != v for k, v in now.items()) >= n
        return ready
    return arm


def holds_key(path, prefix):
    """A kill point: the JSON file at `path` has a key starting with `prefix`."""
    def arm():
        def ready():
            try:
                return any(k.startswith(prefix) for k in json.loads(Path(path).read_text()))
            except (OSError, ValueError):
                return False
        return ready
    return arm


def read_whole(p: Path):
    """Read a file as its reader does, all of it; fails on a partial file."""
    s = p.suffix
    if s == ".json":
        json.loads(p.read_text())
    elif s == ".jsonl":
        [json.loads(x) for x in p.read_text().splitlines()]
    elif s == ".npz":
        with np.load(p, allow_pickle=False) as z:
            [z[k] for k in z.files]
    elif s == ".npy":
        np.load(p, allow_pickle=False)
    elif s == ".safetensors":
        from safetensors import safe_open

        with safe_open(str(p), framework="pt") as f:
            [f.get_tensor(k) for k in f.keys()]
    elif s in (".pt", ".ckpt"):
        torch.load(p, weights_only=True, map_location="cpu")
    elif s == ".png":
        from PIL import Image

        with Image.open(p) as im:
            im.load()
    elif s in (".csv", ".txt", ".md"):
        text = p.read_text(encoding="utf-8")
        assert not text or text.endswith("\n"), f"{p} ends mid-line"
    else:
        raise AssertionError(f"{p}: a file this test does not know how to read")


def check_whole(folder) -> list[str]:
    """Read every file under `folder` that a reader may open; return the temporary files
    (what a killed writer left, and no reader opens)."""
    temps = []
    for p in sorted(Path(folder).rglob("*")):
        if p.is_file():
            if is_temp_name(p.name):
                temps.append(str(p.relative_to(folder)))
            else:
                read_whole(p)
    return temps


def killed_then_rerun(lf, args, points, folder, check=None) -> Run:
    """Run `lf ARGS` killed at each kill point in turn (each run goes on from the last),
    reading every file of `folder` after each kill; then run it to the end. Returns the
    last run, finished, with no temporary file left in `folder`."""
    for arm in points:
        ready = arm()
        with lf(*args) as run:
            run.kill_when(ready)
        check_whole(folder)
        if check:
            check()
    before = {p: p.stat().st_mtime_ns for p in Path(folder).rglob("*") if p.is_file()}
    with lf(*args) as run:
        run.finish()
    assert check_whole(folder) == []  # the rerun's writes removed the killed writers' temps
    run.before = before
    return run


def same_state(a: dict, b: dict):
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


# --------------------------------------------------------------------------- the commands


def test_extract_killed_and_rerun(lf, manifest, tmp_path):
    """Killed during its first chunk, then after each of the next two: the codes equal an
    uninterrupted run's bit for bit, and chunks written before the last run are kept."""
    out, ref = tmp_path / "codes", tmp_path / "ref"
    args = ["extract", manifest, "--steps", "0", "--batch", "4", "-q", "-o"]
    with lf(*args, ref) as r:
        points = [appeared(out, "meta.json"), appeared(out / "chunks"), appeared(out / "chunks")]

        def partial():
            assert len(load_codes(out, partial=True)) < 12
            with pytest.raises(LFError, match="unfinished"):
                load_codes(out)
        last = killed_then_rerun(lf, [*args, out], points, out, partial)
        r.finish()
    done = [p for p in last.before if p.parent.name == "chunks"]
    assert done and f"resuming: {4 * len(done)}/12 faces" in last.output
    assert all(p.stat().st_mtime_ns == last.before[p] for p in done)  # kept, not redone
    a, b = load_codes(out), load_codes(ref)
    assert a.meta["complete"] and len(a) + a.meta["n_failed"] == 12
    for k in ("codes", "labels", "groups", "paths", "index"):
        np.testing.assert_array_equal(getattr(a, k), getattr(b, k), err_msg=k)
    assert a.failed == b.failed and a.codes.dtype == np.float32


def test_cnn_training_killed_and_rerun(lf, crops, tmp_path):
    """lf train --classifier meso4 killed after its first, second and third epoch's
    checkpoint: the same weights and epochs as a fit never stopped."""
    from lf_core.lab.baselines import load_baseline

    out, ref = tmp_path / "cnn", tmp_path / "ref"
    out.mkdir()
    args = ["train", crops, "--classifier", "meso4", "--epochs", "8", "-o"]
    with lf(*args, ref / "meso4.safetensors") as r:
        ckpt = appeared(out, "meso4.ckpt")
        last = killed_then_rerun(lf, [*args, out / "meso4.safetensors"], [ckpt] * 3, out)
        r.finish()
    assert "going on from" in last.output
    a, b = load_baseline(out / "meso4.safetensors"), load_baseline(ref / "meso4.safetensors")
    same_state(a.net.state_dict(), b.net.state_dict())
    keys = ("epochs", "best_epoch", "best_val_loss", "val_loss_history")
    assert {k: a.train_info_[k] for k in keys} == {k: b.train_info_[k] for k in keys}


def test_generator_training_killed_and_rerun(lf, crops, tmp_path):
    """lf train-generator (a checkpoint after every step) killed after its first and its
    second checkpoint: the same weights, optimiser and step count as a run never stopped,
    and an exported file that loads."""
    from lf_core.loaders import load_checkpoint
    from lf_core.model import DEFAULT_WEIGHTS

    faces = load_codes(crops).codes
    out, ref = tmp_path / "gen", tmp_path / "ref"
    for d in (out, ref):  # the face cache the command would align: 4 train, 4 val faces
        d.mkdir()
        np.save(d / "faces_train.npy", faces[:4])
        np.save(d / "faces_val.npy", faces[4:8])
    steps = json.loads(load_checkpoint(DEFAULT_WEIGHTS).meta["train"])["step"] + 2
    args = ["train-generator", "--steps", steps, "--batch", "2", "--threads", "1",
            "--ckpt-minutes", "0", "--out"]
    with lf(*args, ref) as r:
        saved = appeared(out, "last.pt")
        last = killed_then_rerun(lf, [*args, out], [saved, saved], out)
        r.finish()
    assert f"resumed from {out / 'last.pt'}" in last.output
    a = torch.load(out / "last.pt", weights_only=True)
    b = torch.load(ref / "last.pt", weights_only=True)
    assert a["step"] == b["step"] == steps and a["seen"] == b["seen"]
    for net in ("G", "E"):
        same_state(a[net], b[net])
    for k in ("exp_avg", "exp_avg_sq"):
        for i in b["opt"]["state"]:
            assert torch.equal(a["opt"]["state"][i][k], b["opt"]["state"][i][k])
    ld = load_checkpoint(out / "lf-compact-256.safetensors")
    assert json.loads(ld.meta["train"])["step"] == steps and ld.E is not None


def test_bench_killed_and_rerun(lf, manifest, tmp_path):
    """lf bench killed in its extraction, in its first Table 1 fit and after it: every
    result equals an uninterrupted run's (timings aside). (No CNN row: its resume is the
    CNN test's.)"""
    def bench(name):
        return ["bench", manifest, "--name", "tiny", "--work", tmp_path / name / "work",
                "--out-dir", tmp_path / name / "out", "--projectors", "stylegan",
                "--classifiers", "lr", "--cnns", "", "--channel-classifiers", "",
                "--fewshot", "2,0", "--fewshot-draws", "1", "--seeds", "1", "--bootstrap", "0"]
    work = tmp_path / "run" / "work"
    points = [appeared(work / "codes-stylegan", "meta.json"),
              holds_key(work / "results.json", "codes/"),
              holds_key(work / "results.json", "table/")]
    with lf(*bench("ref")) as r:
        killed_then_rerun(lf, bench("run"), points, tmp_path / "run")
        r.finish()

    def results(name):  # timings and file names aside
        data = json.loads((tmp_path / name / "work" / "results.json").read_text())
        drop = {"seconds", "s_per_face", "train_s", "infer_s_per_face", "folder", "detector"}
        return {k: {f: x for f, x in v.items() if f not in drop} if isinstance(v, dict) else v
                for k, v in data.items()}
    a, b = results("run"), results("ref")
    assert {"codes/stylegan", "table/stylegan/lr", "fewshot/stylegan/lr/2"} <= set(a)
    assert a == b
    runs = [json.loads(x) for x in (work / "runs.jsonl").read_text().splitlines()]
    assert runs[-1]["finished"] and runs[-1]["resumed"]  # killed runs write no line: SIGKILL


# --------------------------------------------------------------------------- a full disk


def extract_cli(manifest, out) -> list[str]:
    return ["extract", str(manifest), "--projector", "crops", "--batch", "4", "-q", "-o",
            str(out)]


def check_disk_full(code, err, out, crops, manifest):
    """Exit 6 and one line that says so; every file left is whole; a rerun finishes the
    job with the same crops as an uninterrupted run."""
    assert code == DiskFullError.exit_code == 6
    assert err.count("\n") == 1 and err.startswith("lf: error: the disk is full: "), err
    assert "/chunks/" in err, err  # the chunk that did not fit, not a later clean-up write
    assert check_whole(out) == []  # no temporary file, no partial chunk
    assert len(load_codes(out, partial=True)) < 12
    assert cli.main(extract_cli(manifest, out)) == 0
    a, b = load_codes(out), load_codes(crops)
    np.testing.assert_array_equal(a.codes, b.codes)
    np.testing.assert_array_equal(a.paths, b.paths)


def test_disk_full_is_one_line_and_the_rerun_finishes(manifest, crops, tmp_path, capsys,
                                                      monkeypatch):
    """The disk fills in the second chunk (simulated: fsync says ENOSPC from then on, as a
    full disk does on write or on fsync)."""
    calls = []

    def full(fd, fsync=os.fsync):
        calls.append(fd)
        if len(calls) >= 4:  # the projector, meta.json, chunk 0; then nothing fits
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return fsync(fd)
    monkeypatch.setattr(os, "fsync", full)
    out = tmp_path / "crops"
    code = cli.main(extract_cli(manifest, out))
    monkeypatch.undo()
    check_disk_full(code, capsys.readouterr().err, out, crops, manifest)


@pytest.fixture
def small_tmpfs(tmp_path):
    """A 1.2 MB tmpfs (root only; skipped elsewhere): room for one chunk of 4 crops."""
    mnt = tmp_path / "tmpfs"
    mnt.mkdir()
    if not shutil.which("mount"):
        pytest.skip("no mount command")
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1200k", "tmpfs", str(mnt)],
                       capture_output=True, text=True)
    if r.returncode:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {r.stderr.strip()}")
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)], check=False)


def test_full_tmpfs_is_one_line_and_the_rerun_finishes(manifest, crops, small_tmpfs, capsys):
    """A real full disk: a small tmpfs, grown once the command has failed."""
    out = small_tmpfs / "crops"
    code = cli.main(extract_cli(manifest, out))
    err = capsys.readouterr().err
    subprocess.run(["mount", "-o", "remount,size=8m", str(small_tmpfs)], check=True)
    check_disk_full(code, err, out, crops, manifest)


def test_disk_full_outside_lf_core_writers_is_one_line(monkeypatch, capsys):
    """A full disk under any other write (a library's own file) is the same line."""
    import functools

    import lf_core.lab.extract as ex

    @functools.wraps(ex.extract)  # the parser reads its defaults from the signature
    def full(*a, **kw):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), "/data/x.npz")
    monkeypatch.setattr(ex, "extract", full)
    assert cli.main(["extract", "m.csv", "--projector", "crops", "-o", "x"]) == 6
    err = capsys.readouterr().err
    assert err.startswith("lf: error: the disk is full: /data/x.npz could not be written")
    assert err.count("\n") == 1 and "Free some space and run the command again" in err


def test_killed_writers_temporary_files_are_removed(tmp_path):
    """A write of NAME removes the temporary files of NAME whose writer is gone, not those
    of a running writer nor another file's."""
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    names = [f".a.json.{dead.pid}.x1y2z3w4.tmp",  # a killed writer's: removed
             f".a.json.{os.getppid()}.x1y2z3w4.tmp",  # a running process's: kept
             f".b.json.{dead.pid}.x1y2z3w4.tmp"]  # another file's: kept
    for n in names:
        (tmp_path / n).write_text("{")
    atomic_write_json(tmp_path / "a.json", {"ok": 1})
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["a.json", *names[1:]])


def test_every_writer_on_a_full_tmpfs(small_tmpfs):
    """torch.save, np.save and np.savez fail in their own ways on a full disk (torch's
    cleanup raises a RuntimeError, numpy's tofile a short write without errno): each is a
    DiskFullError, and nothing is left behind."""
    from lf_core.artifacts import atomic_savez, atomic_write, atomic_write_safetensors

    big = np.zeros(400_000, np.float32)  # 1.6 MB
    tensors = {"a": torch.from_numpy(big)}
    writers = {"x.pt": lambda p: atomic_write(p, lambda f: torch.save(tensors, f)),
               "x.npy": lambda p: atomic_write(p, lambda f: np.save(f, big)),
               "x.npz": lambda p: atomic_savez(p, a=big),
               "x.safetensors": lambda p: atomic_write_safetensors(p, {"a": big})}
    for name, write in writers.items():
        with pytest.raises(DiskFullError, match=f"the disk is full: .*{name} could not be written"):
            write(small_tmpfs / name)
        assert list(small_tmpfs.iterdir()) == []
