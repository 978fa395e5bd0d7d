"""Verification power: an error of one part in 1e8 is caught, and nothing correct is flagged."""

import pytest
from hypothesis.errors import UnsatisfiedAssumption

from examples.injected import (
    SUBJECTS,
    fixed_check_detects,
    generated_cases,
    inject,
    with_function,
)
from properties.checks import check_gradient, configure
from properties.findings import Finding


def harness_catches(cls, drawn):
    """True when check_gradient raises a Finding on any of the drawn cases."""
    for case in drawn:
        try:
            check_gradient(with_function(case, cls))
        except Finding:
            return True
        except UnsatisfiedAssumption:
            continue
    return False


@pytest.mark.parametrize("name", sorted(SUBJECTS))
def test_a_backward_off_by_one_part_in_1e8_is_caught(name):
    drawn = generated_cases(SUBJECTS[name])
    assert not harness_catches(SUBJECTS[name], drawn)
    assert harness_catches(inject(SUBJECTS[name], 1e-8), drawn)


@pytest.mark.parametrize("name", sorted(SUBJECTS))
def test_a_fixed_rtol_of_1e_3_misses_what_the_harness_catches(name):
    drawn = generated_cases(SUBJECTS[name])
    assert not fixed_check_detects(drawn, SUBJECTS[name], 1e-6, rtol=1e-3, atol=1e-5)
    assert harness_catches(inject(SUBJECTS[name], 1e-6), drawn)


def test_the_strict_check_is_what_catches_one_part_in_1e10():
    drawn = generated_cases(SUBJECTS["sin"])
    wrong = inject(SUBJECTS["sin"], 1e-10)
    assert harness_catches(wrong, drawn)
    configure(strict=False)
    try:
        assert not harness_catches(wrong, drawn)
    finally:
        configure(strict=True)
