"""Files the project writes: atomically, with their digests; weight files with a header.

    atomic_write_bytes(path, data)            every writer below goes through this one
    atomic_write_json(path, obj)              indented, sorted keys, trailing newline
    atomic_savez(path, **arrays)              an .npz of named arrays
    atomic_write_safetensors(path, tensors, metadata)   numpy arrays or torch tensors
    atomic_append(path, text)                 whole lines added to a small text file (logs)
    is_temp_name(name)                        a writer's temporary file (never read)
    write_lf_file(path, arrays, key, header)  tensors + a JSON header under `key`
    read_lf_file(path, what, key, fmt, version)  -> (header, arrays); WeightsError otherwise
    digest(src, n=64)                         sha256 hex of bytes, byte chunks or a file
    file_digest(path, n=16)                   cached digest prefix of a file (None: no file)

Atomic: the bytes go to a temporary file in the destination folder, are flushed to disk
and the file is renamed over the destination (atomic on one file system), so a reader sees
the old file or the new one, never half of one; a failed write leaves nothing behind. A
process killed outright (SIGKILL, out of memory, power loss) may leave its temporary file,
`.NAME.PID.XXXXXXXX.tmp`: no reader opens such names, and the next write of NAME removes
those of writers no longer running. A full disk is a DiskFullError (exit code 6).
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import re
import stat
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

import numpy as np

from .errors import DiskFullError, WeightsError

CHUNK = 1 << 20  # bytes read at a time when hashing a file


# --------------------------------------------------------------------------- atomic writes


def atomic_write(path, write: Callable[[BinaryIO], object]) -> Path:
    """Call write(f) on a temporary binary file beside `path`, fsync it, rename it onto
    `path` (mode 0644). On any error the temporary file is removed and the error raised;
    a full disk as DiskFullError."""
    path = Path(path)
    _remove_stale_temps(path)
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.{os.getpid()}.",
                                   suffix=".tmp")
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException as e:
        full = _disk_full(e, path)  # before the temporary file frees its space
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
        if full is not None:
            raise full from e
        raise
    return path


def _disk_full(err: BaseException, path: Path) -> DiskFullError | None:
    """The DiskFullError of a failed write, if the disk is full. numpy's tofile (np.save)
    reports a short write without an errno: an OSError while the folder has no space
    left counts too."""
    full = DiskFullError.of(err, path)
    if full is None and isinstance(err, OSError):
        try:
            st = os.statvfs(path.parent)
        except OSError:
            return None
        if st.f_bavail * st.f_frsize < 1 << 16:
            full = DiskFullError.of(OSError(errno.ENOSPC, os.strerror(errno.ENOSPC)), path)
    return full


def is_temp_name(name: str) -> bool:
    """Whether a file name is a temporary file of atomic_write (`.NAME....tmp`): what a
    killed writer may leave, and what no reader may open."""
    return name.startswith(".") and name.endswith(".tmp")


def _remove_stale_temps(path: Path) -> None:
    """Remove the temporary files of `path` left by writers that are no longer running
    (killed mid-write); those of running processes are left alone."""
    pattern = re.compile(rf"\.{re.escape(path.name)}\.(\d+)\.[^.]+\.tmp")
    try:
        names = os.listdir(path.parent)
    except OSError:
        return  # no folder: mkstemp says so
    for name in names:
        m = pattern.fullmatch(name)
        if m and not _running(int(m.group(1))):
            with contextlib.suppress(OSError):
                os.unlink(path.parent / name)


def _running(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, OverflowError):  # no such process; a pid out of range
        return False
    except PermissionError:  # another user's process
        return True
    return True


def atomic_write_bytes(path, data: bytes) -> Path:
    return atomic_write(path, lambda f: f.write(data))


def atomic_write_json(path, obj) -> Path:
    return atomic_write_bytes(path, (json.dumps(obj, indent=1, sort_keys=True) + "\n").encode())


def atomic_append(path, text: str) -> Path:
    """Add `text` (whole lines) at the end of a text file, through atomic_write: a kill
    never leaves half a line. The file is rewritten each time: for small files (logs)."""
    path = Path(path)
    try:
        old = path.read_bytes()
    except FileNotFoundError:
        old = b""
    if old and not old.endswith(b"\n"):
        old += b"\n"
    return atomic_write_bytes(path, old + text.encode())


def atomic_savez(path, **arrays) -> Path:
    """An .npz of `arrays` at exactly `path`. Made in memory first: np.savez leaves its zip
    open when a write fails (a full disk), and the zip's cleanup then prints a traceback."""
    import io

    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return atomic_write_bytes(path, buf.getbuffer())


