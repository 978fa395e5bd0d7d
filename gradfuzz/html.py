"""report.html: the report as one self-contained page, with a figure per gradient finding.

The figures plot numbers that the worker stored in report.json (a finding's
`curve`); no user code runs here. Everything that comes from user code (class
names, explanations, exception messages, printed output) is escaped. Without
matplotlib (the `html` extra) the page is written without figures and says why.
"""

import base64
import html
import io

from gradfuzz.findings import KINDS
from gradfuzz.report import (
    gradient_judged,
    settings_line,
    stage_lines,
    summary_line,
    value_text,
)

# Kinds whose findings get a figure, when the worker could compute their curve.
FIGURED = {"gradient_mismatch", "nonfinite_gradient"}

_STYLE = """
body { font-family: sans-serif; max-width: 60em; margin: 2em auto; padding: 0 1em; }
table { border-collapse: collapse; } td, th { border: 1px solid #ccc; padding: 0.2em 0.5em; }
td.n { text-align: right; } pre { background: #f6f6f6; padding: 0.5em; overflow-x: auto; }
.fail { color: #b00; } img { max-width: 100%; }
"""


def _e(value):
    return html.escape(str(value), quote=True)


def plotting():
    """(matplotlib's Figure and Agg canvas classes, None), or (None, the reason there are none)."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as e:
        return None, f"matplotlib is not installed ({e}); pip install 'gradfuzz[html]'"
    return (Figure, FigureCanvasAgg), None


def figure_png(finding, classes):
    """A PNG of the finding's curve: analytic and numerical <gy, J p> along x + t p.

    The counterexample (t = 0) is marked, the oracle's error band is drawn around
    the numerical curve, and the points the oracle could not judge are shaded.
    """
    Figure, Canvas = classes
    curve = finding["curve"]
    t, label = _axis(finding)
    fig = Figure(figsize=(7, 3.6), dpi=90)
    Canvas(fig)
    ax = fig.add_subplot()
    analytic = [_float(v) for v in curve["analytic"]]
    numerical = [_float(v) for v in curve["numerical"]]
    tolerance = [_float(v) for v in curve["tolerance"]]
    step = (t[-1] - t[0]) / max(len(t) - 1, 1)
    shaded = False
    for ti, why in zip(t, curve["unjudged"], strict=True):
        if why is not None:
            ax.axvspan(ti - step / 2, ti + step / 2, color="0.85", lw=0, label=None)
            shaded = True
    band = [
        (n, e) if None not in (n, e) else (None, 0.0)
        for n, e in zip(numerical, tolerance, strict=True)
    ]
    low = [None if n is None else n - e for n, e in band]
    high = [None if n is None else n + e for n, e in band]
    ax.fill_between(t, _nan(low), _nan(high), color="tab:blue", alpha=0.2, lw=0)
    ax.plot(t, _nan(numerical), color="tab:blue", marker=".", label="numerical (forward only)")
    ax.plot(t, _nan(analytic), color="tab:red", marker=".", ls="--", label="analytic (backward)")
    middle = len(t) // 2
    ax.axvline(t[middle], color="0.3", lw=0.8)
    for value, color in ((analytic[middle], "tab:red"), (numerical[middle], "tab:blue")):
        if value is not None:
            ax.plot([t[middle]], [value], marker="o", ms=9, mfc="none", mec=color, mew=2)
    if shaded:
        ax.axvspan(t[middle], t[middle], color="0.85", label="not judged")
    ax.plot([], [], marker="o", ms=9, mfc="none", mec="0.3", ls="none", label="counterexample")
    ax.set_xlabel(label, parse_math=False)
    ax.set_ylabel("<gy, J p>")
    ax.set_title(f"{finding['function']}: {finding['kind']}", parse_math=False)
    ax.legend(fontsize="small")
    fig.tight_layout()
    out = io.BytesIO()
    fig.savefig(out, format="png")
    return out.getvalue()


def _axis(finding):
    """The horizontal axis: the element itself when the line moves one element, else t."""
    curve = finding["curve"]
    p = curve["direction"]
    moved = [i for i, h in enumerate(p["hex"]) if float.fromhex(h) != 0]
    if len(moved) == 1 and isinstance(finding.get("input"), dict) and "hex" in finding["input"]:
        [j] = moved
        x, pj = float.fromhex(finding["input"]["hex"][j]), float.fromhex(p["hex"][j])
        where = "" if len(p["hex"]) == 1 else f"[flat index {j}]"
        return [x + t * pj for t in curve["t"]], f"x{where} (the other elements fixed)"
    return curve["t"], "t, along x + t p (p: the failing direction, max |p| = 1)"


def _float(value):
    return value if isinstance(value, int | float) else None  # "nan"/"inf" strings: no point


def _nan(values):
    return [float("nan") if v is None else v for v in values]


def page(report):
    """The HTML text of `report` (a built report dict)."""
    classes, why_not = plotting()
    body = [
        "<h1>Gradient fuzzing report</h1>",
        f"<p><strong>{_e(summary_line(report))}</strong></p>",
        f"<p>{_e(settings_line(report))}</p>",
    ]
    if why_not:
        body.append(f"<p><em>No figures: {_e(why_not)}.</em></p>")
    for f in report["counterexamples"]:
        body += _finding(f, classes)
    body += [
        "<h2>Functions</h2>",
        "<table><tr><th>function</th><th>judged</th><th>verdict</th><th>not judged</th></tr>",
    ]
    for r in report["functions"]:
        verdict = r["verdict"] + (f" ({', '.join(r['notes'])})" if r.get("notes") else "")
        reasons = ", ".join(f"{k}: {n}" for k, n in r["rejected"].items()) or "-"
        css = ' class="fail"' if r["verdict"].startswith("FAIL") else ""
        body.append(
            f"<tr><td>{_e(r['name'])}</td><td class=n>{gradient_judged(r.get('judged', {}))}"
            f"</td><td{css}>{_e(verdict)}</td><td>{_e(reasons)}</td></tr>"
        )
    body.append("</table>")
    for r in report["functions"]:
        if r.get("output"):
            body += [
                f"<h3>{_e(r['name'])} printed {r['output']['bytes']} bytes</h3>",
                f"<pre>{_e(r['output']['shown'])}</pre>",
            ]
    return (
        "<!DOCTYPE html>\n<html lang=en><head><meta charset=utf-8>"
        "<title>Gradient fuzzing report</title>"
        f"<style>{_STYLE}</style></head><body>\n" + "\n".join(body) + "\n</body></html>\n"
    )


def _finding(f, classes):
    parts = [
        f'<h2 id="{_e(f["id"])}" class=fail>{_e(f["function"])}: {_e(f["kind"])}</h2>',
        f"<p>{_e(f['explanation'])}</p>",
        f"<p>{_e(KINDS.get(f['kind'], ''))}; chain <code>{_e(' -> '.join(f['chain']))}</code>"
        f"; found by {_e(', '.join(p for p in f.get('found_by', []) if p))}</p>",
    ]
    if f["kind"] in FIGURED:
        parts.append(_figure(f, classes))
    details = [f"input x: {value_text(f.get('input'))}"]
    if "upstream_grad" in f:
        details.append(f"upstream gy: {value_text(f['upstream_grad'])}")
    details += [line.strip().removeprefix("- ") for line in stage_lines(f)]
    parts.append("<ul>" + "".join(f"<li>{_e(d)}</li>" for d in details) + "</ul>")
    parts.append(f"<pre>{_e(f.get('reproduce', ''))}</pre>")
    return parts


def _figure(f, classes):
    """The finding's figure, or a line that says why there is none. A figure that
    matplotlib cannot draw (a line through x = 1e-158) must never cost the report."""
    if "curve" not in f:
        why = f.get("extras_error") or "the worker could not compute the curve"
        return f"<p><em>No figure: {_e(why)}.</em></p>"
    if classes is None:
        return ""
    try:
        png = base64.b64encode(figure_png(f, classes)).decode("ascii")
    except Exception as error:
        why = f"matplotlib failed ({type(error).__name__}: {error})"
        return f"<p><em>No figure: {_e(why)}.</em></p>"
    return (
        f'<figure><img alt="analytic and numerical derivative of {_e(f["function"])} '
        f'along the line through the counterexample" src="data:image/png;base64,{png}">'
        "</figure>"
    )
