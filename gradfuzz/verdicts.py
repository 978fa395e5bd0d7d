"""Verdicts: of one gradient comparison (an example) and of a whole Function (the report)."""

from dataclasses import dataclass, field
from enum import StrEnum


class Status(StrEnum):
    """One example's verdict. Only PASS and FAIL are judgements; REJECT is not evidence."""

    PASS = "pass"
    FAIL = "fail"
    SUSPECT = "suspect"  # the cheap check missed; the expensive diagnosis decides
    REJECT = "reject"


class Outcome(StrEnum):
    """A Function's verdict in the report (a failing one reads "FAIL: kind, ...")."""

    OK = "ok"
    FAIL = "FAIL"
    NOT_RUN = "not_run"  # no property ran for it (-k, -x, an interrupted run)
    PARTIAL = "partial"  # some properties ran for it, not all
    UNVERIFIED = "unverified"  # it ran, but too few examples could be judged


@dataclass
class Verdict:
    """The outcome of one gradient comparison."""

    status: Status
    reason: str
    analytic: float
    numerical: float
    tolerance: float
    step: float
    detail: str = ""  # what the rounding measurement found, on a fail
    elements: list = field(default_factory=list)  # the localized block's indices, on a fail
    imprecise: float | None = None  # digits backward's rounding lost, when far too many
    q: object = None  # the direction <g, q> was taken along (an ndarray), once compared

    @property
    def abs_error(self):
        return abs(self.analytic - self.numerical)

    @property
    def rel_error(self):
        denominator = max(abs(self.analytic), abs(self.numerical))
        return self.abs_error / denominator if denominator > 0 else 0.0
