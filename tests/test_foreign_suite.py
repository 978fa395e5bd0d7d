"""Installing gradfuzz changes nothing in another project's Hypothesis suite."""

import json

import pytest

CONFTEST = """
    import os

    import pytest
    from hypothesis import settings

    settings.register_profile("fast", max_examples=7, deadline=None)
    if os.environ.get("HYPOTHESIS_PROFILE") == "fast":
        settings.load_profile("fast")


    @pytest.fixture
    def spec():
        return "the project's own spec"


    @pytest.fixture
    def harness():
        return "the project's own harness"
"""

# Names out of alphabetical order, so that any re-sorting shows.
SUITE = """
    import json
    import os

    from hypothesis import given, settings, strategies as st

    OUT = os.path.join(os.path.dirname(__file__), "seen.jsonl")


    def _seen(**what):
        with open(OUT, "a") as out:
            out.write(json.dumps(what) + "\\n")


    def test_zeta_records_the_settings():
        _seen(profile=settings.get_current_profile_name(),
              max_examples=settings.default.max_examples,
              deadline=str(settings.default.deadline),
              derandomize=settings.default.derandomize)


    @given(st.integers())
    def test_alpha_counts_its_examples(n):
        _seen(example=True)


    def test_mid_takes_spec_and_harness(spec, harness):
        assert spec == "the project's own spec" and harness == "the project's own harness"


    @given(st.integers(min_value=0))
    def test_beta_fails(n):
        assert n < 0
"""


def _run(pytester, *args):
    """(per-test outcomes in the order run, what the tests recorded, stdout) of one run."""
    seen = pytester.path / "seen.jsonl"
    if seen.exists():
        seen.unlink()
    result = pytester.runpytest_subprocess("-v", "-p", "no:randomly", "-p", "no:cacheprovider",
                                           *args)  # fmt: skip
    order = [
        tuple(line.split(" ")[:2])
        for line in result.stdout.lines
        if line.startswith("test_foreign.py::")
    ]
    records = [json.loads(line) for line in seen.read_text().splitlines()]
    return order, records, result


@pytest.mark.parametrize("profile", ["fast", "no_such_profile", "hypothesis-ci"])
def test_a_foreign_suite_keeps_its_settings_order_and_results(pytester, monkeypatch, profile):
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_foreign=SUITE)
    if profile == "hypothesis-ci":
        # Hypothesis loads its own "ci" profile by itself when CI is set; gradfuzz has a
        # profile of that name too, which must not replace it in someone else's suite.
        monkeypatch.delenv("HYPOTHESIS_PROFILE", raising=False)
        monkeypatch.setenv("CI", "true")
    else:
        monkeypatch.setenv("HYPOTHESIS_PROFILE", profile)  # the project's own, or nobody's
    with_gradfuzz = _run(pytester)
    assert "gradfuzz" in with_gradfuzz[2].stdout.str()  # the plugin was installed and loaded
    without = _run(pytester, "-p", "no:gradfuzz.plugin")
    assert "gradfuzz-" not in without[2].stdout.str()
    assert with_gradfuzz[0] == without[0]
    assert [name for name, _ in with_gradfuzz[0]] == [
        "test_foreign.py::test_zeta_records_the_settings",
        "test_foreign.py::test_alpha_counts_its_examples",
        "test_foreign.py::test_mid_takes_spec_and_harness",
        "test_foreign.py::test_beta_fails",
    ]
    assert [outcome for _, outcome in with_gradfuzz[0]] == ["PASSED", "PASSED", "PASSED", "FAILED"]
    settings_seen = [r for r in with_gradfuzz[1] if "profile" in r]
    assert settings_seen == [r for r in without[1] if "profile" in r]
    expected = 7 if profile == "fast" else 100
    assert settings_seen[0]["max_examples"] == expected
    assert with_gradfuzz[1].count({"example": True}) == without[1].count({"example": True})
    assert with_gradfuzz[2].ret == without[2].ret == pytest.ExitCode.TESTS_FAILED
    assert not (pytester.path / "reports").exists()
