"""The shared paper-vs-measured row: its verdict (the interval's, or a rule's), JSON round trip, the AlexNet
study's earlier row dicts, and the table and figure it renders."""
import pytest

from bench.report.claim_row import ClaimRow, Panel, PlotLine, fmt_paper, markdown_table, plot_claims


def test_verdict_from_the_interval_unless_overridden():
    row = ClaimRow("LRN", "13% -> 11%", paper_value=-2.0, unit="pp", mean=-1.9, ci=(-2.5, -1.3), n=5)
    assert row.verdict == "agrees" and row.includes_null is False and row.half_width == pytest.approx(0.6)
    assert ClaimRow("LRN", "words", unit="pp", mean=-1.0, ci=(-2.0, 0.5)).verdict == "-"  # no paper number
    ruled = row.overridden("not a test of normalisation", verdict_as_measured=row.verdict)
    assert ruled.verdict == "not a test of normalisation" and ruled.interval_verdict == "agrees"
    assert ruled.details == {"verdict_as_measured": "agrees"} and row.details == {}


def test_a_ratio_without_interval_has_null_one():
    row = ClaimRow("LRN cost", "no statement", metric="step time", unit="x", mean=1.46, null=1.0,
                   verdict_override="feature costs +46.2% step time")
    assert row.ci is None and row.includes_null is None and row.verdict == "feature costs +46.2% step time"
    assert ClaimRow("Figure 1", "6x", paper_value=6.0, unit="x", null=1.0, mean=2.0, ci=(1.5, 2.7)).verdict \
        == "agrees in direction, smaller"
    assert fmt_paper(ClaimRow("Figure 1", "6x sooner", paper_value=6.0, unit="x")) == "6x"


def test_dict_round_trip_and_the_earlier_alexnet_rows():
    row = ClaimRow("LRN", "-1.4", paper_value=-1.4, unit="pp", mean=-1.0, ci=(-1.5, -0.5), n=2, seeds=("0", "1"),
                   recipe="base", details={"failed": {"lrn": [2]}})
    assert ClaimRow.from_dict(row.to_dict()) == row
    old = {"claim": "LRN", "metric": "top-1", "recipe": "base", "paper": -1.4, "paper_value": -1.4, "unit": "pp",
           "measured": {"n": 2, "seeds": ["0", "1"], "diffs": [-0.01, -0.01], "mean": -0.01, "sd": 0.0,
                        "ci": [-0.015, -0.005], "level": 0.95, "half_width": 0.005, "includes_zero": False},
           "stability": "on: 2/2 ok; off: 2/2 ok", "setting": "synthetic", "where": "sec. 3.3"}
    back = ClaimRow.from_dict(old)
    assert back.mean == pytest.approx(-1.0) and back.ci == pytest.approx((-1.5, -0.5)) and back.n == 2
    assert back.seeds == ("0", "1") and back.where == "sec. 3.3" and fmt_paper(back) == "-1.4 pp"


def test_table_and_figure(tmp_path):
    rows = [ClaimRow("LRN", "-1.4", paper_value=-1.4, unit="pp", mean=-1.0, ci=(-1.5, -0.5), n=2),
            ClaimRow("Pool", "not given", unit="pp")]
    lines = markdown_table(rows, [("claim", lambda r: r.claim), ("paper", fmt_paper), ("pairs", lambda r: r.n)])
    assert lines == ["| claim | paper | pairs |", "|---|---|---|", "| LRN | -1.4 pp | 2 |", "| Pool | not given | 0 |"]
    path = tmp_path / "deltas.png"
    panel = Panel([PlotLine("LRN", -1.4, [rows[0], None]), PlotLine("Pool", -1.0, [rows[1], rows[1]], bound=True)],
                  "pp")
    assert plot_claims(path, [panel], [("a", "C0"), ("b", "C1")], "title") and path.stat().st_size > 1000
    assert not plot_claims(tmp_path / "none.png", [], [], "title") and not (tmp_path / "none.png").exists()
