"""Hostile input, fuzzed: mutated files through every reader of user files.

Seeds are built from real samples (../shared/data, or $LF_DATA): DFDC face crops as JPEG,
the same crops re-encoded as PNG (RGB and RGBA), WebP and an animated GIF with PIL, a short
MP4 (12 frames of a DFDC video, downscaled, written by OpenCV), a Train-your-own zip
(real/ and fake/ folders of JPEGs) and a small detector .safetensors file. Each input is a
seed mutated by one to three operations (bit flips, byte runs, truncation, a block
deleted or repeated, a splice of two seeds, header fields rewritten with huge or zero
sizes, CRCs fixed up so that the sizes are believed) and goes through the readers the
project uses on user files:

    jpeg/png/webp/gif  lf_core.io.load_image (path and bytes), the demo's upload path
    mp4                demo upload path, lf_core.io.video_info, read_video (<= 30 frames)
    zip                lf_core.quicktrain.read_zip, then load_image on every entry
    detector           lf_core.classifiers.load_classifier, then predict_proba

Each input runs in its own forked process under a memory limit (RLIMIT_AS: the parent's
address space + --mem-mb) and a CPU-time limit (--timeout; --wall-timeout caps wall time). Outcomes:

    ok        read, and the result has the documented shape and type
    error     one of the project's errors (LFError) with a one-line message
    other     any other exception (a bug: it would reach the user as a traceback)
    crash     the process died (signal, or exit without a result)
    hang      over --timeout CPU seconds (or --wall-timeout seconds)

    python benchmarks/tools/fuzz_inputs.py --n 5000 --seed 0
    python benchmarks/tools/fuzz_inputs.py --n 200 --kinds png,gif --keep runs/fuzz-bad

Inputs that end as other / crash / hang (or use more than --max-rss-mb) are written to
--keep (default runs/fuzz-bad) to be replayed with --replay FILE.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import random
import resource
import signal
import struct
import sys
import tempfile
import time
import zipfile
import zlib
from collections import Counter, defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

KINDS = ("jpeg", "png", "webp", "gif", "mp4", "zip", "detector")
EXT = {"jpeg": ".jpg", "png": ".png", "webp": ".webp", "gif": ".gif", "mp4": ".mp4",
       "zip": ".zip", "detector": ".safetensors"}


# --------------------------------------------------------------------------- seeds


def data_dir() -> Path:
    return Path(os.environ.get("LF_DATA", ROOT.parent / "shared" / "data"))


def make_seeds(data: Path | None = None, video: bool = True) -> dict[str, list[bytes]]:
    """{kind: [seed file bytes]} from the real samples (small: a few KB to ~100 KB each)."""
    from PIL import Image

    data = data or data_dir()
    crops = sorted((data / "dfdc_faces" / "real").glob("*.jpg"))[:2] + \
        sorted((data / "dfdc_faces" / "fake").glob("*.jpg"))[:1]
    if not crops:
        raise SystemExit(f"no DFDC crops under {data}; set LF_DATA")
    seeds: dict[str, list[bytes]] = defaultdict(list)
    ims = []
    for p in crops:
        seeds["jpeg"].append(p.read_bytes())
        ims.append(Image.open(p).convert("RGB"))

    def enc(im, fmt, **kw):
        b = io.BytesIO()
        im.save(b, fmt, **kw)
        return b.getvalue()

    small = [im.resize((96, 96)) for im in ims]
    seeds["jpeg"].append(enc(small[0], "JPEG", quality=80, progressive=True))
    seeds["png"] += [enc(small[0], "PNG"), enc(small[1].convert("RGBA"), "PNG"),
                     enc(small[2].convert("P"), "PNG")]
    seeds["webp"] += [enc(small[0], "WEBP", quality=80), enc(small[1], "WEBP", lossless=True),
                      enc(small[2].convert("RGBA"), "WEBP", quality=70)]
    frames = [im.resize((64, 64)).convert("P") for im in ims]
    seeds["gif"] += [enc(frames[0], "GIF"),
                     enc(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=80,
                         loop=0)]
    if video:
        seeds["mp4"] += _mp4_seeds(data)
    z = io.BytesIO()
    with zipfile.ZipFile(z, "w") as zf:
        zf.writestr("faces/real/a.jpg", seeds["jpeg"][3], zipfile.ZIP_STORED)
        zf.writestr("faces/fake/b.png", seeds["png"][0], zipfile.ZIP_DEFLATED)
        zf.writestr("faces/fake/c.gif", seeds["gif"][0], zipfile.ZIP_DEFLATED)
    seeds["zip"].append(z.getvalue())
    seeds["detector"].append(_detector_seed())
    return dict(seeds)


def _mp4_seeds(data: Path) -> list[bytes]:
    """The first 12 frames of each DFDC video, 160 px wide, as MPEG-4 part 2 in MP4."""
    import cv2

    out = []
    for p in sorted((data / "videos").glob("*/*.mp4")):
        cap = cv2.VideoCapture(str(p))
        frames = []
        while len(frames) < 12:
            ok, f = cap.read()
            if not ok:
                break
            h, w = f.shape[:2]
            frames.append(cv2.resize(f, (160, round(160 * h / w / 2) * 2), interpolation=cv2.INTER_AREA))
        cap.release()
        if not frames:
            continue
        with tempfile.TemporaryDirectory() as d:
            dst = os.path.join(d, "seed.mp4")
            h, w = frames[0].shape[:2]
            vw = cv2.VideoWriter(dst, cv2.VideoWriter_fourcc(*"mp4v"), 10.0, (w, h))
            for f in frames:
                vw.write(f)
            vw.release()
            out.append(Path(dst).read_bytes())
    return out


def _detector_seed() -> bytes:
    import numpy as np

    from lf_core.classifiers import LogReg

    rng = np.random.default_rng(0)
    X = rng.normal(size=(20, 4, 8)).astype(np.float32)
    y = np.r_[np.zeros(10), np.ones(10)].astype(np.int64)
    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "det.safetensors"
        LogReg(seed=0).fit(X, y).save(p)
        return p.read_bytes()


def _png(w: int, h: int, mode_bytes: bytes = b"\x08\x06", rows: bytes | None = None) -> bytes:
    """A PNG of w x h (8-bit RGBA by default) whose pixel data is all zeros, compressed:
    a few hundred KB that decode to w * h * 4 bytes."""
    bpp = {b"\x08\x06": 4, b"\x08\x02": 3, b"\x08\x00": 1}[mode_bytes]

    def chunk(t, d):
        return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xFFFFFFFF)

    z = zlib.compressobj(9)
    row = rows or b"\x00" * (1 + w * bpp)
    data = b"".join(z.compress(row) for _ in range(h)) + z.flush()
    ihdr = struct.pack(">II", w, h) + mode_bytes + b"\x00\x00\x00"
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", data) + chunk(b"IEND", b"")


def crafted_inputs() -> list[tuple[str, bytes, str]]:
    """Hand-made hostile files that random mutation rarely reaches: decompression bombs
    just under and over the pixel limit, thousands of frames, lying dimensions."""
    from PIL import Image

    out = []

    def enc(im, fmt, **kw):
        b = io.BytesIO()
        im.save(b, fmt, **kw)
        return b.getvalue()

    out.append(("png", _png(7000, 7000), "crafted: 49 MP RGBA PNG of zeros (small file)"))
    out.append(("png", _png(8000, 7000, b"\x08\x02"), "crafted: 56 MP PNG (over the 50 MP limit)"))
    out.append(("png", _png(20000, 20000, b"\x08\x00")[:4096], "crafted: 400 MP PNG header"))
    out.append(("jpeg", enc(Image.new("L", (7000, 7000), 128), "JPEG", quality=5),
                "crafted: 49 MP grey JPEG"))
    out.append(("gif", enc(Image.new("P", (1, 1)), "GIF", save_all=True,
                           append_images=[Image.new("P", (1, 1), i % 2) for i in range(5000)],
                           duration=10), "crafted: GIF with 5001 frames"))
    out.append(("gif", enc(Image.new("P", (64, 64)), "GIF")[:6] + struct.pack("<HH", 65535, 65535)
                + enc(Image.new("P", (64, 64)), "GIF")[10:], "crafted: GIF screen 65535 x 65535"))
    out.append(("webp", enc(Image.new("RGB", (16383, 3000)), "WEBP", lossless=True),
                "crafted: 49 MP lossless WebP"))
    out.append(("webp", enc(Image.new("RGB", (8, 8)), "WEBP", save_all=True,
                            append_images=[Image.new("RGB", (8, 8), (i % 255, 0, 0)) for i in range(2000)]),
                "crafted: WebP with 2001 frames"))
    out.append(("png", enc(Image.new("I;16", (64, 64)), "PNG"), "crafted: 16-bit grey PNG"))
    return out


# --------------------------------------------------------------------------- mutations

INTERESTING = [0x00, 0xFF, 0x7F, 0x80, 0x01, 0xFE]
BIG16 = [0xFFFF, 0x7FFF, 0x8000, 0, 1, 0x4000]
BIG32 = [0xFFFFFFFF, 0x7FFFFFFF, 0x80000000, 0, 1, 0x10000, 0x40000000, 60000]


def _png_fix_crcs(b: bytearray) -> bytearray:
    """Recompute every chunk CRC, so that a rewritten IHDR is believed."""
    i = 8
    while i + 12 <= len(b):
        n = struct.unpack(">I", b[i:i + 4])[0]
        end = i + 12 + n
        if end > len(b):
            break
        b[end - 4:end] = struct.pack(">I", zlib.crc32(bytes(b[i + 4:end - 4])) & 0xFFFFFFFF)
        i = end
    return b


def _header_sizes(b: bytearray, kind: str, rng: random.Random) -> bytearray:
    """Rewrite the width/height/count fields a reader trusts before decoding."""
    if kind == "png" and b[:8] == b"\x89PNG\r\n\x1a\n" and len(b) > 33:
        b[16:20] = struct.pack(">I", rng.choice(BIG32))
        b[20:24] = struct.pack(">I", rng.choice(BIG32))
        if rng.random() < 0.3:
            b[24] = rng.choice([1, 2, 4, 8, 16, 3, 0, 255])  # bit depth
        return _png_fix_crcs(b)
    if kind == "jpeg":
        for marker in (b"\xff\xc0", b"\xff\xc2"):
            i = b.find(marker)
            if i > 0 and i + 9 < len(b):
                b[i + 5:i + 7] = struct.pack(">H", rng.choice(BIG16))
                b[i + 7:i + 9] = struct.pack(">H", rng.choice(BIG16))
                if rng.random() < 0.3:
                    b[i + 9] = rng.choice([0, 1, 3, 4, 255])  # components
                return b
    if kind == "gif" and b[:3] == b"GIF" and len(b) > 10:
        b[6:8] = struct.pack("<H", rng.choice(BIG16))
        b[8:10] = struct.pack("<H", rng.choice(BIG16))
        i = b.find(b"\x2c")  # an image descriptor: its own size too
        if i > 0 and i + 9 < len(b) and rng.random() < 0.5:
            b[i + 5:i + 7] = struct.pack("<H", rng.choice(BIG16))
            b[i + 7:i + 9] = struct.pack("<H", rng.choice(BIG16))
        return b
    if kind == "webp" and b[:4] == b"RIFF":
        i = b.find(b"VP8X")
        if i > 0 and i + 18 <= len(b):
            b[i + 12:i + 15] = rng.choice(BIG32).to_bytes(4, "little")[:3]
            b[i + 15:i + 18] = rng.choice(BIG32).to_bytes(4, "little")[:3]
            return b
        b[4:8] = struct.pack("<I", rng.choice(BIG32))  # RIFF size
        return b
    if kind == "mp4":
        for box in (b"tkhd", b"avc1", b"mp4v", b"stsz", b"stco", b"mdhd", b"stts"):
            i = b.find(box)
            if i > 0 and rng.random() < 0.5:
                j = i + 4 + rng.randrange(0, 80)
                if j + 4 <= len(b):
                    b[j:j + 4] = struct.pack(">I", rng.choice(BIG32))
        return b
    if kind == "zip":
        i = b.find(b"PK\x01\x02")  # central directory: the sizes read_zip trusts
        while i >= 0 and i + 46 <= len(b):
            if rng.random() < 0.6:
                b[i + 20:i + 24] = struct.pack("<I", rng.choice(BIG32))  # compressed size
                b[i + 24:i + 28] = struct.pack("<I", rng.choice(BIG32))  # uncompressed size
            i = b.find(b"PK\x01\x02", i + 4)
        return b
    if kind == "detector" and len(b) > 8:
        if rng.random() < 0.5:
            b[0:8] = struct.pack("<Q", rng.choice(BIG32 + [len(b), len(b) - 8]))
        else:  # a lying JSON header: the metadata's numbers
            n = struct.unpack("<Q", bytes(b[:8]))[0]
            head = bytes(b[8:8 + n]).decode("latin-1")
            for src, dst in (("512", "99999999"), ("4", "0"), ("8", "-1"), ("F32", "F64"),
                             ("lr", "rf"), ('"version": 1', '"version": 1e308')):
                if src in head and rng.random() < 0.3:
                    head = head.replace(src, dst, 1)
            hb = head.encode("latin-1")
            b = bytearray(struct.pack("<Q", len(hb)) + hb + bytes(b[8 + n:]))
        return b
    return b


def mutate(seed: bytes, kind: str, rng: random.Random, others: list[bytes]) -> tuple[bytes, str]:
    """One hostile variant of `seed` and what was done to it."""
    b = bytearray(seed)
    ops = []
    for _ in range(rng.choice([1, 1, 1, 2, 3])):
        op = rng.choice(["flip", "flip", "bytes", "truncate", "delete", "repeat", "splice",
                         "header", "header", "head-flip"])
        n = len(b)
        if n == 0:
            break
        if op == "flip":
            for _ in range(rng.choice([1, 2, 4, 16])):
                i = rng.randrange(n)
                b[i] ^= 1 << rng.randrange(8)
        elif op == "head-flip":  # the header is where the sizes and offsets live
            for _ in range(rng.choice([1, 2, 4])):
                i = rng.randrange(min(n, 256))
                b[i] ^= 1 << rng.randrange(8)
        elif op == "bytes":
            i = rng.randrange(n)
            b[i:i + rng.choice([1, 2, 4, 8])] = bytes([rng.choice(INTERESTING)]) * rng.choice([1, 2, 4, 8])
        elif op == "truncate":
            b = b[:rng.randrange(n)]
        elif op == "delete":
            i = rng.randrange(n)
            del b[i:i + rng.randrange(1, max(2, n // 8))]
        elif op == "repeat":
            i = rng.randrange(n)
            blk = b[i:i + rng.randrange(1, max(2, n // 8))]
            b[i:i] = blk * rng.choice([1, 2, 16])
        elif op == "splice":  # the head of one file on the body of another
            o = rng.choice(others)
            cut = rng.randrange(1, max(2, min(len(o), 2048)))
            b = bytearray(o[:cut]) + b[rng.randrange(n):] if rng.random() < 0.5 else \
                b[:rng.randrange(n)] + bytearray(o[cut:])
        elif op == "header":
            b = _header_sizes(b, kind, rng)
        ops.append(op)
    return bytes(b), "+".join(ops) or "none"


# --------------------------------------------------------------------------- readers


def check_image(a) -> None:
    import numpy as np

    if not (isinstance(a, np.ndarray) and a.dtype == np.uint8 and a.ndim == 3 and a.shape[2] == 3
            and a.shape[0] > 0 and a.shape[1] > 0):
        raise AssertionError(f"load_image returned {type(a).__name__} "
                             f"{getattr(a, 'shape', '')} {getattr(a, 'dtype', '')}")


def read_as_user_file(kind: str, path: str) -> str:
    """Everything the project does with an uploaded / given file of this kind. Returns a
    short description of what was read; raises what the readers raise."""
    from lf_core.io import is_video, load_image, read_video, video_info

    if kind in ("jpeg", "png", "webp", "gif"):
        from demo.state import upload_path

        a = load_image(upload_path(path, "image"))
        check_image(a)
        if a.shape[0] * a.shape[1] <= 4_000_000:  # the bytes route too (bombs: measured once)
            check_image(load_image(Path(path).read_bytes()))
        return f"{a.shape[1]}x{a.shape[0]}"
    if kind == "mp4":
        from demo.state import upload_path

        p = upload_path(path, "video")
        assert is_video(p)
        info = video_info(p)
        n = 0
        for fr in read_video(p, every=1, max_frames=30):
            check_image(fr.image)
            n += 1
        return f"{info.width}x{info.height} {n} frames"
    if kind == "zip":
        from lf_core.errors import LFError
        from lf_core.quicktrain import read_zip

        images, labels, skipped = read_zip(path)
        good = 0
        for im in images:
            try:
                check_image(load_image(im))
                good += 1
            except LFError:
                pass
        return f"{len(images)} entries, {good} images"
    if kind == "detector":
        import numpy as np

        from lf_core.classifiers import load_classifier

        det = load_classifier(path)
        shape = tuple(det.input_shape_)
        if int(np.prod(shape)) > 10**7:
            raise AssertionError(f"detector input shape {shape} accepted")
        p = det.predict_proba(np.zeros((2, *shape), np.float32))
        if p.shape != (2, 2) or not np.isfinite(p).all():
            raise AssertionError(f"predict_proba gave {p.shape} {p[:1]}")
        return f"detector {shape}"
    raise ValueError(kind)


def _status_kb(key: str) -> int:
    """A field of /proc/self/status in KB (VmSize, VmRSS, VmHWM)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


