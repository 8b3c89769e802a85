"""What the catalog says about each template for `GET /v1/templates`: its parts and
the variables they use, found with jinja2.meta on the template sources.

The catalog keeps compiled templates only, so the sources are read again here,
from the same folder and file names, once when the app is built.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from jinja2 import meta
from jinja2.sandbox import ImmutableSandboxedEnvironment

from services.renderer.catalog import HTML_FILE, SUBJECT_FILE, TEXT_FILE, TemplateCatalog

PARTS = {"subject": SUBJECT_FILE, "html": HTML_FILE, "text": TEXT_FILE}


@dataclass(frozen=True)
class TemplateInfo:
    name: str
    version: str
    parts: tuple[str, ...]
    variables: tuple[str, ...]


def describe_catalog(catalog: TemplateCatalog, root: Path) -> dict[str, TemplateInfo]:
    env = ImmutableSandboxedEnvironment()  # parses only; nothing is rendered with it
    found: dict[str, TemplateInfo] = {}
    for name in sorted(catalog.names()):
        parts: list[str] = []
        variables: set[str] = set()
        for part, filename in PARTS.items():
            path = root / name / filename
            if path.is_file():
                parts.append(part)
                ast = env.parse(path.read_text(encoding="utf-8"))
                variables |= meta.find_undeclared_variables(ast)
        # the catalog's own helper and Jinja's built-ins are not variables to give
        variables -= {"signed_url", *env.globals}
        found[name] = TemplateInfo(name, catalog.get(name).version, tuple(parts),
                                   tuple(sorted(variables)))  # fmt: skip
    return found
