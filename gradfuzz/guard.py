"""Calling user code safely: a time limit per call, and misbehaviour turned into Findings."""

import contextlib
import signal
import threading
import time

from hypothesis import currently_in_test_context, event, reject
from hypothesis.errors import UnsatisfiedAssumption

from gradfuzz.findings import Finding, Kind

DEFAULT_TIME_LIMIT = 2.0

_settings = {"time_limit": DEFAULT_TIME_LIMIT}
# The first hang of each function in the current test, so that shrinking never replays it.
_hangs = {}
# Why examples of the current test were rejected: {reason: count}.
rejections = {}


class _Timeout(BaseException):
    """Raised by the alarm; a BaseException, so `except Exception` in user code cannot eat it."""


def validate_time_limit(time_limit):
    """Raise ValueError unless `time_limit` is a number of seconds the alarm can enforce."""
    if not time_limit >= 2 * TICK:
        raise ValueError(
            f"time_limit={time_limit!r} is below {2 * TICK:g} s, twice the watchdog's "
            f"resolution of {TICK:g} s"
        )


def configure(*, time_limit):
    """Set the per-call time limit in seconds (the plugin's --fuzz-timeout)."""
    validate_time_limit(time_limit)
    _settings["time_limit"] = float(time_limit)


def time_limit():
    return _settings["time_limit"]


def forget_hangs():
    """Start a new test: hangs seen in earlier tests no longer short-circuit; tallies restart."""
    _hangs.clear()
    rejections.clear()


# The deadline of the guarded call in progress (monotonic seconds), or None between calls.
_deadline = [None]
_watching = [False]
# How often the armed alarm looks at the deadline; a hang is caught within this of its limit.
TICK = 0.05


def _on_alarm(signum, frame):
    if _deadline[0] is not None and time.monotonic() > _deadline[0]:
        raise _Timeout


@contextlib.contextmanager
def watch():
    """Arm a repeating alarm that enforces guarded calls' deadlines until the block ends.

    The plugin arms it once per test, so a guarded call costs a clock read; a
    call made outside any watch() arms it for itself. Signals reach only the
    main thread: elsewhere there is no time limit.
    """
    if _watching[0] or threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGALRM, _on_alarm)
    signal.setitimer(signal.ITIMER_REAL, TICK, TICK)
    _watching[0] = True
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        _watching[0] = False


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
        with watch():
            _deadline[0] = time.monotonic() + limit
            result = call()
            _deadline[0] = None
            return result
    except _Timeout as e:
        function = function(e) if callable(function) else function
        finding = Finding(
            Kind.TIMEOUT,
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
        kind = {"build": Kind.CANNOT_BUILD, "forward": Kind.FORWARD_RAISED}.get(
            stage, Kind.BACKWARD_RAISED
        )
        raise Finding(
            kind,
            function,
            f"{stage} of {function} raised {type(e).__name__}: {e}",
            chain=chain,
            input=input,
        ) from e
    finally:
        _deadline[0] = None


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
