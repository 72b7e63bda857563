import os
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest

from skinlesion.core.io import save_keras_model, write_json


def _model(seed: int):
    import keras

    keras.utils.set_random_seed(seed)
    return keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])


def test_same_weights_give_byte_identical_keras_files(tmp_path: Path):
    import keras

    model = _model(0)
    save_keras_model(model, tmp_path / "a.keras")
    time.sleep(1.1)  # Keras stamps the second of saving; the saved bytes must not depend on it
    save_keras_model(model, tmp_path / "b.keras")
    assert (tmp_path / "a.keras").read_bytes() == (tmp_path / "b.keras").read_bytes()
    save_keras_model(_model(1), tmp_path / "c.keras")
    assert (tmp_path / "c.keras").read_bytes() != (tmp_path / "a.keras").read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.keras", "b.keras", "c.keras"]  # no scratch left
    with zipfile.ZipFile(tmp_path / "a.keras") as z:
        assert b"date_saved" not in z.read("metadata.json")
    loaded = keras.saving.load_model(tmp_path / "a.keras", safe_mode=True, compile=False)
    x = np.ones((2, 4), dtype="float32")
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))


@pytest.fixture(params=[0o022, 0o077], ids=["umask022", "umask077"])
def umask(request) -> int:
    """Run the test under this umask (the process's own, restored afterwards)."""
    old = os.umask(request.param)
    yield request.param
    os.umask(old)


def mode(path: Path) -> int:
    return path.stat().st_mode & 0o777


def test_outputs_honour_the_umask(tmp_path: Path, umask: int):
    import matplotlib.figure

    from skinlesion.core.io import save_figure, write_together

    write_json(tmp_path / "out.json", {"a": 1})
    save_keras_model(_model(0), tmp_path / "m.keras")
    save_figure(matplotlib.figure.Figure(figsize=(1, 1)), tmp_path / "fig.png")
    write_together({tmp_path / "new" / "a.csv": "a\n", tmp_path / "new" / "b.csv": "b\n"}, tmp_path / ".journal")
    # 0644 under 022, 0600 under 077: what open() gives any file, not mkstemp's 0600 nor a fixed 0644.
    expected = 0o666 & ~umask
    for name in ("out.json", "m.keras", "fig.png", "new/a.csv", "new/b.csv"):
        assert mode(tmp_path / name) == expected, (name, oct(mode(tmp_path / name)))
    assert mode(tmp_path / "new") == 0o777 & ~umask  # folders made for an output too


class Broken(RuntimeError):
    pass


def test_a_writer_that_fails_half_way_leaves_the_previous_file_and_no_temporary(tmp_path: Path):
    from skinlesion.core.io import atomic_path, write_text

    target = tmp_path / "metrics.json"
    write_text(target, "previous\n")
    with pytest.raises(Broken), atomic_path(target) as tmp:
        tmp.write_text("half of the new ")  # the writer got part-way, then failed
        raise Broken
    assert target.read_text() == "previous\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["metrics.json"]
    # With no previous file, a failed write leaves nothing at all (DVC must not cache half a file).
    with pytest.raises(Broken), atomic_path(tmp_path / "sub" / "new.csv") as tmp:
        tmp.write_text("a,b\n1,")
        raise Broken
    assert not (tmp_path / "sub" / "new.csv").exists() and list((tmp_path / "sub").iterdir()) == []


