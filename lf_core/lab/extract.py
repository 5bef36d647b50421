"""Manifest -> aligned faces -> codes, resumable.

    extract("dfdc_faces/manifest.csv", StyleGANProjector(model, steps=0), "runs/codes/sg0")
    codes = load_codes("runs/codes/sg0")          # Codes: codes, labels, groups, paths...
    tr = codes.where(split="train")

Output: a folder (CODES), never a single file, so that a killed run loses at most one
chunk and a rerun with the same arguments resumes where it stopped:

    CODES/meta.json              what made the codes: projector meta, manifest path and
                                 sha256, split, limit, chunk size; n done / failed; complete
    CODES/projector.safetensors  the projector (a fitted PCA; for stylegan, its metadata)
    CODES/chunks/NNNNNNNN.npz    one per `batch` manifest rows (positions start..stop of the
                                 selected rows): codes (n, ...) float32, labels int8 (0 real,
                                 1 fake, -1 unknown), groups, paths (str), index (manifest
                                 row), failed_index, failed_reason; with mirror=True
                                 also mirror (n, ...): the codes of the faces flipped
                                 left-right (a detector trained on both views)
    CODES/failed.csv             path,label,group,reason of every face that did not align
                                 (or did not decode): listed, never dropped unseen

Every file is written to a temporary name and renamed (atomic on one file system). A
rerun skips the chunks that exist with the same bounds; a chunk that a `limit` cut short
is redone when a later run asks for more rows. A rerun with another manifest (content),
split or projector is refused: use another folder or overwrite=True.

Rows are taken in manifest order, after the optional `split` filter (lf_core.lab.data.split_of
on the group), then the first `limit` of them. A projector that must be fitted (PCA) and is
not is fitted first on the *real* faces of the manifest's *train* split (at most
`fit_limit`, taken evenly across the manifest), whatever `split` is extracted, so its
fit never sees a test group; it is saved in CODES and reused on resume.
"""

from __future__ import annotations

import csv
import io
import json
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..artifacts import atomic_savez, atomic_write_bytes, atomic_write_json, digest
from ..errors import DiskFullError, LFError
from .data import Item, read_manifest, split_of
from .projectors import Projector, load_projector

SPLIT_NAMES = ("train", "val", "test")
FORMAT = "latentforensics.codes"
VERSION = 1


# --------------------------------------------------------------------------- small helpers


def check_split(split):
    if split not in (None, "all", *SPLIT_NAMES):
        raise LFError(f"unknown split {split!r}; use train, val, test or all")
    return None if split == "all" else split


def select_items(items: list[Item], split=None, limit=None) -> list[tuple[int, Item]]:
    """[(manifest row, item)] of `split` (None: all), first `limit` of them."""
    split = check_split(split)
    rows = [(i, it) for i, it in enumerate(items) if split is None or split_of(it.group) == split]
    if limit is not None:
        if limit < 0:
            raise LFError(f"limit must be >= 0, got {limit}")
        rows = rows[:limit]
    return rows


def load_crop(path, prealigned=False) -> np.ndarray:
    """(256, 256, 3) uint8 aligned face of the image at `path` (largest face).
    BadInputError / NoFaceError (LFError) when it cannot."""
    from ..io import load_image

    img = load_image(path)
    if prealigned:
        import cv2

        if img.shape[:2] != (256, 256):
            interp = cv2.INTER_AREA if min(img.shape[:2]) > 256 else cv2.INTER_CUBIC
            img = cv2.resize(img, (256, 256), interpolation=interp)
        return img
    from ..alignment import align

    return align(img, max_faces=1)[0].crop


def _one_line(e) -> str:
    s = str(e).strip().splitlines()
    return (s[0] if s else type(e).__name__).replace("\t", " ")


def align_batch(items, prealigned=False):
    """[(row, item)] -> (crops (n, 256, 256, 3) uint8, ok rows, [(row, item, reason)])."""
    crops, ok, failed = [], [], []
    for row, it in items:
        try:
            crops.append(load_crop(it.path, prealigned))
            ok.append((row, it))
        except LFError as e:
            failed.append((row, it, _one_line(e)))
    arr = np.stack(crops) if crops else np.zeros((0, 256, 256, 3), np.uint8)
    return arr, ok, failed


