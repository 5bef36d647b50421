import threading

import cv2
import numpy as np
import pytest

from lf_core.alignment import EYE_L, EYE_R, Face, align, crop_matrix, ffhq_quad, warp
from lf_core.errors import NoFaceError
from lf_core.io import load_image, read_video

# Mean eye centres (x, y) in FFHQ's own 256 px images, measured with these landmarks on
# 200 FFHQ images (per-face spread ~2-3 px).
FFHQ_EYES = np.array([[96.7, 120.9], [159.4, 120.9]])

FACES = [
    "ffhq_stylegan/real/00001.jpg",
    "ffhq_stylegan/real/00002.jpg",
    "ffhq_stylegan/fake/00AUP94LQS.jpg",
    "dfdc_faces/real/aabqcugcpc.jpg",
    "dfdc_faces/fake/vjltcrkyjk.jpg",
    "lfw/AJ_Lamas_0001.jpg",
    "lfw/Aaron_Eckhart_0001.jpg",
]


def eyes(lm):
    """(K, 2) mesh points -> (2, 2) eye centres, image-left first."""
    return np.stack([lm[EYE_L].mean(0), lm[EYE_R].mean(0)])


def test_faces_land_at_ffhq_positions(data_dir):
    for p in FACES:
        faces = align(load_image(data_dir / p))
        f = faces[0]
        assert isinstance(f, Face)
        assert f.crop.shape == (256, 256, 3) and f.crop.dtype == np.uint8
        assert f.landmarks.shape == (468, 2) and f.landmarks.dtype == np.float32
        assert f.quad.shape == (4, 2) and 0.0 < f.score <= 1.0
        x0, y0, x1, y1 = f.box
        assert 0 <= x0 < x1 and 0 <= y0 < y1

        # landmarks carried into the crop: eyes level, at FFHQ's positions
        m = cv2.transform(f.landmarks[None], crop_matrix(f.quad, 256))[0]
        e1 = eyes(m)
        assert abs(e1[0, 1] - e1[1, 1]) < 1.0, p  # horizontal (by construction)
        # found again on the crop itself: the warp put the pixels there
        e2 = eyes(align(f.crop)[0].landmarks)
        assert np.abs(e2 - e1).max() < 3.0, (p, e1, e2)
        assert np.abs(e2 - FFHQ_EYES).max() < 6.0, (p, e2)
        assert abs(e2[0, 1] - e2[1, 1]) < 3.0, (p, e2)


def test_ffhq_images_realign_to_themselves(data_dir):
    ideal = np.float32([[-0.5, -0.5], [-0.5, 255.5], [255.5, 255.5], [255.5, -0.5]])
    for name in ["00000.jpg", "00001.jpg", "00002.jpg"]:
        img = load_image(data_dir / "ffhq_stylegan" / "real" / name)
        f = align(img)[0]
        assert np.abs(f.quad - ideal).max() < 10.0, (name, f.quad)
        assert np.abs(f.crop.astype(int) - img).mean() < 20  # same picture, a few px off


def test_video_frame_1080p(data_dir):
    frame = next(read_video(data_dir / "videos" / "real" / "lynaeydofd.mp4", max_frames=1))
    faces = align(frame.image)
    assert len(faces) == 1
    x0, y0, x1, y1 = faces[0].box
    assert 800 < (x0 + x1) / 2 < 1100 and 250 < (y0 + y1) / 2 < 550  # the woman on the sofa
    assert faces[0].crop.shape == (256, 256, 3)


@pytest.mark.parametrize("kind", ["flat", "noise", "tiny"])
def test_no_face(kind):
    rng = np.random.default_rng(0)
    img = {
        "flat": np.full((240, 320, 3), (90, 140, 200), np.uint8),
        "noise": rng.integers(0, 256, (256, 256, 3), dtype=np.uint8),
        "tiny": np.full((4, 4, 3), 128, np.uint8),
    }[kind]
    with pytest.raises(NoFaceError, match="No face found"):
        align(img)


def test_largest_first(data_dir):
    big = load_image(data_dir / "ffhq_stylegan" / "real" / "00001.jpg")  # 256 px
    small = cv2.resize(load_image(data_dir / "ffhq_stylegan" / "real" / "00002.jpg"),
                       (128, 128), interpolation=cv2.INTER_AREA)
    canvas = np.full((320, 640, 3), 128, np.uint8)
    canvas[100:228, 60:188] = small  # left, small
    canvas[32:288, 340:596] = big  # right, big
    faces = align(canvas)
    assert len(faces) == 2
    assert faces[0].box[0] > 320 and faces[1].box[2] < 320
    w = [f.box[2] - f.box[0] for f in faces]
    assert w[0] > 1.5 * w[1]
    assert len(align(canvas, max_faces=1)) == 1


def test_warp_pads_outside_image():
    # quad larger than the image on every side: reflect-padded, blurred, no crash
    img = np.random.default_rng(0).integers(0, 256, (50, 60, 3), dtype=np.uint8)
    quad = np.float32([[-40, -40], [-40, 100], [100, 100], [100, -40]])
    out = warp(img, quad, 64)
    assert out.shape == (64, 64, 3) and out.dtype == np.uint8
    # identity quad: the image comes back
    img = cv2.GaussianBlur(img[:50, :50], (0, 0), 2)
    quad = np.float32([[-0.5, -0.5], [-0.5, 49.5], [49.5, 49.5], [49.5, -0.5]])
    assert np.abs(warp(img, quad, 50).astype(int) - img).mean() < 4


def test_ffhq_quad_geometry():
    lm = np.zeros((468, 2), np.float32)
    lm[EYE_L] = (100, 100)
    lm[EYE_R] = (160, 100)
    lm[[61, 291]] = [(110, 170), (150, 170)]
    q = ffhq_quad(lm)
    # centre 10% of the way from the eyes to the mouth; side = 2 * max(2 * 60, 1.8 * 70)
    assert np.allclose(q.mean(0), (130, 107), atol=1e-4)
    assert np.isclose(np.hypot(*(q[3] - q[0])), 252, atol=1e-3)
    assert np.allclose(q[0], (130 - 126, 107 - 126), atol=1e-3)  # upper left


def test_threads(data_dir):
    img = load_image(data_dir / "lfw" / "AJ_Lamas_0001.jpg")
    ref = align(img)[0].quad
    out, errs = [], []

    def run():
        try:
            out.append(align(img)[0].quad)
        except Exception as e:  # pragma: no cover
            errs.append(e)

    ts = [threading.Thread(target=run) for _ in range(3)]
    [t.start() for t in ts]
    [t.join() for t in ts]
    assert not errs and len(out) == 3
    assert all(np.allclose(q, ref) for q in out)
