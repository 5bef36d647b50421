"""Extraction engines: where lf_core.extract aligns and projects its chunks.

    extract(manifest, projector, "runs/codes/sg10")                           # this process
    extract(manifest, projector, "runs/codes/sg10", engine=RayEngine())       # a Ray cluster
    lf extract MANIFEST -o CODES --steps 100 --engine ray --address auto      # the same

The chunk file (`batch` manifest rows, see lf_core.extract) stays the unit of work and of
resume whatever the engine. `extract` (the driver) lists the chunks missing on disk and
hands them to the engine; the engine gives back, for each, the faces that aligned, those
that did not (and why), their codes and the identity of the projector that made them. The
driver alone checks that identity against its own and writes the chunk file, atomically,
with the same code for every engine; its one progress bar counts the chunks as they come
back. Hence:

- a folder started with one engine can be finished with the other (same chunk files);
- a driver killed and rerun recomputes only the chunks whose files are missing: a chunk in
  flight on a worker is lost, never half-written;
- a chunk is never written from other weights: every worker rebuilds the projector from
  the driver's saved projector file (for StyleGAN: its weights file, read at the same path
  on every node, e.g. a shared volume) and returns the identity it computed (weights
  sha256, steps, ...) with every chunk; a mismatch stops the run before that chunk is
  written.

LocalEngine: this process, extract's own loop (decode + align of the next chunk on a second
thread while torch projects this one on the machine's threads).

RayEngine: Ray Data, as in Ray's batch-inference guide. The dataset has one row per missing
chunk (its manifest rows, as JSON); `map_batches` with batch_size=1 runs it on a fixed pool
of actors (`ActorPoolStrategy`), each of which loads the projector once in its constructor,
sets torch to `cpus_per_worker` threads, then decodes, aligns and projects whole chunks.
Results stream back to the driver as they finish (`iter_rows`, order not kept: every result
names its chunk). Ray Data rather than hand-made actors because it brings what a cluster
run needs as it is: actor pools sized to the cluster, back-pressure, and fault tolerance:
Ray Data creates its pool actors with max_restarts=-1 and max_task_retries=-1, so a worker
process killed mid-chunk (out of memory, a pre-empted node) is restarted (its constructor
loads the model again) and the chunk it held is run again; nothing of the lost attempt
reaches the disk since only the driver writes. An exception in the projection itself is
not retried: it ends the run with its message (the chunks written so far stay).

Ray is an optional extra: `pip install -e .[ray]`.
"""

from __future__ import annotations

import io
import json
import logging
import os
import sys
import time
from pathlib import Path

import numpy as np

from ..errors import LFError

ENGINES = ("local", "ray")
RAY_MISSING = ("the ray engine needs Ray, an optional extra: pip install -e '.[ray]' (or pip "
               "install 'ray[data]>=2.58,<2.61' 'pyarrow<26')")


class LocalEngine:
    """Chunks aligned and projected in this process (lf_core.extract's own loop)."""

    name = "local"
    local = True

    def describe(self) -> str:
        return "local"


def make_engine(name: str = "local", **kw):
    """'local' -> LocalEngine(); 'ray' -> RayEngine(**kw) (an LFError without Ray)."""
    if name in (None, "", "local"):
        if any(v is not None for v in kw.values()):
            given = ", ".join("--" + k.replace("_", "-") for k, v in kw.items() if v is not None)
            raise LFError(f"{given}: options of the ray engine (--engine ray)")
        return LocalEngine()
    if name == "ray":
        return RayEngine(**{k: v for k, v in kw.items() if v is not None})
    raise LFError(f"unknown engine {name!r}; use {' or '.join(ENGINES)}")


def import_ray():
    try:
        import ray
        import ray.data  # noqa: F401  (the extra is ray[data]: pyarrow, pandas)
    except ImportError as e:
        raise LFError(RAY_MISSING + f" ({_one_line(e)})") from None
    return ray