# --------------------------------------------------------------------------- extraction


def fit_projector(projector: Projector, items: list[Item], fit_limit=5000, batch=64,
                  prealigned=False, progress=True, log=None):
    """Fit `projector` on the real faces of the train split of `items` (at most
    `fit_limit`, evenly spaced through the list). Returns (projector, n_used, n_failed)."""
    from tqdm import tqdm

    pool = [(i, it) for i, it in enumerate(items)
            if it.label == 0 and split_of(it.group) == "train"]
    if fit_limit and len(pool) > fit_limit:
        pick = np.linspace(0, len(pool) - 1, fit_limit).round().astype(int)
        pool = [pool[i] for i in np.unique(pick)]
    if not pool:
        raise LFError(f"cannot fit the {projector.kind} projector: the manifest has no real "
                      "faces in the train split")
    bar = tqdm(total=len(pool), desc=f"fit {projector.kind} (real, train split)", unit="face",
               disable=not progress, dynamic_ncols=True, file=sys.stderr)
    stats = {"used": 0, "failed": 0}

    def batches():
        for s in range(0, len(pool), batch):
            crops, ok, failed = align_batch(pool[s:s + batch], prealigned)
            stats["used"] += len(ok)
            stats["failed"] += len(failed)
            bar.update(len(ok) + len(failed))
            if len(crops):
                yield crops
            elif failed and not stats["used"]:
                stats["why"] = f"{failed[0][1].path}: {failed[0][2]}"
        if not stats["used"]:
            why = stats.get("why")
            raise LFError(f"cannot fit the {projector.kind} projector: none of the {len(pool)} "
                          "real train-split faces could be read and aligned"
                          + (f" (first: {why})" if why else ""))

    try:
        projector.fit(batches())
    finally:
        bar.close()
    if log:
        log(f"fitted {projector.name} on {stats['used']} real train-split faces "
            f"({stats['failed']} did not align)")
    return projector, stats["used"], stats["failed"]


def _chunk_path(out: Path, start: int) -> Path:
    return out / "chunks" / f"{start:08d}.npz"


def _chunk_bounds(path: Path):
    """(start, stop) of an existing chunk file, or None when unreadable."""
    try:
        with np.load(path, allow_pickle=False) as z:
            return int(z["start"]), int(z["stop"])
    except Exception:
        return None