def atomic_write_safetensors(path, tensors: dict, metadata: dict | None = None) -> Path:
    """A .safetensors file of numpy arrays or of torch tensors (all of one kind), with
    string metadata."""
    if all(isinstance(v, np.ndarray) for v in tensors.values()):
        from safetensors.numpy import save

        # safetensors.numpy writes a Fortran-ordered array's bytes as if C-ordered: the
        # file would hold the array scrambled (sklearn's coef_ can be Fortran-ordered)
        tensors = {k: np.ascontiguousarray(v) for k, v in tensors.items()}
    else:
        from safetensors.torch import save
    return atomic_write_bytes(path, save(tensors, metadata=metadata))


# --------------------------------------------------------------------------- weight files


def write_lf_file(path, arrays: dict, key: str, header: dict) -> Path:
    """A LatentForensics weight file (a classifier, projector or CNN baseline): the arrays
    (numpy or torch) as tensors plus `header` as JSON under metadata `key`; read it back
    with read_lf_file. Nothing in it is executed on load."""
    return atomic_write_safetensors(path, arrays, {key: json.dumps(header)})


def read_lf_file(path, what: str, key: str, fmt: str, version: int, framework="numpy"):
    """(meta, arrays) of a LatentForensics .safetensors file (a classifier, projector or
    CNN baseline): tensors plus a JSON header under `key` whose "format" is `fmt` and
    "version" is `version`. Nothing in it is executed; a pickle / torch.save file is
    refused without being opened. WeightsError (saying what it found) for anything else."""
    from safetensors import SafetensorError, safe_open

    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"{what} file not found: {path}")
    try:
        with safe_open(str(path), framework=framework) as f:
            header = f.metadata() or {}
            arrays = {k: f.get_tensor(k) for k in f.keys()}
    except (SafetensorError, OSError, ValueError) as err:
        with open(path, "rb") as f:
            head = f.read(2)
        if head[:1] == b"\x80" or head == b"PK":  # pickle protocol >= 2, or torch.save's zip
            raise WeightsError(
                f"{path} looks like a pickle/torch.save file, which is unsafe to load and was "
                f"not opened; only .safetensors {what} files written by LatentForensics are "
                "accepted") from err
        raise WeightsError(f"{path} is not a readable .safetensors file ({err})") from err
    if key not in header:
        raise WeightsError(f"{path} is a .safetensors file but not a LatentForensics {what} "
                           f"(no '{key}' header)")
    try:
        meta = json.loads(header[key])
    except json.JSONDecodeError as err:
        raise WeightsError(f"{path}: {what} header is not valid JSON ({err})") from err
    if not isinstance(meta, dict) or meta.get("format") != fmt:
        raise WeightsError(f"{path}: header format is not {fmt!r}")
    if meta.get("version") != version:
        raise WeightsError(f"{path}: {what} file version {meta.get('version')!r}; this code "
                           f"reads version {version}")
    return meta, arrays


def has_lf_header(path, key: str) -> bool:
    """Whether `path` is a .safetensors file with metadata `key` (False for anything else)."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="np") as f:
            return key in (f.metadata() or {})
    except Exception:  # not a safetensors file at all
        return False


# --------------------------------------------------------------------------- digests


def digest(src, n: int = 64) -> str:
    """First n hex digits of the sha256 of `src`: bytes, an iterable of byte chunks (hashed
    as their concatenation), or a file's path (read in 1 MiB blocks)."""
    h = hashlib.sha256()
    if isinstance(src, (bytes, bytearray, memoryview)):
        h.update(src)
    elif isinstance(src, (str, os.PathLike)):
        with open(src, "rb") as f:
            for block in iter(lambda: f.read(CHUNK), b""):
                h.update(block)
    else:
        for chunk in src:
            h.update(chunk)
    return h.hexdigest()[:n]


_DIGESTS: dict = {}


def file_digest(path, n: int = 16) -> str | None:
    """First n hex digits of the file's sha256 (None when it is not a regular file). Cached
    by (path, mtime, size): a rewritten file is read anew."""
    try:
        st = Path(path).stat()
    except (OSError, TypeError):
        return None
    if not stat.S_ISREG(st.st_mode):
        return None
    key = (str(path), st.st_mtime_ns, st.st_size)
    if key not in _DIGESTS:
        _DIGESTS[key] = digest(path)
    return _DIGESTS[key][:n]


__all__ = ["atomic_append", "atomic_savez", "atomic_write", "atomic_write_bytes",
           "atomic_write_json", "atomic_write_safetensors", "digest", "file_digest",
           "has_lf_header", "is_temp_name", "read_lf_file", "write_lf_file"]
