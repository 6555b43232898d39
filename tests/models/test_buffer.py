"""``models.core.Buffer``: the most recent values of a growing series."""

from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from models.core import Buffer

chunks = st.lists(st.lists(st.floats(allow_nan=True, allow_infinity=False, width=32), max_size=12), max_size=40)


@given(
    capacity=st.integers(1, 9),
    spare=st.none() | st.integers(1, 9),
    initial=st.lists(st.floats(allow_nan=False, width=32), max_size=15),
    appended=chunks,
)
def test_a_buffer_holds_the_latest_values_the_same_whether_extended_or_appended(capacity, spare, initial, appended):
    by_extend = Buffer(np.array(initial), capacity, spare=spare)
    by_append = Buffer(np.array(initial), capacity, spare=spare)
    most = capacity + (capacity if spare is None else spare)
    everything = list(initial[-capacity:])  # the constructor keeps the last ``capacity``
    for chunk in appended:
        by_extend.extend(np.array(chunk, dtype=float))
        for value in chunk:
            by_append.append(value)
        everything += chunk
        for buffer in (by_extend, by_append):
            held = len(buffer)
            assert min(len(everything), capacity) <= held <= most
            assert np.array_equal(buffer.view(), np.array(everything[len(everything) - held :], dtype=float), equal_nan=True)
            assert buffer.total == len(everything)
        assert np.array_equal(by_append.view()[-capacity:], by_extend.view()[-capacity:], equal_nan=True)
