"""The Hypothesis profiles: dev (local default), ci (what tox runs) and nightly (long).

`register()` only registers them; loading one is the runner's choice:
--hypothesis-profile NAME, or HYPOTHESIS_PROFILE=NAME for gradfuzz's own runs.
"""

import contextlib
import os

from hypothesis import HealthCheck, Phase, settings
from hypothesis.errors import InvalidArgument

NAMES = ("dev", "ci", "nightly")
DEFAULT = "dev"

# Hypothesis's explain phase replays each failure many times to annotate it; the
# report already names the failing values, so ci and dev skip it.
_NO_EXPLAIN = (Phase.explicit, Phase.reuse, Phase.generate, Phase.target, Phase.shrink)


# Many rejected examples are not a failure of the test: the Function gets the verdict
# `unverified` when too few examples could be judged.
_JUDGED_LATER = [HealthCheck.filter_too_much]


# The profiles of the same names that register() replaced: Hypothesis's own "ci", which
# it loads by itself when the CI environment variable is set.
_REPLACED = {}


def register():
    """Register dev, ci and nightly, without loading any of them."""
    for name in NAMES:
        with contextlib.suppress(InvalidArgument):
            _REPLACED.setdefault(name, settings.get_profile(name))
    settings.register_profile(
        "dev",
        max_examples=25,
        deadline=None,
        phases=_NO_EXPLAIN,
        print_blob=True,
        suppress_health_check=_JUDGED_LATER,
    )
    settings.register_profile(
        "ci",
        max_examples=60,
        derandomize=True,
        deadline=None,
        database=None,
        print_blob=True,
        phases=_NO_EXPLAIN,
        suppress_health_check=_JUDGED_LATER,
    )
    settings.register_profile(
        "nightly",
        max_examples=1000,
        deadline=None,
        print_blob=True,
        suppress_health_check=[HealthCheck.too_slow, *_JUDGED_LATER],
    )


def give_back():
    """Put back the profiles that register() replaced, for a run that is not gradfuzz's:
    a foreign suite under CI=true then gets Hypothesis's own "ci", as without gradfuzz.
    A replaced profile that is loaded is loaded again in its own form."""
    for name, replaced in _REPLACED.items():
        settings.register_profile(name, replaced)


def chosen(environ=os.environ):
    """The profile a gradfuzz run loads: HYPOTHESIS_PROFILE if set, else dev.

    Raises ValueError naming the variable when it names no registered profile.
    """
    name = environ.get("HYPOTHESIS_PROFILE") or DEFAULT
    try:
        settings.get_profile(name)
    except InvalidArgument:
        raise ValueError(
            f"HYPOTHESIS_PROFILE={name!r} is not a registered Hypothesis profile; "
            f"gradfuzz registers {', '.join(NAMES)}"
        ) from None
    return name
