"""Image and video input/output.

Everything that reads user files goes through here, so that a bad file becomes one
BadInputError with a one-line message, never a PIL/cv2/numpy exception.

    load_image(src)            -> (H, W, 3) uint8 RGB
    read_video(path, every=10) -> iterator of VideoFrame (every Nth frame)
    video_info(path)           -> VideoInfo(fps, n_frames, width, height)
    save_image(arr, path)         atomic write (lf_core.artifacts)
    native_stderr_hidden()        a block with C++ libraries' log lines (fd 2) hidden

Transparency is composited on white: cut-out portraits usually hold black or garbage
RGB under alpha = 0, and white is what a viewer shows behind them.
"""

from __future__ import annotations

import contextlib
import io
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from .artifacts import atomic_write
from .errors import BadInputError

MAX_PIXELS = 50_000_000  # refuse larger images/videos before decoding them (header size)
VIDEO_EXTS = {".mp4", ".mov", ".avi", ".mkv", ".webm", ".m4v"}
IMAGE_HINT = "Use a JPEG, PNG or WebP photo."

ImageSource = str | os.PathLike | bytes | bytearray | memoryview | Image.Image | np.ndarray


# ---------------------------------------------------------------- native log lines


@contextlib.contextmanager
def native_stderr_hidden(keep_python: bool = False):
    """File descriptor 2 on /dev/null for the block: mediapipe's C++ graphs log there when
    they are built and first run (TFLite's XNNPACK delegate, absl, feedback tensors), noise
    in every `lf` command. keep_python: sys.stderr moves to a copy of the real fd 2, so
    Python's own messages and progress bars still show; `lf` runs whole commands so, as
    graph threads may log after any narrower block has ended. LF_NATIVE_LOGS=1 keeps them."""
    if os.environ.get("LF_NATIVE_LOGS") == "1":
        yield
        return
    try:
        sys.stderr.flush()
        saved, null = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    except (OSError, ValueError):  # no fd 2 (some embedded runtimes): nothing to hide
        yield
        return
    old = sys.stderr
    if keep_python:
        sys.stderr = open(os.dup(saved), "w", buffering=1, errors="backslashreplace",
                          encoding=getattr(old, "encoding", None) or "utf-8")
    os.dup2(null, 2)
    try:
        yield
    finally:
        if keep_python:
            sys.stderr.close()
            sys.stderr = old
        os.dup2(saved, 2)
        os.close(saved)
        os.close(null)


# ---------------------------------------------------------------- images


def load_image(src: ImageSource) -> np.ndarray:
    """Read an image from a path, bytes, PIL image or array -> (H, W, 3) uint8 RGB.

    EXIF orientation is applied, animated images give their first frame, 16-bit images
    are scaled to 8 bits, transparency is composited on white.
    """
    if isinstance(src, np.ndarray):
        return _from_array(src)
    if isinstance(src, Image.Image):
        return _decode(src, "image")
    if isinstance(src, (bytes, bytearray, memoryview)):
        data = bytes(src)
        if not data:
            raise BadInputError(f"The image data is empty (0 bytes). {IMAGE_HINT}")
        return _decode(io.BytesIO(data), "image data")
    if isinstance(src, (str, os.PathLike)):
        p = _existing_file(src, "an image", IMAGE_HINT)
        try:
            with open(p, "rb") as f:
                return _decode(f, p.name)
        except OSError as e:  # permission denied, I/O error
            raise BadInputError(f"Cannot read {p}: {e.strerror or e}. Check the file.") from e
    raise BadInputError(
        f"Cannot read an image from a {type(src).__name__}: give a path, bytes, "
        "a PIL image or a numpy array."
    )


def _existing_file(path, what: str, hint: str) -> Path:
    """Path of a non-empty regular file, else BadInputError saying what to do."""
    p = Path(path)
    if not p.exists():
        raise BadInputError(f"File not found: {p}. Check the path.")
    if not p.is_file():
        raise BadInputError(f"{p} is not a file. Give the path of {what} file.")
    if p.stat().st_size == 0:
        raise BadInputError(f"{p.name} is empty (0 bytes). {hint}")
    return p


