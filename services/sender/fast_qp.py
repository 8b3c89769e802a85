"""Text parts encoded as `email.contentmanager` encodes them (the same choice of
transfer encoding, the same characters), for less CPU.

`quoprimime.body_encode` first maps every character of the body through a 256-entry
table, most of its cost (and it runs twice on a long part: on the first ten lines, to
choose between quoted-printable and base64, then on the whole). In most bodies, HTML
above all, the only character to quote is `=` (its attributes): there `str.replace`
does the same mapping in C. Any other body is encoded by the `email` package itself.
tests/unit/test_fast_qp.py holds the two equal.
"""

from __future__ import annotations

import binascii
import re
from email import quoprimime
from email.contentmanager import (  # type: ignore[attr-defined]
    _encode_base64,
    _encode_text,
)
from email.policy import Policy

_MAP: list[str] = quoprimime._QUOPRI_BODY_ENCODE_MAP  # type: ignore[attr-defined]
# the characters body_encode keeps as they are (printable ASCII but `=`, tab, CR, LF)
_KEPT = "".join(chr(c) for c in range(256) if _MAP[c] == chr(c))
_ONLY_EQUALS = re.compile(f"[{re.escape(_KEPT)}=]*")
_EQUALS = _MAP[ord("=")]  # "=3D"


def body_encode(body: str, maxlinelen: int) -> str:
    """`quoprimime.body_encode(body, maxlinelen)`, the same string."""
    if not body or _ONLY_EQUALS.fullmatch(body) is None:
        return quoprimime.body_encode(body, maxlinelen)
    return _wrap(body.replace("=", _EQUALS), maxlinelen)


def _wrap(body: str, maxlinelen: int) -> str:
    """The rest of quoprimime.body_encode (Python 3.11), on a body already quoted."""
    eol = "\n"
    soft_break = "=" + eol
    maxlinelen1 = maxlinelen - 1
    encoded_body: list[str] = []
    append = encoded_body.append
    for line in body.splitlines():
        start = 0
        laststart = len(line) - 1 - maxlinelen
        while start <= laststart:
            stop = start + maxlinelen1
            if line[stop - 2] == "=":  # never break an escape sequence
                append(line[start : stop - 1])
                start = stop - 2
            elif line[stop - 1] == "=":
                append(line[start:stop])
                start = stop - 1
            else:
                append(line[start:stop] + "=")
                start = stop
        if line and line[-1] in " \t":  # whitespace at the end of a line is quoted
            room = start - laststart
            if room >= 3:
                q = quoprimime.quote(line[-1])
            elif room == 2:
                q = line[-1] + soft_break
            else:
                q = soft_break + quoprimime.quote(line[-1])
            append(line[start:-1] + q)
        else:
            append(line[start:])
    if body[-1] in "\r\n":
        append("")
    return eol.join(encoded_body)


def encode_text(string: str, policy: Policy) -> tuple[str, str]:
    """`email.contentmanager._encode_text(string, "utf-8", None, policy)`: the
    transfer encoding chosen and the encoded body."""
    limit = policy.max_line_length
    if not limit:  # no line length: the email package's own way
        return _encode_text(string, "utf-8", None, policy)  # type: ignore[no-any-return]
    lines = string.encode("utf-8").splitlines()
    linesep = policy.linesep.encode("ascii")

    def embedded_body(lines: list[bytes]) -> bytes:
        return linesep.join(lines) + linesep

    def normal_body(lines: list[bytes]) -> bytes:
        return b"\n".join(lines) + b"\n"

    if max((len(x) for x in lines), default=0) <= limit:
        try:
            return "7bit", normal_body(lines).decode("ascii")
        except UnicodeDecodeError:
            pass
        if policy.cte_type == "8bit":
            return "8bit", normal_body(lines).decode("ascii", "surrogateescape")
    sniff = embedded_body(lines[:10])
    sniff_qp = body_encode(sniff.decode("latin-1"), limit)
    if len(sniff_qp) > len(binascii.b2a_base64(sniff)):
        return "base64", _encode_base64(embedded_body(lines), limit)
    if len(lines) <= 10:
        return "quoted-printable", sniff_qp
    return "quoted-printable", body_encode(normal_body(lines).decode("latin-1"), limit)
