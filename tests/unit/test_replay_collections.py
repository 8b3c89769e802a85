"""While a replay builds, the cyclic GC's young threshold is projections.bulk.YOUNG
(above what a replay holds in flight at its peak); it is put back afterwards, and
garbage in cycles is still collected meanwhile."""

from __future__ import annotations

import gc
import weakref

import pytest

from projections.bulk import YOUNG, fewer_collections


class Node:
    def __init__(self) -> None:
        self.me = self  # a cycle: only the cyclic collector frees it


def test_the_threshold_is_set_and_put_back_on_error() -> None:
    before = gc.get_threshold()
    with pytest.raises(RuntimeError), fewer_collections():
        assert gc.get_threshold() == (YOUNG, *before[1:])
        raise RuntimeError
    assert gc.get_threshold() == before


def test_cycles_made_meanwhile_are_still_collected() -> None:
    with fewer_collections():
        first = Node()
        gone = weakref.ref(first)
        del first
        assert gone() is not None  # not yet: no collection has come
        for _ in range(2 * YOUNG):  # a young container each, at least
            Node()
        assert gone() is None
