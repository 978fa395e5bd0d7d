"""The pytest plugin: --fuzz TARGET, per-function test instances, findings collected into reports.

Options (group "gradfuzz"):
  --fuzz TARGET         fuzz the Function classes defined in TARGET (repeatable)
  --report-dir DIR      where report.json, report.md and repro_<id>.py go (default reports)
  --fuzz-timeout SEC    time limit of one forward or backward call (default 2)
  --no-strict           central differences only, without the precise-oracle check
"""

import os
import time

import pytest
from hypothesis import settings
from hypothesis.errors import FailedHealthCheck, Unsatisfiable

from fuzzing import profiles, report, targets
from properties import checks, guard
from properties.findings import Finding
from strategies.registry import default_registry

profiles.register()

_PROPERTY = "gradfuzz"
_HARNESS = pytest.StashKey()


class Harness:
    """What the property tests run on: the Specs under test, the trusted pool, the tallies."""

    def __init__(self, registry, sources, fuzzing):
        self.specs = registry.specs()
        self.pool = default_registry().specs()
        self.sources = sources
        self.fuzzing = fuzzing
        self.examples = {}
        self.rejected = {}
        self.findings = []
        self.ran = False
        self.summary = []
        self.started = time.time()
        self._current = {}

    def count(self, case):
        """Credit one valid example to every distinct Function of the case's chain."""
        for name in set(case.names()):
            self._current[name] = self._current.get(name, 0) + 1

    def take_counts(self):
        counts, self._current = self._current, {}
        return counts

    def collect(self, value):
        """Add one test's tallies and findings (from this process or an xdist worker)."""
        self.ran = True
        for name, n in value["counts"].items():
            self.examples[name] = self.examples.get(name, 0) + n
        tally = self.rejected.setdefault(value["spec"], {})
        for reason, n in value["rejected"].items():
            tally[reason] = tally.get(reason, 0) + n
        self.findings.extend(value["findings"])


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
    try:
        guard.configure(time_limit=config.getoption("fuzz_timeout"))
    except ValueError as e:
        raise pytest.UsageError(f"--fuzz-timeout: {e}") from None
    checks.configure(strict=not config.getoption("no_strict"))
    chosen = config.getoption("fuzz")
    if chosen:
        try:
            registry, sources = targets.registry_for(chosen)
        except targets.TargetError as e:
            raise pytest.UsageError(str(e)) from None
    else:
        registry, sources = default_registry(), {}
    replay_sources = {}
    for name, (source, qualname) in sources.items():
        path = os.path.abspath(source)
        replay_sources[name] = (path if os.path.exists(path) else source, qualname)
    config.stash[_HARNESS] = _harness_of[0] = Harness(registry, replay_sources, bool(chosen))


def pytest_report_header(config):
    harness = config.stash[_HARNESS]
    return [
        f"gradfuzz: profile={settings.get_current_profile_name()} "
        f"functions={','.join(s.name for s in harness.specs)} "
        f"timeout={config.getoption('fuzz_timeout'):g}s "
        f"strict={'off' if config.getoption('no_strict') else 'on'} "
        f"report-dir={config.getoption('report_dir')}"
    ]


@pytest.fixture(scope="session")
def harness(request):
    """The Harness: `specs` under test, the trusted `pool`, and `count(case)`."""
    return request.config.stash[_HARNESS]


def pytest_generate_tests(metafunc):
    """A test that takes both `spec` and `harness` runs once per Function under test."""
    if {"spec", "harness"} <= set(metafunc.fixturenames):
        specs = metafunc.config.stash[_HARNESS].specs
        metafunc.parametrize("spec", specs, ids=[s.name for s in specs])


def _spec_of(item):
    """The Spec a property test item runs on, or None for any other test."""
    callspec = getattr(item, "callspec", None)
    return callspec.params.get("spec") if callspec is not None else None