def _decode(src, name: str) -> np.ndarray:
    """Open (a file object or a PIL image), check the header size, then decode.
    Any failure -> BadInputError.

    Our MAX_PIXELS cap sits below PIL's bomb warning (89 MP), so PIL's global
    MAX_IMAGE_PIXELS is left alone: what PIL would warn about, the header check refuses,
    and PIL's DecompressionBombError (> 179 MP, raised by Image.open) is caught here.
    """
    try:
        im = src if isinstance(src, Image.Image) else Image.open(src)  # header only
        return _from_pil(im, name)
    except BadInputError:
        raise
    except Image.DecompressionBombError as e:
        raise BadInputError(
            f"{name} declares far too many pixels (over {Image.MAX_IMAGE_PIXELS * 2 // 10**6} "
            f"MP; the limit is {MAX_PIXELS // 10**6} MP). Resize it to a few megapixels."
        ) from e
    except Image.UnidentifiedImageError as e:
        raise BadInputError(f"{name} is not an image file PIL can read. {IMAGE_HINT}") from e
    except MemoryError as e:
        raise BadInputError(f"{name} is too large to decode. Resize it and try again.") from e
    except Exception as e:  # truncated data, bad chunks, broken EXIF...
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise BadInputError(
            f"{name} is corrupt or truncated ({msg}). Re-export or re-download it."
        ) from e


def _from_pil(im: Image.Image, name: str) -> np.ndarray:
    w, h = im.size
    if w == 0 or h == 0:
        raise BadInputError(f"{name} has no pixels ({w} x {h}). {IMAGE_HINT}")
    if w * h > MAX_PIXELS:
        raise BadInputError(
            f"{name} is too large ({w} x {h} pixels, limit {MAX_PIXELS // 10**6} MP). "
            "Resize it to a few megapixels and try again."
        )
    # animated GIF/WebP/APNG: first frame. is_animated looks for a second frame only;
    # n_frames would scan every frame of the file (thousands in a hostile GIF).
    if getattr(im, "is_animated", False) and im.tell() != 0:
        im.seek(0)
    im.load()
    try:
        orientation = im.getexif().get(0x0112, 1)
    except Exception:  # an unreadable EXIF block: the pixels are still good
        orientation = 1
    if orientation not in (None, 1):  # exif_transpose copies even when there is nothing to do
        im = ImageOps.exif_transpose(im) or im
    mode = im.mode

    if mode.startswith("I;16") or mode == "I":  # 16-bit grey (PNG/TIFF)
        a = np.asarray(im).astype(np.float32)
        a /= 257.0
        return _grey(_to_u8(a))
    if mode == "F":  # float grey: assume [0, 1] if it fits, else [0, 255]
        a = np.array(im, dtype=np.float32)
        if a.max(initial=0) <= 1.0:
            a *= 255.0
        return _grey(_to_u8(a))
    if mode == "1":
        im = im.convert("L")
    if mode in ("RGBA", "LA", "PA", "RGBa", "La") or (
        mode in ("P", "L", "RGB") and "transparency" in im.info
    ):
        return _on_white(np.asarray(im if im.mode == "RGBA" else im.convert("RGBA")))
    if im.mode != "RGB":  # L, P, CMYK, YCbCr, LAB, HSV
        im = im.convert("RGB")
    return np.ascontiguousarray(np.asarray(im, dtype=np.uint8))


