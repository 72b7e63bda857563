import os
import time
import zipfile
from pathlib import Path

import numpy as np

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


def test_outputs_honour_the_umask(tmp_path: Path):
    old = os.umask(0o022)
    try:
        write_json(tmp_path / "out.json", {"a": 1})
        save_keras_model(_model(0), tmp_path / "m.keras")
    finally:
        os.umask(old)
    assert (tmp_path / "out.json").stat().st_mode & 0o777 == 0o644
    assert (tmp_path / "m.keras").stat().st_mode & 0o777 == 0o644


def test_write_json_can_keep_insertion_order(tmp_path: Path):
    write_json(tmp_path / "m.json", {"test": 1, "ci": 2}, sort_keys=False)
    assert (tmp_path / "m.json").read_text().index("test") < (tmp_path / "m.json").read_text().index("ci")
