"""`jetpost` under the SIGPROF sampler (bench.sampler), for `bench.api --sample`:

    python -m bench.sampled OUT.txt run api

runs `jetpost run api` in this process with the sampler on, and writes its report to
OUT.txt when the process ends (SIGTERM included: the CLI stops on it cleanly).
SIGUSR1 starts the count afresh (bench.api sends it once the API is up, so start-up
is not in the report).
"""

from __future__ import annotations

import signal
import sys
from pathlib import Path

from bench.sampler import Sampler


def main() -> int:
    out, argv = Path(sys.argv[1]), sys.argv[2:]
    from services.cli.main import main as jetpost

    sampler = Sampler(interval=0.001)
    signal.signal(signal.SIGUSR1, lambda *_: sampler.__init__(sampler.interval))  # type: ignore[misc]
    sampler.start()
    try:
        return jetpost(argv)
    finally:
        sampler.stop()
        out.write_text(sampler.report(top=40) + "\n")


if __name__ == "__main__":
    sys.exit(main())
