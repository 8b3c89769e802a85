"""A port already in use, said plainly: which port, which variable sets it. Raised as a
ConfigError, so the CLI prints one line and stops cleanly instead of a traceback."""

from __future__ import annotations

import contextlib
import errno
import socket
from collections.abc import Iterator

from shared.settings import ConfigError


class PortInUse(ConfigError):
    pass


def in_use(host: str, port: int, variable: str) -> PortInUse:
    return PortInUse(
        f"{variable}: port {port} on {host} is already in use (another jetpost dev?); "
        f"stop that process or set {variable} to a free port"
    )


@contextlib.contextmanager
def binding(host: str, port: int, variable: str) -> Iterator[None]:
    """Turns EADDRINUSE raised inside into PortInUse naming `variable`."""
    try:
        yield
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise in_use(host, port, variable) from None
        raise


def ensure_free(host: str, port: int, variable: str) -> None:
    """For a child process told its port up front (nats-server): check before starting."""
    if port == 0:
        return
    with socket.socket() as probe, binding(host, port, variable):
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind((host, port))
