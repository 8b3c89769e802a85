"""The cyclic garbage collector in a long-running jetpost process (API, pipeline).

Young objects the cyclic GC lets pile up before it looks at them: Python's default is
700. A request's or a mail's objects die by reference counting as it ends, but the
requests (16 clients) or mails (hundreds in flight) a process holds make more than 700
at times, so the collector ran over and over for nothing:
- bench.api, 13,200 requests: 161 young and 14 middle collections of 0.4 ms (up to
  2.3 ms) each came from in-flight requests alone, and none at all with 10,000;
- bench.e2e_send, 3,000 mails in one process: 346 young, 32 middle and 2 full
  collections, 0.45-0.49 s, about 4% of the run's CPU; with 10,000, 3-4 young ones
  (0.02-0.04 s).
Garbage in cycles is still collected: a young collection comes once 10,000 more
objects were made than freed.
"""

from __future__ import annotations

import gc

YOUNG_THRESHOLD = 10_000


def freeze_start_up(*, collect: bool = True) -> None:
    """Once a process serves: what start-up made (the app, its OpenAPI document,
    templates, models, FastStream's graph) lives as long as the process; the cyclic
    GC stops walking it on every full collection, and collects the young generation
    after YOUNG_THRESHOLD allocations instead of 700. `collect`: a full collection
    first, so no start-up garbage is frozen with it."""
    if collect:
        gc.collect()
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, middle, old)
