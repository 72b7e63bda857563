"""Temperature scaling: one number, fitted on validation, that makes a model's probabilities honest.

A model's softmax probabilities ``p`` become ``softmax(log(p) / T)``: exactly dividing its logits by ``T``
(``log p`` equals the logits up to a constant per row, which the softmax cancels). ``T > 1`` softens an
over-confident model, ``T < 1`` sharpens; the predicted class never changes. Fitted on validation (Guo et
al. 2017) and built into the saved model's classifier (:func:`skinlesion.modeling.model.set_temperature`),
so every consumer of the model (evaluate, predict, the TFLite export) gets the same calibrated output.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import optimize, special

# Probabilities are clipped here before taking logs (softmax outputs in float32 can be exactly 0).
EPS = 1e-12


def _log_probs(probs: np.ndarray) -> np.ndarray:
    return np.log(np.clip(np.asarray(probs, dtype=float), EPS, 1.0))


def apply_temperature(probs: np.ndarray, temperature: float) -> np.ndarray:
    """Temperature-scaled probabilities: ``softmax(log(p) / T)``.

    The models output softmax probabilities, and ``log p`` equals the logits up to a constant per row, which
    the softmax cancels; so this is exactly temperature scaling of the logits. ``T > 1`` softens
    (over-confident models), ``T < 1`` sharpens. The predicted class never changes.

    Args:
        probs: ``(n, classes)`` probabilities (zeros are clipped to 1e-12 before the log).
        temperature: ``T > 0``.

    Returns:
        ``(n, classes)`` probabilities, rows summing to 1.
    """
    if not temperature > 0:
        raise ValueError(f"temperature must be positive, got {temperature}")
    return special.softmax(_log_probs(probs) / temperature, axis=1)


def temperature_nll(y: np.ndarray, probs: np.ndarray, temperature: float) -> float:
    """Mean negative log-likelihood of the labels under :func:`apply_temperature` (the fitted objective).

    Args:
        y: Integer labels, ``(n,)``.
        probs: ``(n, classes)`` probabilities.
        temperature: ``T > 0``.

    Returns:
        Mean NLL in nats.
    """
    logp = special.log_softmax(_log_probs(probs) / temperature, axis=1)
    return float(-logp[np.arange(len(y)), np.asarray(y)].mean())


def fit_temperature(y: np.ndarray, probs: np.ndarray, *, bounds: tuple[float, float] = (0.05, 20.0)) -> float:
    """The temperature that minimises the validation NLL (Guo et al. 2017), searched on ``log T``.

    Fit it on *validation* probabilities and labels, then apply it unchanged to test (:func:`apply_temperature`);
    fitting on test would make the test calibration optimistic. One parameter, so 135 validation images
    suffice. The predicted classes (so accuracy and balanced accuracy) do not change; one-vs-rest scores
    (a class's probability, a summed malignant probability) can re-rank slightly, since each row is
    renormalised differently, so ROC-AUCs and operating points move a little.

    Args:
        y: Integer validation labels, ``(n,)``.
        probs: ``(n, classes)`` validation probabilities.
        bounds: Search interval for ``T`` (a solution on a bound means the data wanted a more extreme one).

    Returns:
        ``T > 0``.
    """
    y = np.asarray(y)
    logp = _log_probs(probs)
    rows = np.arange(len(y))

    def nll(log_t: float) -> float:
        return float(-special.log_softmax(logp / math.exp(log_t), axis=1)[rows, y].mean())

    result = optimize.minimize_scalar(
        nll, bounds=(math.log(bounds[0]), math.log(bounds[1])), method="bounded", options={"xatol": 1e-6}
    )
    return float(math.exp(result.x))