def _one_line(e) -> str:
    s = str(e).strip().splitlines()
    return (s[0] if s else type(e).__name__).strip()


# --------------------------------------------------------------------------- the worker


def project_chunk(projector, rows, prealigned=False, mirror=False):
    """Decode + align + project one chunk: [(row, Item)] -> (ok rows, [(row, reason)],
    codes as stored, {"mirror": codes} or {})."""
    from .extract import align_batch, as_stored

    crops, ok, failed = align_batch(rows, prealigned)
    codes = projector.project(crops) if len(crops) else \
        np.zeros((0, *projector.code_shape), np.float32)
    codes = as_stored(codes)
    views = {}
    if mirror:  # the same faces flipped left-right
        from ..alignment import mirror as flip
        views["mirror"] = as_stored(projector.project(flip(crops))) if len(crops) else codes
    return [r for r, _ in ok], [(r, why) for r, _, why in failed], codes, views


class ChunkWorker:
    """A Ray Data actor: holds one projector, turns chunk rows into chunk results.

    projector_file: the bytes of the driver's saved projector (Projector.save); batch: the
    driver projector's faces per projection call."""

    def __init__(self, projector_file: bytes, threads: int = 1, prealigned: bool = False,
                 mirror: bool = False, batch: int | None = None):
        import tempfile

        import torch

        from .extract import jsonable
        from .projectors import load_projector

        torch.set_num_threads(max(1, int(threads)))
        with tempfile.TemporaryDirectory(prefix="lf-worker-") as d:
            path = Path(d) / "projector.safetensors"
            path.write_bytes(projector_file)
            self.projector = load_projector(path)
        if batch is not None and hasattr(self.projector, "batch"):
            self.projector.batch = int(batch)
        self.identity = json.dumps(jsonable(self.projector.identity()), sort_keys=True)
        self.prealigned, self.mirror = bool(prealigned), bool(mirror)
        self.where = f"{os.uname().nodename}:{os.getpid()}"

    def __call__(self, batch: dict) -> dict:
        from .data import Item

        ks, results = [], []
        for k, payload in zip(batch["k"], batch["rows"]):
            rows = [(int(r), Item(Path(p), int(lab), g)) for r, p, lab, g in json.loads(payload)]
            t, started = time.perf_counter(), time.time()
            ok, failed, codes, views = project_chunk(self.projector, rows, self.prealigned,
                                                     self.mirror)
            buf = io.BytesIO()  # npz: arrays only, nothing executed on load
            np.savez(buf, codes=codes, ok=np.array(ok, np.int64),
                     failed_index=np.array([r for r, _ in failed], np.int64),
                     failed_reason=np.array([w for _, w in failed], dtype=str),
                     identity=np.array(self.identity), where=np.array(self.where),
                     started=np.float64(started),
                     seconds=np.float64(time.perf_counter() - t), **views)
            ks.append(int(k))
            results.append(buf.getvalue())
        return {"k": np.array(ks, np.int64), "result": np.array(results, dtype=object)}


# --------------------------------------------------------------------------- the driver