def extract(manifest, projector: Projector, out, batch: int = 32, limit: int | None = None,
            progress: bool = True, split: str | None = None, prealigned: bool = False,
            fit_limit: int = 5000, overwrite: bool = False, mirror: bool = False,
            log=None, engine=None) -> Path:
    """Align + project the faces of `manifest` into the folder `out` (see the module doc).

    manifest: CSV `path,label[,group]`; projector: a Projector (a PCA that is not fitted
    is fitted here, see fit_projector); batch: rows per chunk (and per projection call);
    limit: first N selected rows only (rerun without it to go on); split: train / val /
    test / all (by group); prealigned: the images are FFHQ-aligned already (only resized
    to 256 px, no detection); progress: tqdm bar on stderr with faces/s and ETA;
    mirror: also project every face flipped left-right (twice the projection time);
    engine: where the chunks are aligned and projected (None: here; lf_core.lab.engines), the
    chunk files being written here either way.
    Returns `out`. A KeyboardInterrupt leaves every finished chunk in place.
    """
    from tqdm import tqdm

    log = log or (lambda m: print(m, file=sys.stderr))
    manifest = Path(manifest).resolve()  # so that stored paths are absolute
    out = Path(out)
    if out.suffix == ".npz" or (out.exists() and not out.is_dir()):
        raise LFError(f"{out}: CODES is a folder (chunk files + meta.json), not a file")
    if batch < 1:
        raise LFError(f"batch must be >= 1, got {batch}")
    split = check_split(split)
    items = read_manifest(manifest)
    msha = digest(manifest)
    rows = select_items(items, split, limit)

    (out / "chunks").mkdir(parents=True, exist_ok=True)
    meta_path, proj_path = out / "meta.json", out / "projector.safetensors"
    old = json.loads(meta_path.read_text()) if meta_path.exists() else None
    if old is not None and overwrite:
        for f in (out / "chunks").glob("*.npz"):
            f.unlink()
        for f in (meta_path, proj_path, out / "failed.csv"):
            f.unlink(missing_ok=True)
        old = None
    if old is not None:
        if old.get("manifest_sha256") != msha:
            raise LFError(f"{out} holds codes of another manifest (or {manifest.name} changed "
                          "since); use a new folder or overwrite")
        if bool(old.get("mirror")) != mirror:
            raise LFError(f"{out} was extracted {'with' if old.get('mirror') else 'without'} "
                          "--mirror; use the same option, a new folder or overwrite")
        if old.get("split") != split:
            raise LFError(f"{out} holds the {old.get('split') or 'all'} split, not "
                          f"{split or 'all'}; use a new folder or overwrite")
        batch = int(old["batch"])  # chunk bounds are fixed by the first run

    # The projector: fit (PCA) once, reuse a saved fit on resume.
    if projector.needs_fit and not projector.is_fitted:
        if proj_path.exists():
            saved = load_projector(proj_path)
            if saved.kind != projector.kind or saved.params() != projector.params():
                raise LFError(f"{out} was made with {saved.name}, not {projector.name}; use "
                              "a new folder or overwrite")
            projector = saved
            log(f"reusing the projector fitted earlier: {proj_path}")
        else:
            fit_projector(projector, items, fit_limit=fit_limit, prealigned=prealigned,
                          progress=progress, log=log)
    pmeta = projector.meta()
    if old is not None and old.get("projector_identity") != jsonable(projector.identity()):
        raise LFError(f"{out} holds codes of another projector ({old['projector']['name']}; "
                      f"now {projector.name}, or its weights changed); use a new folder or "
                      "overwrite")
    if not proj_path.exists():
        projector.save(proj_path)

    meta = {
        "format": FORMAT, "version": VERSION,
        "manifest": str(manifest.resolve()), "manifest_sha256": msha,
        "n_manifest": len(items), "split": split, "limit": limit, "batch": batch,
        "prealigned": prealigned, "projector": pmeta,
        "projector_identity": jsonable(projector.identity()),
        "n_items": len(rows), "mirror": mirror, "complete": False, "created": (old or {}).get("created")
        or time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        # end-to-end time (decode + align + project) summed over every run that extracted
        # faces, and how many: the per-face cost stays known after a resume
        "work_s": (old or {}).get("work_s", 0.0), "work_faces": (old or {}).get("work_faces", 0),
    }
    atomic_write_json(meta_path, meta)

    # What is done already: chunk files whose bounds match this run's.
    todo, done_rows = [], 0
    for start in range(0, len(rows), batch):
        stop = min(start + batch, len(rows))
        p = _chunk_path(out, start)
        if p.exists() and _chunk_bounds(p) == (start, stop):
            done_rows += stop - start
        else:
            todo.append((start, stop))
    if done_rows:
        log(f"resuming: {done_rows}/{len(rows)} faces already in {out}")

    bar = tqdm(total=len(rows), initial=done_rows, desc=f"extract {projector.kind}",
               unit="face", disable=not progress, dynamic_ncols=True, file=sys.stderr,
               smoothing=0.1)
    n_failed = 0
    # decode + align (mediapipe, no torch) of the next chunk on a second thread while this
    # chunk is projected: the two overlap on a 2-core CPU
    ahead = ThreadPoolExecutor(1, thread_name_prefix="lf-align")

    def aligned(i):
        return ahead.submit(align_batch, rows[todo[i][0]:todo[i][1]], prealigned)
    remote = None if engine is None or engine.local else engine.chunks(
        projector, [rows[a:b] for a, b in todo], prealigned=prealigned, mirror=mirror, log=log)
    nxt = aligned(0) if todo and remote is None else None
    t0, n_new, failure = time.perf_counter(), 0, None
    try:
        for i, (start, stop) in enumerate(todo):
            if remote is not None:  # aligned + projected by a worker; chunks as they finish
                k, ok, failed, codes, views = next(remote)
                start, stop = todo[k]
            else:
                crops, ok, failed = nxt.result()
                if i + 1 < len(todo):
                    nxt = aligned(i + 1)
                codes = projector.project(crops) if len(crops) else \
                    np.zeros((0, *projector.code_shape), np.float32)
                codes = as_stored(codes)
                views = {}
                if mirror:  # the same faces flipped left-right
                    from ..alignment import mirror as flip
                    views["mirror"] = as_stored(projector.project(flip(crops))) if len(crops) \
                        else codes
            bad = ~_finite_rows(codes)
            for v in views.values():
                bad |= ~_finite_rows(v)
            if bad.any():  # listed with the faces that did not align, never dropped unseen
                failed = failed + [(r, it, NON_FINITE) for (r, it), b in zip(ok, bad) if b]
                ok = [x for x, b in zip(ok, bad) if not b]
                codes, views = codes[~bad], {k: v[~bad] for k, v in views.items()}
            atomic_savez(
                _chunk_path(out, start), start=np.int64(start), stop=np.int64(stop),
                codes=codes,
                labels=np.array([it.label for _, it in ok], np.int8),
                groups=np.array([it.group for _, it in ok], dtype=str),
                paths=np.array([str(it.path) for _, it in ok], dtype=str),
                index=np.array([r for r, _ in ok], np.int64),
                failed_index=np.array([r for r, _, _ in failed], np.int64),
                failed_reason=np.array([r for _, _, r in failed], dtype=str), **views)
            n_failed += len(failed)
            n_new += stop - start
            bar.update(stop - start)
            bar.set_postfix(failed=n_failed, refresh=False)
    except BaseException as e:
        failure = e
        raise
    finally:
        if remote is not None:
            remote.close()  # stops the workers (an interrupted run: their chunks are lost)
        ahead.shutdown(wait=True, cancel_futures=True)
        bar.close()
        meta.update(work_s=round(meta["work_s"] + time.perf_counter() - t0, 2),
                    work_faces=meta["work_faces"] + n_new)
        try:
            _finish(out, items, meta, rows, batch)
        except DiskFullError:
            if failure is None:
                raise  # else the chunk that did not fit is the error the user sees
    return out


