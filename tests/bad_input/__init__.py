"""Bad input never hurts (#19): every kind gives one ``error:`` line (exit status 2) or a counted skip.

Each test builds its bad input in a temporary project folder and runs the real entry point: the fetch
and split stages' ``main`` (in-process, from the project folder; a few as subprocesses, as DVC runs
them) and ``skinlesion-predict``'s ``main``. A test passes when the run fails with exactly one line
starting ``error:`` (the library's own log lines are never read) and no traceback, or succeeds with the
file counted under its reason in the stage's output; nothing produced before may be lost.

helpers.py holds those checks (``fails_once``, ``skipped_once``, ``counted_once`` for an external set), the
project folder, the external set and the predict command; conftest.py their fixtures. The modules, by entry
point or concern: test_split_input.py, test_fetch_input.py (archives and source folders),
test_metadata_input.py, test_params_input.py, test_external_input.py (external sets: their files, source,
metadata and labels), test_predict_model_input.py (the model and its labels.json), test_predict_input.py
(images, options, output path), test_predict_output.py (how -o is written: full disk, links, FIFOs,
concurrent runs), test_interrupt.py (Ctrl-C) and test_recovery.py (interrupted or crashed runs: nothing
produced before is lost).
"""
