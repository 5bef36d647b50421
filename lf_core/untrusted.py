"""Checks on files that may come from strangers, made before anything is read from them.

    check_zip_directory(path)           a zip's end record: entry count, before parsing
    check_zip(zf)                       a Train-your-own zip: sizes, entries, names
    manifest_rows(manifest, data_root)  a manifest's rows, paths confined, duplicates refused
    check_codes_meta(meta, folder)      a codes folder's meta.json: types and sizes
    read_chunk(path, keys, bounds, shape)  one codes chunk, no object arrays, shapes checked
    read_pack_split(src, split)         the faces of a --pack-to file, checked

What each reader accepts and why none of them can run code or write outside its folder
is tabled in SECURITY.md. Every refusal is an LFError (BadInputError for an upload) whose
message says what was found and what to do.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path, PurePosixPath

from lf_core.errors import BadInputError, LFError

# ------------------------------------------------------------------ the Train-your-own zip

MAX_ZIP_ENTRIES = 2000  # entries of any kind (folders, skipped files included)
MAX_ZIP_TOTAL = 200 * 2**20  # bytes, uncompressed, of every entry together
MAX_ZIP_RATIO = 100  # uncompressed / compressed size of one entry (images: about 1 to 3)
ARCHIVE_EXTS = {".zip", ".gz", ".tgz", ".bz2", ".xz", ".7z", ".rar", ".tar", ".zst"}


def check_zip_directory(path, name: str = "the zip") -> None:
    """Refuse a zip whose end record announces more than MAX_ZIP_ENTRIES entries or a
    central directory larger than they would need, before zipfile parses (and holds in
    memory) every entry of it. A file without a readable end record is left to zipfile."""
    import zipfile

    try:
        with open(path, "rb") as f:
            end = zipfile._EndRecData(f)  # (handles zip64); None when there is none
    except Exception:  # noqa: BLE001 - zipfile itself then says what is wrong
        return
    if not end:
        return
    entries, cd_size = end[zipfile._ECD_ENTRIES_TOTAL], end[zipfile._ECD_SIZE]
    if entries > MAX_ZIP_ENTRIES or cd_size > MAX_ZIP_ENTRIES * 1200:
        raise BadInputError(
            f"{name} holds {entries:,} entries (limit {MAX_ZIP_ENTRIES:,}); zip only the "
            "real/ and fake/ folders of face images, or use `lf train` for large sets.")


def check_zip(zf, name: str = "the zip") -> list[str]:
    """Refuse a zip whose central directory describes a bomb or a path outside the zip,
    before one byte is decompressed: more than MAX_ZIP_ENTRIES entries, more than
    MAX_ZIP_TOTAL bytes declared uncompressed, an entry that expands more than
    MAX_ZIP_RATIO times, an absolute or `..` name, a symbolic link. Returns the notes
    for nested archives, which are skipped (never opened). BadInputError otherwise."""
    infos = zf.infolist()
    if len(infos) > MAX_ZIP_ENTRIES:
        raise BadInputError(
            f"{name} holds {len(infos):,} entries (limit {MAX_ZIP_ENTRIES:,}); zip only the "
            "real/ and fake/ folders of face images, or use `lf train` for large sets.")
    total, notes = 0, []
    for info in infos:
        raw = info.filename
        p = PurePosixPath(raw.replace("\\", "/"))
        if (raw.startswith(("/", "\\")) or ".." in p.parts or "\x00" in raw
                or (len(raw) > 1 and raw[1] == ":")):
            raise BadInputError(
                f"{name} holds an entry named {raw[:80]!r}, a path outside the zip's folder; "
                "such zips are refused. Re-create the zip from the real/ and fake/ folders.")
        if stat.S_ISLNK(info.external_attr >> 16):
            raise BadInputError(
                f"{name} holds a symbolic link ({raw[:80]!r}); links are refused. Zip the "
                "image files themselves.")
        if info.file_size < 0 or info.compress_size < 0:
            raise BadInputError(f"{name} is damaged (negative sizes); re-create it.")
        total += info.file_size
        if total > MAX_ZIP_TOTAL:
            raise BadInputError(
                f"{name} declares more than {MAX_ZIP_TOTAL // 2**20} MB once uncompressed; "
                "use fewer or smaller images, or `lf train` for large sets.")
        if info.file_size > MAX_ZIP_RATIO * max(info.compress_size, 1) and info.file_size > 2**20:
            raise BadInputError(
                f"{name}: {raw[:80]!r} expands {info.file_size / max(info.compress_size, 1):,.0f} "
                f"times (a zip bomb; images expand at most a few times). Re-create the zip.")
        if p.suffix.lower() in ARCHIVE_EXTS:
            notes.append(f"{p}: an archive inside the zip (not opened; zip the images directly)")
    return notes


# ------------------------------------------------------------------ manifests

MAX_MANIFEST_ROWS = 5_000_000  # the largest shipped manifest has 25,722
MAX_PATH_CHARS = 4096


def manifest_rows(manifest, data_root=None):
    """Yield (path, row dict) of a `path,label[,group]` CSV, checked row by row: an LFError
    for a missing file or header, text that is not CSV, an empty path, more than
    MAX_MANIFEST_ROWS rows, a path listed twice, or a path outside the allowed folders
    (manifest_path). Relative paths are to the manifest's folder."""
    import csv

    manifest = Path(manifest)
    if not manifest.is_file():
        raise LFError(f"manifest not found: {manifest}")
    base = manifest.parent
    roots = manifest_roots(base, data_root)
    abs_base = os.path.abspath(base)
    n, seen = 0, set()
    try:
        with open(manifest, newline="", encoding="utf-8-sig") as f:
            rows = csv.DictReader(f)
            if not rows.fieldnames or "path" not in [c.strip() for c in rows.fieldnames]:
                raise LFError(f"{manifest}: a manifest needs a header with a 'path' column "
                              "(and 'label', optionally 'group')")
            rows.fieldnames = [c.strip() for c in rows.fieldnames]
            for i, row in enumerate(rows, start=2):  # row numbers as a spreadsheet shows them
                if n >= MAX_MANIFEST_ROWS:
                    raise LFError(f"{manifest} has more than {MAX_MANIFEST_ROWS:,} rows; split "
                                  "it into several manifests")
                raw = row.get("path")
                path, key = manifest_path(base, abs_base, raw, i, manifest, roots)
                if key in seen:
                    first = _first_row(manifest, base, abs_base, key, roots)
                    raise LFError(f"{manifest}: rows {first} and {i} list the same file "
                                  f"({str(raw)[:100]!r}); remove the duplicate rows (a face on "
                                  "both sides of a split would inflate every figure)")
                seen.add(key)
                n += 1
                yield path, row
    except (csv.Error, UnicodeDecodeError) as e:
        raise LFError(f"{manifest} is not a readable CSV file ({str(e)[:120]}); save it as "
                      "UTF-8 CSV with a path,label[,group] header") from e
    except OSError as e:
        raise LFError(f"cannot read {manifest}: {e.strerror or e}") from e


