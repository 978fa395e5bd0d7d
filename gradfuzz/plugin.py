"""The pytest plugin: --fuzz TARGET, one property test instance per Function, and the report.

Its options (--fuzz TARGET, --report-dir, --fuzz-timeout, --fuzz-seed,
--min-judged, --fail-on, --no-strict) are defined once, in gradfuzz/options.py,
which the `gradfuzz` command reads too. What the run prints is gradfuzz/terminal.py;
writing the report at the start and end of a session is gradfuzz/reporting.py.

The plugin stays out of the way of other suites: unless --fuzz is given or a
gradfuzz property (a test that takes the `gradfuzz_function` fixture) is
collected, it loads no Hypothesis profile, parametrizes and deselects nothing,
never reorders items and writes no report.
"""

import contextlib
import hashlib
import os
import re
import shutil
import sys
import tempfile
import time

import hypothesis
import pytest
from hypothesis import settings
from hypothesis.errors import FailedHealthCheck, Unsatisfiable

from gradfuzz import (
    checks,
    curves,
    guard,
    isolation,
    options,
    profiles,
    report,
    reporting,
    targets,
    terminal,
)
from gradfuzz.findings import Finding, Kind
from gradfuzz.registry import default_registry
from strategies.dezero import shipped

profiles.register()

FIXTURE = "gradfuzz_function"  # the parametrized argument of every gradfuzz property
_PROPERTY = "gradfuzz"
_SUMMARY = "gradfuzz_summary"
_SESSION = pytest.StashKey()
_THREADS = pytest.StashKey()
# Keys of xdist's workerinput: Functions that already ended a worker, and where output goes.
_DEAD = "gradfuzz_dead"
_OUTPUT = "gradfuzz_output"


@pytest.hookimpl(tryfirst=True)
def pytest_cmdline_main(config):
    """With --fuzz, run the properties in an xdist worker and under a hard per-test timeout.

    User code then runs in a process that may die: the controller, which owns
    the report, turns a dead worker into a finding and starts another. `-n 0`
    (or `-p no:xdist`) opts out and runs everything in this process.
    """
    if not config.getoption("fuzz"):
        return
    option = config.option
    worker = hasattr(config, "workerinput")  # a worker parses the command line again
    if not worker:
        _validate_options(config)
        if not config.pluginmanager.hasplugin("xdist") or getattr(option, "usepdb", False):
            return
        if option.numprocesses is None and not option.tx:
            option.numprocesses = 1
            option.tx = ["popen"]
            if option.dist == "no":
                option.dist = "load"
    isolated = worker or option.numprocesses or option.tx
    if not isolated or not config.pluginmanager.hasplugin("timeout"):
        return
    if getattr(option, "timeout_method", None) == "signal":
        raise pytest.UsageError(
            "--timeout-method=signal: gradfuzz needs the thread method, because the per-call "
            "limit (--fuzz-timeout) already uses SIGALRM"
        )
    option.timeout_method = "thread"
    if option.timeout is None and not os.environ.get("PYTEST_TIMEOUT"):
        option.timeout = hard_timeout(option.fuzz_timeout, _max_examples(config))


def hard_timeout(fuzz_timeout, max_examples=60):
    """The default hard limit of one property test (pytest-timeout's --timeout), in seconds.

    A backstop only: each call is bounded by the alarm and the watchdog's window.
    So it is generous, for a machine shared and loaded (a ci test can take a
    minute there), and grows with the profile's examples beyond the ci's 60.
    """
    # Five times the limit of old, written with its numbers: Hypothesis mixes the numeric
    # constants of local modules into its draws, so a new one would change the ci cases.
    return 5 * max(60.0, 30 * fuzz_timeout) * max(1.0, max_examples / 60)


def _max_examples(config):
    """The examples per test of the profile this run will load."""
    name = config.getoption("hypothesis_profile", None)
    try:
        return settings.get_profile(name or profiles.chosen()).max_examples
    except Exception:  # an unknown profile is reported when it is loaded
        return settings.default.max_examples


def pytest_addoption(parser):
    group = parser.getgroup("gradfuzz", "gradient fuzzing of engine.Function subclasses")
    options.add_to_pytest(group)


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "gradfuzz_summary: internal; a line for gradfuzz's closing summary"
    )
    fuzzing = bool(config.getoption("fuzz"))
    if not fuzzing and not _own_repository(config):
        profiles.give_back()  # a foreign suite: its profiles as they were without gradfuzz
    if fuzzing:
        _validate_options(config)
        guard.interrupts.install()
    session = FuzzSession(config, fuzzing)
    config.stash[_SESSION] = session
    config.pluginmanager.register(session, "gradfuzz-session")
    if fuzzing:
        config.pluginmanager.register(_Enrich(session), "gradfuzz-enrich")
        if not hasattr(config, "workerinput"):
            config.pluginmanager.register(terminal.Terminal(config, session), "gradfuzz-terminal")


