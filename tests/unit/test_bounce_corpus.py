"""Real bounces from public test suites (tests/fixtures/bounces, SOURCES.md) through
the receiver's parsing path (analyse + decide), scored against those suites' own
labels: the failed recipient found, hard/soft as labelled, no `bounced` for a
non-address, no auto-reply or challenge taken as a bounce."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from services.feedback.addresses import valid_address
from services.feedback.logic import Inbound, Known, analyse, decide
from services.feedback.matching import verp_address
from shared.events import Bounced

CORPUS = Path(__file__).parents[1] / "fixtures" / "bounces"
DOMAINS = {"bounce_domain": "bounces.jetpost.test", "mail_domain": "jetpost.test"}
MID = "corpus-message"


@dataclass
class Score:
    samples: int = 0
    with_recipient: int = 0
    found: int = 0
    labelled: int = 0
    agree: int = 0
    permanent: int = 0  # the suites' own permanent/temporary expectation...
    permanent_agree: int = 0  # ...and a permanent failure taken as hard (naive reading)
    bad_recipients: int = 0
    autoreplies_as_bounces: int = 0
    misses: list[str] = field(default_factory=list)


def bounced_in(data: bytes) -> dict[str, Bounced]:
    """recipient (lower-cased) -> its `bounced` event, as the receiver would record them
    for a report that reached our VERP address (the log knowing no recipients, so the
    parsing alone must find them)."""
    mail = Inbound("MAILER-DAEMON@example.org", (verp_address(MID, DOMAINS["bounce_domain"]),),
                   data)  # fmt: skip
    events = decide(analyse(mail, **DOMAINS), mail, Known(MID))
    return {r.lower(): e for e, _ in events if isinstance(e, Bounced) for r in e.recipients}


def score_corpus() -> Score:
    labels = json.loads((CORPUS / "labels.json").read_text())
    score = Score()
    for name, label in sorted(labels.items()):
        score.samples += 1
        got = bounced_in((CORPUS / name).read_bytes())
        score.bad_recipients += sum(1 for r in got if valid_address(r) is None)
        if label.get("bounce") is False:
            if got:
                score.autoreplies_as_bounces += 1
                score.misses.append(f"{name}: not a bounce, got {sorted(got)}")
            continue
        expected = {a.lower(): kind for a, kind in label["recipients"].items()}
        if not expected:
            continue
        score.with_recipient += 1
        if all(a in got for a in expected):
            score.found += 1
        else:
            score.misses.append(f"{name}: expected {sorted(expected)}, got {sorted(got)}")
        for address, said in (label.get("suite") or {}).items():
            event = got.get(address.lower())
            if said in ("permanent", "temporary", "hard", "soft"):
                score.permanent += 1
                hard = said in ("permanent", "hard")
                score.permanent_agree += bool(event and (event.kind == "hard") == hard)
        for address, kind in expected.items():
            if kind is None:
                continue
            score.labelled += 1
            event = got.get(address)
            if event is not None and event.kind == kind:
                score.agree += 1
            else:
                found = (event.kind, event.reason, event.status) if event else None
                score.misses.append(f"{name}: {address} labelled {kind}, got {found}")
    return score


def test_corpus_scores_meet_the_goals() -> None:
    score = score_corpus()
    recipient = score.found / score.with_recipient
    agreement = score.agree / score.labelled
    print(f"\nbounce corpus: {score.samples} samples; failed recipient found "
          f"{score.found}/{score.with_recipient} = {recipient:.3f}; hard/soft agrees "
          f"{score.agree}/{score.labelled} = {agreement:.3f}; bounced for a non-address: "
          f"{score.bad_recipients}; auto-replies taken as bounces: "
          f"{score.autoreplies_as_bounces}; the suites' permanent read as hard: "
          f"{score.permanent_agree}/{score.permanent}")  # fmt: skip
    for line in score.misses:
        print("  " + line)
    assert score.samples >= 100
    assert recipient >= 0.95
    assert agreement >= 0.90
    assert score.bad_recipients == 0
    assert score.autoreplies_as_bounces == 0


def test_every_sample_is_labelled_and_has_a_source() -> None:
    labels = json.loads((CORPUS / "labels.json").read_text())
    files = {p.name for p in CORPUS.glob("*.eml")}
    assert files == set(labels)
    sources = (CORPUS / "SOURCES.md").read_text()
    for name, label in labels.items():
        assert label["source"] and name.split("-")[0] in sources
