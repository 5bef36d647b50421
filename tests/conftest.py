import os
from pathlib import Path

import numpy as np
import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("LF_DATA", ROOT.parent / "shared" / "data"))

torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))


@pytest.fixture(scope="module")
def one_torch_thread():
    """Tiny models on a shared 2-core CPU run faster on one thread (no OpenMP spin-waits)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def data_dir() -> Path:
    if not DATA.is_dir():
        pytest.fail(f"test data not found at {DATA}; set LF_DATA to ../shared/data")
    return DATA


@pytest.fixture(scope="session")
def dfdc_pairs(data_dir):
    """A few (real, fake) DFDC crop pairs of the same source video, from the test split."""
    from lf_core.lab.data import read_manifest, split_of

    items = read_manifest(data_dir / "dfdc_faces" / "manifest.csv")
    real = {it.group: it.path for it in items if it.label == 0}
    pairs = [(real[it.group], it.path) for it in items
             if it.label == 1 and it.group in real and split_of(it.group) == "test"]
    return pairs[:6]


@pytest.fixture(scope="session")
def pair_items(data_dir):
    """(real, fake) manifest Items of the same DFDC source video: 4 train-split videos, then
    2 test-split ones (the tiny manifests of the extraction tests)."""
    from lf_core.lab.data import read_manifest, split_of

    items = read_manifest(data_dir / "dfdc_faces" / "manifest.csv")
    real = {it.group: it for it in items if it.label == 0}
    pairs, seen = {"train": [], "test": []}, set()
    for it in items:
        s = split_of(it.group)
        if it.label == 1 and it.group in real and it.group not in seen and s in pairs \
                and len(pairs[s]) < (4 if s == "train" else 2):
            pairs[s].append((real[it.group], it))
            seen.add(it.group)
    return pairs["train"] + pairs["test"]


@pytest.fixture(scope="session")
def model():
    """The embedded default model (weights/), as users get it."""
    from lf_core.model import load_model

    return load_model()


@pytest.fixture(scope="session")
def detector(detector_path):
    from lf_core.classifiers import load_classifier

    return load_classifier(detector_path)


@pytest.fixture(scope="session")
def detector_path(model, data_dir, tmp_path_factory):
    """A small logistic-regression detector on encoder-only codes of DFDC train-split crops
    (tests need one that is independent of the shipped detector)."""
    from lf_core import inversion as inv
    from lf_core.alignment import align
    from lf_core.classifiers import LogReg
    from lf_core.errors import NoFaceError
    from lf_core.io import load_image
    from lf_core.lab.data import read_manifest, split_of

    items = [it for it in read_manifest(data_dir / "dfdc_faces" / "manifest.csv")
             if split_of(it.group) == "train"]
    picked = [it for it in items if it.label == 0][:12] + [it for it in items if it.label == 1][:12]
    crops, ys = [], []
    for it in picked:
        try:
            crops.append(align(load_image(it.path), max_faces=1)[0].crop)
            ys.append(it.label)
        except NoFaceError:
            pass
    X = inv.encode(model, np.stack(crops))
    det = LogReg().fit(X, np.array(ys))
    path = tmp_path_factory.mktemp("det") / "det.safetensors"
    det.save(path, metrics={"projector": {"kind": "stylegan", "steps": 0}})
    return path


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def start_app():
    """A function env -> (app, url): launches the demo in this process (background thread).
    `env` is set while the app is built (it reads LF_WEIGHTS / LF_DETECTOR then), then
    restored."""
    import sys

    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))

    def start(env: dict):
        old = {k: os.environ.get(k) for k in env}
        os.environ.update(env)
        try:
            from demo.ui import build_demo, launch

            app = launch(build_demo(), server_port=free_port(), prevent_thread_lock=True,
                         quiet=True)
        finally:
            for k, v in old.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
        return app, app.local_url

    return start
