"""The Hypothesis profiles: dev (local default), ci (what tox runs) and nightly (long)."""

import os

from hypothesis import HealthCheck, Phase, settings

# Hypothesis's explain phase replays each failure many times to annotate it; the
# report already names the failing values, so ci and dev skip it.
_NO_EXPLAIN = (Phase.explicit, Phase.reuse, Phase.generate, Phase.target, Phase.shrink)


def register():
    """Register the three profiles and load the one named by HYPOTHESIS_PROFILE (default dev).

    `--hypothesis-profile NAME` on the pytest command line overrides the choice.
    """
    settings.register_profile(
        "dev", max_examples=25, deadline=None, phases=_NO_EXPLAIN, print_blob=True
    )
    settings.register_profile(
        "ci",
        max_examples=60,
        derandomize=True,
        deadline=None,
        database=None,
        print_blob=True,
        phases=_NO_EXPLAIN,
    )
    settings.register_profile(
        "nightly",
        max_examples=1000,
        deadline=None,
        print_blob=True,
        suppress_health_check=[HealthCheck.too_slow],
    )
    name = os.environ.get("HYPOTHESIS_PROFILE", "dev")
    if name not in ("dev", "ci", "nightly"):
        raise ValueError(f"HYPOTHESIS_PROFILE={name!r} is not one of dev, ci, nightly")
    settings.load_profile(name)
