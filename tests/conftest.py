"""Fixtures of the harness's self-tests."""

import pytest

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
