"""`jetpost config check`: JETPOST_* names that no setting reads are almost always
typos (JETPOST_APIPORT); say so, with the nearest real name."""

from __future__ import annotations

import difflib
from collections.abc import Mapping

from shared.settings import Settings

PREFIX = "JETPOST_"


def known_variables() -> set[str]:
    names: set[str] = set()
    for field, info in Settings.model_fields.items():
        # an alias is the variable's whole name (pydantic-settings adds no prefix to it)
        names.add(info.alias.upper() if isinstance(info.alias, str) else PREFIX + field.upper())
    return names


def unknown_variables(environ: Mapping[str, str]) -> list[tuple[str, str]]:
    """(name, hint) for each JETPOST_* variable that is not a setting, sorted."""
    known = sorted(known_variables())
    found = []
    for name in sorted(n for n in environ if n.upper().startswith(PREFIX)):
        if name.upper() in known:
            continue
        close = difflib.get_close_matches(name.upper(), known, n=1, cutoff=0.75)
        found.append((name, f" (did you mean {close[0]}?)" if close else ""))
    return found
