"""report.html: a figure per gradient finding, and nothing live from user code."""

import os
import sys
from html.parser import HTMLParser

import pytest
from fuzzer import EXAMPLES, recipe

from gradfuzz import html

MARKUP = """
    import numpy as np
    from engine import Function

    class Markup(Function):
        def forward(self, x):
            print("<script>alert('printed')</script>")
            return x * 1.0

        def backward(self, gy):
            raise ValueError("<script>alert('raised')</script><img src=x onerror=alert(1)>")
"""

SHARED_RUN = recipe(
    "html-wrong-markup",
    targets=(os.path.join(EXAMPLES, "wrong.py"),),
    source=MARKUP,
    args=("-k", "test_gradient and not chains"),
)

# The tags report.html is made of; anything else would come from user text.
TAGS = {"html", "head", "meta", "title", "style", "body", "h1", "h2", "h3", "p", "strong", "em",
        "table", "tr", "th", "td", "ul", "li", "code", "pre", "figure", "img"}  # fmt: skip


@pytest.fixture(scope="module")
def wrong_page(shared_runs):
    """examples/wrong.py and a Function full of markup, fuzzed by test_gradient alone (a
    shared run, tests/fuzzer.py, made once however xdist spreads these tests)."""
    run = shared_runs.get("html-wrong-markup")
    page = run.reports / "report.html"
    assert page.exists(), run.output[-3000:] + run.errors[-3000:]
    return run.report, page.read_text()


class _Tags(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags, self.images, self.handlers = set(), [], []

    def handle_starttag(self, tag, attrs):
        self.tags.add(tag)
        self.handlers += [name for name, _ in attrs if name.startswith("on")]
        if tag == "img":
            self.images.append(dict(attrs)["src"])


def _sections(page):
    """{finding id: its section of the page}."""
    found = {}
    for part in page.split('<h2 id="')[1:]:
        found[part.split('"', 1)[0]] = part
    return found


@SHARED_RUN
def test_every_gradient_finding_of_wrong_py_has_an_inline_figure(wrong_page):
    report, page = wrong_page
    gradient = [f for f in report["counterexamples"] if f["kind"] in html.FIGURED]
    assert len(gradient) >= 15, [f["id"] for f in report["counterexamples"]]
    sections = _sections(page)
    for f in gradient:
        assert "curve" in f, f["id"]
        assert '<img alt="' in sections[f["id"]], f["id"]
        assert "data:image/png;base64," in sections[f["id"]]
    parsed = _Tags()
    parsed.feed(page)
    assert all(src.startswith("data:image/png;base64,") for src in parsed.images)
    assert len(parsed.images) == len(gradient)


@SHARED_RUN
def test_nothing_from_user_code_is_live_markup(wrong_page):
    report, page = wrong_page
    assert any(f["function"] == "Markup" for f in report["counterexamples"])
    parsed = _Tags()
    parsed.feed(page)
    assert parsed.tags <= TAGS
    assert parsed.handlers == []
    assert "<script" not in page.lower()
    assert "&lt;script&gt;alert(&#x27;raised&#x27;)&lt;/script&gt;" in page
    assert "&lt;script&gt;alert(&#x27;printed&#x27;)" in page


@SHARED_RUN
def test_a_curve_shows_the_bug_only_where_it_is(wrong_page):
    report, _ = wrong_page
    [f] = [f for f in report["counterexamples"] if f["id"] == "AbsWrongAboveOne-gradient_mismatch"]
    curve, x = f["curve"], float.fromhex(f["input"]["hex"][0])
    p = float.fromhex(f["curve"]["direction"]["hex"][0])
    for t, a, n, tol in zip(curve["t"], curve["analytic"], curve["numerical"], curve["tolerance"],
                            strict=True):  # fmt: skip
        if n is None or abs(abs(x + t * p) - 1) < 0.1:
            continue  # not judged, or too near the edges of the bug's region
        wrong = abs(a - n) > tol
        assert wrong == (abs(x + t * p) > 1), (x + t * p, a, n, tol)


def _one_finding_report():
    curve = {"t": [-1.0, 0.0, 1.0], "analytic": [1.0, 1.0, 1.0], "numerical": [2.0, 2.0, 2.0],
             "tolerance": [0.1] * 3, "unjudged": [None] * 3,
             "direction": {"shape": [], "dtype": "float64", "hex": ["0x1.0p+0"]}}  # fmt: skip
    finding = {"id": "F-gradient_mismatch", "function": "F", "kind": "gradient_mismatch",
               "explanation": "e", "chain": ["F"], "found_by": ["gradient"], "curve": curve,
               "input": None, "reproduce": "python r.py"}  # fmt: skip
    return {"functions": [], "counterexamples": [finding], "run": {"profile": "ci"}}


def test_a_figure_that_matplotlib_cannot_draw_costs_only_the_figure(monkeypatch):
    # Found from outside: ticks for a line through x = 1e-158 raised ValueError inside
    # matplotlib, and the whole report set was lost.
    pytest.importorskip("matplotlib")

    def broken(finding, classes):
        raise ValueError("arange: cannot compute length")

    monkeypatch.setattr(html, "figure_png", broken)
    page = html.page(_one_finding_report())
    assert "No figure: matplotlib failed (ValueError: arange: cannot compute length)" in page
    assert "python r.py" in page


def test_without_matplotlib_the_page_says_why(monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    monkeypatch.setitem(sys.modules, "matplotlib.backends.backend_agg", None)
    page = html.page(_one_finding_report())
    assert "No figures: matplotlib is not installed" in page
    assert "<img" not in page
