"""Face detection, landmarks and FFHQ alignment.

    faces = align(image)   # list[Face], largest first; NoFaceError if none
    faces[0].crop          # (256, 256, 3) uint8, aligned like FFHQ

Landmarks come from mediapipe's legacy face mesh (468 points). Pipeline:
  1. full-range face detector on the whole image (finds small faces in large frames);
  2. face mesh on each detection's expanded crop;
  3. if 1-2 found nothing (close-up crops, which the full-range detector mostly misses):
     face mesh on the whole image (confidence 0.3), scored by the short-range detector;
     if still nothing, again inside a grey border (faces that overflow a tight crop).

FFHQ protocol (NVlabs ffhq-dataset, recreate_aligned_images) with mesh points standing in
for dlib's 68: each eye is the mean of 6 points placed like dlib's (2 corners, 2 upper lid,
2 lower lid), the mouth corners are 61 and 291. On the FFHQ images themselves this gives
back the FFHQ quad: centre within 1 px, scale within 0.5%, rotation within 0.1 degree on
average (per-face spread ~1.5 px centre, ~3.5% scale).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import cv2
import numpy as np

from .errors import NoFaceError
from .io import load_image, native_stderr_hidden

# Mesh indices; "left" is the image left (the subject's right eye), as lm[36:42] in FFHQ.
EYE_L = [33, 160, 158, 133, 153, 144]  # outer corner, upper lid x2, inner corner, lower lid x2
EYE_R = [362, 385, 387, 263, 373, 380]  # inner corner, upper lid x2, outer corner, lower lid x2
MOUTH_L, MOUTH_R = 61, 291  # outer lip corners (dlib 48, 54)

DET_CONF = 0.5  # full-range detector
MESH_CONF = 0.3  # face mesh: its internal short-range detector
PRESENCE = 0.3  # face mesh: face presence score of the landmark model (its min_tracking_confidence)
NO_FACE = (
    "No face found in the image. Use a photo where one face is clearly visible, "
    "frontal, at least ~64 px wide."
)


@dataclass
class Face:
    crop: np.ndarray  # (size, size, 3) uint8 RGB, FFHQ-aligned
    landmarks: np.ndarray  # (468, 2) float32 mesh points, source-image pixels (x, y)
    quad: np.ndarray  # (4, 2) float32 FFHQ quad in source pixels: UL, LL, LR, UR of the crop
    score: float  # detection confidence in [0, 1]
    box: tuple[int, int, int, int]  # (x0, y0, x1, y1), landmark bounding box clipped to the image


# ---------------------------------------------------------------- FFHQ geometry


def ffhq_quad(lm: np.ndarray) -> np.ndarray:
    """(468, 2) mesh points -> (4, 2) FFHQ quad [c-x-y, c-x+y, c+x+y, c+x-y]."""
    lm = lm.astype(np.float64)
    eye_l, eye_r = lm[EYE_L].mean(0), lm[EYE_R].mean(0)
    eye_avg = (eye_l + eye_r) * 0.5
    eye_to_eye = eye_r - eye_l
    mouth_avg = (lm[MOUTH_L] + lm[MOUTH_R]) * 0.5
    eye_to_mouth = mouth_avg - eye_avg

    x = eye_to_eye - np.flipud(eye_to_mouth) * [-1, 1]
    x /= np.hypot(*x)
    x *= max(np.hypot(*eye_to_eye) * 2.0, np.hypot(*eye_to_mouth) * 1.8)
    y = np.flipud(x) * [-1, 1]
    c = eye_avg + eye_to_mouth * 0.1
    return np.stack([c - x - y, c - x + y, c + x + y, c + x - y]).astype(np.float32)


def crop_matrix(quad: np.ndarray, size: int) -> np.ndarray:
    """(2, 3) affine taking source pixel coords to crop pixel coords (pixel centres at
    integers; the quad's corners are the crop's outer corners, as in FFHQ)."""
    q = np.asarray(quad, np.float32)
    dst = np.float32([[-0.5, -0.5], [-0.5, size - 0.5], [size - 0.5, size - 0.5]])
    return cv2.getAffineTransform(q[:3], dst)


def warp(img: np.ndarray, quad: np.ndarray, size: int = 256) -> np.ndarray:
    """FFHQ crop: shrink, crop, reflect-pad + blur, then warp the quad to size x size.

    img: (H, W, 3) uint8; quad: (4, 2) source pixels -> (size, size, 3) uint8.
    Works on the region around the quad only.
    """
    quad = np.asarray(quad, np.float64).copy()
    qsize = np.hypot(*(quad[3] - quad[0]))  # side of the square quad
    H, W = img.shape[:2]

    # Crop (in source pixels) to the quad's bounding box plus a border.
    shrink = max(1, int(np.floor(qsize / size * 0.5)))
    border = max(int(np.rint(qsize / shrink * 0.1)), 3) * shrink
    x0 = max(int(np.floor(quad[:, 0].min())) - border, 0)
    y0 = max(int(np.floor(quad[:, 1].min())) - border, 0)
    x1 = min(int(np.ceil(quad[:, 0].max())) + border, W)
    y1 = min(int(np.ceil(quad[:, 1].max())) + border, H)
    if x1 - x0 < 2 or y1 - y0 < 2:  # quad entirely outside the image
        x0, y0, x1, y1 = 0, 0, W, H
    im = img[y0:y1, x0:x1]
    quad -= (x0, y0)

    # Shrink when the quad is much bigger than the output (FFHQ: qsize >= 4 * size).
    if shrink > 1:
        h, w = im.shape[:2]
        rw, rh = max(1, int(np.rint(w / shrink))), max(1, int(np.rint(h / shrink)))
        im = cv2.resize(im, (rw, rh), interpolation=cv2.INTER_AREA)
        quad = (quad + 0.5) * (rw / w, rh / h) - 0.5
        qsize /= shrink
    border = max(int(np.rint(qsize * 0.1)), 3)

    # Where the quad leaves the image, FFHQ pads by >= 0.3 * qsize per side (reflect),
    # then blends a blur and the median colour into the padded area.
    h, w = im.shape[:2]
    lo, hi = np.floor(quad.min(0)), np.ceil(quad.max(0))
    pad = np.maximum([-lo[0] + border, -lo[1] + border, hi[0] - w + border, hi[1] - h + border], 0)
    padded = pad.max() > border - 4
    if padded:
        left, top, right, bottom = (int(p) for p in np.maximum(pad, max(np.rint(qsize * 0.3), 1.0)))
        mode = cv2.BORDER_REFLECT_101 if min(h, w) > 1 else cv2.BORDER_REPLICATE
        im = cv2.copyMakeBorder(im, top, bottom, left, right, mode)  # = np.pad(..., 'reflect')
        quad += (left, top)

    # Warp at 2x then area-downsample (FFHQ warps at 4x): cheap anti-aliasing.
    T = 2 * size
    out = cv2.warpAffine(im, crop_matrix(quad, T), (T, T), flags=cv2.INTER_LINEAR,
                         borderMode=cv2.BORDER_REPLICATE)
    out = cv2.resize(out, (size, size), interpolation=cv2.INTER_AREA)
    if padded:  # the blend, computed on the output: size x size work only
        # FFHQ blurs by 0.02 * qsize source pixels = 0.02 * size output pixels
        out = _pad_blend(out, crop_matrix(quad, size), im.shape[:2], (left, top, right, bottom),
                          size * 0.02)
    return out


def _pad_blend(out: np.ndarray, M: np.ndarray, hw: tuple, pad: tuple, blur: float):
    """FFHQ's padding blend done in output pixels (blur and blend commute with the
    similarity warp, up to edge effects). out (S, S, 3) uint8; M (2, 3) padded source ->
    output; hw the padded source size; pad (left, top, right, bottom) in source pixels."""
    S = out.shape[0]
    (H, W), (pl, pt, pr, pb) = hw, pad
    Mi = cv2.invertAffineTransform(M)  # output -> padded source
    u = np.arange(S, dtype=np.float32)
    x = Mi[0, 0] * u[None, :] + Mi[0, 1] * u[:, None] + np.float32(Mi[0, 2])  # (S, S)
    y = Mi[1, 0] * u[None, :] + Mi[1, 1] * u[:, None] + np.float32(Mi[1, 2])
    # 1 at the padded image's edge, 0 at the original border, negative inside
    mask = np.maximum(1.0 - np.minimum(x / pl, (W - 1 - x) / pr),
                      1.0 - np.minimum(y / pt, (H - 1 - y) / pb))[..., None]  # (S, S, 1)
    im = out.astype(np.float32)
    blurred = cv2.GaussianBlur(out, (0, 0), blur).astype(np.float32)
    im += (blurred - im) * np.clip(mask * 3.0 + 1.0, 0.0, 1.0)
    med = np.median(im[::2, ::2].reshape(-1, 3), axis=0)  # (3,) median colour
    im += (med - im) * np.clip(mask, 0.0, 1.0)
    return np.clip(np.rint(im), 0, 255).astype(np.uint8)


# ---------------------------------------------------------------- detection + landmarks


class FaceAligner:
    """Holds the mediapipe graphs (built on first use). Thread-safe: one call at a time."""

    def __init__(self):
        self.lock = threading.Lock()
        self._graphs = None
        self._mesh_whole = {}  # max_num_faces -> FaceMesh on whole images
        self._face_seen = False  # then mediapipe's one-time log lines are behind us

    def _build(self):
        import mediapipe as mp

        face_detection, face_mesh = mp.solutions.face_detection, mp.solutions.face_mesh

        self.face_mesh = face_mesh
        far = face_detection.FaceDetection(model_selection=1, min_detection_confidence=DET_CONF)
        near = face_detection.FaceDetection(model_selection=0, min_detection_confidence=MESH_CONF)
        mesh_crop = face_mesh.FaceMesh(
            static_image_mode=True, max_num_faces=2, min_detection_confidence=MESH_CONF,
            min_tracking_confidence=PRESENCE,
        )
        self._graphs = far, near, mesh_crop

    def _mesh(self, n: int):
        if n not in self._mesh_whole:
            with native_stderr_hidden():  # a new graph logs when it is built and first run
                mesh = self.face_mesh.FaceMesh(
                    static_image_mode=True, max_num_faces=n, min_detection_confidence=MESH_CONF,
                    min_tracking_confidence=PRESENCE,
                )
                mesh.process(np.full((64, 64, 3), 128, np.uint8))
            self._mesh_whole[n] = mesh
        return self._mesh_whole[n]

    def landmarks(self, img: np.ndarray, max_faces: int = 4) -> list[tuple[np.ndarray, float]]:
        """img (H, W, 3) uint8 RGB -> [(lm (468, 2) float32 source pixels, score)], unsorted."""
        with self.lock:
            if self._face_seen:
                return self._landmarks(np.ascontiguousarray(img), max_faces)
            # mediapipe logs when its graphs are built and first run, and on the first face
            # the mesh finds: all of that happens in here
            with native_stderr_hidden():
                if self._graphs is None:
                    self._build()
                found = self._landmarks(np.ascontiguousarray(img), max_faces)
            self._face_seen = bool(found)
            return found

    def _landmarks(self, img, max_faces):
        """landmarks() under the lock."""
        H, W = img.shape[:2]
        far, near, mesh_crop = self._graphs

        # 1-2. full-range detector, then the mesh on each detection's expanded crop
        found = []
        for score, (bx, by, bw, bh) in _detections(far.process(img), W, H)[:max_faces]:
            cx, cy, s = bx + bw / 2, by + bh / 2, max(bw, bh) * 2.0
            x0, y0 = max(int(cx - s / 2), 0), max(int(cy - s / 2), 0)
            x1, y1 = min(int(cx + s / 2), W), min(int(cy + s / 2), H)
            if x1 - x0 < 8 or y1 - y0 < 8:
                continue
            crop, k = img[y0:y1, x0:x1], 1.0
            if max(crop.shape[:2]) > 384:  # the mesh works at 192 px: no need for more
                k = 384 / max(crop.shape[:2])
                crop = cv2.resize(crop, None, fx=k, fy=k, interpolation=cv2.INTER_AREA)
            res = mesh_crop.process(np.ascontiguousarray(crop))
            lms = _mesh_points(res, crop.shape[1], crop.shape[0])
            if not lms:
                continue
            lms = [(lm + 0.5) / k - 0.5 + (x0, y0) for lm in lms]
            # the face nearest the detection's centre
            lm = min(lms, key=lambda p: np.hypot(*(p.mean(0) - (cx, cy))))
            found.append((lm.astype(np.float32), score))

        # 3. close-ups: mesh on the whole image, scored by the short-range detector.
        # A face that overflows the frame is missed by the mesh's own detector: retry
        # on the image inside a grey border (half its size), where the face is whole.
        if not found:
            k = max(H, W) // 2
            for pad in (0, k):
                im = img if not pad else cv2.copyMakeBorder(
                    img, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=(128, 128, 128))
                h, w = im.shape[:2]
                lms = _mesh_points(self._mesh(max_faces).process(im), w, h)
                if lms:
                    break
            dets = _detections(near.process(im), w, h) if lms else []
            for lm in lms:
                box = (*lm.min(0), *lm.max(0))
                ious = [_iou(box, (x, y, x + w, y + h)) for _, (x, y, w, h) in dets]
                score = dets[int(np.argmax(ious))][0] if ious and max(ious) > 0.3 else MESH_CONF
                found.append(((lm - pad).astype(np.float32), score))
        return found

    def align(self, image, size: int = 256, max_faces: int = 4) -> list[Face]:
        """Every face, largest first (at most max_faces). NoFaceError when there is none."""
        img = image
        if not (isinstance(img, np.ndarray) and img.dtype == np.uint8 and img.ndim == 3
                and img.shape[2] == 3):
            img = load_image(image)
        H, W = img.shape[:2]
        found = self.landmarks(img, max_faces)

        # largest first, drop duplicates (two detections of one face)
        found.sort(key=lambda f: -np.prod(f[0].max(0) - f[0].min(0)))
        keep = []
        for lm, score in found:
            box = (*lm.min(0), *lm.max(0))
            if all(_iou(box, (*k.min(0), *k.max(0))) < 0.5 for k, _ in keep):
                keep.append((lm, score))
        if not keep:
            raise NoFaceError(NO_FACE)

        faces = []
        for lm, score in keep[:max_faces]:
            quad = ffhq_quad(lm)
            x0, y0 = np.floor(lm.min(0)).astype(int)
            x1, y1 = np.ceil(lm.max(0)).astype(int)
            box = (max(int(x0), 0), max(int(y0), 0), min(int(x1), W), min(int(y1), H))
            faces.append(Face(warp(img, quad, size), lm, quad, float(score), box))
        return faces


def _detections(res, W: int, H: int) -> list[tuple[float, tuple]]:
    """mediapipe detections -> [(score, (x, y, w, h) pixels)], biggest first."""
    out = []
    for d in res.detections or []:
        b = d.location_data.relative_bounding_box
        out.append((float(d.score[0]), (b.xmin * W, b.ymin * H, b.width * W, b.height * H)))
    return sorted(out, key=lambda d: -d[1][2] * d[1][3])


def _mesh_points(res, W: int, H: int) -> list[np.ndarray]:
    """mediapipe face mesh result -> [(468, 2) pixel coords, pixel centres at integers]."""
    out = []
    for f in res.multi_face_landmarks or []:
        a = np.array([(p.x, p.y) for p in f.landmark], np.float64)[:468]
        out.append(a * (W, H) - 0.5)
    return out


def _iou(a, b) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


_aligner: FaceAligner | None = None
_aligner_lock = threading.Lock()


def get_aligner() -> FaceAligner:
    """The shared FaceAligner, built on first use."""
    global _aligner
    with _aligner_lock:
        if _aligner is None:
            _aligner = FaceAligner()
        return _aligner


def mirror(crops) -> np.ndarray:
    """Aligned crops flipped left-right: (..., H, W, 3) -> the same shape, contiguous."""
    return np.ascontiguousarray(np.asarray(crops)[..., ::-1, :])


def align(image, size: int = 256, max_faces: int = 4) -> list[Face]:
    """Detect, landmark and FFHQ-align every face in image (array, path, bytes or PIL).

    Returns faces largest first; raises NoFaceError when there is none."""
    return get_aligner().align(image, size, max_faces)
