import hashlib
import io
import os
import tarfile
import zipfile
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from skinlesion.core import data_params
from skinlesion.core.config import DataConfig
from skinlesion.core.errors import DataError
from skinlesion.core.modes import Source
from skinlesion.data import dermamnist
from skinlesion.data.archives import Limits, check_archive
from skinlesion.data.dermamnist import DERMAMNIST_C_FILES, DERMAMNIST_FILES, dermamnist_download, write_dermamnist
from skinlesion.data.fetch import fetch, find_dataset_root

from .conftest import default_config, make_class_tree, write_image


def data_config(source: Source, **changes) -> DataConfig:
    """The repository's ``data:`` params with the source and the settings a test relies on."""
    return replace(default_config().data, source=source, **changes)


def files(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()}


def test_synthetic_source_writes_unsplit_class_folders(tmp_path: Path):
    synthetic = replace(default_config().data.synthetic, n_images=60, image_size=32)
    info = fetch(data_config(Source.SYNTHETIC, synthetic=synthetic), tmp_path / "raw", progress=False)
    assert info["files"] == 60 and info["per_split"] == {"unsplit": 60}
    assert (tmp_path / "raw" / "SOURCE.json").exists()


def test_folder_with_kaggle_style_split_folders_and_unicode_names(tmp_path: Path):
    src = tmp_path / "download" / "my_data"  # a wrapper folder, as in the origin's Kaggle data set
    make_class_tree(src / "Train", {"basal cell carcinoma": 3, "nævus pigmenté": 2})
    make_class_tree(src / "Test", {"basal cell carcinoma": 1, "nævus pigmenté": 1}, start=100)
    (src / "Train" / "README.txt").write_text("no class")
    assert find_dataset_root(tmp_path / "download") == src
    info = fetch(data_config(Source.FOLDER, path=str(tmp_path / "download")), tmp_path / "raw", progress=False)
    assert info["per_split"] == {"test": 2, "train": 5}
    assert info["unlabelled"] == 1
    assert "train/nævus pigmenté/img_0003.png" in files(tmp_path / "raw")


def test_folder_mixing_split_and_class_folders_is_refused(tmp_path: Path):
    make_class_tree(tmp_path / "src" / "train", {"a": 1})
    make_class_tree(tmp_path / "src", {"b": 1})
    with pytest.raises(DataError, match="mixes split folders"):
        fetch(data_config(Source.FOLDER, path=str(tmp_path / "src")), tmp_path / "raw", progress=False)


def test_missing_folder_is_a_clear_error(tmp_path: Path):
    with pytest.raises(DataError, match="data.path"):
        fetch(data_config(Source.FOLDER, path=str(tmp_path / "nope")), tmp_path / "raw", progress=False)


