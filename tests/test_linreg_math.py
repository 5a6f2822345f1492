"""The hand-written numpy gradient descent and its helpers (pure functions, no TensorFlow)."""
import numpy as np
import pytest

from tasks.basics import linreg_math as lm
from tasks.basics.linreg import PRICES, YEARS


def normalised():
    xs, ys = lm.check_data(YEARS, PRICES)
    return lm.min_max(xs)[0], lm.min_max(ys)[0]


def test_classic_numbers_every_2000_steps():
    x, y = normalised()
    fit = lm.fit_numpy(x, y, 1e-3, 10000, 2000)
    assert fit.diverged_at is None
    assert [s["step"] for s in fit.snapshots] == [2000, 4000, 6000, 8000, 10000]
    assert fit.snapshots[-1]["a"] == pytest.approx(0.97637, abs=1e-5)
    assert fit.snapshots[-1]["b"] == pytest.approx(0.05757, abs=1e-5)
    assert fit.snapshots[0]["a"] == pytest.approx(0.70833, abs=1e-5)
    losses = [s["loss"] for s in fit.snapshots]
    assert losses == sorted(losses, reverse=True)  # gradient descent with a small step only goes down


def test_gradients_are_those_of_half_sum_of_squares():
    x, y = normalised()
    one = lm.fit_numpy(x, y, 0.1, 1, 1, a=0.3, b=0.2).snapshots[0]
    error = 0.3 * x + 0.2 - y
    assert one["a"] == pytest.approx(0.3 - 0.1 * np.sum(error * x))
    assert one["b"] == pytest.approx(0.2 - 0.1 * np.sum(error))


def test_divergence_reports_the_step():
    x, y = normalised()
    fit = lm.fit_numpy(x, y, 5.0, 10000, 2000)
    assert fit.diverged_at is not None and 1 < fit.diverged_at < 10000
    assert fit.snapshots == []  # nothing after step 2000 is recorded, nothing non-finite either


@pytest.mark.parametrize("x, y, message", [
    ([1, 2, float("nan")], [1, 2, 3], "x has non-finite values at positions [2]"),
    ([1, 2, 3], [1, float("inf"), 3], "y has non-finite values at positions [1]"),
    ([1, 2], [1, 2, 3], "same length"),
    ([1, 1, 1], [1, 2, 3], "x is constant"),
])
def test_bad_data_is_refused_with_a_reason(x, y, message):
    with pytest.raises(lm.BadInput, match=message.replace("[", r"\[").replace("]", r"\]")):
        lm.check_data(x, y)


def test_original_units_round_trip():
    xs, ys = np.array(YEARS), np.array(PRICES)
    slope, intercept = lm.to_original_units(0.9, 0.1, (xs.min(), xs.max()), (ys.min(), ys.max()))
    x_norm = (2015 - xs.min()) / (xs.max() - xs.min())
    assert slope * 2015 + intercept == pytest.approx(ys.min() + (0.9 * x_norm + 0.1) * (ys.max() - ys.min()))
    assert slope == pytest.approx(0.9 * 5500 / 4)
