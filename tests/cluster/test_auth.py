"""Production NATS has auth: jetpost connects with TLS (its own CA, a client
certificate the server verifies) plus user and password, with an NKEY and with a
creds file (operator mode, JWTs made in tests/cluster/nats_jwt.py), to a real
nats-server configured for them, through the same settings every process reads.
The certificates are made here, with `cryptography`."""

from __future__ import annotations

import datetime
import ipaddress
import os
from pathlib import Path

import nkeys
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from pydantic import SecretStr

from services.runner import make_broker
from shared.nats_connect import NatsUnreachable, bounded, connect
from shared.nats_setup import apply_definitions, load_definitions
from shared.settings import Settings, load_settings
from tests.cluster.conftest import jetpost
from tests.cluster.harness import single_server
from tests.cluster.nats_jwt import operator_setup


def _key_and_cert(
    name: str, issuer: tuple[ec.EllipticCurvePrivateKey, x509.Certificate] | None, folder: Path
) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer[1].subject if issuer else subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.BasicConstraints(ca=issuer is None, path_length=None), critical=True)
    )
    if issuer is not None:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
    cert = builder.sign(issuer[0] if issuer else key, hashes.SHA256())
    (folder / f"{name}.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (folder / f"{name}.key").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )  # fmt: skip
    return key, cert


async def assert_usable(settings: Settings) -> None:
    """The client every process builds, and the services' FastStream broker, get in."""
    nc = await connect(settings)
    try:
        js = nc.jetstream()
        await apply_definitions(js, load_definitions(settings))
        assert (await js.publish("mail.cmd.send", b"{}")).stream == "MAIL_CMD"
    finally:
        await nc.close()
    errors: list[BaseException] = []
    broker = make_broker(settings, errors)
    await bounded(settings, broker.connect(), errors)
    await broker.stop()


@pytest.fixture
def certs(tmp_path: Path) -> Path:
    folder = tmp_path / "certs"
    folder.mkdir()
    ca = _key_and_cert("ca", None, folder)
    _key_and_cert("server", ca, folder)
    _key_and_cert("client", ca, folder)
    return folder


async def test_tls_with_client_certificate_and_password(certs: Path, tmp_path: Path) -> None:
    tls = (f'tls {{ cert_file: "{certs / "server.pem"}", key_file: "{certs / "server.key"}", '
           f'ca_file: "{certs / "ca.pem"}", verify: true, timeout: 2 }}\n'
           'authorization { user: jetpost, password: "s3cret-pass" }')  # fmt: skip
    with single_server(tmp_path / "nats", tls) as port:
        env = {
            "JETPOST_NATS_URL": f"tls://127.0.0.1:{port}",
            "JETPOST_NATS_TLS_CA": str(certs / "ca.pem"),
            "JETPOST_NATS_TLS_CERT": str(certs / "client.pem"),
            "JETPOST_NATS_TLS_KEY": str(certs / "client.key"),
            "JETPOST_NATS_USER": "jetpost",
            "JETPOST_NATS_PASSWORD": "s3cret-pass",
            "JETPOST_NATS_CONNECT_TIMEOUT": "3",
        }
        # the CLI, configured by the environment only
        child = {**{k: v for k, v in os.environ.items() if not k.startswith("JETPOST_")}, **env}
        done = jetpost(["streams"], child)
        assert done.returncode == 0 and "MAIL_EVT" in done.stderr, done.stderr

        settings = load_settings(
            nats_url=env["JETPOST_NATS_URL"], nats_tls_ca=certs / "ca.pem",
            nats_tls_cert=certs / "client.pem", nats_tls_key=certs / "client.key",
            nats_user="jetpost", nats_password="s3cret-pass", nats_connect_timeout=3,
        )  # fmt: skip
        await assert_usable(settings)
        wrong = settings.model_copy(
            update={"nats_password": SecretStr("wrong-password"), "nats_connect_timeout": 3}
        )
        with pytest.raises(NatsUnreachable, match=r"(?i)authorization"):
            await connect(wrong)
        no_cert = settings.model_copy(
            update={"nats_tls_cert": None, "nats_tls_key": None, "nats_connect_timeout": 1.5}
        )
        with pytest.raises(NatsUnreachable, match=f"tls://127.0.0.1:{port}"):
            await connect(no_cert)


async def test_nkey(tmp_path: Path) -> None:
    seed = nkeys.encode_seed(os.urandom(32), nkeys.PREFIX_BYTE_USER)
    public = nkeys.from_seed(seed).public_key.decode()
    seed_file = tmp_path / "user.nk"
    seed_file.write_bytes(seed)
    with single_server(
        tmp_path / "nats", f"authorization {{ users: [ {{ nkey: {public} }} ] }}"
    ) as port:
        settings = load_settings(nats_url=f"nats://127.0.0.1:{port}", nats_nkey_seed=seed_file,
                                 nats_connect_timeout=3)  # fmt: skip
        await assert_usable(settings)
        with pytest.raises(NatsUnreachable):
            await connect(
                settings.model_copy(update={"nats_nkey_seed": None, "nats_connect_timeout": 1.5})
            )


async def test_creds_file(tmp_path: Path) -> None:
    conf, creds = operator_setup(tmp_path)
    with single_server(tmp_path / "nats", conf) as port:
        settings = load_settings(nats_url=f"nats://127.0.0.1:{port}", nats_creds=creds,
                                 nats_connect_timeout=3)  # fmt: skip
        await assert_usable(settings)
        with pytest.raises(NatsUnreachable):
            await connect(settings.model_copy(update={"nats_creds": None,
                                                      "nats_connect_timeout": 1.5}))  # fmt: skip
