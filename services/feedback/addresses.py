"""Is this a mail address we could have sent to? Pure.

A report's recipient fields are often not one: `system;<>`, `LOCAL;<f.b>`, a bare
user name, an X.400 name. A `bounced` event is only ever recorded for an address
that passes here; the rest fall back to other clues (services.feedback.logic).
"""

from __future__ import annotations

import re

from email_validator import EmailNotValidError, validate_email

_STRIP = " \t\r\n<>\"'()[],;:."
_ADDRESS = re.compile(r"[\w.!#$%&'*+/=?^`{|}~-]+@[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?")


def valid_address(value: str | None) -> str | None:
    """The address itself (`<bob@example.com>` -> `bob@example.com`), or None when the
    value is not a deliverable-looking address (no @, no dotted domain, a literal...)."""
    text = (value or "").strip()
    if text.lower().startswith(("rfc822;", "smtp;")):
        text = text.partition(";")[2].strip()
    if "<" in text and ">" in text:  # `John Doe <john@example.com>`
        text = text[text.rindex("<") + 1 : text.rindex(">")]
    text = text.strip().strip(_STRIP)
    if not text or "@" not in text or len(text) > 320:
        return None
    try:
        checked = validate_email(text, check_deliverability=False, globally_deliverable=False,
                                 allow_quoted_local=False, allow_domain_literal=False)  # fmt: skip
    except EmailNotValidError:
        return None
    if "." not in checked.domain:
        return None
    return checked.normalized if checked.local_part == text.rpartition("@")[0] else text


def addresses_in(text: str) -> list[str]:
    """The valid addresses a text mentions, in order of first mention."""
    found = (valid_address(m.group(0)) for m in _ADDRESS.finditer(text))
    return list(dict.fromkeys(a for a in found if a is not None))
