import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from skinlesion.core.images import ImageLoadError, check_file, load_array, load_rgb

from .conftest import corrupt_jpeg, write_image


@pytest.mark.parametrize("mode", ["L", "P", "CMYK", "RGBA", "LA", "I;16", "RGB"])
def test_modes_normalise_to_rgb(tmp_path: Path, mode: str):
    fmt = "JPEG" if mode == "CMYK" else ("TIFF" if mode == "LA" else "PNG")
    path = tmp_path / f"x.{fmt.lower()}"
    if mode == "I;16":
        arr = (np.arange(256, dtype=np.uint16).reshape(16, 16) * 257).astype(np.uint16)
        Image.fromarray(arr).save(path)  # uint16 -> a 16-bit PNG
        assert Image.open(path).mode.startswith("I")
    else:
        write_image(path, 1, mode=mode, fmt=fmt)
    image = load_rgb(path)
    assert image.mode == "RGB" and image.size == (16, 16)
    if mode == "I;16":  # full 16-bit range maps onto 0..255
        values = np.asarray(image)[..., 0]
        assert values.min() == 0 and values.max() == 255


def test_rgba_is_composited_on_white(tmp_path: Path):
    Image.new("RGBA", (4, 4), (0, 0, 0, 0)).save(tmp_path / "t.png")
    assert (np.asarray(load_rgb(tmp_path / "t.png")) == 255).all()


def test_exif_orientation_is_applied(tmp_path: Path):
    image = Image.new("RGB", (20, 10), (200, 10, 10))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise when displayed
    image.save(tmp_path / "r.jpg", exif=exif)
    assert load_rgb(tmp_path / "r.jpg").size == (10, 20)


def test_bad_files_have_reasons(tmp_path: Path):
    good = write_image(tmp_path / "good.jpg", 0, size=64, fmt="JPEG")
    data = good.read_bytes()
    (tmp_path / "empty.png").write_bytes(b"")
    (tmp_path / "notes.txt").write_text("hello")
    (tmp_path / "trunc.jpg").write_bytes(data[: len(data) // 2])
    (tmp_path / "corrupt.jpg").write_bytes(corrupt_jpeg(data))
    reasons = {p.name: check_file(str(p)).reason for p in tmp_path.iterdir()}
    assert reasons == {
        "good.jpg": "",
        "empty.png": "empty",
        "notes.txt": "not_an_image",
        "trunc.jpg": "truncated",
        "corrupt.jpg": "corrupt",
    }
    with pytest.raises(ImageLoadError):
        load_rgb(tmp_path / "notes.txt")


def test_load_array_resizes(tmp_path: Path):
    path = write_image(tmp_path / "a.png", 0, size=20)
    assert load_array(path, 8).shape == (8, 8, 3)
    assert load_array(path, 20).tobytes() == np.asarray(Image.open(io.BytesIO(path.read_bytes()))).tobytes()