class RayEngine:
    """Chunks aligned and projected by a pool of Ray actors (see the module doc).

    address: a running cluster ("auto": the one this machine belongs to, as in a RayJob or
    after `ray start`); None: a Ray session already started in this process, else a
    local one for this run (all the machine's CPUs). workers: actors in the pool
    (default: the cluster's CPUs // cpus_per_worker, also bounded by its GPUs //
    gpus_per_worker); cpus_per_worker: CPUs reserved per actor and its torch threads;
    gpus_per_worker: GPUs reserved per actor."""

    name = "ray"
    local = False

    def __init__(self, address: str | None = None, workers: int | None = None,
                 cpus_per_worker: float = 1, gpus_per_worker: float = 0):
        if workers is not None and int(workers) < 1:
            raise LFError(f"workers must be >= 1, got {workers}")
        if not cpus_per_worker or cpus_per_worker <= 0:
            raise LFError(f"cpus per worker must be > 0, got {cpus_per_worker}")
        if gpus_per_worker < 0:
            raise LFError(f"gpus per worker must be >= 0, got {gpus_per_worker}")
        self.address = address or None
        self.workers = None if workers is None else int(workers)
        self.cpus_per_worker = float(cpus_per_worker)
        self.gpus_per_worker = float(gpus_per_worker)
        # of the last run: chunk (index into the list given) -> the worker (node:pid) that
        # made it; startup_s: seconds from the call to the first chunk a worker started
        # (Ray's start, the actors' start, their model loading)
        self.chunk_workers: dict[int, str] = {}
        self.startup_s = None
        import_ray()  # fail early, with the install line, when Ray is missing

    def describe(self) -> str:
        return (f"ray ({self.address or 'local'}, {self.workers or 'auto'} workers x "
                f"{self.cpus_per_worker:g} CPU" + (f" + {self.gpus_per_worker:g} GPU"
                                                   if self.gpus_per_worker else "") + ")")

    def _connect(self):
        """ray.init when needed; returns True when this call started the session."""
        ray = import_ray()
        if ray.is_initialized():
            return False
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # never phones home
        if not self.address:
            os.environ.setdefault("RAY_AUTH_MODE", "token")  # Ray's default, said: not logged
            # Ray runs its workers at niceness 15; here they are the job, as the local
            # engine's process is: the same priority (else other work starves them)
            os.environ.setdefault("RAY_worker_niceness", "0")
        kw = {"include_dashboard": False, "log_to_driver": False, "logging_level": "error"}
        try:
            if self.address:
                ray.init(address=self.address, **kw)
            else:
                n = os.cpu_count() or 1
                if self.workers:
                    n = max(n, int(np.ceil(self.workers * self.cpus_per_worker)))
                ray.init(num_cpus=n, **kw)
        except (ConnectionError, RuntimeError, ValueError) as e:
            raise LFError(f"cannot connect to the Ray cluster at {self.address or 'local'}: "
                          f"{_one_line(e)}") from None
        return True

    def _pool_size(self, ray, n_chunks) -> int:
        res = ray.cluster_resources()
        cpus, gpus = float(res.get("CPU", 0)), float(res.get("GPU", 0))
        if cpus < self.cpus_per_worker:
            raise LFError(f"the Ray cluster has {cpus:g} CPUs, fewer than the "
                          f"{self.cpus_per_worker:g} a worker asks for")
        if gpus < self.gpus_per_worker:
            raise LFError(f"the Ray cluster has {gpus:g} GPUs, fewer than the "
                          f"{self.gpus_per_worker:g} a worker asks for")
        n = self.workers
        if n is None:
            n = int(cpus // self.cpus_per_worker)
            if self.gpus_per_worker:
                n = min(n, int(gpus // self.gpus_per_worker))
        return max(1, min(n, n_chunks))

    def chunks(self, projector, todo, prealigned=False, mirror=False, log=None):
        """todo: [[(row, Item)] per chunk]. Yields (k, ok, failed, codes, views) as the
        chunks finish: k indexes `todo`, ok [(row, Item)], failed [(row, Item, reason)],
        codes as stored, views {"mirror": codes} or {}. Raises LFError when a worker's
        projector is not the driver's (nothing of that chunk is yielded)."""
        from .extract import jsonable

        log = log or (lambda m: print(m, file=sys.stderr))
        t0 = time.time()
        self.chunk_workers, self.startup_s = {}, None
        if not todo:
            return
        ray = import_ray()
        started = self._connect()
        try:
            n = self._pool_size(ray, len(todo))
            log(f"ray: {n} workers x {self.cpus_per_worker:g} CPU"
                + (f" + {self.gpus_per_worker:g} GPU" if self.gpus_per_worker else "")
                + f" on {self.address or 'a local cluster'}; {len(todo)} chunks to project")
            want = json.dumps(jsonable(projector.identity()), sort_keys=True)
            ds = self._dataset(ray, projector, todo, n, prealigned, mirror)
            by_row = [{r: it for r, it in rows} for rows in todo]
            quiet = logging.getLogger("ray.data")  # its progress lines: the driver has a bar
            level = quiet.level
            quiet.setLevel(logging.ERROR)
            results = iter(ds.iter_rows())
            try:
                for out in results:
                    k = int(out["k"])
                    if k in self.chunk_workers:  # a retried task's second answer
                        continue
                    with np.load(io.BytesIO(out["result"]), allow_pickle=False) as z:
                        got = str(z["identity"])
                        if got != want:
                            raise LFError(
                                f"a Ray worker ({z['where']}) projects with another "
                                f"projector than this one (worker: {got}; here: {want}): "
                                "every node must see the same weights file at the same path")
                        codes = z["codes"]
                        views = {"mirror": z["mirror"]} if mirror else {}
                        ok = [(r, by_row[k][r]) for r in z["ok"].tolist()]
                        failed = [(r, by_row[k][r], why) for r, why in
                                  zip(z["failed_index"].tolist(), z["failed_reason"].tolist())]
                        self.chunk_workers[k] = str(z["where"])
                        first = float(z["started"]) - t0
                    self.startup_s = first if self.startup_s is None else \
                        min(self.startup_s, first)
                    yield k, ok, failed, codes, views
            except LFError:
                raise
            except Exception as e:  # a worker's exception, wrapped by Ray
                raise LFError(f"the Ray run failed: {_root_cause(e)}") from e
            finally:
                getattr(results, "close", lambda: None)()  # an interrupted run: stop it
                quiet.setLevel(level)
            missing = len(todo) - len(self.chunk_workers)
            if missing:
                raise LFError(f"the Ray run ended with {missing} chunks not projected; rerun "
                              "the same command to resume")
        finally:
            if started:
                ray.shutdown()

    def _dataset(self, ray, projector, todo, n, prealigned, mirror):
        import tempfile

        from ray.data import ActorPoolStrategy, DataContext

        ctx = DataContext.get_current()
        ctx.enable_progress_bars = False  # the driver shows one bar: lf_core.extract's
        if hasattr(ctx, "print_on_execution_start"):
            ctx.print_on_execution_start = False
        with tempfile.TemporaryDirectory(prefix="lf-driver-") as d:
            path = Path(d) / "projector.safetensors"
            projector.save(path)
            blob = path.read_bytes()
        items = [{"k": k, "rows": json.dumps([[r, str(it.path), int(it.label), str(it.group)]
                                              for r, it in rows])}
                 for k, rows in enumerate(todo)]
        env = {k: os.environ[k] for k in ("LF_WEIGHTS", "LF_ENCODER") if os.environ.get(k)}
        extra = {"runtime_env": {"env_vars": env}} if env else {}
        ds = ray.data.from_items(items, override_num_blocks=len(items))
        return ds.map_batches(
            ChunkWorker, batch_size=1, batch_format="numpy",
            fn_constructor_kwargs={"projector_file": blob, "prealigned": prealigned,
                                   "threads": _threads(self.cpus_per_worker), "mirror": mirror,
                                   "batch": getattr(projector, "batch", None)},
            compute=ActorPoolStrategy(size=n, max_tasks_in_flight_per_actor=1),
            num_cpus=self.cpus_per_worker, num_gpus=self.gpus_per_worker or None, **extra)


def _threads(cpus: float) -> int:
    return max(1, int(round(cpus)))


def _root_cause(e) -> str:
    """The first line of the innermost cause of a (Ray-wrapped) exception."""
    seen = set()
    while True:
        nxt = getattr(e, "cause", None) or e.__cause__
        if nxt is None or id(nxt) in seen:
            break
        seen.add(id(e))
        e = nxt
    return f"{type(e).__name__}: {_one_line(e)}"


__all__ = ["ENGINES", "LocalEngine", "RayEngine", "make_engine", "project_chunk"]
