"""Per-session settings, resolution of the weights / detector, stop flags, readable errors.

Everything the handlers need besides lf_core: which generator and which detector this
browser session uses, how to turn any failure into one readable message, and the
cooperative Stop button (a flag the inversion polls between steps).
"""

from __future__ import annotations

import contextvars
import functools
import html
import inspect
import logging
import os
import shutil
import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import gradio as gr

from lf_core.detector import DEFAULT_DETECTOR, SHIPPED, Detector, detector_path, load_detector
from lf_core.errors import BadInputError, LFError, WeightsError
from lf_core.io import save_image
from lf_core.model import DEFAULT_WEIGHTS, default_weights, load_model

log = logging.getLogger("lf.demo")


# --------------------------------------------------------------------------- the torch lane

# torch's CPU kernels run on libgomp, which keeps one OpenMP thread team per calling
# thread. Gradio runs each handler, and each step of a streaming handler, on whichever
# worker thread is free, so torch work spread over its threads grows one team per thread;
# on 2 cores an idle second team slows the busy one ~1.7x
# (`python benchmarks/speed/bench_threads.py`). So every model call of the demo runs on this
# one thread; requests interleave on it step by step.
_LANE = ThreadPoolExecutor(max_workers=1, thread_name_prefix="lf-torch")
_END = object()


def on_lane(fn, *args, **kwargs):
    """fn(*args, **kwargs) on the torch thread (with the caller's context: gr.Progress)."""
    if threading.current_thread().name.startswith("lf-torch"):  # already on it
        return fn(*args, **kwargs)
    return _LANE.submit(contextvars.copy_context().run, fn, *args, **kwargs).result()


def stream_on_lane(gen):
    """Iterate a generator whose steps run torch, advancing it on the torch thread."""
    try:
        while (item := on_lane(next, gen, _END)) is not _END:
            yield item
    finally:
        on_lane(gen.close)


def warm_up() -> None:
    """In the background, on the torch thread: load the default model and run a 2-step
    inversion, so that the first visitor does not pay for loading and first-call setup
    (about 2 s on 2 cores). Failures are left to the first request to report."""
    def work():
        try:
            import numpy as np

            from lf_core import inversion as inv

            crop = np.full((256, 256, 3), 128, np.uint8)
            inv.invert(get_model(Settings.default()), crop, steps=2)
        except Exception as e:  # noqa: BLE001 - the first real request shows the error
            log.info("warm-up skipped: %s", e)
    _LANE.submit(work)


def max_upload_mb() -> float:
    """Upload limit in MB (LF_MAX_UPLOAD_MB, default 50), read when used."""
    try:
        return float(os.environ.get("LF_MAX_UPLOAD_MB", "50"))
    except ValueError:
        return 50.0

NO_DETECTOR = ("No detector installed yet: train one in the Train-your-own tab or with "
               "`lf train` (or point LF_DETECTOR / Settings at a .safetensors detector).")
SRC_FILE = "Detector file"
SRC_TRAINED = "My trained detector (this session)"


class NoDetectorError(LFError):
    """No usable detector: the pipeline still aligns and inverts, but gives no verdict."""


@dataclass
class Settings:
    """What a browser session uses. Held in gr.State (one copy per session)."""

    weights: str
    detector: str
    source: str = SRC_FILE  # SRC_FILE | SRC_TRAINED
    trained: object = None  # classifier fitted in the Train-your-own tab
    trained_summary: str = ""

    @classmethod
    def default(cls) -> Settings:
        return cls(weights=str(default_weights()), detector=str(detector_path()))


# the Settings menu's shipped detectors (weights/README.md): (label, file)
DETECTOR_CHOICES = [
    ("default: any face (faces like DFDC video frames go to faceswap, the others to all)",
     str(SHIPPED["default"])),
    ("faceswap: video frames (DFDC, LFW, UTKFace; blind to whole-face StyleGAN faces)",
     str(SHIPPED["faceswap"])),
    ("all: one net for every face (DFDC, FFHQ / StyleGAN, LFW, UTKFace)",
     str(SHIPPED["all"])),
]


