"""Calling user code safely: a time limit per call, and misbehaviour turned into Findings."""

import collections
import contextlib
import faulthandler
import io
import math
import mmap
import signal
import struct
import sys
import threading
import time

import numpy as np
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


class Interrupts:
    """Tells a real Ctrl-C (SIGINT) from a KeyboardInterrupt that user code raised itself.

    `install()` puts a SIGINT handler in place that marks the interrupt as real
    before raising KeyboardInterrupt, as Python's own handler does.
    """

    def __init__(self):
        self.real = False
        self._previous = None

    def _on_sigint(self, signum, frame):
        self.real = True
        raise KeyboardInterrupt

    def install(self):
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._on_sigint)

    def uninstall(self):
        if self._previous is not None and threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGINT, self._previous)
            self._previous = None


interrupts = Interrupts()


class Watchdog:
    """The hard limit behind the alarm, for a call that the alarm cannot stop.

    The alarm's exception never comes while one C call holds the GIL, when user
    code swallows it, or once user code replaces the SIGALRM handler. Armed (in
    an isolated worker only), faulthandler's own C thread then dumps every
    thread's stack into `file` and ends the process, which its controller
    reports as a timeout: when a guarded call starts and no call starts again
    within `window` seconds, or when the test outlives `test_limit`.
    """

    def __init__(self):
        self.file = None
        self.window = None
        self._end = None
        self._armed = None

    def start(self, file, window, test_limit):
        self.file, self.window = file, window
        self._end = time.monotonic() + test_limit
        self._armed = None
        self.poke()

    def poke(self):
        """A guarded call starts: push the deadline back, re-arming at most 4 times a window."""
        if self.file is None:
            return
        now = time.monotonic()
        if self._armed is None or now - self._armed > self.window / 4:
            faulthandler.dump_traceback_later(
                max(min(self.window, self._end - now), 0.001), exit=True, file=self.file
            )
            self._armed = now

    def stop(self):
        if self.file is not None:
            faulthandler.cancel_dump_traceback_later()
            self.file = None


watchdog = Watchdog()


class Journal:
    """What guarded calls were made, for two readers that cannot ask the process itself.

    After `open(path)`, each forward or backward pass of a chain first writes
    what it is about to run (the stage, the chain, its input x and, for
    backward, gy) over the previous record in `path`, so that a controller can
    read with `read(path)` the pass that ended a process (os._exit, a crash,
    the watchdog). And each Function keeps its first and last `keep` backward
    calls (chain, x, gy, traversal), so that a finding which needs state kept
    between calls can be replayed after the calls it needs (`calls(name)`).
    """

    # The journal file's size: room for x and gy of the largest drawn arrays, and more.
    SIZE = 2**20

    def __init__(self, keep=16):
        self.keep = keep
        self._map = None
        self._last = None
        self._calls = {}

    def open(self, path):
        """Record each pass into `path` from now on: a memory map, so a record costs no call."""
        self.close()
        with open(path, "w+b") as f:
            f.truncate(self.SIZE)
            self._map = mmap.mmap(f.fileno(), self.SIZE)

    def restart(self):
        """A new test: forget the last call, so a death before any call names none."""
        if self._map is not None:
            self._map[:4] = bytes(4)
        self._last = None

    def close(self):
        if self._map is not None:
            self._map.close()
            self._map = None
        self._last = None

    def record(self, chain, x, gy=None, traversal=None):
        """Note a pass of `chain` on `x` (a backward pass when `gy` is given) before it runs."""
        if gy is not None:
            call = (list(chain), _real(x).copy(), _real(gy).copy(), traversal)
            for name in set(chain):
                first, last = self._calls.setdefault(
                    name, ([], collections.deque(maxlen=self.keep))
                )
                (first if len(first) < self.keep else last).append(call)
        if self._map is None or x is None:
            return
        if gy is None and self._last is x:
            return  # the next stage of the same forward pass: the record still holds
        # One record per pass, so a forward pass is named as a whole, not by its first stage.
        arrays = [_real(x)] if gy is None else [_real(x), _real(gy)]
        data = b"".join([a.tobytes() for a in arrays])
        shapes = ";".join([",".join(map(str, a.shape)) for a in arrays])
        if len(data) > self.SIZE // 2:
            shapes, data = "-", b""
        # stage, chain and shapes as one tab-separated line: names of classes hold no tab
        text = f"{'forward' if gy is None else 'backward'}\t{' '.join(chain)}\t{shapes}".encode()
        self._map[: 4 + len(text) + len(data)] = struct.pack("<I", len(text)) + text + data
        self._last = x if gy is None else None

    def calls(self, name):
        """The backward calls kept for `name`: [(chain, x, gy, traversal)], oldest first."""
        first, last = self._calls.get(name, ([], ()))
        return first + list(last)

    @staticmethod
    def read(path):
        """The last pass recorded in `path`: {stage, chain, input, upstream_grad}, or None.

        `input` and `upstream_grad` are float64 ndarrays, or None when not recorded.
        """
        try:
            with open(path, "rb") as f:
                raw = f.read()
            (n,) = struct.unpack_from("<I", raw)
            if n == 0:
                return None
            stage, chain, shapes = raw[4 : 4 + n].decode().split("\t")
        except (OSError, struct.error, ValueError):
            return None
        arrays, at = [], 4 + n
        for text in shapes.split(";") if shapes != "-" else []:
            shape = [int(side) for side in text.split(",") if side]
            count = math.prod(shape)
            arrays.append(np.frombuffer(raw, np.float64, count, at).reshape(shape).copy())
            at += 8 * count
        arrays += [None] * (2 - len(arrays))
        return {"stage": stage, "chain": chain.split(), "input": arrays[0],
                "upstream_grad": arrays[1]}  # fmt: skip