def _child(kind: str, path: str, result: str, mem_mb: int):
    from lf_core.errors import LFError

    lim = _status_kb("VmSize") * 1024 + mem_mb * 2**20
    rss0 = _status_kb("VmRSS")
    resource.setrlimit(resource.RLIMIT_AS, (lim, lim))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    try:
        what = read_as_user_file(kind, path)
        out = {"outcome": "ok", "detail": what}
    except LFError as e:
        msg = str(e)
        out = {"outcome": "error" if msg and "\n" not in msg else "other",
               "detail": f"{type(e).__name__}: {msg[:300]}"}
    except BaseException as e:  # noqa: BLE001 - what is being measured
        out = {"outcome": "other", "detail": f"{type(e).__module__}.{type(e).__name__}: {str(e)[:300]}"}
    out["rss_mb"] = round(max(0, _status_kb("VmHWM") - rss0) / 1024, 1)
    with open(result, "w") as f:
        json.dump(out, f)


def preload(kinds) -> None:
    """Import what the readers import, once, before forking."""
    import cv2  # noqa: F401
    import numpy  # noqa: F401
    from PIL import Image

    Image.init()
    import lf_core.io  # noqa: F401
    import lf_core.quicktrain  # noqa: F401

    if set(kinds) & {"jpeg", "png", "webp", "gif", "mp4"}:
        import demo.state  # noqa: F401
    if "detector" in kinds:
        import lf_core.classifiers  # noqa: F401


