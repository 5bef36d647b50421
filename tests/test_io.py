import io
import struct
import time
import zlib

import cv2
import numpy as np
import pytest
from PIL import Image

from lf_core.errors import BadInputError
from lf_core.io import (
    MAX_PIXELS,
    VideoFrame,
    is_video,
    load_image,
    read_video,
    save_image,
    video_info,
)

REAL_VIDEO = "videos/real/lynaeydofd.mp4"


def rgb_u8(a):
    assert a.dtype == np.uint8 and a.ndim == 3 and a.shape[2] == 3, (a.dtype, a.shape)
    return a


def png_header(w, h, bit_depth=8, colour=2):
    """A PNG whose IHDR declares w x h and whose data is a few bytes only."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", w, h, bit_depth, colour, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr)
            + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b""))


def jpeg_bytes(arr, **kw):
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, "JPEG", quality=95, **kw)
    return buf.getvalue()


# ---------------------------------------------------------------- bad inputs


def test_zero_byte_file(tmp_path):
    p = tmp_path / "empty.jpg"
    p.write_bytes(b"")
    with pytest.raises(BadInputError, match="empty"):
        load_image(p)
    with pytest.raises(BadInputError):
        load_image(b"")


def test_truncated_jpeg(tmp_path):
    data = jpeg_bytes(np.random.default_rng(0).integers(0, 255, (200, 200, 3), np.uint8))
    p = tmp_path / "cut.jpg"
    p.write_bytes(data[: len(data) // 2])
    with pytest.raises(BadInputError, match="truncated"):
        load_image(p)


def test_text_file_named_jpg(tmp_path):
    p = tmp_path / "notes.jpg"
    p.write_text("this is not an image\n" * 10)
    with pytest.raises(BadInputError, match="not an image"):
        load_image(p)
    with pytest.raises(BadInputError):
        load_image(b"\x00\x01garbage" * 100)


@pytest.mark.parametrize("side", [30000, 8000])  # beyond PIL's bomb limit; beyond ours only
def test_huge_png_header_refused_before_decoding(tmp_path, side):
    assert side * side > MAX_PIXELS
    p = tmp_path / "bomb.png"
    p.write_bytes(png_header(side, side))
    t = time.perf_counter()
    with pytest.raises(BadInputError, match="too") as e:
        load_image(p)
    assert time.perf_counter() - t < 0.5  # refused from the header, nothing decoded
    assert "\n" not in str(e.value)


def test_missing_file_and_folder(tmp_path):
    with pytest.raises(BadInputError, match="not found"):
        load_image(tmp_path / "nope.png")
    with pytest.raises(BadInputError, match="not a file"):
        load_image(tmp_path)


def test_bad_arrays():
    for a in [np.zeros((4, 4, 2), np.uint8), np.zeros((0, 4, 3), np.uint8),
              np.zeros((4, 4, 3), np.int64), np.full((4, 4, 3), np.nan, np.float32),
              np.zeros((2, 4, 4, 3), np.uint8)]:
        with pytest.raises(BadInputError):
            load_image(a)
    with pytest.raises(BadInputError):
        load_image(12345)


# ---------------------------------------------------------------- conversions


def test_rgb_jpeg_and_sources(tmp_path):
    a = np.zeros((32, 48, 3), np.uint8)
    a[:, :24] = (200, 30, 40)
    a[:, 24:] = (20, 60, 220)
    data = jpeg_bytes(a)
    p = tmp_path / "x.jpg"
    p.write_bytes(data)
    for src in (p, str(p), data, Image.open(io.BytesIO(data)), a):
        out = rgb_u8(load_image(src))
        assert out.shape == (32, 48, 3)
        assert np.abs(out[16, 8].astype(int) - (200, 30, 40)).max() <= 6
        assert np.abs(out[16, 40].astype(int) - (20, 60, 220)).max() <= 6


def test_cmyk_jpeg(tmp_path):
    im = Image.new("CMYK", (16, 16), (0, 255, 255, 0))  # red
    p = tmp_path / "cmyk.jpg"
    im.save(p, "JPEG", quality=95)
    out = rgb_u8(load_image(p))
    assert np.abs(out[8, 8].astype(int) - (255, 0, 0)).max() <= 8


def test_greyscale(tmp_path):
    p = tmp_path / "g.png"
    Image.fromarray(np.full((10, 12), 77, np.uint8), "L").save(p)
    out = rgb_u8(load_image(p))
    assert out.shape == (10, 12, 3) and (out == 77).all()
    assert (load_image(np.full((5, 5), 0.5, np.float32)) == 128).all()


def test_grey_alpha_on_white(tmp_path):
    a = np.zeros((8, 8, 2), np.uint8)
    a[..., 0] = 40
    a[:, 4:, 1] = 255  # left half transparent, right half opaque
    p = tmp_path / "la.png"
    Image.fromarray(a, "LA").save(p)
    out = rgb_u8(load_image(p))
    assert (out[:, :4] == 255).all() and (out[:, 4:] == 40).all()


def test_rgba_and_palette_transparency_on_white(tmp_path):
    a = np.zeros((8, 8, 4), np.uint8)
    a[..., :3] = (10, 200, 30)
    a[:, 4:, 3] = 255
    a[:, 2, 3] = 128  # half transparent: half way to white
    p = tmp_path / "rgba.png"
    Image.fromarray(a, "RGBA").save(p)
    out = rgb_u8(load_image(p))
    assert (out[:, 0] == 255).all() and (out[:, 6] == (10, 200, 30)).all()
    assert np.abs(out[0, 2].astype(int) - (132, 228, 142)).max() <= 1
    assert (load_image(a)[:, 0] == 255).all()

    pal = Image.fromarray(np.array([[0, 1], [1, 0]], np.uint8), "P")
    pal.putpalette([255, 0, 0, 0, 0, 255] + [0] * 762)
    pal.info["transparency"] = 0
    p = tmp_path / "pal.png"
    pal.save(p, transparency=0)
    out = rgb_u8(load_image(p))
    assert (out[0, 0] == 255).all() and (out[0, 1] == (0, 0, 255)).all()


def test_16bit_png(tmp_path):
    g = np.array([[0, 257 * 100, 65535]], np.uint16)
    p = tmp_path / "g16.png"
    Image.fromarray(g).save(p)  # mode I;16
    out = rgb_u8(load_image(p))
    assert out[0, :, 0].tolist() == [0, 100, 255] and (out[..., 0] == out[..., 2]).all()

    rgb = np.zeros((4, 4, 3), np.uint16)
    rgb[...] = (65535, 257 * 50, 0)  # R, G, B
    p = tmp_path / "rgb16.png"
    assert cv2.imwrite(str(p), rgb[..., ::-1])  # cv2 writes BGR
    out = rgb_u8(load_image(p))
    assert (out == (255, 50, 0)).all()
    assert (load_image(rgb) == (255, 50, 0)).all()


def test_exif_orientation(tmp_path):
    a = np.zeros((20, 40, 3), np.uint8)
    a[:, :20] = (255, 0, 0)  # left half red
    a[:, 20:] = (0, 0, 255)  # right half blue
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    p = tmp_path / "rot.jpg"
    p.write_bytes(jpeg_bytes(a, exif=exif.tobytes()))
    out = rgb_u8(load_image(p))
    assert out.shape == (40, 20, 3)
    assert out[5, 10, 0] > 200 and out[5, 10, 2] < 50  # top is red
    assert out[35, 10, 2] > 200 and out[35, 10, 0] < 50  # bottom is blue


def test_animated_gif_first_frame(tmp_path):
    red = Image.new("RGB", (10, 10), (255, 0, 0))
    blue = Image.new("RGB", (10, 10), (0, 0, 255))
    p = tmp_path / "anim.gif"
    red.save(p, save_all=True, append_images=[blue], duration=100, loop=0)
    out = rgb_u8(load_image(p))
    assert (out == (255, 0, 0)).all()


# ---------------------------------------------------------------- save


def test_save_image_roundtrip_and_atomic(tmp_path, monkeypatch):
    a = np.random.default_rng(1).integers(0, 255, (16, 16, 3), np.uint8)
    p = tmp_path / "out.png"
    save_image(a, p)
    assert (load_image(p) == a).all()
    assert [f.name for f in tmp_path.iterdir()] == ["out.png"]

    def broken_save(self, fp, *args, **kw):
        fp.write(b"half")
        raise OSError("disk full")

    monkeypatch.setattr(Image.Image, "save", broken_save)
    with pytest.raises(OSError):
        save_image(np.zeros_like(a), p)
    assert (load_image(p) == a).all()  # old file intact
    assert [f.name for f in tmp_path.iterdir()] == ["out.png"]  # no temp file left


# ---------------------------------------------------------------- video


def test_is_video():
    assert is_video("a.MP4") and is_video("b/c.webm") and is_video("x.m4v")
    assert not is_video("a.jpg") and not is_video("mp4")


def test_video_info(data_dir):
    info = video_info(data_dir / REAL_VIDEO)
    assert (info.width, info.height, info.n_frames) == (1920, 1080, 300)
    assert abs(info.fps - 29.97) < 0.1


def test_read_video_every(data_dir):
    frames = list(read_video(data_dir / REAL_VIDEO, every=100))
    assert [f.index for f in frames] == [0, 100, 200]
    assert all(isinstance(f, VideoFrame) for f in frames)
    for f in frames:
        assert f.image.shape == (1080, 1920, 3) and f.image.dtype == np.uint8
        assert abs(f.time_s - f.index / 29.97) < 0.01
    assert [f.index for f in read_video(data_dir / REAL_VIDEO, every=50, max_frames=2)] == [0, 50]


def test_corrupt_videos(tmp_path, data_dir):
    data = (data_dir / REAL_VIDEO).read_bytes()
    cases = {
        "empty.mp4": b"",
        "text.mp4": b"not a video\n" * 100,
        "cut.mp4": data[: len(data) // 2],  # moov atom (at the end) missing
    }
    i, j = data.find(b"mdat"), data.find(b"moov")
    cases["zeroed.mp4"] = data[: i + 4] + bytes(j - 4 - i - 4) + data[j - 4:]  # no decodable frame
    for name, b in cases.items():
        p = tmp_path / name
        p.write_bytes(b)
        with pytest.raises(BadInputError):
            read_video(p)
    with pytest.raises(BadInputError):
        video_info(tmp_path / "text.mp4")
    with pytest.raises(BadInputError):
        read_video(tmp_path / "missing.mp4")
