"""The pytest plugin: --fuzz TARGET, one property test instance per Function, and the report.

Options (group "gradfuzz"):
  --fuzz TARGET         fuzz the Function classes defined in TARGET (repeatable)
  --report-dir DIR      where report.json, report.md and repro_<id>.py go (default reports)
  --fuzz-timeout SEC    time limit of one forward or backward call (default 2)
  --no-strict           central differences only, without the precise-oracle check

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
import signal
import sys
import tempfile
import time

import hypothesis
import pytest
from hypothesis import settings
from hypothesis.errors import FailedHealthCheck, Unsatisfiable

from gradfuzz import checks, guard, profiles, replay, report, targets
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
        option.timeout = hard_timeout(option.fuzz_timeout)


def hard_timeout(fuzz_timeout):
    """The default hard limit of one property test (pytest-timeout's --timeout), in seconds."""
    return max(60.0, 30 * fuzz_timeout)


def pytest_addoption(parser):
    group = parser.getgroup("gradfuzz", "gradient fuzzing of engine.Function subclasses")
    group.addoption(
        "--fuzz",
        action="append",
        default=[],
        metavar="TARGET",
        help="fuzz the Function subclasses defined in TARGET: a .py file or a dotted module, "
        "optionally ending in :ClassName; repeatable",
    )
    group.addoption(
        "--report-dir",
        default="reports",
        metavar="DIR",
        help="write report.json, report.md and repro_<id>.py here (default: reports)",
    )
    group.addoption(
        "--no-strict",
        action="store_true",
        help="judge gradients by central differences alone, without the strict precise-oracle "
        "check (complex step or Richardson)",
    )
    group.addoption(
        "--fuzz-timeout",
        type=float,
        default=guard.DEFAULT_TIME_LIMIT,
        metavar="SECONDS",
        help=f"time limit of one forward or backward call (default: {guard.DEFAULT_TIME_LIMIT:g})",
    )
    group.addoption(
        "--fuzz-seed",
        type=int,
        default=0,
        metavar="N",
        help="under a derandomized profile (ci), draw another fixed set of cases (default: 0)",
    )
    group.addoption(
        "--min-judged",
        type=int,
        default=report.MIN_JUDGED,
        metavar="N",
        help="a Function whose gradient properties judged fewer examples is 'unverified' and "
        f"fails the run (default: {report.MIN_JUDGED})",
    )
    group.addoption(
        "--fail-on",
        action="append",
        default=[],
        choices=["imprecise"],
        help="also fail the run on imprecise_gradient notes",
    )


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "gradfuzz_summary: internal; a line for gradfuzz's closing summary"
    )
    fuzzing = bool(config.getoption("fuzz"))
    if fuzzing:
        _validate_options(config)
        guard.interrupts.install()
    session = FuzzSession(config, fuzzing)
    config.stash[_SESSION] = session
    config.pluginmanager.register(session, "gradfuzz-session")


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
        checks.configure(strict=not self.config.getoption("no_strict"))

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

    def pytest_report_header(self, config):
        if not self.fuzzing:
            return None
        return [
            f"gradfuzz: profile={settings.get_current_profile_name()} "
            f"functions={','.join(s.name for s in self.specs)} "
            f"timeout={config.getoption('fuzz_timeout'):g}s "
            f"strict={'off' if config.getoption('no_strict') else 'on'} "
            f"report-dir={config.getoption('report_dir')}"
        ]

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
        hard = self.config.getoption("timeout", None) if hasattr(self.config, "workerinput") else 0
        if hard:
            # pytest-timeout's thread cannot run while one C call holds the GIL
            # (sum(range(10**11))); the watchdog's C thread can, and ends the worker.
            window = 4 * guard.time_limit() + 2
            guard.watchdog.start(self._last_words(), window, hard + 1)
        try:
            with guard.watch(), guard.capture(output), _own_seed(item, self.config):
                return (yield)
        finally:
            guard.watchdog.stop()

    def _last_words(self):
        """This worker's file for the watchdog's stack dump, which the controller reads."""
        if self._last_words_file is None:
            name = f"watchdog-{self.config.workerinput['workerid']}"
            path = os.path.join(self._output_dir(), name)
            self._last_words_file = open(path, "w")  # noqa: SIM115  # open until the worker ends
        return self._last_words_file

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(self, item, call):
        rep = yield
        spec = _spec_of(item)
        if call.when != "call" or spec is None:
            return rep
        prop = _property(item)
        found = []
        leaked = guard.leaked(item.stash.get(_THREADS, set()))
        if leaked:
            self.leaked += leaked
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
        if call.excinfo is not None:
            for finding in _findings(call.excinfo.value, spec.name, guard.rejections):
                finding.property = prop
                found.append(finding.to_dict())
            if found and all(f["kind"] != Kind.HARNESS_ERROR for f in found):
                # The finding and Hypothesis's shrunk example, without the harness's traceback.
                notes = getattr(call.excinfo.value, "__notes__", [])
                rep.longrepr = "\n".join([_one_line(f) for f in found] + list(notes))
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

    def pytest_runtest_logstart(self, nodeid, location):
        self._running[nodeid] = time.monotonic()

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
        kind, why = _death(
            _exit_status(report),
            elapsed,
            self.config.getoption("timeout", None),
            self._read_last_words(report.node),
        )
        finding = Finding(kind, name, f"the worker running {name} {why}", chain=[name])
        finding.property = prop
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
        if hasattr(config, "workerinput") and any(t.is_alive() for t in self.leaked):
            # A thread that a Function left running would keep this worker alive forever;
            # the controller already has every result (workerfinished was sent).
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(0)

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

    def _read_last_words(self, node):
        gateway = getattr(node, "gateway", None)
        path = os.path.join(self._output_dir(), f"watchdog-{getattr(gateway, 'id', '')}")
        try:
            with open(path, encoding="utf-8", errors="replace") as dump:
                return dump.read()
        except OSError:
            return ""

    def pytest_terminal_summary(self, terminalreporter):
        """Lines that tests recorded with record_property("gradfuzz_summary", line)."""
        for line in sorted(self.summary):
            terminalreporter.write_line(f"gradfuzz: {line}")

    def pytest_sessionstart(self, session):
        """Replace an earlier report by a `finished: false` one before any fuzzing.

        A run killed before its end then leaves a report that says so, never an
        older run's report looking current.
        """
        if hasattr(session.config, "workerinput") or not self.fuzzing:
            return
        none = {"examples": 0, "properties_run": [], "properties": []}
        run = {"targets": self.config.getoption("fuzz"), "finished": False, "interrupted": False}
        built = report.build(
            {s.name: none for s in self.specs},
            [],
            report_dir=self.config.getoption("report_dir"),
            run=run,
        )
        built["run"]["complete"] = False
        report.write(built, self.config.getoption("report_dir"), {})

    def pytest_sessionfinish(self, session, exitstatus):
        config = session.config
        if hasattr(config, "workerinput") or not self.active:
            return  # an xdist worker (the controller writes the report), or not our run
        self._load()
        properties = sorted(self.properties)
        functions = {
            s.name: {
                "examples": self.examples.get(s.name, 0),
                "judged": self.judged.get(s.name, {}),
                "properties_run": sorted(self.ran.get(s.name, ())),
                "properties": properties,
            }
            for s in self.specs
        }
        report_dir = config.getoption("report_dir")
        run = {
            "targets": config.getoption("fuzz"),
            "profile": settings.get_current_profile_name(),
            "duration_s": round(time.time() - self.started, 3),
            "cwd": os.getcwd(),
            "workers": getattr(config.option, "numprocesses", None) or 0,
            "finished": True,
            "interrupted": exitstatus == pytest.ExitCode.INTERRUPTED,
            "stopped": str(session.shouldstop or session.shouldfail or "") or None,
        }
        built = report.build(
            functions,
            self.findings,
            report_dir=report_dir,
            run=run,
            rejected=self.rejected,
            min_judged=config.getoption("min_judged"),
            fail_on=config.getoption("fail_on"),
        )
        if run["interrupted"] or run["stopped"]:
            built["run"]["complete"] = False
        else:
            replay.verify(built["counterexamples"], self.sources)
        report.write(built, report_dir, self.sources, files=self._outputs(built))
        if self.output_dir is not None:
            shutil.rmtree(self.output_dir, ignore_errors=True)
        if session.exitstatus == 0 and any(
            row["verdict"] != report.OK for row in built["functions"]
        ):
            session.exitstatus = pytest.ExitCode.TESTS_FAILED