def _from_array(a: np.ndarray) -> np.ndarray:
    """Check and convert an array: (H, W), (H, W, 1|3|4); uint8, uint16, bool or float in [0, 1]."""
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[..., 0]
    if a.ndim not in (2, 3) or (a.ndim == 3 and a.shape[2] not in (3, 4)):
        raise BadInputError(
            f"Image array has shape {a.shape}; expected (H, W), (H, W, 3) or (H, W, 4)."
        )
    if a.shape[0] == 0 or a.shape[1] == 0:
        raise BadInputError(f"Image array is empty (shape {a.shape}). {IMAGE_HINT}")
    if a.shape[0] * a.shape[1] > MAX_PIXELS:
        raise BadInputError(
            f"Image array is too large ({a.shape[1]} x {a.shape[0]} pixels, limit "
            f"{MAX_PIXELS // 10**6} MP). Resize it first."
        )
    if a.dtype == np.uint8:
        f = None
    elif a.dtype == np.uint16:
        f = a.astype(np.float32) / 257.0
    elif a.dtype == bool:
        f = a.astype(np.float32) * 255.0
    elif np.issubdtype(a.dtype, np.floating):
        if not np.isfinite(a).all():
            raise BadInputError("Image array holds NaN or infinite values; fix the array first.")
        f = a.astype(np.float32) * 255.0
    else:
        raise BadInputError(
            f"Image array has dtype {a.dtype}; use uint8, uint16 or float in [0, 1]."
        )
    if f is not None:
        a = _to_u8(f)
    if a.ndim == 2:
        return _grey(a)
    if a.shape[2] == 4:
        return _on_white(a)
    return np.ascontiguousarray(a)


def _on_white(rgba: np.ndarray, rows: int = 256) -> np.ndarray:
    """(H, W, 4) uint8 -> (H, W, 3) uint8 composited on white, round(rgb * a + 255 * (1 - a)),
    in integers and a few rows at a time: a 50 MP image needs 150 MB out, not gigabytes of
    float temporaries."""
    h, w = rgba.shape[:2]
    out = np.empty((h, w, 3), np.uint8)
    for r in range(0, h, rows):
        blk = rgba[r:r + rows]
        # rgb * a + 255 * (1 - a) = 255 - (255 - rgb) * a, a in [0, 1]; x = (255 - rgb) * A
        # (A = 255 a) fits 16 bits, and (t + (t >> 8)) >> 8 with t = x + 128 is round(x / 255)
        x = (255 - blk[..., :3]).astype(np.uint16)
        x *= blk[..., 3:]
        x += 128
        x += x >> 8
        x >>= 8
        out[r:r + rows] = 255 - x
    return out


def _to_u8(a: np.ndarray) -> np.ndarray:
    """float -> uint8, rounded and clipped (in place on a float32 input)."""
    a = a if a.dtype == np.float32 and a.flags.writeable else a.astype(np.float32)
    np.rint(a, out=a)
    np.clip(a, 0, 255, out=a)
    return a.astype(np.uint8)


def _grey(a: np.ndarray) -> np.ndarray:
    """(H, W) -> (H, W, 3)"""
    return np.ascontiguousarray(np.repeat(a[..., None], 3, axis=2))


def save_image(arr: np.ndarray, path: str | os.PathLike, quality: int = 95) -> None:
    """Write an (H, W, 3) or (H, W) uint8 image atomically: a temp file in the same
    folder, then os.replace, so a reader never sees a half-written file."""
    p = Path(path)
    a = np.asarray(arr)
    if a.dtype != np.uint8 or a.ndim not in (2, 3) or (a.ndim == 3 and a.shape[2] not in (3, 4)):
        raise ValueError(f"save_image needs (H, W[, 3|4]) uint8, got {a.shape} {a.dtype}")
    ext = p.suffix.lower()
    fmt = Image.registered_extensions().get(ext)
    if fmt is None:
        raise ValueError(f"Unknown image extension {p.suffix!r}; use .png, .jpg or .webp.")
    im = Image.fromarray(a)
    if fmt == "JPEG" and im.mode == "RGBA":
        im = im.convert("RGB")
    kw = {"quality": quality} if fmt in ("JPEG", "WEBP") else {}
    atomic_write(p, lambda f: im.save(f, format=fmt, **kw))


# ---------------------------------------------------------------- videos


@dataclass
class VideoFrame:
    index: int  # frame number in the file, from 0
    time_s: float  # timestamp in seconds
    image: np.ndarray  # (H, W, 3) uint8 RGB


@dataclass
class VideoInfo:
    fps: float
    n_frames: int  # from the container header; may be approximate
    width: int
    height: int


def is_video(path: str | os.PathLike) -> bool:
    return Path(path).suffix.lower() in VIDEO_EXTS


