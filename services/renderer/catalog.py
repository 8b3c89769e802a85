"""The template catalog, read and compiled once at start-up.

Every template is parsed when the renderer starts, so a syntax error stops the
service with a `file:line: message` pointing at it instead of failing each send.
Templates run in Jinja2's immutable sandbox with StrictUndefined: a missing
variable is an error, never an empty string. A template's version is a hash of
its files, so every rendered message records exactly which content produced it.

One global helper: `signed_url(base_url, action, subject, ttl_seconds)`, a link with
a signed, expiring action token (shared/tokens.py) for activation or password reset.
"""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jinja2 import DictLoader, StrictUndefined, Template, TemplateSyntaxError, meta, pass_context
from jinja2.exceptions import TemplateRuntimeError
from jinja2.runtime import Context
from jinja2.sandbox import ImmutableSandboxedEnvironment

from shared.tokens import KeyRing, action_url

NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]*$")
SUBJECT_FILE = "subject.j2"
HTML_FILE = "html.j2"
TEXT_FILE = "text.j2"
_FILES = (SUBJECT_FILE, HTML_FILE, TEXT_FILE)
# The render variable holding the accepted event's time (render.py sets it): action
# links expire relative to it, so rendering the same message twice gives the same link.
ISSUED_AT = "jetpost_issued_at"


class CatalogError(Exception):
    """The catalog cannot be loaded; the message names the file (and line)."""


@dataclass(frozen=True, slots=True)
class CatalogTemplate:
    name: str
    version: str
    subject: Template
    html: Template | None
    text: Template | None


def signed_url_helper(keys: KeyRing | None) -> Callable[..., str]:
    @pass_context
    def signed_url(
        context: Context, base_url: str, action: str, subject: Any, ttl_seconds: int = 86400
    ) -> str:
        if keys is None:
            raise TemplateRuntimeError("signed_url: no token keys were given to the catalog")
        issued = context.get(ISSUED_AT)
        start = issued if isinstance(issued, int | float) else time.time()
        expires_at = int(start) + int(ttl_seconds)
        return action_url(keys, str(base_url), str(action), str(subject), expires_at=expires_at)

    return signed_url


def _environment(*, autoescape: bool, keys: KeyRing | None) -> ImmutableSandboxedEnvironment:
    # An empty loader: include/extends are refused at load time, and would fail
    # as a TemplateNotFound (not a TypeError) if one ever slipped through.
    env = ImmutableSandboxedEnvironment(
        loader=DictLoader({}),
        undefined=StrictUndefined,
        autoescape=autoescape,
        keep_trailing_newline=False,
    )
    env.globals["signed_url"] = signed_url_helper(keys)
    return env


def _version(sources: dict[str, str]) -> str:
    digest = hashlib.sha256()
    for filename, content in sorted(sources.items()):
        digest.update(filename.encode() + b"\0" + content.encode() + b"\0")
    return digest.hexdigest()[:16]


class TemplateCatalog:
    def __init__(self, templates: dict[str, CatalogTemplate]) -> None:
        self._templates = dict(templates)

    @classmethod
    def load(cls, root: Path, *, keys: KeyRing | None = None) -> TemplateCatalog:
        """`keys` sign the links of `signed_url()`; without them it fails the render."""
        if not root.is_dir():
            raise CatalogError(f"{root}: template directory not found")
        html_env = _environment(autoescape=True, keys=keys)
        plain_env = _environment(autoescape=False, keys=keys)
        templates: dict[str, CatalogTemplate] = {}
        for folder in sorted(root.iterdir()):
            if folder.name.startswith(".") or not folder.is_dir():
                continue
            if not NAME_RE.match(folder.name):
                raise CatalogError(f"{folder}: template names must match {NAME_RE.pattern}")
            templates[folder.name] = _load_one(folder, html_env, plain_env)
        return cls(templates)

    def names(self) -> frozenset[str]:
        return frozenset(self._templates)

    def get(self, name: str) -> CatalogTemplate:
        return self._templates[name]


def _load_one(
    folder: Path, html_env: ImmutableSandboxedEnvironment, plain_env: ImmutableSandboxedEnvironment
) -> CatalogTemplate:
    sources: dict[str, str] = {}
    for filename in _FILES:
        path = folder / filename
        if path.is_file():
            try:
                sources[filename] = path.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as exc:
                raise CatalogError(f"{path}: cannot read: {exc}") from None
    if SUBJECT_FILE not in sources:
        raise CatalogError(f"{folder}: missing {SUBJECT_FILE}")
    if HTML_FILE not in sources and TEXT_FILE not in sources:
        raise CatalogError(f"{folder}: needs {HTML_FILE} and/or {TEXT_FILE}")

    compiled: dict[str, Template] = {}
    for filename, source in sources.items():
        env = html_env if filename == HTML_FILE else plain_env
        compiled[filename] = _compile(env, folder / filename, source)
    return CatalogTemplate(
        name=folder.name,
        version=_version(sources),
        subject=compiled[SUBJECT_FILE],
        html=compiled.get(HTML_FILE),
        text=compiled.get(TEXT_FILE),
    )


def _compile(env: ImmutableSandboxedEnvironment, path: Path, source: str) -> Template:
    try:
        ast = env.parse(source, name=path.name, filename=str(path))
    except TemplateSyntaxError as exc:
        raise CatalogError(f"{path}:{exc.lineno}: {exc.message or exc}") from None
    if list(meta.find_referenced_templates(ast)):
        raise CatalogError(f"{path}: include, import and extends are not supported")
    template = env.from_string(ast)
    # jinja copies the globals into every render's context: from a plain dict (the
    # environment's are all set before any template is compiled), not a ChainMap
    template.globals = dict(template.globals)
    return template
