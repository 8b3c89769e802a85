"""`jetpost dkim keygen DOMAIN [--selector S]` and `jetpost dkim check DOMAIN`.

keygen writes an RSA 2048 key to JETPOST_DKIM_DIR/<domain>/<selector>.pem (mode 0600,
never over an existing key) and prints the TXT record to publish. check resolves
each of the domain's selectors (JETPOST_DNS_RESOLVER when set) and compares the
published public key with the local one.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import re
from dataclasses import dataclass
from pathlib import Path

import dns.asyncresolver
import dns.exception
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from rich.console import Console

from services.sender.dns_lookup import parse_resolver
from shared.mailbox import ascii_domain
from shared.settings import Settings

_SELECTOR = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?$")
KEY_BITS = 2048


@dataclass(frozen=True)
class TxtRecord:
    name: str
    value: str


def add_arguments(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="dkim_action", required=True)
    keygen = sub.add_parser("keygen", help="write a signing key and print its TXT record")
    keygen.add_argument("domain", help="the From domain the key signs for")
    keygen.add_argument("--selector", default="jetpost", help="the DKIM selector (jetpost)")
    check = sub.add_parser("check", help="compare published TXT records with the local keys")
    check.add_argument("domain", help="the domain whose published record is compared")


def public_value(private_pem: bytes) -> str:
    """The TXT value for a private key: `v=DKIM1; k=rsa; p=<base64 of the public key>`."""
    key = serialization.load_pem_private_key(private_pem, password=None)
    der = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return f"v=DKIM1; k=rsa; p={base64.b64encode(der).decode()}"


def record_name(selector: str, domain: str) -> str:
    return f"{selector}._domainkey.{domain}"


def keygen(key_dir: Path, domain: str, selector: str) -> tuple[Path, TxtRecord]:
    domain = ascii_domain(domain.strip().rstrip("."))
    if not _SELECTOR.match(selector):
        raise ValueError(f"selector {selector!r}: letters, digits and '-' only")
    key = rsa.generate_private_key(public_exponent=65537, key_size=KEY_BITS)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    folder = key_dir / domain
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = folder / f"{selector}.pem"
    # O_EXCL: never replace a key that may be published and signing already
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(pem)
    return path, TxtRecord(record_name(selector, domain), public_value(pem))


def zone_strings(value: str) -> str:
    """The value as a zone file wants it: strings of at most 255 characters."""
    parts = [value[i : i + 255] for i in range(0, len(value), 255)]
    return "( " + " ".join(f'"{part}"' for part in parts) + " )"


def _p_tag(value: str) -> str:
    tags = dict(part.strip().split("=", 1) for part in value.split(";") if "=" in part)
    return re.sub(r"\s+", "", tags.get("p", ""))


async def published(name: str, resolver_address: str | None) -> str | None:
    resolver = dns.asyncresolver.Resolver(configure=resolver_address is None)
    if resolver_address:
        host, port = parse_resolver(resolver_address)
        resolver.nameservers, resolver.port = [host], port
    resolver.lifetime = 5.0
    try:
        answer = await resolver.resolve(name, "TXT")
    except dns.exception.DNSException:
        return None
    for record in answer:
        text = b"".join(record.strings).decode("ascii", "replace")
        if "p=" in text:
            return text
    return None


async def check(key_dir: Path, domain: str, resolver: str | None) -> list[tuple[str, bool, str]]:
    """(record name, matches, what was found) per local selector."""
    domain = ascii_domain(domain.strip().rstrip("."))
    results = []
    for pem in sorted((key_dir / domain).glob("*.pem")):
        name = record_name(pem.stem, domain)
        want = _p_tag(public_value(pem.read_bytes()))
        found = await published(name, resolver)
        if found is None:
            results.append((name, False, "no TXT record with p="))
        else:
            same = _p_tag(found) == want
            results.append((name, same, "matches" if same else "differs from the local key"))
    return results


def dkim_command(args: argparse.Namespace, settings: Settings, console: Console) -> int:
    key_dir = settings.dkim_key_dir
    if args.dkim_action == "keygen":
        path, record = keygen(key_dir, args.domain, args.selector)
        console.print(f"wrote {path} (mode 0600); publish this TXT record:")
        print(f'{record.name}. IN TXT "{record.value}"')
        return 0
    results = asyncio.run(check(key_dir, args.domain, settings.dns_resolver))
    if not results:
        console.print(f"[red]no key for {args.domain} in {key_dir}[/]")
        return 1
    for name, ok, detail in results:
        console.print(f"{'[green]ok[/]' if ok else '[red]bad[/]'} {name}: {detail}")
    return 0 if all(ok for _, ok, _ in results) else 1
