import hashlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import skinlesion.core.decoded as decoded
from skinlesion.core.decoded import DecodedImages, decoded_images
from skinlesion.core.images import ImageLoadError, load_batch

from .conftest import write_image


def _files(root: Path, n: int, size: int = 40) -> tuple[list[str], list[str]]:
    paths = [str(write_image(root / f"img_{i:03d}.jpg", i, size=size, fmt="JPEG")) for i in range(n)]
    return paths, [hashlib.sha256(Path(p).read_bytes()).hexdigest() for p in paths]


def test_cache_holds_exactly_the_pixels_of_a_direct_decode_in_order(tmp_path: Path):
    paths, sha = _files(tmp_path / "img", 7)
    images = decoded_images(paths, sha, 24, root=tmp_path / "cache", workers=1, log=lambda _: None)
    expected = load_batch(paths, 24, workers=1)
    assert len(images) == 7 and images.shape == (7, 24, 24, 3)
    np.testing.assert_array_equal(images.take(np.arange(7)), expected)
    order = np.array([5, 0, 6, 6, 2])
    np.testing.assert_array_equal(images.take(order), expected[order])
    # The file is a plain .npy: numpy reads it too.
    np.testing.assert_array_equal(np.load(images.path), expected)
    with pytest.raises(IndexError, match="out of range"):
        images.take([7])


def test_load_reads_once_into_memory_and_take_then_indexes_it(tmp_path: Path):
    paths, sha = _files(tmp_path / "img", 4)
    images = decoded_images(paths, sha, 16, root=tmp_path / "cache", workers=1, log=lambda _: None)
    assert not images.in_memory
    whole = images.load()
    assert images.in_memory and images.load() is whole and images.nbytes == whole.nbytes
    np.testing.assert_array_equal(images.take([3, 1]), whole[[3, 1]])


def test_second_request_reuses_the_cache_and_a_new_size_or_content_decodes_afresh(tmp_path: Path, monkeypatch):
    paths, sha = _files(tmp_path / "img", 3)
    lines: list[str] = []
    first = decoded_images(paths, sha, 16, root=tmp_path / "cache", workers=1, log=lines.append)
    assert len(lines) == 1 and "decoded 3" in lines[0]

    def no_decoding(*args):
        raise AssertionError("decoded again")

    monkeypatch.setattr(decoded, "load_array", no_decoding)
    again = decoded_images(paths, sha, 16, root=tmp_path / "cache", workers=1, log=lines.append)
    assert again.path == first.path and len(lines) == 1
    monkeypatch.undo()
    other_size = decoded_images(paths, sha, 20, root=tmp_path / "cache", workers=1, log=lines.append)
    reordered = decoded_images(paths[::-1], sha[::-1], 16, root=tmp_path / "cache", workers=1, log=lines.append)
    assert len({first.path, other_size.path, reordered.path}) == 3 and len(lines) == 3
    np.testing.assert_array_equal(reordered.take([0]), first.take([2]))


def test_a_file_that_fails_to_decode_leaves_no_cache_behind(tmp_path: Path):
    paths, sha = _files(tmp_path / "img", 3)
    broken = tmp_path / "img" / "broken.jpg"
    broken.write_bytes(b"not an image")
    with pytest.raises(ImageLoadError, match="broken.jpg"):
        decoded_images([*paths, str(broken)], [*sha, "x"], 16, root=tmp_path / "cache", workers=1, log=print)
    assert [p.name for p in (tmp_path / "cache").rglob("*") if p.suffix != ".lock" and p.is_file()] == []


def test_exif_rotation_and_colour_modes_are_applied_before_caching(tmp_path: Path):
    arr = np.zeros((10, 30, 3), dtype=np.uint8)
    arr[:, :10] = 255  # white band on the left, before rotation
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise when displayed
    path = tmp_path / "rotated.jpg"
    Image.fromarray(arr).save(path, exif=exif, quality=95)
    gray = write_image(tmp_path / "gray.png", 1, size=30, mode="L")
    files = [str(path), str(gray)]
    sha = [hashlib.sha256(Path(p).read_bytes()).hexdigest() for p in files]
    images = decoded_images(files, sha, 30, root=tmp_path / "cache", workers=1, log=lambda _: None)
    np.testing.assert_array_equal(images.take([0, 1]), load_batch(files, 30, workers=1))
    top, bottom = images.take([0])[0, :5].mean(), images.take([0])[0, -5:].mean()
    assert top > 200 > 50 > bottom  # the band is at the top once the orientation is applied


def test_a_file_that_is_not_a_decoded_cache_is_refused(tmp_path: Path):
    np.save(tmp_path / "x.npy", np.zeros((2, 4), dtype=np.float32))
    with pytest.raises(ValueError, match="not a decoded-image cache"):
        DecodedImages(tmp_path / "x.npy")


def test_two_project_copies_share_one_decode_through_the_environment_variable(tmp_path: Path, monkeypatch):
    # `dvc queue start` runs each experiment in its own copy of the project: with the variable set,
    # the second copy finds the first one's file and decodes nothing.
    paths, sha = _files(tmp_path / "img", 3)
    lines: list[str] = []
    monkeypatch.chdir(tmp_path)
    local = decoded_images(paths, sha, 16, workers=1, log=lines.append)
    assert local.path.resolve().parent == (tmp_path / ".cache" / "decoded" / "16px").resolve()
    pixels = local.take(np.arange(3))
    monkeypatch.setenv("SKINLESION_DECODED_DIR", str(tmp_path / "shared"))
    for copy in ("exp-a", "exp-b"):
        (tmp_path / copy).mkdir()
        monkeypatch.chdir(tmp_path / copy)
        shared = decoded_images(paths, sha, 16, workers=1, log=lines.append)
        assert shared.path.parent == tmp_path / "shared" / "16px"
        assert not (tmp_path / copy / ".cache").exists()
    assert len(lines) == 2  # the project-local decode, then one shared decode for both copies
    np.testing.assert_array_equal(shared.take(np.arange(3)), pixels)
