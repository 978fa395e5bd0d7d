"""`reproduced` is judged one way: a fresh replay fails on the same Function, in the same kind."""

import textwrap

import numpy as np
import pytest

from gradfuzz import replay
from gradfuzz.findings import encode


def _finding(kind, function="Mine"):
    return {"kind": kind, "function": function, "chain": [function], "property": "gradient"}


@pytest.mark.parametrize(
    ("kind", "seen", "expected"),
    [
        ("gradient_mismatch", ("Mine", "gradient_mismatch"), True),
        ("gradient_mismatch", ("Square", "gradient_mismatch"), False),
        ("gradient_mismatch", ("Mine", "nonfinite_gradient"), False),
        ("gradient_mismatch", None, False),
        ("nondeterministic", ("Mine", "gradient_mismatch"), True),
        ("nondeterministic", ("Mine", "wrong_shape"), False),
        ("exited", ("Mine", "timeout"), False),
    ],
    ids=[
        "same_function_same_kind",
        "another_function",
        "another_kind",
        "no_failure",
        "a_symptom_of_nondeterminism",
        "not_a_symptom_of_nondeterminism",
        "a_hang_is_not_an_exit",
    ],
)
def test_a_replay_reproduces_a_finding_only_by_the_same_failure(kind, seen, expected):
    assert replay.reproduces(_finding(kind), seen) is expected


MODULE = """
import os
import signal

import numpy as np
from engine import Function


class Crashes(Function):
    def forward(self, x):
        os.kill(os.getpid(), signal.SIGKILL)

    def backward(self, gy):
        return gy


class HangsInC(Function):
    def forward(self, x):
        return x * 0 + sum(range(10**11))

    def backward(self, gy):
        return gy


class Fine(Function):
    def forward(self, x):
        return np.sin(x)

    def backward(self, gy):
        return np.cos(self.input.data) * gy
"""


@pytest.fixture
def sources(tmp_path):
    path = tmp_path / "dying.py"
    path.write_text(textwrap.dedent(MODULE))
    return {name: (str(path), name) for name in ("Crashes", "HangsInC", "Fine")}


def _dead_worker(kind, function):
    # A per-call limit of 0.5 s: the child's watchdog ends a hang after 4 x 0.5 + 2 s.
    return {**_finding(kind, function), "input": encode(np.array(0.5)), "time_limit": 0.5}


@pytest.mark.parametrize(
    ("kind", "function"), [("crashed", "Crashes"), ("timeout", "HangsInC")], ids=str
)
def test_a_child_replay_is_judged_by_how_its_process_ended(sources, kind, function):
    finding = _dead_worker(kind, function)
    code, seen, text = replay.run_child(finding, sources)
    assert code == replay.STILL_FAILING, text
    assert seen == (function, kind), text


def test_a_dead_workers_finding_whose_function_no_longer_dies_is_not_reproduced(sources):
    finding = _dead_worker("crashed", "Fine")
    code, seen, text = replay.run_child(finding, sources)
    assert code == replay.PASSES, text
    assert not replay.reproduces(finding, seen)
