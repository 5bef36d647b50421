"""Train a small detector in seconds from a handful of labelled face images.

    res = quick_train(images, labels, model)           # labels: 0 real, 1 fake
    res.cv_accuracy, res.n_real, res.n_fake, res.skipped
    res.detector.save("mine.safetensors")              # usable as LF_DETECTOR / --detector

Each image is aligned (largest face), encoded with the projector's encoder only (no
optimisation steps), and a classifier (logistic regression by default) is fitted on the
W+ codes. The accuracy is a stratified k-fold cross-validation over the images (no groups:
two photos of one person may land on both sides of a split, so it is optimistic).

    images, labels, skipped = read_zip("faces.zip")    # real/... and fake/... folders
"""

from __future__ import annotations

import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import numpy as np

from .errors import BadInputError, LFError
from .untrusted import ARCHIVE_EXTS, check_zip, check_zip_directory

MAX_IMAGES = 400  # per training run
MAX_ZIP_BYTES = 200 * 2**20  # uncompressed total
IMAGE_EXTS = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff"}
CLASS_DIRS = {"real": 0, "fake": 1}


@dataclass
class QuickTrainResult:
    detector: object  # fitted lf_core.classifiers classifier
    cv_accuracy: float | None  # mean k-fold accuracy; None when too few images per class
    n_real: int
    n_fake: int
    skipped: list = field(default_factory=list)  # "name: reason" per unusable image
    folds: int = 0
    cv_scores: list = field(default_factory=list)  # accuracy per fold
    seconds: float = 0.0

    @property
    def cv_interval(self) -> tuple[float, float] | None:
        """95% interval of the cross-validated accuracy over the n faces (Wilson score
        interval: each face is one held-out trial); None without cross-validation."""
        if self.cv_accuracy is None:
            return None
        n, p, z = self.n_real + self.n_fake, self.cv_accuracy, 1.96
        mid = (p + z * z / (2 * n)) / (1 + z * z / n)
        half = z * ((p * (1 - p) / n + z * z / (4 * n * n)) ** 0.5) / (1 + z * z / n)
        return (mid - half, mid + half)

    @property
    def beats_chance(self) -> bool:
        """Is it better than a coin at all? The interval lies above the larger class's
        share (the accuracy of always answering that class); False without cv."""
        ci = self.cv_interval
        n = self.n_real + self.n_fake
        return ci is not None and ci[0] > max(self.n_real, self.n_fake) / n

    def summary(self) -> str:
        cv = ("n/a (need at least 2 images per class)" if self.cv_accuracy is None
              else f"{self.cv_accuracy:.1%} ({self.folds}-fold)")
        return (f"{type(self.detector).__name__} on {self.n_real} real + {self.n_fake} fake "
                f"faces; cross-validated accuracy {cv}; {len(self.skipped)} skipped; "
                f"{self.seconds:.1f} s")


def _name(src, i: int) -> str:
    if isinstance(src, (str, Path)):
        return Path(src).name
    return getattr(src, "name", None) or f"image {i + 1}"


