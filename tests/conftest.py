"""Fixtures of the harness's self-tests."""

import os

import pytest
from fuzzer import BACKGROUND, SharedRuns

# Hypothesis draws some values from the constants of the local modules loaded so far.
# Every xdist worker loads all the catalogues up front, so that the cases a derandomized
# test draws do not depend on which other tests ran before it in the same process.
import examples.awkward
import examples.correct
import examples.escapes
import examples.hostile
import examples.injected
import examples.wrong  # noqa: F401


@pytest.fixture(autouse=True)
def _unmeasured_subprocesses(monkeypatch):
    # The fuzzer runs these throwaway modules in subprocesses; coverage would trace
    # them as well, several times slower, and the coverage goal is on engine/ and
    # strategies/, which the in-process tests measure.
    monkeypatch.delenv("COVERAGE_PROCESS_CONFIG", raising=False)
    monkeypatch.delenv("COVERAGE_PROCESS_START", raising=False)


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "shared_run(name): the test reads the shared fuzzer run `name` (fuzzer.py)"
    )


@pytest.fixture(scope="session")
def shared_runs(tmp_path_factory, request):
    """The fuzzer runs of this session, each made once, shared by every xdist worker.

    Under xdist, each worker starts its share of the longest runs (fuzzer.BACKGROUND)
    that the collected tests need, in the background, as soon as its first self-test
    begins; the other runs are made by the first test that reads them.
    """
    base = tmp_path_factory.getbasetemp()
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    # Under xdist each worker has its own basetemp; their common parent is the session's.
    runs = SharedRuns((base.parent if worker else base) / "shared-fuzz-runs")
    if worker:
        marked = {m.args[0] for i in request.session.items for m in i.iter_markers("shared_run")}
        needed = [name for name in BACKGROUND if name in marked]
        index, count = int(worker.removeprefix("gw")), int(os.environ["PYTEST_XDIST_WORKER_COUNT"])
        for name in needed[index::count]:
            runs.start(name)
    yield runs
    # A worker may end while another still reads a run it started (work stealing moves the
    # readers): it waits for them, unless the session is cut short (-x, --maxfail).
    runs.stop(wait=not (request.session.shouldstop or request.session.shouldfail))


@pytest.fixture(autouse=True)
def _start_shared_runs(shared_runs):
    """Every self-test asks for the shared runs, so that workers start them at once."""


def pytest_xdist_make_scheduler(config, log):
    """Work stealing instead of xdist's default `load`: the subprocess tests and the waits on
    shared runs last minutes each, and under `load` the first chunk of the sorted items (all
    of them) went to one worker, which ran them alone for minutes after the other had ended.
    An idle worker now takes half of the longest queue."""
    if config.getoption("dist") == "load":
        from xdist.scheduler import WorkStealingScheduling

        return WorkStealingScheduling(config, log)
    return None


# Modules whose tests run the fuzzer in subprocesses, each taking seconds to minutes.
_SLOW = ("test_fuzzing.py", "test_hostile.py", "test_report_swap.py")


def pytest_collection_modifyitems(items):
    """The longest tests first, so that xdist's workers end together: the readers of the
    shared runs, then the other subprocess tests, then the in-process tests (a stable
    sort)."""

    def rank(item):
        if item.get_closest_marker("shared_run"):
            return 0
        return 1 if item.path.name in _SLOW else 2

    items.sort(key=rank)
