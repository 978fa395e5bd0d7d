"""Fixtures of the harness's self-tests."""

import pytest


@pytest.fixture(autouse=True)
def _unmeasured_subprocesses(monkeypatch):
    # The fuzzer runs these throwaway modules in subprocesses; coverage would trace
    # them as well, several times slower, and the coverage goal is on engine/ and
    # strategies/, which the in-process tests measure.
    monkeypatch.delenv("COVERAGE_PROCESS_CONFIG", raising=False)
    monkeypatch.delenv("COVERAGE_PROCESS_START", raising=False)
