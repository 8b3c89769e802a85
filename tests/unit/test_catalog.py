"""The template catalog: the shipped templates load, broken ones fail loudly."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.renderer.catalog import CatalogError, TemplateCatalog
from shared.paths import TEMPLATES_DIR


def _write(root: Path, name: str, files: dict[str, str]) -> Path:
    folder = root / name
    folder.mkdir(parents=True, exist_ok=True)
    for filename, content in files.items():
        (folder / filename).write_text(content, encoding="utf-8")
    return folder


def test_shipped_catalog_loads() -> None:
    catalog = TemplateCatalog.load(TEMPLATES_DIR)
    assert {"welcome", "password_reset"} <= catalog.names()
    welcome = catalog.get("welcome")
    assert welcome.name == "welcome"
    assert welcome.html is not None and welcome.text is not None
    assert catalog.get("password_reset").text is None
    assert len(welcome.version) == 16


def test_unknown_template_is_a_key_error() -> None:
    with pytest.raises(KeyError):
        TemplateCatalog.load(TEMPLATES_DIR).get("nope")


def test_syntax_error_names_file_and_line(tmp_path: Path) -> None:
    _write(tmp_path, "broken", {"subject.j2": "Hi", "html.j2": "<p>\n\n{{ name }</p>\n"})
    with pytest.raises(CatalogError) as info:
        TemplateCatalog.load(tmp_path)
    assert f"{tmp_path / 'broken' / 'html.j2'}:3:" in str(info.value)
    assert "'}'" in str(info.value)


@pytest.mark.parametrize(
    "files",
    [{"html.j2": "<p>x</p>"}, {"subject.j2": "Hi"}],
    ids=["no-subject", "no-body"],
)
def test_incomplete_folder_is_refused(tmp_path: Path, files: dict[str, str]) -> None:
    _write(tmp_path, "partial", files)
    with pytest.raises(CatalogError, match="partial"):
        TemplateCatalog.load(tmp_path)


def test_include_is_refused(tmp_path: Path) -> None:
    _write(tmp_path, "inc", {"subject.j2": "Hi", "text.j2": "{% include 'x' %}"})
    with pytest.raises(CatalogError, match="not supported"):
        TemplateCatalog.load(tmp_path)


def test_bad_names_refused_and_hidden_folders_ignored(tmp_path: Path) -> None:
    _write(tmp_path, ".git", {"config": "x"})
    (tmp_path / "README.md").write_text("docs")
    _write(tmp_path, "ok", {"subject.j2": "Hi", "text.j2": "Body"})
    assert TemplateCatalog.load(tmp_path).names() == frozenset({"ok"})
    _write(tmp_path, "Bad Name", {"subject.j2": "Hi", "text.j2": "Body"})
    with pytest.raises(CatalogError, match="Bad Name"):
        TemplateCatalog.load(tmp_path)


def test_missing_root_is_refused(tmp_path: Path) -> None:
    with pytest.raises(CatalogError, match="not found"):
        TemplateCatalog.load(tmp_path / "absent")


def test_version_follows_content(tmp_path: Path) -> None:
    _write(tmp_path, "t", {"subject.j2": "Hi", "text.j2": "Body"})
    first = TemplateCatalog.load(tmp_path).get("t").version
    assert TemplateCatalog.load(tmp_path).get("t").version == first
    (tmp_path / "t" / "text.j2").write_text("Body!")
    assert TemplateCatalog.load(tmp_path).get("t").version != first


def test_templates_see_the_environment_globals_from_a_plain_dict(tmp_path: Path) -> None:
    """jinja copies a template's globals into every render's context: a plain dict
    (a ChainMap over the environment's made that copy most of a render's cost)."""
    _write(tmp_path, "g", {"subject.j2": "{{ range(3) | list | length }}",
                           "html.j2": "<a href=\"{{ signed_url('/x') }}\">x</a>"})  # fmt: skip
    found = TemplateCatalog.load(tmp_path).get("g")
    assert type(found.subject.globals) is dict and "signed_url" in found.subject.globals
    assert found.subject.render() == "3"
