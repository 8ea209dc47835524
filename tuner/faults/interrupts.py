"""Ctrl-C and SIGTERM during a Ray Tune run.

Ray Tune catches the first SIGINT of a run, saves the experiment and returns from ``Tuner.fit`` as if
the run had ended (the CLI turns SIGTERM into SIGINT, so both take this path). Code that goes on after
``fit`` (the next dataset of a sweep, the next stage of a study) must tell the two apart: :func:`fit`
raises :class:`Interrupted` after an interrupted run, so the driver stops there and the same command
resumes it.

How it tells: on the first SIGINT, Tune puts back the handler it found (and after an uninterrupted run
it leaves its own installed). So "the handler after ``fit`` is the one before it" means interrupted,
where Tune installs a handler at all (the main thread, ``TUNE_DISABLE_SIGINT_HANDLER`` unset).
"""

from __future__ import annotations

import os
import signal
import threading
from typing import Any


class Interrupted(KeyboardInterrupt):
    """A Tune run ended by Ctrl-C or SIGTERM after saving its state; the same command resumes it."""


def _tune_catches_sigint() -> bool:
    return threading.current_thread() is threading.main_thread() and not int(
        os.environ.get("TUNE_DISABLE_SIGINT_HANDLER", "0"))


def fit(tuner: Any) -> Any:
    """``tuner.fit()``; raises :class:`Interrupted` when a SIGINT ended the run early. Leaves the SIGINT
    handler as it was before the run (Tune leaves its own one installed after a run it finished)."""
    catches = _tune_catches_sigint()
    before = signal.getsignal(signal.SIGINT)
    result = tuner.fit()
    if not catches:
        return result
    after = signal.getsignal(signal.SIGINT)
    signal.signal(signal.SIGINT, before)
    if after is before:
        raise Interrupted("the Ray Tune run was interrupted; its state is saved")
    return result
