"""Verification power: an error of one part in 1e8 is caught, and nothing correct is flagged."""

import pytest

from examples.injected import (
    SUBJECTS,
    fixed_check_detects,
    generated_cases,
    harness_catches,
    inject,
)
from gradfuzz.checks import configure


@pytest.mark.parametrize("name", sorted(SUBJECTS))
def test_a_backward_off_by_one_part_in_1e8_is_caught(name):
    drawn = generated_cases(SUBJECTS[name])
    assert not harness_catches(drawn, SUBJECTS[name])
    assert harness_catches(drawn, inject(SUBJECTS[name], 1e-8))


@pytest.mark.parametrize("name", sorted(SUBJECTS))
def test_a_fixed_rtol_of_1e_3_misses_what_the_harness_catches(name):
    drawn = generated_cases(SUBJECTS[name])
    assert not fixed_check_detects(drawn, SUBJECTS[name], 1e-6, rtol=1e-3, atol=1e-5)
    assert harness_catches(drawn, inject(SUBJECTS[name], 1e-6))


def test_the_strict_check_is_what_catches_one_part_in_1e10():
    drawn = generated_cases(SUBJECTS["sin"])
    wrong = inject(SUBJECTS["sin"], 1e-10)
    assert harness_catches(drawn, wrong)
    configure(strict=False)
    try:
        assert not harness_catches(drawn, wrong)
    finally:
        configure(strict=True)
