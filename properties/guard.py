"""Calling user code safely: a time limit per call, and misbehaviour turned into Findings."""

import contextlib
import signal
import threading

from hypothesis import currently_in_test_context, event, reject
from hypothesis.errors import UnsatisfiedAssumption

from properties.findings import Finding

DEFAULT_TIME_LIMIT = 2.0

_settings = {"time_limit": DEFAULT_TIME_LIMIT}
# The first hang of each function in the current test, so that shrinking never replays it.
_hangs = {}
# Why examples of the current test were rejected: {reason: count}.
rejections = {}


class _Timeout(BaseException):
    """Raised by the alarm; a BaseException, so `except Exception` in user code cannot eat it."""


def configure(*, time_limit):
    """Set the per-call time limit in seconds (the plugin's --fuzz-timeout)."""
    if not time_limit > 0:
        raise ValueError(f"time_limit={time_limit!r} must be a positive number of seconds")
    _settings["time_limit"] = float(time_limit)


def time_limit():
    return _settings["time_limit"]


def forget_hangs():
    """Start a new test: hangs seen in earlier tests no longer short-circuit; tallies restart."""
    _hangs.clear()
    rejections.clear()


@contextlib.contextmanager
def _alarm(seconds):
    if threading.current_thread() is not threading.main_thread():
        yield  # signals only reach the main thread; no limit elsewhere
        return

    def on_alarm(signum, frame):
        raise _Timeout

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def run(call, *, function, stage, chain=(), input=None):
    """Return `call()`, or raise a Finding that blames a function for a hang or an exception.

    `function` is the name to blame, or a callable that takes the exception and
    returns it. `stage` ("build", "forward" or "backward") picks the kind of
    Finding for an exception. A chain holding a function that hung at this stage
    once in this test raises that timeout Finding again at once instead of
    hanging again.
    """
    for name in chain or [function]:
        if (name, stage) in _hangs:
            raise _hangs[name, stage]
    limit = time_limit()
    try:
        with _alarm(limit):
            return call()
    except _Timeout as e:
        function = function(e) if callable(function) else function
        finding = Finding(
            "timeout",
            function,
            f"{stage} of {function} did not return within {limit:g} s "
            "(set the limit with --fuzz-timeout)",
            chain=chain,
            input=input,
        )
        _hangs[function, stage] = finding
        raise finding from None
    except Finding:
        raise
    except Exception as e:
        function = function(e) if callable(function) else function
        kind = {"build": "cannot_build", "forward": "forward_raised"}.get(stage, "backward_raised")
        raise Finding(
            kind,
            function,
            f"{stage} of {function} raised {type(e).__name__}: {e}",
            chain=chain,
            input=input,
        ) from e


def tell(function, *args, **kwargs):
    """Call Hypothesis's event, note or target inside a test; skip it outside (replays)."""
    if currently_in_test_context():
        function(*args, **kwargs)


def reject_example(reason):
    """Reject the current example, recording `reason` as a Hypothesis event and a tally.

    Outside a test (a replay) it raises UnsatisfiedAssumption all the same.
    """
    rejections[reason] = rejections.get(reason, 0) + 1
    if not currently_in_test_context():
        raise UnsatisfiedAssumption(reason)
    event(f"rejected: {reason}")
    reject()
