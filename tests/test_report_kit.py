"""The suite's report toolkit (``infra.report_kit``): number formats with missing values, Markdown tables,
README sections between markers, and figures written as PNGs."""
import math

import pytest

from infra import report_kit
from infra.errors import UsageError
from infra.report_kit import SectionError, cell, num, pct, ratio, replace_section, signed_pp, table, update_section

NAN = float("nan")


def test_pct_formats_a_fraction_and_missing_values():
    assert pct(0.1234) == "12.34%"
    assert pct(0.1234, 1) == "12.3%"
    assert pct(0) == "0.00%"
    assert pct(1) == "100.00%"
    assert pct(None) == "n/a" and pct(NAN) == "n/a"


def test_num_signed_pp_and_ratio():
    assert num(3.14159) == "3.14"
    assert num(12345.6, ",.0f") == "12,346"
    assert num(0.000123, ".2g") == "0.00012"
    assert num(None) == "n/a" and num(NAN, ".3f") == "n/a"
    assert signed_pp(0.0104) == "+1.04 pp" and signed_pp(-0.02) == "-2.00 pp" and signed_pp(0.0) == "+0.00 pp"
    assert signed_pp(-0.0123, 1) == "-1.2 pp"
    assert signed_pp(None) == "n/a" and signed_pp(NAN) == "n/a"
    assert ratio(0.891) == "0.89x" and ratio(6, 1) == "6.0x"
    assert ratio(None) == "n/a" and ratio(NAN) == "n/a"


def test_cell_blank_when_missing_yes_no_for_booleans():
    assert cell(None) == "" and cell(NAN) == ""
    assert cell(True) == "yes" and cell(False) == "no"  # not '1' / '0'
    assert cell(0.123456) == "0.123" and cell(1234.5, ".1f") == "1234.5" and cell(7) == "7"
    assert cell("conv1") == "conv1"
    assert cell(math.inf) == "inf"  # infinite is a value, not a gap


def test_table_layout_and_escaping():
    lines = table(["a", "b"], [[1, "x"], ["p|q", "two\nlines"]])
    assert lines == ["| a | b |", "|---|---|", "| 1 | x |", "| p/q | two lines |"]
    # a '|' in a header or cell never adds a column
    for line in table(["h|1", "h2"], [["a|b|c", "d"]]):
        assert line.count("|") == 3, line
    assert table(["only"], []) == ["| only |", "|---|"]


TEXT = "# top\n\nbefore\n<!-- demo:begin -->\nold rows\n<!-- demo:end -->\n\nafter\n"


def test_replace_section_replaces_only_the_block():
    assert report_kit.section_markers("demo") == ("<!-- demo:begin -->", "<!-- demo:end -->")
    new = replace_section(TEXT, "demo", "\nrow 1\nrow 2\n\n")
    assert new == "# top\n\nbefore\n<!-- demo:begin -->\nrow 1\nrow 2\n<!-- demo:end -->\n\nafter\n"
    assert replace_section(new, "demo", "row 1\nrow 2") == new  # filling again changes nothing
    # another section's markers are text like any other
    other = TEXT + "<!-- other:begin -->\nkeep\n<!-- other:end -->\n"
    assert replace_section(other, "demo", "x").endswith("after\n<!-- other:begin -->\nkeep\n<!-- other:end -->\n")


@pytest.mark.parametrize("text", [
    "no markers at all\n",
    "<!-- demo:begin -->\nonly the start\n",
    "only the end\n<!-- demo:end -->\n",
    "<!-- demo:end -->\nreversed\n<!-- demo:begin -->\n",
    TEXT + TEXT,  # the block twice
], ids=["missing", "no-end", "no-begin", "reversed", "doubled"])
def test_replace_section_refuses_a_missing_or_doubled_block(text):
    with pytest.raises(SectionError) as exc:
        replace_section(text, "demo", "x", where="README.md")
    message = str(exc.value)
    assert "README.md" in message and "<!-- demo:begin -->" in message and "<!-- demo:end -->" in message
    assert isinstance(exc.value, UsageError)  # a command line turns it into one line and status 2


def test_update_section_writes_the_file(tmp_path):
    path = tmp_path / "README.md"
    path.write_text(TEXT)
    assert update_section(path, "demo", "fresh rows") == path
    assert path.read_text() == TEXT.replace("old rows", "fresh rows")
    assert [p.name for p in tmp_path.iterdir()] == ["README.md"]  # no temporary file left behind
    path.write_text("no block\n")
    with pytest.raises(SectionError, match="demo:begin"):
        update_section(path, "demo", "rows")
    assert path.read_text() == "no block\n"  # untouched when refused
    with pytest.raises(SectionError, match="no such file"):
        update_section(tmp_path / "missing.md", "demo", "rows")
    assert not (tmp_path / "missing.md").exists()


def test_save_figure_writes_a_png_and_frees_the_figure(tmp_path):
    plt = report_kit.pyplot()
    fig, ax = plt.subplots(figsize=(2.0, 1.0))
    ax.plot([1, 2, 3], [3, 1, 2])
    path = tmp_path / "fig.png"
    assert report_kit.save_figure(fig, path) == path
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    assert (width, height) == (2 * report_kit.DPI, 1 * report_kit.DPI)
    assert not plt.fignum_exists(fig.number)
    assert [p.name for p in tmp_path.iterdir()] == ["fig.png"]
