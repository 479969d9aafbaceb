"""The command line's terminal: third-party warnings filtered, one line per pipeline step."""

import logging
import warnings

import pytest

from hcctme import cli
from hcctme._logging import STEP_LOGGER


@pytest.fixture
def restored():
    steps = logging.getLogger(STEP_LOGGER)
    level, propagate = steps.level, steps.propagate
    with warnings.catch_warnings():
        yield steps
    for handler in [h for h in steps.handlers if h.get_name() == STEP_LOGGER]:
        steps.removeHandler(handler)
    steps.setLevel(level)
    steps.propagate = propagate


def _warn_from(module: str, category: type[Warning]) -> list[str]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.warn_explicit("noise", category, filename=f"{module}.py", lineno=1, module=module)
    return [str(w.message) for w in caught]


def test_third_party_warnings_are_filtered_and_ours_kept(restored):
    cli._quiet_terminal(verbose=False)
    assert _warn_from("docrep.decorators", SyntaxWarning) == []
    assert _warn_from("liana.method", UserWarning) == []
    assert _warn_from("hcctme.tl._score", UserWarning) == ["noise"]


def test_one_line_per_step_on_stderr(restored, capsys):
    cli._quiet_terminal(verbose=False)
    cli._quiet_terminal(verbose=False)  # called again (several commands in one process): still one handler
    restored.info("[1/2] score done (%.1f s)", 1.234)
    assert capsys.readouterr().err == "hcctme [1/2] score done (1.2 s)\n"


def test_verbose_keeps_warnings_and_logs_through_the_root_logger(restored, capsys):
    cli._quiet_terminal(verbose=True)
    assert _warn_from("liana.method", UserWarning) == ["noise"]
    assert restored.propagate and not [h for h in restored.handlers if h.get_name() == STEP_LOGGER]
