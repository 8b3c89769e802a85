"""Just enough of NATS's decentralized auth to test a creds file against a real
nats-server: an operator, a system account, an account with JetStream, and a user,
as signed JWTs (ed25519 NKEYs, https://docs.nats.io/.../jwt)."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import time
from pathlib import Path

import nkeys

NO_LIMITS = {"subs": -1, "data": -1, "payload": -1, "imports": -1, "exports": -1,
             "wildcards": True, "conn": -1, "leaf": -1}  # fmt: skip
JETSTREAM = {"mem_storage": -1, "disk_storage": -1, "streams": -1, "consumer": -1}


def _pair(prefix: int) -> tuple[bytes, nkeys.KeyPair]:
    seed = nkeys.encode_seed(os.urandom(32), prefix)
    return seed, nkeys.from_seed(seed)


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _jwt(issuer: nkeys.KeyPair, subject: nkeys.KeyPair, name: str, nats: dict[str, object]) -> str:
    claims: dict[str, object] = {
        "iat": int(time.time()), "iss": issuer.public_key.decode(), "name": name,
        "sub": subject.public_key.decode(), "nats": nats,
    }  # fmt: skip
    claims["jti"] = base64.b32encode(hashlib.sha256(json.dumps(claims).encode()).digest()).decode()
    head = _b64(json.dumps({"typ": "JWT", "alg": "ed25519-nkey"}).encode())
    body = _b64(json.dumps(claims).encode())
    return f"{head}.{body}.{_b64(issuer.sign(f'{head}.{body}'.encode()))}"


def operator_setup(folder: Path) -> tuple[str, Path]:
    """(server configuration, creds file of a user allowed everything, JetStream too)."""
    _, operator = _pair(nkeys.PREFIX_BYTE_OPERATOR)
    _, system = _pair(nkeys.PREFIX_BYTE_ACCOUNT)
    _, account = _pair(nkeys.PREFIX_BYTE_ACCOUNT)
    user_seed, user = _pair(nkeys.PREFIX_BYTE_USER)
    (folder / "operator.jwt").write_text(
        _jwt(operator, operator, "jetpost-test", {"type": "operator", "version": 2})
    )
    accounts = {
        system.public_key.decode(): _jwt(operator, system, "SYS",
                                         {"type": "account", "version": 2, "limits": NO_LIMITS}),
        account.public_key.decode(): _jwt(operator, account, "jetpost", {
            "type": "account", "version": 2, "limits": {**NO_LIMITS, **JETSTREAM}}),
    }  # fmt: skip
    rights = {"type": "user", "version": 2, "pub": {}, "sub": {}, "subs": -1, "data": -1,
              "payload": -1}  # fmt: skip
    user_jwt = _jwt(account, user, "jetpost", rights)
    creds = folder / "jetpost.creds"
    creds.write_text(
        f"-----BEGIN NATS USER JWT-----\n{user_jwt}\n------END NATS USER JWT------\n\n"
        f"-----BEGIN USER NKEY SEED-----\n{user_seed.decode()}\n------END USER NKEY SEED------\n"
    )
    preload = ", ".join(f'{key}: "{jwt}"' for key, jwt in accounts.items())
    conf = (f'operator: "{folder / "operator.jwt"}"\nsystem_account: {system.public_key.decode()}\n'
            f"resolver: MEMORY\nresolver_preload: {{ {preload} }}")  # fmt: skip
    return conf, creds
