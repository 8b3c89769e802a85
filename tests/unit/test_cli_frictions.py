"""What a newcomer trips over in the CLI (issue 12): help for every option, --version,
`config check` catching misspelled variables, commands `jetpost dev` prints that run
as printed, send options, ports in use named with their variable."""

from __future__ import annotations

import argparse
import shlex
import socket
from pathlib import Path

import pytest

from services.api.cli import api_server
from services.cli.config_check import unknown_variables
from services.cli.dev import next_steps
from services.cli.main import main, parser
from services.cli.send import command_of
from shared.ports import PortInUse, binding, ensure_free
from shared.settings import load_settings

Parsers = list[tuple[str, argparse.ArgumentParser]]


def _subparsers(p: argparse.ArgumentParser, path: str = "jetpost") -> Parsers:
    found = [(path, p)]
    for action in p._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                found += _subparsers(child, f"{path} {name}")
    return found


def test_every_option_and_argument_has_help() -> None:
    missing = [
        f"{path}: {action.dest}"
        for path, p in _subparsers(parser())
        for action in p._actions
        if not isinstance(action, argparse._SubParsersAction | argparse._HelpAction)
        and not action.help
    ]
    assert missing == []


def test_version_and_config_check_help(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as version:
        main(["--version"])
    assert version.value.code == 0 and capsys.readouterr().out.startswith("jetpost ")
    with pytest.raises(SystemExit):
        main(["config", "check", "--help"])
    assert capsys.readouterr().out.startswith("usage: jetpost config check")


def test_a_bad_scope_is_explained(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["keys", "create", "--scope", "sned"])
    err = capsys.readouterr().err
    assert "scopes are one or more of send, read, admin; got 'sned'" in err
    assert "parse_scopes" not in err


def test_send_takes_every_field_of_the_command() -> None:
    args = parser().parse_args([
        "send", "--to", "a@example.com", "--cc", "c@example.com", "--bcc", "b@example.com",
        "--header", "X-Campaign: spring", "--transactional", "--track", "opens",
        "--subject", "Hi", "--text", "Hello",
    ])  # fmt: skip
    command = command_of(args)
    assert command["cc"] == ["c@example.com"] and command["bcc"] == ["b@example.com"]
    assert command["headers"] == {"X-Campaign": "spring"}
    assert command["transactional"] is True
    assert command["track"] == {"opens": True, "clicks": False}


def test_config_check_names_misspelled_variables() -> None:
    env = {"JETPOST_APIPORT": "9000", "JETPOST_API_PORT": "9000", "JETPOST_FROM": "x", "HOME": "/"}
    assert unknown_variables(env) == [("JETPOST_APIPORT", " (did you mean JETPOST_API_PORT?)")]


def test_dev_prints_commands_that_carry_this_instance(tmp_path: Path) -> None:
    exe = str(tmp_path / "my venv" / "bin" / "jetpost")
    steps = dict(next_steps("nats://127.0.0.1:4333", "postgresql://postgres:@/postgres?host=/x y",
                            exe))  # fmt: skip
    send = shlex.split(steps["send a mail:"])
    assert send[0] == "JETPOST_NATS_URL=nats://127.0.0.1:4333" and send[1] == exe
    keys = shlex.split(steps["an API key:"])
    assert keys[0] == "JETPOST_DATABASE_URL=postgresql://postgres:@/postgres?host=/x y"
    assert keys[1:5] == [exe, "keys", "create", "--scope"]


def test_the_api_port_in_use_is_named(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        settings = load_settings(api_port=port, database_url="postgresql:///unused",
                                 data_dir=tmp_path)  # fmt: skip
        with pytest.raises(PortInUse, match=rf"JETPOST_API_PORT: port {port} on 127.0.0.1"):
            api_server(settings)


def test_a_port_in_use_is_named_with_its_variable() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(PortInUse, match=rf"JETPOST_NATS_PORT: port {port} .* in use"):
            ensure_free("127.0.0.1", port, "JETPOST_NATS_PORT")
        again = socket.socket()
        try:
            expected = pytest.raises(PortInUse, match="JETPOST_API_PORT")
            with expected, binding("127.0.0.1", port, "JETPOST_API_PORT"):
                again.bind(("127.0.0.1", port))
        finally:
            again.close()