def _cpu_s(pid: int) -> float:
    """CPU seconds (user + system, all threads) a running process has used so far."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0


def run_many(inputs, timeout: float = 5.0, mem_mb: int = 1536, jobs: int = 2, on_done=None,
             wall_timeout: float = 120.0):
    """inputs: [(kind, bytes, how)] -> [{kind, how, outcome, detail, seconds, cpu_s, rss_mb}],
    each input read in its own forked process; a hang is over `timeout` CPU seconds (a
    machine shared with other jobs stretches wall time, not CPU time) or `wall_timeout`
    seconds of wall time. rss_mb: peak resident memory above what the
    process held when it started (for a crash or hang: the peak above the parent's)."""
    parent_rss = _status_kb("VmRSS") / 1024
    work = tempfile.mkdtemp(prefix="lf-fuzz-")
    results: list = [None] * len(inputs)
    running: dict[int, tuple[int, float, str, str]] = {}
    todo = list(range(len(inputs)))[::-1]
    try:
        while todo or running:
            while todo and len(running) < jobs:
                i = todo.pop()
                kind, data, _ = inputs[i]
                path = os.path.join(work, f"in{i}{EXT[kind]}")
                with open(path, "wb") as f:
                    f.write(data)
                res = os.path.join(work, f"out{i}.json")
                sys.stdout.flush()
                sys.stderr.flush()
                pid = os.fork()
                if pid == 0:  # child
                    code = 0
                    try:
                        os.setpgid(0, 0)
                        devnull = os.open(os.devnull, os.O_WRONLY)
                        os.dup2(devnull, 1)
                        os.dup2(devnull, 2)  # libav / libpng log lines
                        _child(kind, path, res, mem_mb)
                    except BaseException:  # noqa: BLE001
                        code = 70
                    finally:
                        os._exit(code)
                running[pid] = (i, time.monotonic(), path, res)
            time.sleep(0.002)
            for pid, (i, t0, path, res) in list(running.items()):
                waited, status, ru = os.wait4(pid, os.WNOHANG)
                dt = time.monotonic() - t0
                if waited == 0:
                    cpu = _cpu_s(pid)
                    if cpu > timeout or dt > wall_timeout:
                        try:
                            os.killpg(pid, signal.SIGKILL)
                        except ProcessLookupError:
                            pass
                        _, _, ru = os.wait4(pid, 0)
                        r = {"outcome": "hang", "detail": f"over {timeout:g} s of CPU time"
                             if cpu > timeout else f"over {wall_timeout:g} s of wall time"}
                    else:
                        continue
                elif os.WIFSIGNALED(status):
                    r = {"outcome": "crash", "detail": f"signal {os.WTERMSIG(status)}"}
                elif not os.path.exists(res):
                    r = {"outcome": "crash", "detail": f"exit {os.WEXITSTATUS(status)} with no result"}
                else:
                    with open(res) as f:
                        r = json.load(f)
                r["cpu_s"] = round(ru.ru_utime + ru.ru_stime, 3)
                if "rss_mb" not in r:
                    r["rss_mb"] = round(max(0.0, ru.ru_maxrss / 1024 - parent_rss), 1)
                kind, _, how = inputs[i]
                r.update(kind=kind, how=how, seconds=round(dt, 3), index=i)
                results[i] = r
                del running[pid]
                for f in (path, res):
                    try:
                        os.unlink(f)
                    except OSError:
                        pass
                if on_done:
                    on_done(r)
    finally:
        for pid in running:
            try:
                os.killpg(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
            except OSError:
                pass
        for f in Path(work).glob("*"):
            f.unlink()
        os.rmdir(work)
    return results


def build_inputs(seeds: dict, n: int, seed: int, kinds=KINDS):
    """n mutated inputs spread evenly over `kinds` (the first of each kind: a seed as is)."""
    rng = random.Random(seed)
    allseeds = [s for k in seeds for s in seeds[k]]
    kinds = [k for k in kinds if seeds.get(k)]
    out = []
    for j in range(n):
        kind = kinds[j % len(kinds)]
        src = rng.choice(seeds[kind])
        if j < len(kinds):
            out.append((kind, src, "none"))
        else:
            data, how = mutate(src, kind, rng, allseeds)
            out.append((kind, data, how))
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=2000, help="inputs to try")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--timeout", type=float, default=5.0,
                    help="CPU seconds per input before it counts as a hang")
    ap.add_argument("--wall-timeout", type=float, default=120.0,
                    help="wall-clock seconds per input before it counts as a hang (a loaded "
                         "machine stretches wall time several times)")
    ap.add_argument("--mem-mb", type=int, default=1536, help="address space per input above the parent's")
    ap.add_argument("--max-rss-mb", type=float, default=1024, help="flag inputs using more")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--kinds", default=",".join(KINDS))
    ap.add_argument("--no-crafted", dest="crafted", action="store_false",
                    help="mutations only (without the hand-made bombs, which come first)")
    ap.add_argument("--keep", default="runs/fuzz-bad", help="folder for the inputs that failed")
    ap.add_argument("--replay", help="read one file (kind from its extension) and print the outcome")
    ap.add_argument("--json", help="write the summary here")
    a = ap.parse_args(argv)
    kinds = [k for k in a.kinds.split(",") if k]
    if a.replay:
        ext = Path(a.replay).suffix.lower()
        kind = {v: k for k, v in EXT.items()}.get(ext, "jpeg")
        preload([kind])
        print(run_many([(kind, Path(a.replay).read_bytes(), "replay")], a.timeout, a.mem_mb, 1,
                       wall_timeout=a.wall_timeout)[0])
        return 0
    t0 = time.time()
    seeds = make_seeds(video="mp4" in kinds)
    preload(kinds)
    inputs = [x for x in crafted_inputs() if x[0] in kinds] if a.crafted else []
    inputs += build_inputs(seeds, a.n - len(inputs), a.seed, kinds)
    print(f"{len(inputs)} inputs from {sum(len(v) for v in seeds.values())} seeds; "
          f"{a.timeout:g} CPU s, {a.wall_timeout:g} s and {a.mem_mb} MB each", file=sys.stderr)
    done = [0]
    keep = Path(a.keep)

    def on_done(r):
        done[0] += 1
        bad = r["outcome"] in ("other", "crash", "hang") or r.get("rss_mb", 0) > a.max_rss_mb
        if bad:
            keep.mkdir(parents=True, exist_ok=True)
            kind, data, _ = inputs[r["index"]]
            (keep / f"{a.seed}-{r['index']}-{r['outcome']}{EXT[kind]}").write_bytes(data)
            print(f"  {r['outcome']}: {kind} #{r['index']} ({r['how']}): {r['detail']} "
                  f"[{r['seconds']} s, {r.get('rss_mb')} MB]", file=sys.stderr)
        if done[0] % 500 == 0:
            print(f"  {done[0]}/{len(inputs)} ({time.time() - t0:.0f} s)", file=sys.stderr)

    results = run_many(inputs, a.timeout, a.mem_mb, a.jobs, on_done, a.wall_timeout)
    summary = summarise(results)
    summary.update(n=len(results), seed=a.seed, cpu_timeout_s=a.timeout,
                   wall_timeout_s=a.wall_timeout, mem_mb=a.mem_mb,
                   wall_s=round(time.time() - t0, 1),
                   date=time.strftime("%Y-%m-%d"))
    print(json.dumps(summary, indent=1))
    if a.json:
        Path(a.json).write_text(json.dumps(summary, indent=1) + "\n")
    return 0 if summary["bad"] == 0 else 1