def _own_repository(config):
    """True when pytest runs in gradfuzz's own repository (its self-tests and properties)."""
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    try:
        return os.path.samefile(config.rootpath, here)
    except OSError:
        return False


def _validate_options(config):
    """Options that would only fail after the whole fuzz fail now, with one line each."""
    try:
        guard.validate_time_limit(config.getoption("fuzz_timeout"))
    except ValueError as e:
        raise pytest.UsageError(f"--fuzz-timeout: {e}") from None
    try:
        report.check_writable(config.getoption("report_dir"))
    except report.ReportDirError as e:
        raise pytest.UsageError(f"--report-dir: {e}") from None


class FuzzSession:
    """One pytest session's fuzzing: the Functions under test, the pool, and the tallies.

    Registered as a plugin object, so the hooks below keep the run's state here
    rather than in module globals.
    """

    def __init__(self, config, fuzzing):
        self.config = config
        self.fuzzing = fuzzing
        self.active = fuzzing  # becomes True once a gradfuzz property is collected or reported
        self.specs = []
        self.sources = {}
        self.pool = []
        self.examples = {}
        self.rejected = {}
        self.findings = []
        self.properties = set()  # every property name collected, for `not_run` and `partial`
        self.ran = {}  # function -> properties that ran for it
        self.summary = []
        self.built = None  # the report, once written
        self.strict = not config.getoption("no_strict")  # the precise oracles judge passes again
        self.started = time.time()
        self._current = {}
        self._imprecise = []
        self.judged = {}  # function -> {property: judged examples}
        self.leaked = []  # threads user code left running in this process
        self.dead = set(getattr(config, "workerinput", {}).get(_DEAD, ()))  # Functions that
        # ended a worker: a new worker skips their remaining tests instead of dying again
        self._running = {}  # nodeid -> when the (controller-side) test started, for crashes
        self.output_dir = getattr(config, "workerinput", {}).get(_OUTPUT)
        self._last_words_file = None
        self._session = None
        self.exitstatus = 0
        if fuzzing:
            self._load()
            option = config.option
            workers = getattr(option, "numprocesses", None)
            if isinstance(workers, int) and workers > 0 and option.maxworkerrestart is None:
                # Each Function can end each worker slot once (then it is skipped): allow that.
                option.maxworkerrestart = str((len(self.specs) + 1) * workers)

    def _load(self):
        if self.specs:
            return
        chosen = self.config.getoption("fuzz")
        if chosen:
            try:
                registry, sources = targets.registry_for(chosen, shipped=shipped)
            except targets.TargetError as e:
                raise pytest.UsageError(str(e)) from None
        else:
            registry, sources = default_registry(), {}
        self.specs = registry.specs()
        self.pool = default_registry().specs()
        for name, (source, qualname) in sources.items():
            path = os.path.abspath(source)
            self.sources[name] = (path if os.path.exists(path) else source, qualname)
        self._activate()

    def _activate(self):
        """Settings for gradfuzz's own runs: the chosen profile, the guard and the checks."""
        self.active = True
        if self.config.getoption("hypothesis_profile", None) is None:
            try:
                settings.load_profile(profiles.chosen())
            except ValueError as e:
                raise pytest.UsageError(str(e)) from None
        try:
            guard.configure(time_limit=self.config.getoption("fuzz_timeout"))
        except ValueError as e:
            raise pytest.UsageError(f"--fuzz-timeout: {e}") from None

    # -- what the property tests use --------------------------------------------------

    def count(self, case, verdict=None):
        """Credit one judged example to every distinct Function of the case's chain.

        A gradient Verdict whose analytic lost far more digits to rounding than a
        correctly rounded result would is kept as an imprecise_gradient note.
        """
        for name in set(case.names()):
            self._current[name] = self._current.get(name, 0) + 1
        if verdict is not None and verdict.imprecise is not None and not self._imprecise:
            self._imprecise.append(checks.imprecise_finding(case, verdict).to_dict())

    def take_counts(self):
        counts, self._current = self._current, {}
        return counts

    def take_notes(self):
        notes, self._imprecise = self._imprecise, []
        return notes

    # -- hooks ------------------------------------------------------------------------

    def pytest_generate_tests(self, metafunc):
        """A test that takes `gradfuzz_function` runs once per Function under test."""
        if FIXTURE in metafunc.fixturenames:
            self._load()
            metafunc.parametrize(FIXTURE, self.specs, ids=[s.name for s in self.specs])

    @pytest.hookimpl(tryfirst=True)
    def pytest_collection_modifyitems(self, config, items):
        """Note every property before -k deselects any; with --fuzz keep only the properties."""
        ours = [i for i in items if _spec_of(i) is not None]
        self.properties |= {_property(i) for i in ours}
        if not self.fuzzing:
            return
        if len(ours) < len(items):
            config.hook.pytest_deselected(items=[i for i in items if _spec_of(i) is None])
            items[:] = ours

    def pytest_runtest_setup(self, item):
        spec = _spec_of(item)
        if spec is not None:
            if spec.name in self.dead:
                pytest.skip(f"{spec.name} already ended a worker process; not run again")
            guard.forget_hangs()
            guard.journal.restart()
            self.take_counts()
            item.stash[_THREADS] = guard.threads()

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_call(self, item):
        """Arm the time limit once for a whole property test; keep what user code prints."""
        spec = _spec_of(item)
        if spec is None:
            return (yield)
        path = os.path.join(self._output_dir(), f"{spec.name}.{_property(item)}.txt")
        item.stash[_OUTPUT_KEY] = output = guard.Output(path)
        # pytest-timeout's thread cannot run while one C call holds the GIL
        # (sum(range(10**11))); the watchdog's C thread can, and ends the process.
        if self.fuzzing:
            window = 4 * guard.time_limit() + 2
            guard.watchdog.start(self._last_words(), window, self._test_limit() + 1)
        try:
            with guard.watch(), guard.capture(output), _own_seed(item, self.config):
                return (yield)
        finally:
            guard.watchdog.stop()

    def _last_words(self):
        """Where the watchdog dumps the stuck stack: a file the controller reads, or stderr.

        A worker also opens its journal here, where it notes each call before making it.
        """
        if self._last_words_file is None:
            if not hasattr(self.config, "workerinput"):
                # Without a worker (-n 0) the dump ends the run; it goes to the terminal.
                self._last_words_file = isolation.terminal_fd(self.config)
                return self._last_words_file
            worker = self.config.workerinput["workerid"]
            path = isolation.watchdog_path(self._output_dir(), worker)
            self._last_words_file = open(path, "w")  # noqa: SIM115  # open until the worker ends
            guard.journal.open(isolation.journal_path(self._output_dir(), worker))
        return self._last_words_file

    def _test_limit(self):
        """The hard limit of one property test: pytest-timeout's, else the default one."""
        return self.config.getoption("timeout", None) or hard_timeout(
            guard.time_limit(), settings.default.max_examples
        )

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(self, item, call):
        rep = yield
        spec = _spec_of(item)
        if call.when != "call" or spec is None:
            return rep
        prop = _property(item)
        found = []
        if call.excinfo is not None:
            for finding in _findings(call.excinfo.value, spec.name, guard.rejections):
                finding.property = prop
                found.append(finding.to_dict())
                isolation.save_calls(self._output_dir(), found[-1])
            if found and all(f["kind"] != Kind.HARNESS_ERROR for f in found):
                # The finding and Hypothesis's shrunk example, without the harness's traceback.
                notes = getattr(call.excinfo.value, "__notes__", [])
                rep.longrepr = "\n".join([_one_line(f) for f in found] + list(notes))
        leaked = guard.leaked(item.stash.get(_THREADS, set()))
        if leaked:
            self.leaked += leaked
        if leaked and all(f["kind"] != Kind.LEAKED_THREAD for f in found):
            # No call was caught leaving it (its thread outlived the test, not the call).
            finding = Finding(
                Kind.LEAKED_THREAD,
                spec.name,
                f"{len(leaked)} thread(s) started by {spec.name} still run after its test "
                f"(the first: {leaked[0].name!r}); a Function must not leave threads behind",
                chain=[spec.name],
            )
            finding.property = prop
            found.append(finding.to_dict())
            if rep.passed:
                rep.outcome = "failed"
                rep.longrepr = _one_line(found[-1])
        rep.user_properties.append(
            (
                _PROPERTY,
                {
                    "spec": spec.name,
                    "property": prop,
                    "properties": sorted(self.properties),
                    "counts": self.take_counts(),
                    "notes": self.take_notes(),
                    "rejected": dict(guard.rejections),
                    "findings": found,
                    "output": _output_of(item),
                },
            )
        )
        return rep

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_logreport(self, report):
        """Add one test's tallies and findings (from this process or an xdist worker)."""
        for name, value in report.user_properties:
            if name == _PROPERTY:
                self._collect(value)
            elif name == _SUMMARY and report.when == "call":
                self.summary.append(value)

    def _collect(self, value):
        self.active = True
        self.properties |= set(value["properties"])
        self.ran.setdefault(value["spec"], set()).add(value["property"])
        for name, n in value["counts"].items():
            self.examples[name] = self.examples.get(name, 0) + n
            judged = self.judged.setdefault(name, {})
            judged[value["property"]] = judged.get(value["property"], 0) + n
        for note in value.get("notes", ()):
            note["property"] = value["property"]
            self.findings.append(note)
        tally = self.rejected.setdefault(value["spec"], {})
        for reason, n in value["rejected"].items():
            tally[reason] = tally.get(reason, 0) + n
        self.findings.extend(value["findings"])

    # -- the controller's view of worker processes ----------------------------------------

    @pytest.hookimpl(optionalhook=True)
    def pytest_configure_node(self, node):
        """A new (or replacement) worker learns which Functions already ended a worker."""
        node.workerinput[_DEAD] = sorted(self.dead)
        if self.fuzzing:
            node.workerinput[_OUTPUT] = self._output_dir()

    @pytest.hookimpl(optionalhook=True)
    def pytest_handlecrashitem(self, crashitem, report, sched):
        """A worker died in a property test: one finding against that test's Function."""
        match = re.search(r"::test_(\w+)\[(.+)\]$", crashitem)
        if not self.fuzzing or match is None:
            return
        prop, name = match.groups()
        elapsed = time.monotonic() - self._running.pop(crashitem, time.monotonic())
        finding = isolation.dead_worker_finding(
            name,
            prop,
            output_dir=self._output_dir(),
            worker_id=getattr(getattr(report.node, "gateway", None), "id", ""),
            status=isolation.exit_status(report.node),
            elapsed=elapsed,
            hard_limit=self.config.getoption("timeout", None),
        )
        self.dead.add(name)
        report.longrepr = _one_line(finding.to_dict())
        report.user_properties.append(
            (
                _PROPERTY,
                {
                    "spec": name,
                    "property": prop,
                    "properties": sorted(self.properties),
                    "counts": {},
                    "rejected": {},
                    "findings": [finding.to_dict()],
                    "output": None,
                },
            )
        )

    @pytest.hookimpl(trylast=True)
    def pytest_unconfigure(self, config):
        guard.interrupts.uninstall()
        if any(t.is_alive() for t in self.leaked):
            # A thread that a Function left running would keep this process alive forever;
            # the report is written (or, in a worker, the controller has every result).
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(int(self.exitstatus))

    def _output_dir(self):
        """Where user code's output goes, shared by the workers; made on first use."""
        if self.output_dir is None:
            self.output_dir = tempfile.mkdtemp(prefix="gradfuzz-output-")
        return self.output_dir

    def _outputs(self, built, shown=500):
        """{report file: captured file} of what each Function printed; rows get an excerpt."""
        files = {}
        if self.output_dir is None or not os.path.isdir(self.output_dir):
            return files
        for row in built["functions"]:
            parts = sorted(
                os.path.join(self.output_dir, entry)
                for entry in os.listdir(self.output_dir)
                if entry.startswith(f"{row['name']}.") and entry.endswith(".txt")
            )
            if not parts:
                continue
            whole = os.path.join(self.output_dir, f"output_{row['name']}.txt")
            with open(whole, "wb") as out:
                for part in parts:
                    with open(part, "rb") as text:
                        shutil.copyfileobj(text, out)
            size = os.path.getsize(whole)
            with open(whole, encoding="utf-8", errors="replace") as text:
                head = text.read(shown)
            files[os.path.basename(whole)] = whole
            row["output"] = {"bytes": size, "shown": head, "file": os.path.basename(whole)}
        return files

    def pytest_terminal_summary(self, terminalreporter):
        """Lines that tests recorded with record_property("gradfuzz_summary", line)."""
        for line in sorted(self.summary):
            terminalreporter.write_line(f"gradfuzz: {line}")

    def pytest_sessionstart(self, session):
        """Replace an earlier report by a `finished: false` one before any fuzzing.

        A run killed before its end then leaves a report that says so, never an
        older run's report looking current.
        """
        self._session = session
        if hasattr(session.config, "workerinput") or not self.fuzzing:
            return
        reporting.placeholder(self)

    def pytest_runtest_logstart(self, nodeid, location):
        self._running[nodeid] = time.monotonic()
        if self.fuzzing and not _isolated(self.config) and self._session is not None:
            # Without a worker, a Function that ends or hangs the process ends the run
            # here: the report on disk then holds every result so far and names this test.
            reporting.checkpoint(self, self._session, nodeid)

    def pytest_sessionfinish(self, session, exitstatus):
        if hasattr(session.config, "workerinput") or not self.active:
            return  # an xdist worker (the controller writes the report), or not our run
        self._load()
        self.built = reporting.final(self, session, exitstatus)