@pytest.fixture(scope="session")
def gradfuzz(request):
    """The FuzzSession: `specs` under test, the trusted `pool`, and `count(case)`."""
    return request.config.stash[_SESSION]


_OUTPUT_KEY = pytest.StashKey()


def _output_of(item):
    output = item.stash.get(_OUTPUT_KEY, None)
    if output is None or not output.chars:
        return None
    return {"chars": output.chars, "head": output.head.getvalue(), "path": output.path}


def _exit_status(report):
    """The dead worker's exit status (negative: the signal that killed it), or None."""
    popen = getattr(getattr(getattr(report.node, "gateway", None), "_io", None), "popen", None)
    try:
        return popen.wait(timeout=5) if popen is not None else None
    except Exception:
        return None


def _death(status, elapsed, hard_limit, last_words=""):
    """(kind, explanation) for a worker that died with `status` after `elapsed` seconds.

    `last_words` is the watchdog's stack dump, if it is what ended the worker.
    """
    if last_words:
        return Kind.TIMEOUT, (
            "was ended by the watchdog: a call outlived --fuzz-timeout where the alarm "
            "cannot stop it (inside C code, swallowing the alarm, or with the SIGALRM "
            f"handler replaced); it was at {_user_frame(last_words)}"
        )
    if hard_limit and elapsed >= 0.9 * hard_limit:
        return Kind.TIMEOUT, (
            f"was killed by the hard per-test limit of {hard_limit:g} s (pytest-timeout): "
            "a call hung where --fuzz-timeout cannot stop it (inside C code, swallowing the "
            "alarm, or with the SIGALRM handler replaced)"
        )
    if status is not None and status < 0:
        try:
            signame = signal.Signals(-status).name
        except ValueError:
            signame = f"signal {-status}"
        return Kind.CRASHED, f"died from {signame}"
    shown = "an unknown status" if status is None else f"status {status}"
    return Kind.EXITED, f"exited with {shown} (os._exit or the like) in the middle of a test"


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


def _user_frame(dump):
    """The innermost frame of the main thread in a faulthandler dump, outside gradfuzz."""
    main = dump.split("Current thread")[-1]
    for line in main.splitlines():
        line = line.strip()
        if line.startswith("File ") and "/gradfuzz/" not in line:
            return line
    return "an unknown place"


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