def _zip(path: Path, entries: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in entries.items():
            zf.writestr(name, data)
    return path


def test_zip_source_extracts_inside_raw(tmp_path: Path):
    img = write_image(tmp_path / "i.png", 1).read_bytes()
    archive = _zip(tmp_path / "d.zip", {"data/a/1.png": img, "data/b/2.png": img + b"", "data/b/3.png": img})
    info = fetch(data_config(Source.ZIP, path=str(archive)), tmp_path / "raw", progress=False)
    assert info["files"] == 3
    assert not (tmp_path / "raw" / ".extract").exists()


@pytest.mark.parametrize("name", ["../evil.png", "/abs/evil.png", "a/../../evil.png"])
def test_zip_with_escaping_entry_is_refused_and_writes_nothing_outside(tmp_path: Path, name: str):
    work = tmp_path / "work"
    work.mkdir()
    archive = _zip(tmp_path / "evil.zip", {"ok/a/1.png": b"x", name: b"evil"})
    before = files(tmp_path)
    with pytest.raises(DataError, match="unsafe entry"):
        fetch(data_config(Source.ZIP, path=str(archive)), work / "raw", progress=False)
    assert files(tmp_path) - before == set()
    assert not any(p.name == "evil.png" for p in tmp_path.rglob("*"))


def test_tar_with_symlink_is_refused(tmp_path: Path):
    archive = tmp_path / "l.tar.gz"
    with tarfile.open(archive, "w:gz") as tf:
        info = tarfile.TarInfo("data/a/link.png")
        info.type, info.linkname = tarfile.SYMTYPE, "/etc/passwd"
        tf.addfile(info)
        data = b"png"
        info = tarfile.TarInfo("data/a/1.png")
        info.size = len(data)
        tf.addfile(info, io.BytesIO(data))
    with pytest.raises(DataError, match="link"):
        check_archive(archive, Limits(100, 100))


def test_kaggle_source_from_a_prepopulated_kagglehub_cache(tmp_path: Path, monkeypatch):
    from kagglehub.cache import Cache
    from kagglehub.handle import parse_dataset_handle

    monkeypatch.setenv("KAGGLEHUB_CACHE", str(tmp_path / "kcache"))
    handle = "vinayjayanti/skin-lesion-image-classification/versions/1"
    h = parse_dataset_handle(handle)
    cache = Cache()
    make_class_tree(Path(cache.get_path(h)) / "my_data" / "train", {"a": 2, "b": 2})
    make_class_tree(Path(cache.get_path(h)) / "my_data" / "val", {"a": 1, "b": 1}, start=50)
    cache.mark_as_complete(h)
    info = fetch(data_config(Source.KAGGLE, kaggle_dataset=handle), tmp_path / "raw", progress=False)
    assert info["per_split"] == {"train": 4, "val": 2}


@pytest.fixture
def no_network(monkeypatch):
    """Every download path the fetch code can reach fails at once, as it does offline (and never leaves)."""
    import kagglehub
    from keras.src.utils import file_utils

    def offline(*args, **kwargs):
        raise ConnectionError("network unreachable (test stub)")

    monkeypatch.setattr(kagglehub, "dataset_download", offline)
    monkeypatch.setattr(file_utils, "urlretrieve", offline)


def test_kaggle_offline_without_cache_fails_with_one_line(tmp_path: Path, no_network):
    with pytest.raises(DataError) as info:
        fetch(data_config(Source.KAGGLE, kaggle_dataset="owner/not-cached-anywhere"), tmp_path / "raw", progress=False)
    message = str(info.value)
    assert "data.kaggle_dataset=owner/not-cached-anywhere" in message and "network unreachable" in message
    assert "\n" not in message


def _medmnist_npz(path: Path) -> Path:
    rng = np.random.default_rng(0)
    arrays = {}
    for split, n in (("train", 14), ("val", 7), ("test", 7)):
        arrays[f"{split}_images"] = rng.integers(0, 256, (n, 28, 28, 3), dtype=np.uint8)
        arrays[f"{split}_labels"] = (np.arange(n) % 7).reshape(-1, 1).astype(np.uint8)
    np.savez(path, **arrays)
    return path


def test_dermamnist_from_the_keras_cache_keeps_the_official_split(tmp_path: Path, monkeypatch, no_network):
    cache = tmp_path / "keras"
    npz = _medmnist_npz((cache / "datasets").mkdir(parents=True) or cache / "datasets" / "dermamnist.npz")
    md5 = hashlib.md5(npz.read_bytes()).hexdigest()
    # The test's stand-in file has its own hash; the real check (keras.utils.get_file) still runs on it.
    monkeypatch.setitem(dermamnist.DERMAMNIST_FILES, 28, ("dermamnist.npz", md5))
    path = dermamnist_download(28, cache_dir=str(cache))
    counts = write_dermamnist(path, tmp_path / "raw", progress=False)
    assert counts == {"train": 14, "val": 7, "test": 7}
    assert {p.parent.name for p in (tmp_path / "raw" / "test").rglob("*.png")} == set(dermamnist.DERMAMNIST_CLASSES)


@pytest.mark.parametrize("network", ["offline", "serves-another-file"])
def test_dermamnist_with_wrong_hash_fails_clearly(tmp_path: Path, monkeypatch, network: str):
    from keras.src.utils import file_utils

    cache = tmp_path / "keras"
    (cache / "datasets").mkdir(parents=True)
    _medmnist_npz(cache / "datasets" / "dermamnist.npz")  # not the official bytes: MD5 mismatch
    downloads = []

    def serve_other_file(origin, target, *args):
        downloads.append(origin)
        if network == "offline":
            raise ConnectionError("network unreachable (test stub)")
        Path(target).write_bytes(b"some other file")  # a download that is not the official file either

    monkeypatch.setattr(file_utils, "urlretrieve", serve_other_file)
    with pytest.raises(DataError, match="dermamnist_size=28") as info:
        dermamnist_download(28, cache_dir=str(cache))
    assert "\n" not in str(info.value) and "MD5" in str(info.value)
    assert downloads == [dermamnist.DERMAMNIST_URL.format(name="dermamnist.npz")]  # the mismatch path was taken


def test_zip_of_nothing_usable_is_an_error(tmp_path: Path):
    archive = _zip(tmp_path / "e.zip", {"readme.txt": b"hi"})
    with pytest.raises(DataError):
        fetch(data_config(Source.ZIP, path=str(archive)), tmp_path / "raw", progress=False)
    assert os.listdir(tmp_path) == ["e.zip"]  # no raw folder, nothing half-made beside it


def test_zip_with_a_symlink_entry_is_refused(tmp_path: Path):
    archive = tmp_path / "link.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("data/a/1.png", write_image(tmp_path / "i.png", 1).read_bytes())
        link = zipfile.ZipInfo("data/a/evil.png")
        link.external_attr = 0o120777 << 16  # a symbolic link, as `zip --symlinks` stores it
        zf.writestr(link, "/etc/passwd")
    with pytest.raises(DataError, match="link or special file"):
        fetch(data_config(Source.ZIP, path=str(archive)), tmp_path / "raw", progress=False)
    assert not (tmp_path / "raw" / "train").exists() and not list((tmp_path / "raw").rglob("*.png"))


def test_unreadable_archive_is_a_one_line_error(tmp_path: Path):
    archive = tmp_path / "broken.zip"
    archive.write_bytes(b"PK\x03\x04 this is not really a zip file")
    with pytest.raises(DataError, match="not a readable .zip or .tar archive") as info:
        fetch(data_config(Source.ZIP, path=str(archive)), tmp_path / "raw", progress=False)
    assert "\n" not in str(info.value)


def test_dermamnist_c_from_a_local_npz_is_md5_checked_and_keeps_its_lesion_grouped_split(
    tmp_path: Path, monkeypatch, no_network
):
    npz = _medmnist_npz(tmp_path / "dermamnist_corrected_28.npz")
    md5 = hashlib.md5(npz.read_bytes()).hexdigest()
    monkeypatch.setitem(dermamnist.DERMAMNIST_C_FILES, 28, ("dermamnist_corrected_28.npz", md5))
    data = data_config(Source.DERMAMNIST_C, path=str(npz), dermamnist_size=28)
    info = fetch(data, tmp_path / "raw", progress=False)
    assert info["per_split"] == {"test": 7, "train": 14, "val": 7} and info["md5"] == md5
    # Any other bytes under that name are refused, naming the file, the expected MD5 and the fix.
    np.savez(tmp_path / "other.npz", train_images=np.zeros((1, 28, 28, 3), np.uint8))
    with pytest.raises(DataError) as error:
        fetch(replace(data, path=str(tmp_path / "other.npz")), tmp_path / "raw2", progress=False)
    message = str(error.value)
    assert "\n" not in message and "other.npz" in message and md5 in message and "10.5281/zenodo.11101337" in message


def test_dermamnist_c_from_the_keras_cache_without_a_local_file(tmp_path: Path, monkeypatch, no_network):
    # The published hashes, as the corrected dataset's authors list them (medmnist_corrected/info.py).
    assert dermamnist.DERMAMNIST_C_FILES[28][1] == "96e2862980877d45d9cacb5c25de6950"
    assert dermamnist.DERMAMNIST_C_FILES[224][1] == "84920fb70c83b234c295b6f0d4ae2bc0"
    with pytest.raises(DataError, match="data.dermamnist_size=224") as error:  # offline, not in the cache
        dermamnist_download(224, cache_dir=str(tmp_path / "empty"), corrected=True)
    assert "dermamnist_corrected_224.npz" in str(error.value) and "\n" not in str(error.value)
    cache = tmp_path / "keras"
    (cache / "datasets").mkdir(parents=True)
    npz = _medmnist_npz(cache / "datasets" / "dermamnist_corrected_224.npz")
    md5 = hashlib.md5(npz.read_bytes()).hexdigest()
    monkeypatch.setitem(dermamnist.DERMAMNIST_C_FILES, 224, ("dermamnist_corrected_224.npz", md5))
    assert dermamnist_download(224, cache_dir=str(cache), corrected=True) == npz


def test_dermamnist_files_cover_exactly_the_sizes_params_accept():
    assert set(DERMAMNIST_FILES) == set(data_params.DERMAMNIST_SIZES)
    assert set(DERMAMNIST_C_FILES) == set(data_params.DERMAMNIST_C_SIZES)