class _Enrich:
    """Adds the guilty stages and the gradient curve to a failed property test's findings.

    Its wrapper runs innermost, inside the session's guard (time limit, watchdog,
    captured output), in the process that ran the test: the only one where user
    code may run again.
    """

    def __init__(self, session):
        self.session = session

    @pytest.hookimpl(wrapper=True, trylast=True)
    def pytest_runtest_call(self, item):
        spec = _spec_of(item)
        try:
            return (yield)
        except BaseException as exc:
            if spec is not None and isinstance(exc, Exception):
                specs = {s.name: s for s in (*self.session.pool, *self.session.specs)}
                kept = dict(guard.rejections)  # the extras must not count as rejections
                for finding in _findings(exc, spec.name):
                    try:
                        curves.enrich(finding, specs)
                    except Exception as e:  # the extras are a courtesy; the finding stands
                        finding.numbers["extras_error"] = f"{type(e).__name__}: {e}"
                guard.rejections.clear()
                guard.rejections.update(kept)
            raise


@pytest.fixture(scope="session")
def gradfuzz(request):
    """The FuzzSession: `specs` under test, the trusted `pool`, `strict`, and `count(case)`."""
    return request.config.stash[_SESSION]


_OUTPUT_KEY = pytest.StashKey()


def _output_of(item):
    output = item.stash.get(_OUTPUT_KEY, None)
    if output is None or not output.chars:
        return None
    return {"chars": output.chars, "head": output.head.getvalue(), "path": output.path}


