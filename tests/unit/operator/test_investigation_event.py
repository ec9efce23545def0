"""The Event that carries an investigation's summary to ``kubectl describe md``."""

from __future__ import annotations

from minerguard_operator.investigator.handling import EVENT_MESSAGE_CHARS, event_message


def test_a_long_summary_is_cut_at_its_end_to_the_event_message_bound() -> None:
    summary = "Foreign image started by alice via Apply. " + "x" * 5000
    cut = event_message(summary)
    assert len(cut) == EVENT_MESSAGE_CHARS
    assert cut.startswith("Foreign image started by alice via Apply. ")
    assert cut.endswith("\N{HORIZONTAL ELLIPSIS}")


def test_a_short_summary_is_posted_whole() -> None:
    assert event_message("Our image, changed in the registry.") == (
        "Our image, changed in the registry."
    )