NON_FINITE = "the projector gave non-finite values (NaN or inf) for this face"


def _finite_rows(a) -> np.ndarray:
    """(N,) bool: every value of the row is finite."""
    return np.isfinite(a).all(axis=tuple(range(1, a.ndim)))


def _finish(out: Path, items, meta, rows, batch):
    """Write failed.csv and the counts in meta.json from the chunk files on disk."""
    n_codes, failed, done = 0, [], 0
    for start in range(0, len(rows), batch):
        stop = min(start + batch, len(rows))
        p = _chunk_path(out, start)
        if not p.exists():
            continue
        with np.load(p, allow_pickle=False) as z:
            if (int(z["start"]), int(z["stop"])) != (start, stop):
                continue
            done += stop - start
            n_codes += len(z["index"])
            failed += list(zip(z["failed_index"].tolist(), z["failed_reason"].tolist()))
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["path", "label", "group", "reason"])
    for row, reason in failed:
        it = items[row]
        w.writerow([str(it.path), {0: "real", 1: "fake"}.get(it.label, ""), it.group, reason])
    atomic_write_bytes(out / "failed.csv", buf.getvalue().encode())
    meta.update(n_done=done, n_codes=n_codes, n_failed=len(failed),
                complete=done == len(rows), updated=time.strftime("%Y-%m-%dT%H:%M:%S%z"))
    atomic_write_json(out / "meta.json", meta)


def jsonable(v):
    """v as JSON gives it back (tuples become lists, keys strings)."""
    return json.loads(json.dumps(v))


def as_stored(codes) -> np.ndarray:
    """Codes as stored: uint8 crops as they are, anything else float32."""
    codes = np.asarray(codes)
    return codes if codes.dtype == np.uint8 else codes.astype(np.float32, copy=False)


# --------------------------------------------------------------------------- reading codes


