"""Text parts encoded as `email.contentmanager` encodes them (the same choice of
transfer encoding, the same characters), for less CPU.

`quoprimime.body_encode` maps every character of a body through a 256-entry table,
then breaks each line; and `_encode_text` runs it twice on a long part: on the first
ten lines, to choose between quoted-printable and base64, then on the whole. Here each
line is encoded once (body_encode treats every line on its own, so the sample's lines
are the whole's first ten), and where `=` is the only character to quote (most HTML:
its attributes) `str.replace` does the table's work in C. tests/unit/test_fast_qp.py
holds the results equal to the email package's.
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
SNIFF = 10  # lines the email package samples to choose the encoding
_ENDS = (" ", "\t")  # whitespace body_encode quotes at the end of a line


def _quoted_lines(lines: list[bytes], maxlinelen: int) -> list[str]:
    """Each line as quoprimime.body_encode writes it (soft breaks included)."""
    text = b"\n".join(lines).decode("latin-1")  # no line holds a CR or LF
    if _ONLY_EQUALS.fullmatch(text) is not None:
        text = text.replace("=", _EQUALS)
    else:
        text = text.translate(_MAP)  # CR and LF stay as they are
    # a line that fits and does not end in whitespace is kept as it is (as _wrap keeps it)
    return [line if len(line) <= maxlinelen and line[-1:] not in _ENDS else _wrap(line, maxlinelen)
            for line in text.split("\n")]  # fmt: skip


def _wrap(line: str, maxlinelen: int) -> str:
    """One quoted line broken as quoprimime.body_encode (Python 3.11) breaks it."""
    eol = "\n"
    soft_break = "=" + eol
    maxlinelen1 = maxlinelen - 1
    encoded: list[str] = []
    append = encoded.append
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
    return eol.join(encoded)


def encode_text(string: str, policy: Policy) -> tuple[str, str]:
    """`email.contentmanager._encode_text(string, "utf-8", None, policy)`: the
    transfer encoding chosen and the encoded body."""
    limit = policy.max_line_length
    if not limit or limit < 4:  # the email package's own way (and its errors)
        return _encode_text(string, "utf-8", None, policy)  # type: ignore[no-any-return]
    lines = string.encode("utf-8").splitlines()
    if max((len(x) for x in lines), default=0) <= limit:
        body = b"\n".join(lines) + b"\n"
        try:
            return "7bit", body.decode("ascii")
        except UnicodeDecodeError:
            pass
        if policy.cte_type == "8bit":
            return "8bit", body.decode("ascii", "surrogateescape")
    linesep = policy.linesep.encode("ascii")
    first = _quoted_lines(lines[:SNIFF], limit)
    sniff_qp = "\n".join(first) + "\n"
    if len(sniff_qp) > len(binascii.b2a_base64(linesep.join(lines[:SNIFF]) + linesep)):
        return "base64", _encode_base64(linesep.join(lines) + linesep, limit)
    if len(lines) <= SNIFF:
        return "quoted-printable", sniff_qp
    rest = _quoted_lines(lines[SNIFF:], limit)
    return "quoted-printable", "\n".join(first + rest) + "\n"
