"""The fold, pure: properties that hold for any event history."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from shared.events import Event
from shared.fold import STATUS_RANK, apply, fold
from tests.strategies import histories


def one_message(events: list[Event]) -> list[Event]:
    first = events[0].message_id
    return [e for e in events if e.message_id == first]


@given(histories(max_messages=1), st.integers(0, 12))
def test_folding_in_batches_equals_folding_at_once(events: list[Event], cut: int) -> None:
    events = one_message(events)
    head, tail = events[:cut], events[cut:]
    if head and tail:
        assert fold(tail, fold(head)) == fold(events)


@given(histories(max_messages=1))
def test_status_never_moves_down(events: list[Event]) -> None:
    state = None
    for event in one_message(events):
        before = state.status if state else "unknown"
        state = fold([event], state)
        assert STATUS_RANK[state.status] >= STATUS_RANK[before]


@given(histories(max_messages=1))
def test_engagement_does_not_change_status(events: list[Event]) -> None:
    events = one_message(events)
    state = fold(events)
    for kind in ("opened", "clicked", "unsubscribed", "resent"):
        late = [e for e in events if e.type == kind]
        for event in late:
            assert apply(state, event).status == state.status


@given(histories(max_messages=1))
def test_counts_and_first_times(events: list[Event]) -> None:
    events = one_message(events)
    state = fold(events)
    opens = [e.occurred_at for e in events if e.type == "opened"]
    assert state.opens == len(opens)
    assert state.first_opened_at == (min(opens) if opens else None)
    assert state.created_at == min(e.occurred_at for e in events)