@contextlib.contextmanager
def _own_seed(item, config):
    """Under a derandomized profile, give each test item draws of its own.

    Hypothesis derandomizes from the test function alone, so every Function would
    see the same cases; the seed mixes in the item's name and --fuzz-seed.
    """
    if not settings.default.derandomize:
        yield
        return
    key = f"{item.name}:{config.getoption('fuzz_seed')}".encode()
    hypothesis.seed(int.from_bytes(hashlib.sha256(key).digest()[:8], "big"))(item.obj)
    yield


def _isolated(config):
    """True when the properties run in xdist workers, apart from this process."""
    option = config.option
    return hasattr(config, "workerinput") or bool(
        getattr(option, "numprocesses", None) or getattr(option, "tx", None)
    )


def _spec_of(item):
    """The Spec a gradfuzz property item runs on, or None for any other test."""
    callspec = getattr(item, "callspec", None)
    return callspec.params.get(FIXTURE) if callspec is not None else None


def _property(item):
    return item.originalname.removeprefix("test_")


def _one_line(f):
    return f"{f['kind']} in {f['function']} (chain {' -> '.join(f['chain'])}): {f['explanation']}"


# The rejections that mean forward is not finite, as opposed to an oracle that cannot judge.
_DOMAIN = ("no valid input for this chain", "input outside the chain's domain")


def _findings(exc, spec_name, rejected=None):
    """The Findings inside `exc`, groups flattened.

    A search that found too few valid examples is a no_valid_input Finding when
    forward was the obstacle; when the oracle could not judge, it is no finding:
    the Function's verdict becomes `unverified`.
    """
    if isinstance(exc, Finding):
        return [exc]
    if isinstance(exc, BaseExceptionGroup):
        return [f for e in exc.exceptions for f in _findings(e, spec_name, rejected)]
    if isinstance(exc, Unsatisfiable | FailedHealthCheck):
        rejected = rejected or {}
        domain = sum(n for reason, n in rejected.items() if reason in _DOMAIN)
        if domain * 2 < sum(rejected.values()):
            return []
        return [
            Finding(
                Kind.NO_VALID_INPUT,
                spec_name,
                "Hypothesis found no input on which the chain's forward is finite "
                f"({type(exc).__name__})",
                chain=[spec_name],
            )
        ]
    if isinstance(exc, Exception | SystemExit):  # SystemExit from the harness, not user code
        return [
            Finding(
                Kind.HARNESS_ERROR, spec_name, f"{type(exc).__name__}: {exc}", chain=[spec_name]
            )
        ]
    return []