def quick_train(images, labels, model, kind: str = "lr", folds: int = 5, seed: int = 0,
                on_progress=None) -> QuickTrainResult:
    """images: paths, bytes or arrays; labels: 0 (real) / 1 (fake) per image.

    model: an lf_core.model.Model (its encoder gives the codes). kind: a key of
    lf_core.classifiers.CLASSIFIERS ("lr", "mlp2", ...). on_progress(done, total) is called
    after each image. Raises LFError when fewer than one usable face per class remains.
    """
    from .alignment import align
    from .classifiers import CLASSIFIERS
    from .inversion import code_meta, encode
    from .io import load_image

    t0 = time.perf_counter()
    images, labels = list(images), [int(v) for v in labels]
    if len(images) != len(labels):
        raise ValueError(f"{len(images)} images but {len(labels)} labels")
    if any(v not in (0, 1) for v in labels):
        raise ValueError("labels must be 0 (real) or 1 (fake)")
    if len(images) > MAX_IMAGES:
        raise BadInputError(f"{len(images)} images is too many for a quick training run "
                            f"(limit {MAX_IMAGES}); use `lf train` for large sets")
    if kind not in CLASSIFIERS:
        raise ValueError(f"unknown classifier kind {kind!r}; use one of {sorted(CLASSIFIERS)}")

    crops, ys, skipped = [], [], []
    for i, (src, y) in enumerate(zip(images, labels)):
        try:
            crops.append(align(load_image(src), max_faces=1)[0].crop)
            ys.append(y)
        except LFError as e:
            skipped.append(f"{_name(src, i)}: {e}")
        if on_progress is not None:
            on_progress(i + 1, len(images))
    y = np.asarray(ys, np.int64)
    n_real, n_fake = int((y == 0).sum()), int((y == 1).sum())
    if n_real == 0 or n_fake == 0:
        missing = "real" if n_real == 0 else "fake"
        raise LFError(f"no usable {missing} face: give at least one {missing} image with a "
                      f"visible face (found {n_real} real, {n_fake} fake; "
                      f"{len(skipped)} images skipped)")

    X = np.concatenate([encode(model, np.stack(crops[s:s + 16]))
                        for s in range(0, len(crops), 16)])  # (N, 14, 512)
    make = CLASSIFIERS[kind]

    k = min(int(folds), n_real, n_fake)
    scores = []
    if k >= 2:
        from sklearn.model_selection import StratifiedKFold

        for tr, te in StratifiedKFold(k, shuffle=True, random_state=seed).split(X, y):
            if len(np.unique(y[tr])) < 2:
                continue
            clf = make(seed=seed).fit(X[tr], y[tr])
            scores.append(float((clf.predict(X[te]) == y[te]).mean()))
    det = make(seed=seed).fit(X, y)
    cv = float(np.mean(scores)) if scores else None
    det.metrics = {"projector": code_meta(model, steps=0),  # as lf extract records it
                   "quick_train": {"cv_accuracy": cv, "folds": k if scores else 0,
                                   "n_real": n_real, "n_fake": n_fake}}
    return QuickTrainResult(det, cv, n_real, n_fake, skipped, k if scores else 0, scores,
                            time.perf_counter() - t0)


def read_zip(path) -> tuple[list, list, list]:
    """A zip with real/ and fake/ folders (at any depth) -> (images as bytes with .name,
    labels, skipped). Read in memory; nothing is extracted to disk. The central directory is
    checked first (lf_core.untrusted.check_zip): a zip bomb, an entry named with `..` or an
    absolute path, or a symbolic link is refused before anything is decompressed."""
    try:
        check_zip_directory(path, Path(str(path)).name)  # 100k entries: refused unparsed
        zf = zipfile.ZipFile(path)
    except BadInputError:
        raise
    except Exception as e:  # BadZipFile, OSError, and what damaged headers raise in zipfile
        raise BadInputError(f"{Path(str(path)).name} is not a readable zip file ({e}). "
                            "Zip two folders, real/ and fake/, of face images.") from e
    images, labels, skipped, total = [], [], [], 0
    with zf:
        skipped += check_zip(zf, Path(str(path)).name)  # bombs, ../ names, links: refused
        for info in zf.infolist():
            if info.is_dir():
                continue
            p = PurePosixPath(info.filename)
            if p.name.startswith(".") or "__MACOSX" in p.parts:
                continue
            if p.suffix.lower() in ARCHIVE_EXTS:
                continue  # noted by check_zip
            cls = next((CLASS_DIRS[d.lower()] for d in reversed(p.parts[:-1])
                        if d.lower() in CLASS_DIRS), None)
            if cls is None:
                skipped.append(f"{p}: not inside a real/ or fake/ folder")
                continue
            if p.suffix.lower() not in IMAGE_EXTS:
                skipped.append(f"{p}: not an image file")
                continue
            total += info.file_size
            if total > MAX_ZIP_BYTES or len(images) >= MAX_IMAGES:
                raise BadInputError(f"the zip holds too much (limit {MAX_IMAGES} images, "
                                    f"{MAX_ZIP_BYTES // 2**20} MB); use `lf train` for large sets")
            try:
                data = zf.read(info)
            except Exception as e:  # bad CRC, unsupported compression, encrypted member
                skipped.append(f"{p}: unreadable in the zip ({e})")
                continue
            images.append(NamedBytes(data, p.name))
            labels.append(cls)
    if not images:
        raise BadInputError("the zip has no images in real/ or fake/ folders. Zip two "
                            "folders named real and fake holding face images.")
    return images, labels, skipped


class NamedBytes(bytes):
    """bytes with a .name (for messages about skipped images)."""

    def __new__(cls, data, name):
        obj = super().__new__(cls, data)
        obj.name = name
        return obj


__all__ = ["QuickTrainResult", "quick_train", "read_zip"]
