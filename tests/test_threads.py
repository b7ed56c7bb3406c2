"""set_threads: the one place lrlab sets torch's thread count."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lrlab.threads import set_threads


def test_sets_and_returns_the_previous_count():
    assert torch.get_num_threads() == 1
    assert set_threads(2) == 1 and torch.get_num_threads() == 2
    assert set_threads(np.int64(1)) == 2 and torch.get_num_threads() == 1
    assert set_threads(None) == 1 and torch.get_num_threads() == 1  # None keeps the count


@pytest.mark.parametrize("bad", [0, -1, 1.5, "2", True])
def test_rejects_anything_but_a_positive_integer(bad):
    with pytest.raises(ValueError, match="threads"):
        set_threads(bad)
    assert torch.get_num_threads() == 1
