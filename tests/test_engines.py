"""The Ray engine of lf extract (lf_core.lab.engines) on a local 2-CPU Ray cluster, offline: the
same codes as the local engine, a killed worker, a deleted chunk, a run started locally."""

import csv
import os
import shutil
import signal
import threading
import time

import numpy as np
import pytest

ray = pytest.importorskip("ray")
pytest.importorskip("ray.data")

from lf_core.cli import main  # noqa: E402
from lf_core.lab.engines import RayEngine  # noqa: E402
from lf_core.lab.extract import extract, load_codes  # noqa: E402
from lf_core.lab.projectors import StyleGANProjector  # noqa: E402

BATCH = 2  # faces per chunk: 5 chunks of the 10-row manifest


@pytest.fixture(scope="module", autouse=True)
def cluster():
    """One local Ray cluster for the module (the engine uses it as it finds it)."""
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    os.environ.setdefault("RAY_worker_niceness", "0")  # as the engine's own local cluster
    if not ray.is_initialized():
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
                 logging_level="error")
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def manifest(data_dir, tmp_path_factory):
    """9 DFDC crops (real and fake) and one row that is not an image."""
    d = tmp_path_factory.mktemp("manifest")
    (d / "notes.txt").write_text("this is not an image\n")
    with open(data_dir / "dfdc_faces" / "manifest.csv", newline="") as f:
        rows = list(csv.DictReader(f))[:9]
    path = d / "manifest.csv"
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["path", "label", "group"])
        for r in rows[:4]:
            w.writerow([str(data_dir / "dfdc_faces" / r["path"]), r["label"], r["group"]])
        w.writerow(["notes.txt", "real", "notes"])
        for r in rows[4:]:
            w.writerow([str(data_dir / "dfdc_faces" / r["path"]), r["label"], r["group"]])
    return path


def _local(manifest, folder, model, steps, limit=None):
    return load_codes(extract(manifest, StyleGANProjector(model, steps=steps), folder,
                              batch=BATCH, progress=False, mirror=steps == 0, limit=limit))


@pytest.fixture(scope="module")
def local0(manifest, model, tmp_path_factory):
    """The local engine's encoder-only codes (+ mirror views): the reference."""
    return _local(manifest, tmp_path_factory.mktemp("local") / "sg0", model, 0)


@pytest.fixture(scope="module")
def ray0(manifest, model, tmp_path_factory):
    """The same with the ray engine, 2 workers x 1 CPU."""
    out = tmp_path_factory.mktemp("ray") / "sg0"
    engine = RayEngine(workers=2)
    extract(manifest, StyleGANProjector(model, steps=0), out, batch=BATCH, progress=False,
            mirror=True, engine=engine)
    return out, engine


def same_codes(a, b, atol=1e-4):
    assert a.meta["projector_identity"] == b.meta["projector_identity"]
    assert a.meta["complete"] and b.meta["complete"]
    np.testing.assert_array_equal(a.index, b.index)
    np.testing.assert_array_equal(a.paths, b.paths)
    np.testing.assert_array_equal(a.labels, b.labels)
    np.testing.assert_allclose(a.codes, b.codes, atol=atol, rtol=0)
    assert (a.mirror is None) == (b.mirror is None)
    if a.mirror is not None:
        np.testing.assert_allclose(a.mirror, b.mirror, atol=atol, rtol=0)
    assert [r["path"] for r in a.failed] == [r["path"] for r in b.failed]


def test_ray_gives_the_local_codes(local0, ray0):
    out, engine = ray0
    c = load_codes(out)
    same_codes(c, local0)
    assert len(c) == 9 and len(c.failed) == 1 and c.failed[0]["path"].endswith("notes.txt")
    assert len(engine.chunk_workers) == 5  # every chunk projected by a worker
    assert len(set(engine.chunk_workers.values())) == 2  # by both workers


def test_deleted_chunk_is_recomputed_alone(ray0, local0, model, manifest, tmp_path):
    out = tmp_path / "sg0"
    shutil.copytree(ray0[0], out)
    gone = out / "chunks" / "00000004.npz"
    gone.unlink()
    before = {p.name: p.stat().st_mtime_ns for p in (out / "chunks").glob("*.npz")}
    engine = RayEngine(workers=2)
    extract(manifest, StyleGANProjector(model, steps=0), out, batch=BATCH, progress=False,
            mirror=True, engine=engine)
    assert len(engine.chunk_workers) == 1 and gone.exists()
    assert before == {p.name: p.stat().st_mtime_ns for p in (out / "chunks").glob("*.npz")
                      if p.name != gone.name}
    same_codes(load_codes(out), local0)


def test_started_local_finished_with_ray(local0, model, manifest, tmp_path, capsys):
    out = tmp_path / "sg0"
    extract(manifest, StyleGANProjector(model, steps=0), out, batch=BATCH, progress=False,
            mirror=True, limit=4)  # local: the first 2 chunks
    assert load_codes(out, partial=True).meta["n_done"] == 4
    code = main(["extract", str(manifest), "-o", str(out), "--batch", str(BATCH), "--mirror",
                 "-q", "--engine", "ray", "--workers", "2"])
    err = capsys.readouterr().err
    assert code == 0, err
    assert "resuming: 4/10" in err and "3 chunks to project" in err
    same_codes(load_codes(out), local0)


def kill_first_worker(engine, done, before, killed):
    """Once a chunk is done, SIGKILL the worker that made it (it has taken its next chunk);
    `before`: the chunks done at that time."""
    while not engine.chunk_workers and not done.is_set():
        time.sleep(0.05)
    if engine.chunk_workers and not done.is_set():
        where = list(engine.chunk_workers.values())[0]
        time.sleep(0.2)
        os.kill(int(where.rpartition(":")[2]), signal.SIGKILL)
        before.update(engine.chunk_workers)
        killed.append(where)


def test_killed_worker_is_restarted_and_its_chunk_redone(manifest, model, tmp_path):
    """A worker process killed (SIGKILL) while it projects a chunk: Ray restarts the actor,
    the chunk is run again, and the codes are those of the local engine. 3 chunks: each
    worker takes one, the first to finish takes the third and is killed. On a loaded
    machine the kill can come after the last chunk is done, which tests nothing: the run
    is then repeated with longer chunks."""
    limit = 6
    for attempt, steps in enumerate((4, 12, 24)):  # 4 steps: ~1 s per chunk on one thread
        engine = RayEngine(workers=2)
        killed, before, done = [], {}, threading.Event()

        killer = threading.Thread(target=kill_first_worker,
                                  args=(engine, done, before, killed), daemon=True)
        killer.start()
        out = tmp_path / f"sg{attempt}"
        try:
            extract(manifest, StyleGANProjector(model, steps=steps), out, batch=BATCH,
                    progress=False, engine=engine, limit=limit)
        finally:
            done.set()
        killer.join(5)
        assert killed, "no worker was killed"
        c = load_codes(out)
        assert c.meta["complete"] and len(c) == 5 and len(engine.chunk_workers) == 3
        if len(before) < 3:  # a chunk was still being projected when its worker died
            break
    else:
        pytest.fail("every kill came after the last chunk: the machine is too loaded")
    after = {k: w for k, w in engine.chunk_workers.items() if k not in before}
    assert after and killed[0] not in after.values()  # the rest: made by live workers
    ref = _local(manifest, tmp_path / "local", model, steps, limit)
    # inversion steps amplify the float differences of 1 vs 2 torch threads: ~0.02 at most
    # on codes of magnitude ~50 after 4 steps, growing with the steps
    same_codes(c, ref, atol=0.05 * steps / 4)
