"""Linux process facts for tests of commands that start processes of their own."""

from __future__ import annotations

from pathlib import Path


def alive(pid: int) -> bool:
    """Running (a zombie waiting for its parent to reap it counts as gone)."""
    try:
        return "(zombie)" not in Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False


def children(pid: int, running: str | None = None) -> list[int]:
    """`pid`'s child processes; with `running`, only those whose command line holds
    it (a process also starts short-lived helpers: importing trio runs `ldconfig -p`)."""
    found = [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    return found if running is None else [p for p in found if running in command_line(p)]


def command_line(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except FileNotFoundError:
        return ""