def get_model(settings: Settings):
    """The generator + encoder bundle of this session (cached by lf_core)."""
    path = Path(settings.weights or default_weights()).expanduser()
    if not path.exists():
        if path.resolve() == DEFAULT_WEIGHTS.resolve():
            raise WeightsError(
                f"The embedded model ({DEFAULT_WEIGHTS.name}) is not in weights/ yet: it is "
                "still being trained. Set LF_WEIGHTS, or give a checkpoint path under "
                "Settings.")
        raise WeightsError(f"Weights file not found: {path}. Fix the path under Settings.")
    return on_lane(load_model, path)


def get_detector(settings: Settings) -> tuple[Detector, str]:
    """(Detector, description) for this session; NoDetectorError when there is none."""
    if settings.source == SRC_TRAINED:
        if settings.trained is None:
            raise NoDetectorError("You chose your own detector but have not trained one yet: "
                                  "use the Train-your-own tab first.")
        det = Detector(settings.trained)
        return det, f"{det.describe()}, trained in this session"
    path = detector_path(settings.detector or DEFAULT_DETECTOR).expanduser()
    if not path.exists():
        if path.resolve() == DEFAULT_DETECTOR.resolve():
            raise NoDetectorError(NO_DETECTOR)
        raise NoDetectorError(f"Detector file not found: {path}. Fix the path under Settings, "
                              "or train one in the Train-your-own tab.")
    det = on_lane(load_detector, path)
    return det, f"{det.describe()} ({path.name})"


def describe_settings(settings: Settings) -> str:
    """One Markdown line on what is installed, without loading anything."""
    w = Path(settings.weights)
    wtxt = f"`{w.name}`" if w.exists() else f"**missing** (`{w}`)"
    if settings.source == SRC_TRAINED and settings.trained is not None:
        dtxt = "your detector trained in this session"
    elif detector_path(settings.detector).exists():
        dtxt = f"`{detector_path(settings.detector).name}`"
    else:
        dtxt = "**none installed yet** (train one in the Train-your-own tab)"
    return f"Generator: {wtxt} · Detector: {dtxt}"


# --------------------------------------------------------------------------- uploads


def upload_path(value, what: str = "image") -> str:
    """The server path of an uploaded file, checked for presence and size."""
    if value is None or value == "":
        raise BadInputError(f"No {what} given: upload one first.")
    if isinstance(value, dict):  # FileData-like
        value = value.get("path")
    p = Path(str(value))
    if not p.is_file():
        raise BadInputError(f"The uploaded {what} could not be found on the server; upload it again.")
    size = p.stat().st_size
    limit = max_upload_mb()
    if size > limit * 2**20:
        raise BadInputError(f"The {what} is too large ({size / 2**20:.1f} MB; the limit is "
                            f"{limit:g} MB). Use a smaller file.")
    return str(p)


# --------------------------------------------------------------------------- output files

OUT_ROOT = Path(tempfile.gettempdir()) / "lf-demo-out"
OUT_MAX_AGE_S = 3600


class OutFiles:
    """Output images written once, atomically, as files; the handlers return their paths.

    Gradio writes numpy outputs to its cache non-atomically under a content hash, so the
    same picture sent twice (the crop in every update, the same face from two clients) can
    be read half-written by a client still downloading the first copy. Gradio copies a
    returned *file* into its cache atomically and only once, as it sends the update. A
    streaming handler's folder is removed when it ends (`with OutFiles() as files:`
    around its yields: Gradio has copied every file by then), so the folder does not grow
    with the requests served; other folders are removed an hour old, when a new one is
    made."""

    def __init__(self):
        OUT_ROOT.mkdir(parents=True, exist_ok=True)
        _prune()
        self.dir = OUT_ROOT / uuid.uuid4().hex
        self.dir.mkdir()
        self.n = 0

    def image(self, arr, name: str, fmt: str = "png") -> str:
        self.n += 1
        path = self.dir / f"{self.n:03d}-{name}.{fmt}"
        save_image(arr, path, quality=90)
        return str(path)

    def __enter__(self) -> OutFiles:
        return self

    def __exit__(self, *exc):
        shutil.rmtree(self.dir, ignore_errors=True)


