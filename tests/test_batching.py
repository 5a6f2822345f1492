import numpy as np
import pytest

from plugins.errors import TfpipeError
from tasks.batching import batch_indices


def test_resuming_at_any_step_feeds_the_same_batches():
    full = batch_indices(103, 10, seed=7, start=0, stop=57)
    for k in (0, 1, 9, 10, 11, 30, 56):
        resumed = np.concatenate([batch_indices(103, 10, 7, 0, k), batch_indices(103, 10, 7, k, 57)])
        assert np.array_equal(full, resumed)


def test_each_epoch_is_a_permutation_without_repeats():
    rows = batch_indices(100, 10, seed=1, start=0, stop=20)
    first, second = rows[:10].ravel(), rows[10:].ravel()
    assert sorted(first) == list(range(100)) and sorted(second) == list(range(100))
    assert not np.array_equal(first, second)


def test_batch_larger_than_data_is_an_error():
    with pytest.raises(TfpipeError, match="batch_size=50 is larger than the training set"):
        batch_indices(20, 50, seed=0, start=0, stop=1)
