"""The embedded nats-server runs with the GOMAXPROCS jetpost chose for it: read from the
running server's own environment, not from what was meant to be passed."""

from __future__ import annotations

from pathlib import Path

from shared.embedded import EmbeddedNats, go_procs


def _environ(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    return dict(item.decode().split("=", 1) for item in raw if b"=" in item)


def test_the_server_gets_its_go_threads(tmp_path: Path) -> None:
    for procs, expected in ((0, go_procs(0)), (3, "3")):
        server = EmbeddedNats(tmp_path / f"nats-{procs}", procs=procs)
        server.start()
        try:
            assert server.process is not None
            assert _environ(server.process.pid)["GOMAXPROCS"] == expected
        finally:
            server.stop()
