"""The one report toolkit of the suite: number formats, Markdown tables, one figure style, and the
README's generated sections between markers.

Every report uses it: a training run's (``alexnet/train.py``), the benchmark reports (``bench/report/``)
and the two studies' (``bench/ablations/alexnet_report.py``, ``bench/ablations/cifar_report/``). It sits
in ``infra``, which imports none of them, so that all of them can import it.

* Numbers: ``pct`` (a fraction as a percentage), ``num``, ``signed_pp`` (a difference in percentage
  points), ``ratio`` ("0.89x"), ``cell`` (a table cell: missing values blank). A value that was not
  measured is written "n/a" (or left blank in a cell), never as a number.
* Tables: ``table`` (rows of cells), ``frame_table`` (a pandas DataFrame).
* Figures: ``pyplot()`` (matplotlib on the Agg backend, no display needed), ``save_figure`` (lay out,
  write atomically at one resolution, free), ``log_ticks`` (plain numbers on a log axis).
* README sections: ``<!-- NAME:begin -->`` ... ``<!-- NAME:end -->`` blocks that a report fills
  (``update_section``); everything outside them is left as it is.
"""
from __future__ import annotations

import io
import math
from pathlib import Path
from typing import Iterable, Sequence

from infra.atomic_io import atomic_write, write_text_atomic
from infra.errors import UsageError

# ---- numbers ----------------------------------------------------------------------------------------

MISSING = "n/a"


def _missing(value) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def pct(value, digits: int = 2) -> str:
    """A fraction as a percentage: 0.1234 -> '12.34%'."""
    return MISSING if _missing(value) else f"{100 * value:.{digits}f}%"


def num(value, spec: str = ".2f") -> str:
    return MISSING if _missing(value) else format(value, spec)


def signed_pp(value, digits: int = 2) -> str:
    """A difference of two error rates (fractions) in percentage points: 0.0104 -> '+1.04 pp'."""
    return MISSING if _missing(value) else f"{100 * value:+.{digits}f} pp"


def ratio(value, digits: int = 2) -> str:
    """A speed-up or any other ratio: 0.891 -> '0.89x'."""
    return MISSING if _missing(value) else f"{value:.{digits}f}x"


def cell(value, spec: str = ".3g") -> str:
    """A table cell: numbers formatted, missing values blank, booleans yes/no."""
    if _missing(value):
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (int, float)):
        return format(value, spec)
    return str(value)


# ---- Markdown tables --------------------------------------------------------------------------------


def _cell_text(value) -> str:
    return str(value).replace("|", "/").replace("\n", " ")


def table(header: Sequence[str], rows: Iterable[Sequence]) -> list[str]:
    """A GitHub Markdown table as lines; cells are written as given (format them first), '|' escaped."""
    lines = ["| " + " | ".join(_cell_text(h) for h in header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(_cell_text(c) for c in row) + " |" for row in rows]
    return lines


def frame_table(frame, formats: dict | None = None, empty: str = "_no results_") -> str:
    """A pandas DataFrame as a Markdown table; ``formats`` maps a column to its format spec (default '.3g')."""
    if frame.empty:
        return empty + "\n"
    formats = formats or {}
    cols = list(frame.columns)
    rows = ([cell(row[c], formats.get(c, ".3g")) for c in cols] for _, row in frame.iterrows())
    return "\n".join(table([str(c) for c in cols], rows)) + "\n"


# ---- figures ----------------------------------------------------------------------------------------

DPI = 110  # every PNG of the suite: legible at 100% zoom, small enough to commit


def pyplot():
    """matplotlib.pyplot on the Agg backend (reports render on machines without a display)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, path: str | Path, tight: bool = True) -> Path:
    """Lay out (``tight``; figures made with a layout engine pass False), write the PNG atomically at
    ``DPI`` and free the figure."""
    plt = pyplot()
    if tight:
        fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI)
    plt.close(fig)
    return atomic_write(path, lambda f: f.write(buf.getvalue()))


LOG_TICKS = (0.015625, 0.03125, 0.0625, 0.125, 0.25, 0.5, 1, 2, 4, 8, 16, 32, 64, 128)


def log_ticks(ax, axis: str = "x", ticks: Sequence[float] = LOG_TICKS, suffix: str = "",
              max_labels: int | None = None) -> None:
    """Plain-number ticks (0.5, 1, 2, 4, ...) on a log axis, only those inside its limits, no minor
    ticks (matplotlib's default labels run together as '0.1250.250.5'). ``max_labels`` thins them to
    every 2nd, 3rd, ... tick, counted from 1, so that labels never touch; ``suffix`` follows each ('x')."""
    from matplotlib.ticker import FixedLocator, FuncFormatter, NullLocator

    which = ax.xaxis if axis == "x" else ax.yaxis
    lo, hi = ax.get_xlim() if axis == "x" else ax.get_ylim()
    shown = [t for t in ticks if lo <= t <= hi] or [1]
    if max_labels:
        step = max(1, -(-len(shown) // max_labels))
        one = shown.index(1) if 1 in shown else 0
        shown = [t for i, t in enumerate(shown) if (i - one) % step == 0]
    which.set_major_locator(FixedLocator(shown))
    which.set_minor_locator(NullLocator())
    which.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:g}{suffix}"))


# ---- README sections --------------------------------------------------------------------------------


class SectionError(UsageError, ValueError):
    """A file lacks the marked section a report is asked to fill (the message names both)."""


def section_markers(name: str) -> tuple[str, str]:
    return f"<!-- {name}:begin -->", f"<!-- {name}:end -->"


def replace_section(text: str, name: str, body: str, where: str = "the file") -> str:
    """``text`` with the lines between NAME's markers replaced by ``body``."""
    begin, end = section_markers(name)
    if text.count(begin) != 1 or text.count(end) != 1 or text.index(begin) > text.index(end):
        raise SectionError(f"{where} has no single {begin} ... {end} section to fill; "
                           "add the two marker lines where the generated rows belong")
    head, rest = text.split(begin, 1)
    _, tail = rest.split(end, 1)
    return f"{head}{begin}\n{body.strip(chr(10))}\n{end}{tail}"


def update_section(path: str | Path, name: str, body: str) -> Path:
    """Fill NAME's section of the file at ``path`` with ``body``, atomically; the rest stays as it is."""
    path = Path(path)
    if not path.is_file():
        raise SectionError(f"{path}: no such file to fill the {name} section of")
    return write_text_atomic(path, replace_section(path.read_text(), name, body, where=str(path)))