def _prune():
    now = time.time()
    for d in OUT_ROOT.iterdir():
        try:
            if now - d.stat().st_mtime > OUT_MAX_AGE_S:
                shutil.rmtree(d, ignore_errors=True)
        except OSError:
            pass


# --------------------------------------------------------------------------- stop flags


class StopFlags:
    """One threading.Event per (session, task): Stop sets it, the running loop polls it."""

    def __init__(self):
        self._flags: dict[tuple, threading.Event] = {}
        self._lock = threading.Lock()

    def _key(self, request, task):
        return (getattr(request, "session_hash", None) or "anon", task)

    def begin(self, request, task: str) -> threading.Event:
        with self._lock:
            ev = self._flags.setdefault(self._key(request, task), threading.Event())
            ev.clear()
            return ev

    def stop(self, request, task: str) -> None:
        with self._lock:
            ev = self._flags.get(self._key(request, task))
        if ev is not None:
            ev.set()


STOPS = StopFlags()


# --------------------------------------------------------------------------- errors


def message(e: BaseException) -> str:
    """What a user reads about an error: one paragraph, HTML-escaped."""
    if isinstance(e, gr.Error):
        return str(e.message)
    if isinstance(e, LFError):
        return html.escape(str(e))
    if isinstance(e, MemoryError):
        return "The server ran out of memory on this input. Try a smaller image or video."
    return html.escape(f"Something went wrong inside the app ({type(e).__name__}: "
                       f"{str(e).splitlines()[0] if str(e) else 'no message'}). The app is still "
                       "running: try another input, and report this if it happens again.")


def _title(e: BaseException) -> str:
    if isinstance(e, NoDetectorError):
        return "No detector"
    if isinstance(e, WeightsError):
        return "Weights"
    if isinstance(e, BadInputError):
        return "Unusable file"
    if isinstance(e, LFError):
        return "Cannot analyse this"
    return "Error"


def to_gr_error(e: BaseException) -> gr.Error:
    if isinstance(e, gr.Error):
        return e
    if not isinstance(e, LFError):
        log.exception("unexpected error in a handler")
    return gr.Error(message(e), title=_title(e), print_exception=False)


def by_name(fn, names: tuple, on_error=None):
    """A handler that yields {output name: value} as Gradio takes it: a tuple in `names`
    order, where a name an update leaves out keeps its value: the latest this request
    gave it (Gradio sends a streamed output only when it changed), gr.skip() before.
    on_error(gr.Error) -> {output name: value}: shown before the error's notice (e.g. the
    status line says why nothing was analysed).

    Not gr.skip() once a value was sent: for each skip Gradio 6 puts a copy of the
    component into the session, and the next value adds that copy again under a new id,
    never removed (about 200 KB a detection for as long as the browser tab lives;
    benchmarks/RELIABILITY.md, the soak)."""
    def as_tuple(update, last):
        unknown = set(update) - set(names)
        if unknown:
            raise KeyError(f"{fn.__name__} has no outputs named {sorted(unknown)}")
        last.update(update)
        return tuple(last[n] if n in last else gr.skip() for n in names)

    @functools.wraps(fn)
    def gen(*args, **kwargs):
        last = {}
        try:
            for update in fn(*args, **kwargs):
                yield as_tuple(update, last)
        except gr.Error as e:
            if on_error is not None:
                yield as_tuple(on_error(e), last)
            raise
    return gen


def readable_errors(fn):
    """Decorator for event handlers (functions and generators): every exception becomes a
    gr.Error with a one-paragraph message; the traceback goes to the server log only."""
    if inspect.isgeneratorfunction(fn):
        @functools.wraps(fn)
        def gen(*args, **kwargs):
            try:
                yield from fn(*args, **kwargs)
            except Exception as e:
                raise to_gr_error(e) from None
        return gen

    @functools.wraps(fn)
    def call(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except Exception as e:
            raise to_gr_error(e) from None
    return call