@dataclass
class Codes:
    codes: np.ndarray  # (N, ...) float32 (or uint8 crops for the "crops" projector)
    labels: np.ndarray  # (N,) int8: 0 real, 1 fake, -1 unknown
    groups: np.ndarray  # (N,) str
    paths: np.ndarray  # (N,) str
    index: np.ndarray  # (N,) manifest row
    meta: dict = field(default_factory=dict)
    failed: list = field(default_factory=list)  # [{"path", "label", "group", "reason"}]
    folder: Path | None = None
    mirror: np.ndarray | None = None  # (N, ...) codes of the faces flipped left-right

    def __len__(self):
        return len(self.labels)

    @property
    def projector(self) -> dict:
        return self.meta.get("projector", {})

    @property
    def splits(self) -> np.ndarray:
        return np.array([split_of(g) for g in self.groups], dtype=str)

    def take(self, mask) -> "Codes":
        m = np.asarray(mask)
        return Codes(self.codes[m], self.labels[m], self.groups[m], self.paths[m],
                     self.index[m], self.meta, self.failed, self.folder,
                     None if self.mirror is None else self.mirror[m])

    def where(self, split=None, labelled=False) -> "Codes":
        """Rows of a split (None / 'all': every row); labelled: only labels 0 and 1."""
        split = check_split(split)
        m = np.ones(len(self), bool)
        if split is not None:
            m &= self.splits == split
        if labelled:
            m &= self.labels >= 0
        return self.take(m)

    def load_projector(self, **kw) -> Projector:
        if self.folder is None:
            raise LFError("these codes have no folder, so no saved projector")
        return load_projector(self.folder / "projector.safetensors", **kw)


def is_codes_folder(path) -> bool:
    return Path(path).is_dir() and (Path(path) / "meta.json").is_file()


def load_codes(path, partial: bool = False, with_codes: bool = True) -> Codes:
    """Read a CODES folder written by `extract`. An unfinished extraction is an LFError
    (rerun extract to resume) unless partial=True. with_codes=False reads the labels,
    groups and paths only (codes of shape (N, 0)): a crops folder holds gigabytes."""
    path = Path(path)
    if not is_codes_folder(path):
        raise LFError(f"{path} is not a codes folder (no meta.json); make one with lf extract")
    try:
        meta = json.loads((path / "meta.json").read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise LFError(f"{path}/meta.json is unreadable ({e})") from e
    from lf_core.untrusted import check_codes_meta, read_chunk

    check_codes_meta(meta, path)  # types and sizes, before any of it is used
    if meta.get("format") != FORMAT:
        raise LFError(f"{path}/meta.json is not a LatentForensics codes folder")
    if not meta.get("complete") and not partial:
        raise LFError(f"extraction in {path} is unfinished ({meta.get('n_done', 0)}/"
                      f"{meta.get('n_items')} faces): rerun the same lf extract to resume")
    batch, n = int(meta["batch"]), int(meta["n_items"])
    mirror = bool(meta.get("mirror")) and with_codes  # the mirror views are codes too
    keys = (("codes",) if with_codes else ()) + ("labels", "groups", "paths", "index") + (
        ("mirror",) if mirror else ())
    parts = []
    for start in range(0, n, batch):
        p = _chunk_path(path, start)
        if not p.exists():
            continue
        part = read_chunk(p, keys, (start, min(start + batch, n)),
                          tuple(meta["projector"]["code_shape"]))
        if part is not None:
            parts.append(part)
    shape = tuple(meta["projector"]["code_shape"])
    dtype = np.uint8 if meta["projector"]["kind"] == "crops" else np.float32

    def cat(k, empty):
        xs = [p[k] for p in parts if len(p[k])]
        return np.concatenate(xs) if xs else empty

    failed = []
    fp = path / "failed.csv"
    if fp.exists():
        with open(fp, newline="") as f:
            failed = list(csv.DictReader(f))
    labels = cat("labels", np.zeros(0, np.int8))
    codes = cat("codes", np.zeros((0, *shape), dtype)) if with_codes else np.zeros((len(labels), 0), dtype)
    return Codes(codes, labels, cat("groups", np.zeros(0, str)), cat("paths", np.zeros(0, str)),
                 cat("index", np.zeros(0, np.int64)), meta, failed, path,
                 cat("mirror", np.zeros((0, *shape), dtype)) if mirror else None)


__all__ = ["Codes", "extract", "fit_projector", "is_codes_folder", "load_codes", "load_crop",
           "select_items"]
