from __future__ import annotations

import itertools

from hypothesis import given
from hypothesis import strategies as st

from service.pipeline.stops import StopScanner, cut_at_stop


def test_cut_at_earliest_stop() -> None:
    assert cut_at_stop("abc###def\n\nx", ["\n\n", "###"]) == ("abc", True)
    assert cut_at_stop("abc", ["x"]) == ("abc", False)


def test_scanner_holds_back_a_possible_stop_prefix() -> None:
    s = StopScanner(["###"])
    assert s.push("hello #") == "hello "
    assert s.push("#") == ""
    assert s.push("x") == "##x"
    assert s.push(" more ##") == " more "
    assert s.push("# tail") == ""
    assert s.stopped and s.push("after") == "" and s.flush() == ""


def test_scanner_flushes_held_text_at_the_end() -> None:
    s = StopScanner(["END"])
    assert s.push("the E") == "the "
    assert s.flush() == "E"


@given(text=st.text(alphabet="ab#\n", max_size=40), stops=st.lists(st.text(alphabet="ab#\n", min_size=1, max_size=4),
       max_size=3), cuts=st.lists(st.integers(0, 40), max_size=10))
def test_streamed_stop_equals_whole_text_stop(text: str, stops: list[str], cuts: list[int]) -> None:
    edges = [0, *sorted({c % (len(text) + 1) for c in cuts}), len(text)]
    scanner = StopScanner(stops)
    out = "".join(scanner.push(text[a:b]) for a, b in itertools.pairwise(edges)) + scanner.flush()
    assert (out, scanner.stopped) == cut_at_stop(text, stops)