def _first_row(manifest, base, abs_base, key, roots) -> int:
    """The row number where `key` (a normalised absolute path) first appears."""
    import csv

    with open(manifest, newline="", encoding="utf-8-sig") as f:
        rows = csv.DictReader(f)
        rows.fieldnames = [c.strip() for c in rows.fieldnames]
        for i, row in enumerate(rows, start=2):
            if manifest_path(base, abs_base, row.get("path"), i, manifest, roots)[1] == key:
                return i
    return 0


def manifest_roots(base: Path, data_root=None) -> list[str]:
    """Folders a manifest's paths may point into: its own folder, the data folder
    (data_root: $LF_DATA or ../shared/data), and those listed in $LF_MANIFEST_ROOTS
    (os.pathsep separated)."""
    roots = [base, *([data_root] if data_root else []),
             *(r for r in os.environ.get("LF_MANIFEST_ROOTS", "").split(os.pathsep) if r)]
    return [os.path.normpath(os.path.abspath(r)) for r in roots]


def manifest_path(base, abs_base: str, raw, row: int, manifest, roots: list[str]):
    """(path, normalised absolute path) of one manifest row (relative paths: to the
    manifest's folder `base`; `path` keeps base's form, absolute or relative),
    refused (LFError) when it is empty or leaves the allowed folders. Pure string work (no
    system call): symbolic links inside an allowed folder are followed when read."""
    if raw is None or not str(raw).strip():
        raise LFError(f"{manifest}: row {row} has no path; every row needs one "
                      "(the header is path,label[,group])")
    raw = str(raw).strip()
    if len(raw) > MAX_PATH_CHARS or "\x00" in raw:
        raise LFError(f"{manifest}: row {row} has a malformed path ({raw[:60]!r}...)")
    full = os.path.normpath(os.path.join(abs_base, raw))
    for r in roots:
        if full == r or full.startswith(r.rstrip(os.sep) + os.sep):
            rel = full if abs_base == str(base) else os.path.normpath(os.path.join(base, raw))
            return Path(rel), full
    raise LFError(
        f"{manifest}: row {row} points outside the manifest's folder ({raw[:100]!r}); "
        "paths must stay inside it or the data folder. Move the manifest next to the images, "
        "or list the folder it may read in LF_MANIFEST_ROOTS.")


# ------------------------------------------------------------------ codes folders

MAX_CODES_ROWS = 50_000_000


