from pathlib import Path

from PIL import Image

from skinlesion.data.synthetic import CLASSES, class_counts, generate


def _tree_bytes(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*.png"))}


def test_same_seed_gives_identical_bytes_and_other_seed_differs(tmp_path: Path):
    generate(tmp_path / "a", 60, 32, seed=3, workers=1, progress=False)
    generate(tmp_path / "b", 60, 32, seed=3, workers=2, progress=False)
    generate(tmp_path / "c", 60, 32, seed=4, workers=1, progress=False)
    a, b, c = (_tree_bytes(tmp_path / x) for x in "abc")
    assert a == b
    assert a.keys() == c.keys() and a != c


def test_imbalanced_classes_and_image_format(tmp_path: Path):
    counts = generate(tmp_path, 100, 40, seed=0, workers=1, progress=False)
    assert len(counts) >= 5 and sum(counts.values()) == 100
    assert max(counts.values()) >= 2 * min(counts.values())
    image = Image.open(next(tmp_path.rglob("*.png")))
    assert image.size == (40, 40) and image.mode == "RGB"


def test_class_counts_sum_exactly():
    for n in (50, 51, 99, 1000):
        counts = class_counts(n)
        assert sum(counts) == n and len(counts) == len(CLASSES) and min(counts) > 0
