"""parse_mailbox splits the plainest `addr` / `Name <addr>` forms by a regex of its
own: on every such input it must give exactly what `email.utils.getaddresses` gives,
and leave everything else to it."""

from __future__ import annotations

from email.utils import getaddresses

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.mailbox import PLAIN, parse_mailbox, split_mailbox

ATEXT = "abzAZ09!#$%&'*+/=?^_`{|}~-"
_atoms = st.lists(st.text(ATEXT, min_size=1, max_size=6), min_size=1, max_size=3).map(".".join)
_addr = st.tuples(_atoms, _atoms).map("@".join)
_word = st.text(
    st.characters(exclude_characters=' \t\r\n"(),.:;<>@[]\\', exclude_categories=("Z", "Cc", "Cs")),
    min_size=1,
    max_size=6,
)
_named = st.tuples(st.lists(_word, min_size=1, max_size=3).map(" ".join), _addr)
PLAIN_FORMS = _addr | _named.map(lambda n: f"{n[0]} <{n[1]}>")


@settings(max_examples=300, deadline=None)
@given(PLAIN_FORMS)
def test_the_plain_forms_split_as_getaddresses_splits_them(raw: str) -> None:
    assert PLAIN.fullmatch(raw), raw  # the fast path is taken
    assert split_mailbox(raw) == getaddresses([raw])


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=st.sampled_from('ab.@<> "(),:;\\[]\tzé'), max_size=30))
def test_any_text_splits_as_getaddresses_splits_it(raw: str) -> None:
    assert split_mailbox(raw) == getaddresses([raw])


@pytest.mark.parametrize(
    "raw",
    ["a b  <c@example.com>", "J. Smith <j@example.com>", '"Smith, J" <j@example.com>',
     " a@example.com", "a@example.com (comment)", "Zoë <zoë@example.com>"],
)  # fmt: skip
def test_other_forms_go_through_getaddresses(raw: str) -> None:
    assert PLAIN.fullmatch(raw) is None
    assert split_mailbox(raw) == getaddresses([raw])


def test_a_plain_mailbox_parses_as_before() -> None:
    box = parse_mailbox("Bench Two <Bench.Two@Example.COM>")
    assert (box.name, box.email) == ("Bench Two", "Bench.Two@example.com")
    with pytest.raises(ValueError, match="invalid address"):
        parse_mailbox("a..b@example.com")