def test_a_figure_or_model_whose_saving_fails_leaves_the_previous_file_and_no_temporary(tmp_path: Path):
    import matplotlib.figure

    from skinlesion.core.io import save_figure

    class FailingFigure(matplotlib.figure.Figure):
        def savefig(self, fname, **kwargs):
            Path(fname).write_bytes(b"\x89PNG half")  # part of the picture reached the disk
            raise Broken

    figure = tmp_path / "plot.png"
    save_figure(matplotlib.figure.Figure(figsize=(1, 1)), figure)
    before = figure.read_bytes()
    with pytest.raises(Broken):
        save_figure(FailingFigure(figsize=(1, 1)), figure)
    assert figure.read_bytes() == before

    model, path = _model(0), tmp_path / "model.keras"
    save_keras_model(model, path)
    saved = path.read_bytes()

    def save_half(target, *args, **kwargs):
        Path(target).write_bytes(saved[: len(saved) // 2])
        raise Broken

    model.save = save_half
    with pytest.raises(Broken):
        save_keras_model(model, path)
    assert path.read_bytes() == saved
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.keras", "plot.png"]  # no scratch file or folder


def test_write_json_can_keep_insertion_order(tmp_path: Path):
    write_json(tmp_path / "m.json", {"test": 1, "ci": 2}, sort_keys=False)
    assert (tmp_path / "m.json").read_text().index("test") < (tmp_path / "m.json").read_text().index("ci")


def test_csv_cells_that_start_a_formula_are_neutralised_and_read_back_as_written(tmp_path: Path):
    import pandas as pd

    from skinlesion.core.io import neutralise, read_csv, write_csv

    assert neutralise("\rx") == "'\rx"  # (a carriage return inside a cell does not survive pandas' CSV reader)
    names = ["=HYPERLINK(1)", "+1", "-ve", "@SUM(A1)", "\tx", "'quoted", "nevus", ""]
    frame = pd.DataFrame({"name": names, "score": [-1.5] * len(names), "count": range(-4, len(names) - 4)})
    write_csv(tmp_path / "t.csv", frame)
    text = (tmp_path / "t.csv").read_text()
    assert "\n'=HYPERLINK(1),-1.5,-4\n" in text and "\n'-ve," in text and "\n''quoted," in text
    assert "\nnevus,-1.5,2\n" in text  # ordinary text and every number (negative ones too) as they are
    lines = text.splitlines()[1:]
    assert not [line for line in lines if line[:1] in ("=", "+", "-", "@", "\t", "\r", '"')]
    back = read_csv(tmp_path / "t.csv", keep_default_na=False)
    assert back["name"].tolist() == names and back["score"].tolist() == [-1.5] * len(names)


def test_write_together_replaces_all_files_or_none(tmp_path: Path, monkeypatch):
    from skinlesion.core import io

    targets = [tmp_path / "a" / "one.csv", tmp_path / "b" / "two.json", tmp_path / "b" / "three.csv"]
    journal = tmp_path / ".journal.json"
    io.write_together({p: "old " + p.name for p in targets[:2]}, journal)  # three.csv has no old version
    real, calls = io._swap, []

    def fail_third(new, target):
        calls.append(target)
        if len(calls) == 3:
            raise OSError(5, "Input/output error")
        real(new, target)

    monkeypatch.setattr(io, "_swap", fail_third)
    with pytest.raises(OSError):
        io.write_together({p: "new " + p.name for p in targets}, journal)
    assert [p.read_text() for p in targets[:2]] == ["old one.csv", "old two.json"] and not targets[2].exists()
    assert sorted(p.name for p in tmp_path.rglob("*") if p.is_file()) == ["one.csv", "two.json"]
    monkeypatch.undo()
    io.write_together({p: "new " + p.name for p in targets}, journal)
    assert [p.read_text() for p in targets] == ["new one.csv", "new two.json", "new three.csv"]
    assert not journal.exists()


def test_models_carry_metadata_deterministically(tmp_path: Path):
    from skinlesion.core.io import read_keras_metadata

    model = _model(0)
    save_keras_model(model, tmp_path / "a.keras", {"skinlesion": {"classes": ["b", "a"], "image_size": 4}})
    save_keras_model(model, tmp_path / "b.keras", {"skinlesion": {"classes": ["b", "a"], "image_size": 4}})
    save_keras_model(model, tmp_path / "c.keras", {"skinlesion": {"classes": ["a", "b"], "image_size": 4}})
    assert (tmp_path / "a.keras").read_bytes() == (tmp_path / "b.keras").read_bytes()
    assert (tmp_path / "a.keras").read_bytes() != (tmp_path / "c.keras").read_bytes()
    meta = read_keras_metadata(tmp_path / "c.keras")
    assert meta["skinlesion"] == {"classes": ["a", "b"], "image_size": 4} and "keras_version" in meta
