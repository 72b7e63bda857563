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


def test_classes_carry_a_learnable_colour_cue(tmp_path: Path):
    import numpy as np

    counts = generate(tmp_path, 240, 40, seed=0, workers=1, progress=False)
    assert {p.parent.name for p in tmp_path.rglob("*.png")} == set(counts) and sum(counts.values()) == 240
    image = Image.open(next(tmp_path.rglob("*.png")))
    assert image.size == (40, 40) and image.mode == "RGB"
    # A nearest-class-mean rule on the mean colour of the image centre (the lesion) beats chance by far:
    # the classes differ in what the images show, not only in their folder names.
    names = sorted(counts)
    x = np.array(
        [np.asarray(Image.open(p))[12:28, 12:28].reshape(-1, 3).mean(0) for p in sorted(tmp_path.rglob("*.png"))]
    )
    y = np.array([names.index(p.parent.name) for p in sorted(tmp_path.rglob("*.png"))])
    train = np.arange(len(y)) % 2 == 0
    means = np.array([x[train & (y == c)].mean(0) for c in range(len(names))])
    predicted = np.argmin(((x[~train, None, :] - means[None]) ** 2).sum(-1), axis=1)
    recall = [np.mean(predicted[y[~train] == c] == c) for c in range(len(names))]
    assert np.mean(recall) > 2 / len(names)


def test_class_counts_sum_exactly():
    for n in (50, 51, 99, 1000):
        counts = class_counts(n)
        assert sum(counts) == n and len(counts) == len(CLASSES) and min(counts) > 0