def summarise(results) -> dict:
    by = defaultdict(Counter)
    for r in results:
        by[r["kind"]][r["outcome"]] += 1
    slow = max((r["seconds"] for r in results), default=0.0)
    cpu = max((r.get("cpu_s", 0.0) for r in results), default=0.0)
    rss = max((r.get("rss_mb", 0.0) for r in results), default=0.0)
    errors = Counter(r["detail"].split(":")[0] for r in results if r["outcome"] == "error")
    return {"by_kind": {k: dict(v) for k, v in sorted(by.items())},
            "total": dict(sum(by.values(), Counter())),
            "bad": sum(r["outcome"] in ("other", "crash", "hang") for r in results),
            "slowest_s": slow, "max_cpu_s": cpu, "max_rss_mb": rss, "error_types": dict(errors),
            "slowest": [f"{r['kind']} {r['how']}: {r['seconds']} s ({r.get('cpu_s')} s CPU), {r.get('rss_mb')} MB"
                        for r in sorted(results, key=lambda r: -r.get("cpu_s", 0))[:3]],
            "largest": [f"{r['kind']} {r['how']}: {r['seconds']} s ({r.get('cpu_s')} s CPU), {r.get('rss_mb')} MB"
                        for r in sorted(results, key=lambda r: -r.get("rss_mb", 0))[:3]]}


if __name__ == "__main__":
    sys.exit(main())
