"""JETPOST_NATS_*: a server list, auth and TLS checked at start-up (and by
`jetpost config check`), and turned into the client's connect options."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest
from faststream.nats.security import NatsUserPassword

from services.cli.main import main
from shared.consumers import heartbeat_interval
from shared.nats_connect import broker_options, connect_options
from shared.settings import ConfigError, load_settings, parse_nats_servers, redact_url


def test_a_comma_separated_list_of_servers() -> None:
    raw = "nats://a:4222, nats://b:4222 ,tls://c:4443"
    assert parse_nats_servers(raw) == ["nats://a:4222", "nats://b:4222", "tls://c:4443"]
    settings = load_settings(nats_url=raw)
    assert connect_options(settings)["servers"] == settings.nats_servers
    assert load_settings().nats_servers == ["nats://127.0.0.1:4222"]


@pytest.mark.parametrize("raw", ["a:4222", "nats://a:4222,http://b", "nats://:4222", ",",
                                 "nats://a:99999"])  # fmt: skip
def test_bad_server_lists_are_refused_naming_the_variable(raw: str) -> None:
    with pytest.raises(ConfigError, match="JETPOST_NATS_URL"):
        load_settings(nats_url=raw)


def test_config_check_refuses_a_bad_list(monkeypatch: pytest.MonkeyPatch,
                                         capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    monkeypatch.setenv("JETPOST_NATS_URL", "nats://a:4222,b:4222")
    assert main(["config", "check"]) == 2
    assert "JETPOST_NATS_URL" in capsys.readouterr().err
    monkeypatch.setenv("JETPOST_NATS_URL", "nats://a:4222,nats://b:4222")
    assert main(["config", "check"]) == 0


def test_passwords_in_a_list_are_redacted() -> None:
    assert redact_url("nats://u:pw@a:4222,nats://b:4222") == "nats://u:***@a:4222,nats://b:4222"


def test_auth_and_tls_options(tmp_path: Path) -> None:
    creds = tmp_path / "user.creds"
    creds.write_text("-----BEGIN NATS USER JWT-----\n")
    options = connect_options(load_settings(nats_creds=creds))
    assert options["user_credentials"] == str(creds)
    assert "tls" not in options and "nkeys_seed" not in options and "user" not in options
    options = connect_options(load_settings(nats_user="u", nats_password="p"))
    assert (options["user"], options["password"]) == ("u", "p")
    broker = broker_options(load_settings(nats_user="u", nats_password="p"))
    assert isinstance(broker["security"], NatsUserPassword) and "user" not in broker


def test_missing_files_and_half_a_client_certificate_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"JETPOST_NATS_CREDS: .*no such file"):
        load_settings(nats_creds=tmp_path / "missing.creds")
    cert = tmp_path / "client.pem"
    cert.write_text("x")
    with pytest.raises(ConfigError, match="JETPOST_NATS_TLS_CERT and JETPOST_NATS_TLS_KEY"):
        load_settings(nats_tls_cert=cert)
    seed = tmp_path / "user.nk"
    seed.write_text("SU...")
    with pytest.raises(ConfigError, match="set one"):
        load_settings(nats_creds=cert, nats_nkey_seed=seed)


def test_a_ca_alone_makes_a_tls_context(tmp_path: Path) -> None:
    ca = Path(ssl.get_default_verify_paths().cafile or "")
    if not ca.is_file():
        pytest.skip("no system CA bundle to stand in for a CA file")
    options = connect_options(load_settings(nats_tls_ca=ca))
    assert isinstance(options["tls"], ssl.SSLContext)


def test_replicas_reach_every_definition() -> None:
    from shared.nats_setup import load_definitions

    definitions = load_definitions(load_settings(nats_replicas=3))
    assert {s.num_replicas for s in definitions.streams} == {3}
    assert {c.num_replicas for _, c in definitions.consumers} == {3}
    assert {kv.replicas for kv in definitions.key_values} == {3}
    assert {s.num_replicas for s in load_definitions(load_settings()).streams} == {1}


def test_ack_waits_are_short_and_heartbeats_beat_four_times_within_one() -> None:
    from shared.nats_setup import load_definitions

    for _, consumer in load_definitions(load_settings()).consumers:
        assert consumer.ack_wait is not None and consumer.ack_wait <= 30, consumer.durable_name
        assert heartbeat_interval(consumer.ack_wait) == consumer.ack_wait / 4