def pytest_collection_modifyitems(config, items):
    """Sort items by id; with --fuzz, keep only the tests parametrized by a Function."""
    items.sort(key=lambda item: item.nodeid)
    if config.stash[_HARNESS].fuzzing:
        kept = [i for i in items if _spec_of(i) is not None]
        deselected = [i for i in items if _spec_of(i) is None]
        if deselected:
            config.hook.pytest_deselected(items=deselected)
        items[:] = kept


def pytest_runtest_setup(item):
    guard.forget_hangs()
    item.config.stash[_HARNESS].take_counts()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item):
    """Arm the time limit once for a whole property test rather than once per call."""
    if _spec_of(item) is not None:
        with guard.watch():
            return (yield)
    return (yield)


def _findings(exc, spec_name):
    """The Findings inside `exc`, groups flattened; an unsatisfiable search is one too."""
    if isinstance(exc, Finding):
        return [exc]
    if isinstance(exc, BaseExceptionGroup):
        return [f for e in exc.exceptions for f in _findings(e, spec_name)]
    if isinstance(exc, Unsatisfiable | FailedHealthCheck) and spec_name:
        return [
            Finding(
                "no_valid_input",
                spec_name,
                "Hypothesis found no input on which the chain's forward is finite "
                f"({type(exc).__name__})",
                chain=[spec_name],
            )
        ]
    if isinstance(exc, Exception) and spec_name:
        return [
            Finding("harness_error", spec_name, f"{type(exc).__name__}: {exc}", chain=[spec_name])
        ]
    return []


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    rep = yield
    spec = _spec_of(item)
    if call.when != "call" or spec is None:
        return rep
    harness = item.config.stash[_HARNESS]
    prop = item.originalname.removeprefix("test_")
    found = []
    if call.excinfo is not None:
        for finding in _findings(call.excinfo.value, spec.name):
            finding.property = prop
            found.append(finding.to_dict())
        if found and all(f["kind"] != "harness_error" for f in found):
            # The finding and Hypothesis's shrunk example, without the harness's traceback.
            notes = getattr(call.excinfo.value, "__notes__", [])
            rep.longrepr = "\n".join(
                [
                    f"{f['kind']} in {f['function']} (chain {' -> '.join(f['chain'])}): "
                    f"{f['explanation']}"
                    for f in found
                ]
                + list(notes)
            )
    rep.user_properties.append(
        (
            _PROPERTY,
            {
                "spec": spec.name,
                "counts": harness.take_counts(),
                "rejected": dict(guard.rejections),
                "findings": found,
            },
        )
    )
    return rep


_SUMMARY = "gradfuzz_summary"


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_logreport(report):
    for name, value in report.user_properties:
        if name == _PROPERTY:
            _harness_of[0].collect(value)
        elif name == _SUMMARY and report.when == "call":
            _harness_of[0].summary.append(value)


def pytest_terminal_summary(terminalreporter):
    """Lines that tests recorded with record_property("gradfuzz_summary", line)."""
    for line in sorted(_harness_of[0].summary):
        terminalreporter.write_line(f"gradfuzz: {line}")


# pytest_runtest_logreport has no config argument: the session's Harness, set at configure.
_harness_of = [None]


def pytest_sessionfinish(session, exitstatus):
    config = session.config
    if hasattr(config, "workerinput"):
        return  # an xdist worker: the controller writes the report
    harness = config.stash[_HARNESS]
    if not harness.ran:
        return  # no property test ran: nothing to report
    functions = {s.name: harness.examples.get(s.name, 0) for s in harness.specs}
    report_dir = config.getoption("report_dir")
    run = {
        "targets": config.getoption("fuzz"),
        "duration_s": round(time.time() - harness.started, 3),
        "cwd": os.getcwd(),
        "workers": getattr(config.option, "numprocesses", None) or 0,
    }
    built = report.build(
        functions, harness.findings, report_dir=report_dir, run=run, rejected=harness.rejected
    )
    report.write(built, report_dir, harness.sources)
    if built["counterexamples"] and session.exitstatus == 0:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
