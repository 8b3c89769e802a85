"""render(): templated and literal messages, escaping, inlining, failures."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from services.renderer.catalog import TemplateCatalog
from services.renderer.render import render
from shared.events import Accepted, Envelope, Rendered, RenderFailed, event_id_for
from shared.mailbox import Mailbox
from shared.paths import TEMPLATES_DIR

DOMAIN = "mail.example.com"


@pytest.fixture(scope="module")
def catalog() -> TemplateCatalog:
    return TemplateCatalog.load(TEMPLATES_DIR)


def _accepted(**fields: Any) -> Accepted:
    envelope = Envelope(
        sender=Mailbox(email="noreply@example.com", name="jetpost"),
        to=(Mailbox(email="ada@example.org", name="Ada"),),
    )
    defaults: dict[str, Any] = {"event_id": "evt-1", "message_id": "msg-1", "envelope": envelope}
    return Accepted(**{**defaults, **fields})


def _ok(accepted: Accepted, catalog: TemplateCatalog) -> Rendered:
    result = render(accepted, catalog, mail_domain=DOMAIN)
    assert isinstance(result, Rendered), result
    return result


def _failed(accepted: Accepted, catalog: TemplateCatalog) -> RenderFailed:
    result = render(accepted, catalog, mail_domain=DOMAIN)
    assert isinstance(result, RenderFailed), result
    return result


def test_welcome_renders_all_parts(catalog: TemplateCatalog) -> None:
    out = _ok(_accepted(template="welcome", vars={"name": "Ada"}), catalog)
    assert out.subject == "Welcome to jetpost, Ada!"
    assert out.html is not None and "Welcome, Ada!" in out.html
    assert out.text is not None and "Welcome, Ada!" in out.text
    assert out.template == "welcome"
    assert out.template_version == catalog.get("welcome").version
    assert out.event_id == event_id_for("msg-1", "rendered")
    assert out.causation_id == "evt-1"
    assert out.correlation_id == "msg-1"


def test_html_is_escaped_and_text_is_not(catalog: TemplateCatalog) -> None:
    out = _ok(_accepted(template="welcome", vars={"name": "<b>x</b>"}), catalog)
    assert out.html is not None and "&lt;b&gt;x&lt;/b&gt;" in out.html
    assert "<b>x</b>" not in out.html
    assert out.text is not None and "<b>x</b>" in out.text


def test_css_is_inlined(catalog: TemplateCatalog) -> None:
    out = _ok(_accepted(template="welcome", vars={"name": "Ada"}), catalog)
    assert out.html is not None and 'style="' in out.html


def test_text_part_generated_from_html(catalog: TemplateCatalog) -> None:
    url = "https://example.com/reset?token=abc123"
    variables = {"name": "Ada", "code": "482913", "reset_url": url}
    out = _ok(_accepted(template="password_reset", vars=variables), catalog)
    assert out.text is not None and url in out.text and "482913" in out.text
    assert "<" not in out.text


def test_missing_variable_fails(catalog: TemplateCatalog) -> None:
    out = _failed(_accepted(template="welcome", vars={}, correlation_id="c-9"), catalog)
    assert out.missing_variable == "name"
    assert out.template == "welcome"
    assert out.template_version == catalog.get("welcome").version
    assert out.event_id == event_id_for("msg-1", "render_failed")
    assert out.correlation_id == "c-9"


def test_unknown_template_fails(catalog: TemplateCatalog) -> None:
    assert "unknown template" in _failed(_accepted(template="nope"), catalog).reason


def test_sandbox_refuses_internals(tmp_path: Path) -> None:
    (tmp_path / "evil").mkdir()
    (tmp_path / "evil" / "subject.j2").write_text("Hi")
    (tmp_path / "evil" / "text.j2").write_text("{{ ''.__class__.__mro__[1].__subclasses__() }}")
    out = _failed(_accepted(template="evil"), TemplateCatalog.load(tmp_path))
    assert "unsafe" in out.reason
    assert "<class" not in out.reason  # nothing of the class hierarchy leaks out


def test_message_id_is_stable(catalog: TemplateCatalog) -> None:
    accepted = _accepted(template="welcome", vars={"name": "Ada"})
    first, second = _ok(accepted, catalog), _ok(accepted, catalog)
    assert first.headers["Message-ID"] == "<msg-1@mail.example.com>"
    assert first.headers == second.headers
    assert first.event_id == second.event_id
    assert "Date" not in first.headers


def test_literal_content_headers_and_tags(catalog: TemplateCatalog) -> None:
    accepted = _accepted(
        subject="  Hello   {{ there }}\t world ",
        html="<p>Hi {{ name }}</p>",
        headers={"X-Campaign": "spring"},
        tags=("a", "b"),
        envelope=Envelope(
            sender=Mailbox(email="noreply@example.com"),
            to=(Mailbox(email="ada@example.org"),),
            reply_to=(Mailbox(email="help@example.com", name="Help"), Mailbox(email="b@x.io")),
        ),
    )
    out = _ok(accepted, catalog)
    assert out.subject == "Hello {{ there }} world"
    assert out.html is not None and "Hi {{ name }}" in out.html
    assert out.text is not None and "Hi {{ name }}" in out.text
    assert out.template is None and out.template_version is None
    assert out.tags == ("a", "b")
    assert out.headers["X-Campaign"] == "spring"
    assert out.headers["X-Jetpost-Message-Id"] == "msg-1"
    assert out.headers["X-Jetpost-Tags"] == "a, b"
    assert out.headers["Reply-To"] == "Help <help@example.com>, b@x.io"


def test_empty_subject_fails(catalog: TemplateCatalog) -> None:
    assert "empty" in _failed(_accepted(subject="   ", text="body"), catalog).reason
