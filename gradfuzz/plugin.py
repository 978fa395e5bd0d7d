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

import os
import time

import pytest
from hypothesis import settings
from hypothesis.errors import FailedHealthCheck, Unsatisfiable

from gradfuzz import checks, guard, profiles, report, targets
from gradfuzz.findings import Finding, Kind
from gradfuzz.registry import default_registry

profiles.register()

FIXTURE = "gradfuzz_function"  # the parametrized argument of every gradfuzz property
_PROPERTY = "gradfuzz"
_SUMMARY = "gradfuzz_summary"
_SESSION = pytest.StashKey()


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


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "gradfuzz_summary: internal; a line for gradfuzz's closing summary"
    )
    fuzzing = bool(config.getoption("fuzz"))
    if fuzzing:
        _validate_options(config)
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
        if fuzzing:
            self._load()

    def _load(self):
        if self.specs:
            return
        chosen = self.config.getoption("fuzz")
        if chosen:
            try:
                registry, sources = targets.registry_for(chosen)
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

    def count(self, case):
        """Credit one valid example to every distinct Function of the case's chain."""
        for name in set(case.names()):
            self._current[name] = self._current.get(name, 0) + 1

    def take_counts(self):
        counts, self._current = self._current, {}
        return counts

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
        if _spec_of(item) is not None:
            guard.forget_hangs()
            self.take_counts()

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_call(self, item):
        """Arm the time limit once for a whole property test rather than once per call."""
        if _spec_of(item) is not None:
            with guard.watch():
                return (yield)
        return (yield)

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(self, item, call):
        rep = yield
        spec = _spec_of(item)
        if call.when != "call" or spec is None:
            return rep
        prop = _property(item)
        found = []
        if call.excinfo is not None:
            for finding in _findings(call.excinfo.value, spec.name):
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
                    "rejected": dict(guard.rejections),
                    "findings": found,
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
        tally = self.rejected.setdefault(value["spec"], {})
        for reason, n in value["rejected"].items():
            tally[reason] = tally.get(reason, 0) + n
        self.findings.extend(value["findings"])

    def pytest_terminal_summary(self, terminalreporter):
        """Lines that tests recorded with record_property("gradfuzz_summary", line)."""
        for line in sorted(self.summary):
            terminalreporter.write_line(f"gradfuzz: {line}")

    def pytest_sessionfinish(self, session, exitstatus):
        config = session.config
        if hasattr(config, "workerinput") or not self.active:
            return  # an xdist worker (the controller writes the report), or not our run
        self._load()
        properties = sorted(self.properties)
        functions = {
            s.name: {
                "examples": self.examples.get(s.name, 0),
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
        }
        built = report.build(
            functions, self.findings, report_dir=report_dir, run=run, rejected=self.rejected
        )
        report.write(built, report_dir, self.sources)
        if session.exitstatus == 0 and any(
            row["verdict"] != report.OK for row in built["functions"]
        ):
            session.exitstatus = pytest.ExitCode.TESTS_FAILED


@pytest.fixture(scope="session")
def gradfuzz(request):
    """The FuzzSession: `specs` under test, the trusted `pool`, and `count(case)`."""
    return request.config.stash[_SESSION]


def _spec_of(item):
    """The Spec a gradfuzz property item runs on, or None for any other test."""
    callspec = getattr(item, "callspec", None)
    return callspec.params.get(FIXTURE) if callspec is not None else None


def _property(item):
    return item.originalname.removeprefix("test_")


def _one_line(f):
    return f"{f['kind']} in {f['function']} (chain {' -> '.join(f['chain'])}): {f['explanation']}"


def _findings(exc, spec_name):
    """The Findings inside `exc`, groups flattened; an unsatisfiable search is one too."""
    if isinstance(exc, Finding):
        return [exc]
    if isinstance(exc, BaseExceptionGroup):
        return [f for e in exc.exceptions for f in _findings(e, spec_name)]
    if isinstance(exc, Unsatisfiable | FailedHealthCheck):
        return [
            Finding(
                Kind.NO_VALID_INPUT,
                spec_name,
                "Hypothesis found no input on which the chain's forward is finite "
                f"({type(exc).__name__})",
                chain=[spec_name],
            )
        ]
    if isinstance(exc, Exception):
        return [
            Finding(
                Kind.HARNESS_ERROR, spec_name, f"{type(exc).__name__}: {exc}", chain=[spec_name]
            )
        ]
    return []