def _real(a):
    # A complex-step or long double input is recorded as the float64 point it is at.
    return np.asarray(np.real(a), dtype=np.float64)


journal = Journal()


class Output:
    """What user code printed while guarded: the first `keep` characters, a count, a file.

    The plugin installs one per test with `capture(output)`; the full text goes
    to `path`, so a Function that prints megabytes costs disk, not the terminal.
    """

    # Beyond this many characters per test, the text is counted but not kept.
    MAX_KEPT = 16 * 2**20

    def __init__(self, path, keep=2000):
        self.path = path
        self.keep = keep
        self.head = io.StringIO()
        self.chars = 0
        self._file = None

    def write(self, text):
        if self.chars < self.keep:
            self.head.write(text[: self.keep - self.chars])
        elif self.chars >= self.MAX_KEPT:
            self.chars += len(text)
            return len(text)
        self.chars += len(text)
        if self._file is None:
            self._file = open(self.path, "a", encoding="utf-8", errors="replace")  # noqa: SIM115
        self._file.write(text)
        return len(text)

    def flush(self):
        pass

    def isatty(self):
        return False

    def close(self):
        if self._file is not None:
            self._file.close()
            self._file = None


_output = [None]


@contextlib.contextmanager
def capture(output):
    """Send what guarded calls print to `output` (an Output, or None to let it through)."""
    _output[0] = output
    try:
        yield output
    finally:
        _output[0] = None
        if output is not None:
            output.close()


def _call_within(call, limit):
    """`call()` under the deadline, printing into the test's Output if one is installed.

    sys.stdout and sys.stderr are swapped by hand, as redirect_stdout does: two
    context managers per call cost more than most Functions' forward.
    """
    sink, saved = _output[0], (sys.stdout, sys.stderr)
    if sink is not None:
        sys.stdout = sys.stderr = sink
    try:
        _deadline[0] = time.monotonic() + limit
        result = call()
        _deadline[0] = None
        return result
    finally:
        if sink is not None:
            sys.stdout, sys.stderr = saved


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


def run(call, *, function, stage, chain=(), input=None, gy=None, traversal=None):
    """Return `call()`, or raise a Finding that blames a function for a hang or an exception.

    `function` is the name to blame, or a callable that takes the exception and
    returns it. `gy` and `traversal` describe a backward call for the journal.
    `stage` ("build", "forward" or "backward") picks the kind of
    Finding for an exception. A chain holding a function that hung at this stage
    once in this test raises that timeout Finding again at once instead of
    hanging again.
    """
    if _hangs:  # empty in most tests: no lookup per name
        for name in chain or [function]:
            if (name, stage) in _hangs:
                raise _hangs[name, stage]
    limit = time_limit()
    watchdog.poke()
    journal.record(chain, input, gy, traversal)
    before = threading.enumerate()
    try:
        if _watching[0]:  # the plugin arms the alarm once per test
            result = _call_within(call, limit)
        else:
            with watch():
                result = _call_within(call, limit)
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
    except KeyboardInterrupt as e:
        if interrupts.real:
            raise  # Ctrl-C from the person at the keyboard: stop the run
        function = function(e) if callable(function) else function
        raise Finding(
            Kind.INTERRUPTED,
            function,
            f"{stage} of {function} raised KeyboardInterrupt itself (no Ctrl-C was pressed)",
            chain=chain,
            input=input,
        ) from e
    except SystemExit as e:
        function = function(e) if callable(function) else function
        raise Finding(
            Kind.EXITED,
            function,
            f"{stage} of {function} called sys.exit({e.code!r}); "
            "a Function must never end the process",
            chain=chain,
            input=input,
        ) from e
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
    check_threads(before, function, stage, chain, input)  # returns at once when none started
    return result


def check_threads(before, function, stage, chain=(), input=None):
    """Raise a Finding for a non-daemon thread started since `before` and still running."""
    if threading.active_count() <= len(before):
        return
    left = [t for t in threading.enumerate() if t not in before and not t.daemon and t.is_alive()]
    if left:
        function = function(None) if callable(function) else function
        raise Finding(
            Kind.LEAKED_THREAD,
            function,
            f"{stage} of {function} started the thread {left[0].name!r} and returned while it "
            "still runs; a thread left behind keeps the process from exiting",
            chain=chain,
            input=input,
        )


def threads():
    """The live threads, to compare before and after user code (see `leaked`)."""
    return set(threading.enumerate())


def leaked(before, grace=0.1):
    """Non-daemon threads started since `before` that are still alive after `grace` seconds.

    Such a thread keeps the process from exiting once the run is over.
    """
    new = [t for t in threading.enumerate() if t not in before and not t.daemon]
    deadline = time.monotonic() + grace
    for t in new:
        t.join(max(0.0, deadline - time.monotonic()))
    return [t for t in new if t.is_alive()]


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
