"""The HTML report's pieces: captions rendered from reStructuredText, verdicts that stand
out (holds / does not hold / not applicable), the job time of a target found through
the run records, and a page that a browser shows as intended."""

import json

from browser import chromium_or_skip, probe

from weightspace.pipeline.claims import claim
from weightspace.pipeline.report import (
    _claims_table,
    caption_html,
    claim_counts,
    claims_summary,
    target_jobs,
    verdict,
)

CAPTION = """**demo_fig** ({{ snakemake.config["scale"] }} scale, run ``{{ snakemake.config["run_name"] }}``).
Accuracy against :math:`\\sqrt{d/D}` with
a line break in the source.
"""


def test_caption_is_rendered_not_shown_as_markup():
    out = caption_html(CAPTION, {"scale": "quick", "run_name": "r1"})
    assert "<strong>demo_fig</strong>" in out
    assert "quick scale" in out and '<span class="docutils literal">r1</span>' in out
    assert "<math" in out and "msqrt" in out  # math as MathML
    for raw in ("**", "``", ":math:", "{{"):
        assert raw not in out
    # the source's line breaks are one paragraph
    assert out.count("<p>") == 1


def test_a_broken_caption_does_not_print_docutils_errors_into_the_page():
    out = caption_html("An *unclosed emphasis and a `bad role`_.\n", {})
    assert "System Message" not in out and "ERROR" not in out


def test_verdicts_and_counts():
    claims = [
        claim("a", "p", "r", True),
        claim("b", "p", "r", False),
        claim("c", "p", "only at paper scale", None),
    ]
    assert [c["holds"] for c in claims] == [True, False, None]
    assert claim_counts(claims) == {"holds": 1, "fails": 1, "na": 1}
    table = _claims_table(claims)
    assert verdict(True) in table and verdict(False) in table and verdict(None) in table
    assert "does not hold" in verdict(False) and "fails" in verdict(False)
    assert "not applicable at this scale" in verdict(None)


def test_target_jobs_follow_inputs_back_to_their_producers():
    records = [
        {"job": {"outputs": ["data.npz"]}, "inputs": [], "rule": "prepare"},
        {
            "job": {"outputs": ["run0.json"]},
            "inputs": [{"path": "data.npz"}],
            "rule": "train",
        },
        {
            "job": {"outputs": ["run1.json"]},
            "inputs": [{"path": "data.npz"}],
            "rule": "train",
        },
        {
            "job": {"outputs": ["fig.png", "fig.csv"]},
            "inputs": [{"path": "run0.json"}, {"path": "run1.json"}],
            "rule": "plot",
        },
        {"job": {"outputs": ["other.png"]}, "inputs": [], "rule": "unrelated"},
    ]
    jobs = target_jobs(records, ["fig.png", "fig.csv"])
    assert sorted(r["rule"] for r in jobs) == ["plot", "prepare", "train", "train"]


def test_browser_shows_verdicts_math_and_no_markup(tmp_path):
    browser = chromium_or_skip()
    claims = [
        claim("a", "p", "r", True),
        claim("b", "p", "r", False),
        claim("c", "p", "r", None),
    ]
    page = tmp_path / "page.html"
    from weightspace.pipeline.report import STYLE

    page.write_text(
        f"<!DOCTYPE html><html><head><meta charset='utf-8'><style>{STYLE}</style>"
        f"</head><body>{caption_html(CAPTION, {'scale': 'quick', 'run_name': 'r'})}"
        f"{_claims_table(claims)}</body></html>"
    )
    seen = probe(page, browser, tmp_path)
    assert seen["verdicts"] == {"holds": 1, "fails": 1, "na": 1}
    assert seen["math"] == 1 and seen["claims_tables"] == 1
    assert seen["fails_color"] not in (None, "rgba(0, 0, 0, 0)")  # highlighted
    assert "**" not in seen["text"] and "``" not in seen["text"]
    json.dumps(seen)


def test_overview_cell_counts_decided_claims_and_marks_the_rest():
    holds, fails, na = (
        claim(x, "p", "r", v) for x, v in zip("abc", (True, False, None))
    )
    assert claims_summary([holds, holds]) == "2 of 2 hold"
    both = claims_summary([holds, fails, na])
    assert both.startswith("1 of 2 hold") and "does not hold" in both and "×1" in both
    assert both.endswith(f"1 {verdict(None)}")
    only_na = claims_summary([na])
    assert only_na == f"1 {verdict(None)}" and "of 0" not in only_na
    assert claims_summary([]) == "no claims"
