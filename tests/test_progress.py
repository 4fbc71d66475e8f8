"""The one progress helper: bars only where a person sees them (mixedmodels.progress)."""

from __future__ import annotations

import io

import pytest

from mixedmodels.errors import MixedModelsError
from mixedmodels.progress import check_progress, interactive, progress_bar


class Terminal(io.StringIO):
    """A stream that says it is a terminal."""

    def isatty(self) -> bool:
        return True


def _drawn(progress, stream) -> str:
    bar = progress_bar(range(5), progress=progress, desc="work", stream=stream)
    for _ in bar:
        pass
    return stream.getvalue()


def test_auto_draws_nothing_into_a_log_file():
    log = io.StringIO()
    assert not interactive(log)
    assert _drawn("auto", log) == ""


def test_auto_waits_before_drawing_on_a_terminal():
    bar = progress_bar(total=10, progress="auto", stream=Terminal())
    assert not bar.disable
    assert bar.delay > 0  # short work ends before the bar appears
    bar.close()


def test_true_draws_anywhere_and_false_nowhere():
    assert "work" in _drawn(True, io.StringIO())
    assert _drawn(False, Terminal()) == ""
    assert _drawn(None, Terminal()) == ""


def test_a_disabled_bar_still_counts_and_closes():
    bar = progress_bar(total=3, progress=False)
    bar.update(2)
    bar.set_postfix_str("x", refresh=False)
    bar.close()


@pytest.mark.parametrize("bad", ["yes", 1.5, "always"])
def test_unknown_progress_option_is_refused(bad):
    with pytest.raises(MixedModelsError, match="progress must be"):
        check_progress(bad)