# ISO base media (MP4, MOV, M4V, 3GP) top-level boxes that can come first
_MP4_BOXES = {b"ftyp", b"moov", b"mdat", b"free", b"skip", b"wide", b"pnot", b"uuid"}


def _check_container(p: Path) -> None:
    """Refuse, before FFmpeg probes it, a file that does not start like an MP4/MOV, AVI or
    Matroska/WebM container. FFmpeg detects formats by content: a text playlist (HLS
    `#EXTM3U`, `ffconcat`) named .mp4 would make it open other files named inside, on the
    server's disk, and show their frames."""
    try:
        with open(p, "rb") as f:
            head = f.read(12)
    except OSError as e:
        raise BadInputError(f"Cannot read {p}: {e.strerror or e}. Check the file.") from e
    if (head[4:8] in _MP4_BOXES or (head[:4] == b"RIFF" and head[8:12] == b"AVI ")
            or head[:4] == b"\x1a\x45\xdf\xa3"):
        return
    raise BadInputError(
        f"{p.name} is not an MP4, MOV, AVI, MKV or WebM video (its first bytes are not a "
        "video container's). Use an MP4 (H.264), MOV, AVI, MKV or WebM file."
    )


def _open_video(path):
    import cv2

    p = _existing_file(path, "a video", "Use an MP4, MOV, AVI, MKV or WebM video.")
    _check_container(p)
    cap = cv2.VideoCapture(str(p), cv2.CAP_FFMPEG)
    if not cap.isOpened():
        cap.release()
        raise BadInputError(
            f"{p.name} could not be opened as a video (corrupt, truncated or unsupported). "
            "Use an MP4 (H.264), MOV, AVI, MKV or WebM file."
        )
    w = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH))
    h = int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
    if w * h > MAX_PIXELS:
        cap.release()
        raise BadInputError(
            f"{p.name} frames are too large ({w} x {h}). Re-encode the video at 1080p or less."
        )
    return cap


def video_info(path: str | os.PathLike) -> VideoInfo:
    import cv2

    cap = _open_video(path)
    try:
        info = VideoInfo(
            fps=float(cap.get(cv2.CAP_PROP_FPS) or 0.0),
            n_frames=max(0, int(cap.get(cv2.CAP_PROP_FRAME_COUNT))),
            width=int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)),
            height=int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)),
        )
    finally:
        cap.release()
    if info.width <= 0 or info.height <= 0:
        raise BadInputError(f"{Path(path).name} has no video stream. Use a file with video.")
    return info


def read_video(
    path: str | os.PathLike, every: int = 10, max_frames: int | None = None
) -> Iterator[VideoFrame]:
    """Yield frames 0, every, 2*every, ... (at most max_frames of them) as RGB.

    The file is opened and its first frame decoded now, so a bad file raises
    BadInputError at the call, not at the first next().
    """
    import cv2

    if every < 1:
        raise ValueError(f"every must be >= 1, got {every}")
    cap = _open_video(path)
    fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
    ok, bgr = cap.read()
    if not ok or bgr is None:
        cap.release()
        raise BadInputError(
            f"{Path(path).name}: no frame could be decoded. The video is corrupt or uses "
            "an unsupported codec; re-encode it as H.264 MP4."
        )
    t0 = cap.get(cv2.CAP_PROP_POS_MSEC) / 1000.0

    def frames() -> Iterator[VideoFrame]:
        try:
            if max_frames is not None and max_frames <= 0:
                return
            yield VideoFrame(0, t0 if fps <= 0 else 0.0, cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
            n, i = 1, 0
            while max_frames is None or n < max_frames:
                for _ in range(every):  # grab decodes but skips the colour conversion
                    if not cap.grab():
                        return
                i += every
                ok, img = cap.retrieve()
                if not ok:
                    return
                t = i / fps if fps > 0 else cap.get(cv2.CAP_PROP_POS_MSEC) / 1000.0
                yield VideoFrame(i, t, cv2.cvtColor(img, cv2.COLOR_BGR2RGB))
                n += 1
        finally:
            cap.release()

    return frames()
