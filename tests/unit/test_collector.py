"""shared.collector: start-up objects frozen, young collections after 10,000."""

from __future__ import annotations

import gc

from shared.collector import YOUNG_THRESHOLD, freeze_start_up


def test_freeze_start_up_freezes_and_raises_the_young_threshold() -> None:
    before = gc.get_threshold()
    kept = [object() for _ in range(10)]
    try:
        freeze_start_up(collect=False)
        assert gc.get_threshold() == (YOUNG_THRESHOLD, *before[1:])
        assert gc.get_freeze_count() >= len(kept)
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)