def check_codes_meta(meta, folder) -> tuple[int, int, tuple, str]:
    """(batch, n_items, code_shape, kind) of a codes folder's meta.json, checked for type
    and size, so that a hand-edited or hostile meta.json gives one clear LFError rather than
    a traceback or a loop over billions of chunk names. Chunk files are named from these
    numbers inside the folder; nothing in meta.json names a file."""
    where = f"{folder}/meta.json"
    if not isinstance(meta, dict):
        raise LFError(f"{where} is not a JSON object; re-run lf extract into a new folder")
    try:
        batch, n = meta["batch"], meta["n_items"]
        proj = meta["projector"]
        shape, kind = proj["code_shape"], proj["kind"]
    except (KeyError, TypeError) as e:
        raise LFError(f"{where} lacks {e}; re-run lf extract into a new folder") from e
    if not (type(batch) is int and type(n) is int and 1 <= batch and 0 <= n <= MAX_CODES_ROWS
            and n // batch <= 10_000_000):
        raise LFError(f"{where}: batch {batch!r} / n_items {n!r} are not sensible counts; "
                      "re-run lf extract into a new folder")
    if not (isinstance(shape, list) and 0 < len(shape) <= 4
            and all(type(s) is int and 0 < s <= 2**24 for s in shape)):
        raise LFError(f"{where}: code_shape {str(shape)[:60]} is not a list of sizes; "
                      "re-run lf extract into a new folder")
    if not isinstance(kind, str):
        raise LFError(f"{where}: projector kind {kind!r} is not a name")
    return batch, n, tuple(shape), kind


def read_chunk(p, keys, bounds, shape):
    """{key: array} of one codes chunk (.npz read with allow_pickle=False: an object array
    is refused, never unpickled), or None when it holds other bounds (a chunk a `limit`
    cut short). LFError for a damaged or inconsistent chunk: delete it and rerun extract."""
    import zipfile

    import numpy as np

    try:
        with np.load(p, allow_pickle=False) as z:
            if (int(z["start"]), int(z["stop"])) != bounds:
                return None
            part = {k: z[k] for k in keys}
    except (ValueError, KeyError, TypeError, OSError, EOFError, zipfile.BadZipFile) as e:
        raise LFError(f"{p} is damaged or not a codes chunk ({str(e)[:100]}); delete it and "
                      "rerun the same lf extract to redo it") from e
    n = bounds[1] - bounds[0]
    for k, a in part.items():
        if a.dtype.hasobject or len(a) > n or (k in ("codes", "mirror") and a.shape[1:] != shape):
            raise LFError(f"{p}: '{k}' has shape {a.shape} ({a.dtype}), not codes of "
                          f"{shape} for rows {bounds[0]}..{bounds[1]}; delete it and rerun "
                          "the same lf extract to redo it")
    return part


# ------------------------------------------------------------------ face packs

MAX_PACK_FACES = 200_000


def read_pack_split(src, split: str):
    """(N, 256, 256, 3) uint8 faces of one split of a `lf train-generator --pack-to` file:
    an .npz (read with allow_pickle=False) of WebP bytes joined, with end offsets. Each face
    goes through lf_core.io.load_image (size-checked) and must be 256 x 256. LFError for
    anything else: re-make the pack with --pack-to."""
    import zipfile

    import numpy as np

    from lf_core.io import load_image

    try:
        with np.load(src, allow_pickle=False) as z:
            buf, ends = z[split], z[f"{split}_ends"]
    except (ValueError, KeyError, OSError, EOFError, zipfile.BadZipFile) as e:
        raise LFError(f"{src} is not a face pack with a {split} split ({str(e)[:100]}); "
                      "make one with lf train-generator --pack-to") from e
    offsets_ok = not len(ends) or (ends[-1] <= len(buf)
                                   and (np.diff(ends, prepend=0) > 0).all())
    if (buf.dtype != np.uint8 or buf.ndim != 1 or ends.ndim != 1 or ends.dtype.kind not in "iu"
            or len(ends) > MAX_PACK_FACES or not offsets_ok):
        raise LFError(f"{src}: the {split} split's offsets do not describe its bytes; re-make "
                      "the pack with lf train-generator --pack-to")
    faces = np.empty((len(ends), 256, 256, 3), np.uint8)
    for i, (a, b) in enumerate(zip(np.r_[0, ends[:-1]], ends)):
        f = load_image(buf[int(a):int(b)].tobytes())
        if f.shape != (256, 256, 3):
            raise LFError(f"{src}: face {i} of the {split} split is {f.shape[1]} x {f.shape[0]}, "
                          "not an aligned 256 x 256 face; re-make the pack")
        faces[i] = f
    return faces


__all__ = ["MAX_MANIFEST_ROWS", "MAX_ZIP_ENTRIES", "MAX_ZIP_RATIO", "MAX_ZIP_TOTAL",
           "check_codes_meta", "check_zip", "check_zip_directory", "manifest_path",
           "manifest_roots", "manifest_rows", "read_chunk", "read_pack_split"]
