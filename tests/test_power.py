"""Verification power: an error of one part in 1e8 is caught, and nothing correct is flagged."""

import pytest

from examples.injected import (
    SUBJECTS,
    fixed_check_detects,
    generated_cases,
    harness_catches,
    harness_false_alarms,
    inject,
)


@pytest.mark.parametrize("name", sorted(SUBJECTS))
def test_a_backward_off_by_one_part_in_1e8_is_caught_with_no_false_alarm(name):
    drawn = generated_cases(SUBJECTS[name])
    alarms, judged = harness_false_alarms(drawn, SUBJECTS[name])
    assert alarms == 0
    # A softmax of one element is constant, and wide inputs saturate it: those are unjudged.
    assert judged >= 10, f"only {judged} of {len(drawn)} inputs could be judged"
    assert harness_catches(drawn, inject(SUBJECTS[name], 1e-8))


@pytest.mark.parametrize("name", sorted(SUBJECTS))
def test_a_fixed_rtol_of_1e_3_misses_what_the_harness_catches(name):
    drawn = generated_cases(SUBJECTS[name])
    assert not fixed_check_detects(drawn, SUBJECTS[name], 1e-6, rtol=1e-3, atol=1e-5)
    assert harness_catches(drawn, inject(SUBJECTS[name], 1e-6))


def test_the_strict_check_is_what_catches_one_part_in_1e10():
    drawn = generated_cases(SUBJECTS["softmax"])
    wrong = inject(SUBJECTS["softmax"], 1e-10)
    assert harness_catches(drawn, wrong)
    assert not harness_catches(drawn, wrong, strict=False)
