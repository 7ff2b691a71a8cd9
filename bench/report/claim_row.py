"""One 'paper vs measured' row, shared by the reports that set the paper's figures beside this project's.

``ClaimRow``: a claim, the paper's figure (as the paper states it, and as a number where it gives one), the
measured mean with its 95% interval (None where there is none: one pair, or one benchmark run), the number
of pairs, the value of no effect (``null``: 0 for a delta, 1 for a ratio) and the verdict - the interval's
(``bench.ablations.stats.verdict``) unless a rule overrides it - plus the context a study needs (setting,
stability, recipe, and free-form ``details``). ``to_dict``/``from_dict`` keep it in JSON (``from_dict``
also reads the AlexNet study's earlier rows, whose ``measured`` held the paired delta in fractions).

``markdown_table`` renders rows with chosen columns; ``plot_claims`` draws each claim's measured point and
interval beside the paper's marker, one panel per group of claims.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Callable, Mapping, NamedTuple, Sequence

from bench.ablations.stats import verdict
from infra import report_kit


@dataclass(frozen=True)
class ClaimRow:
    """A paper claim and its measurement; ``mean`` and ``ci`` are in ``unit`` (pp for deltas, x for ratios)."""

    claim: str
    paper: str  # the paper's figure or statement, as the report quotes it
    paper_value: float | None = None  # the figure as a number in ``unit``; None for words or a bound
    where: str = ""  # where the paper says it (section, figure)
    metric: str = ""
    unit: str = ""
    mean: float | None = None
    ci: tuple[float, float] | None = None
    n: int = 0  # pairs behind the mean
    null: float = 0.0  # no effect: 0 for a delta, 1 for a ratio
    verdict_override: str | None = None  # a rule's reading in place of the interval's
    key: str = ""
    setting: str = ""
    stability: str = ""
    recipe: str = ""
    seeds: tuple = ()  # the paired seeds
    details: Mapping = field(default_factory=dict)

    @property
    def half_width(self) -> float | None:
        return None if self.ci is None else (self.ci[1] - self.ci[0]) / 2

    @property
    def includes_null(self) -> bool | None:
        """True when the interval contains no effect (the sign is not resolved); None without an interval."""
        return None if self.ci is None else self.ci[0] <= self.null <= self.ci[1]

    @property
    def interval_verdict(self) -> str:
        """``stats.verdict`` of the interval on the paper's number; '-' where the paper gives none."""
        return "-" if self.paper_value is None else verdict(self.ci, self.paper_value, self.null)

    @property
    def verdict(self) -> str:
        return self.interval_verdict if self.verdict_override is None else self.verdict_override

    def overridden(self, reading: str, **details) -> ClaimRow:
        """This row with ``reading`` as its verdict and ``details`` added."""
        return replace(self, verdict_override=reading, details={**self.details, **details})

    def to_dict(self) -> dict:
        return {**asdict(self), "ci": None if self.ci is None else list(self.ci), "seeds": list(self.seeds),
                "details": dict(self.details)}

    @classmethod
    def from_dict(cls, d: Mapping) -> ClaimRow:
        if isinstance(d.get("measured"), Mapping):
            return _from_paired_delta_dict(d)
        ci = d.get("ci")
        return cls(**{**d, "ci": None if ci is None else tuple(ci), "seeds": tuple(d.get("seeds", ())),
                      "details": dict(d.get("details") or {})})


def _from_paired_delta_dict(d: Mapping) -> ClaimRow:
    """An earlier AlexNet study row: ``measured`` is ``PairedDelta.to_dict()`` in fractions of error."""
    m = d["measured"]
    pp = lambda v: None if v is None else 100 * v  # noqa: E731
    return ClaimRow(claim=d["claim"], paper=str(d["paper"]), paper_value=d.get("paper_value"), where=d.get("where", ""),
                    metric=d.get("metric", ""), unit=d.get("unit", "pp"), mean=pp(m["mean"]),
                    ci=None if m["ci"] is None else (pp(m["ci"][0]), pp(m["ci"][1])), n=m["n"],
                    recipe=d.get("recipe", ""), setting=d.get("setting", ""), stability=d.get("stability", ""),
                    seeds=tuple(m.get("seeds", ())))


def fmt_paper(row: ClaimRow) -> str:
    """The paper's figure: '-1.4 pp', '6x', or its words where it gives no number."""
    if row.paper_value is None:
        return row.paper
    return f"{row.paper_value:g}x" if row.unit == "x" else f"{row.paper_value:+.1f} pp"


Column = tuple[str, Callable[[ClaimRow], object]]


def markdown_table(rows: Sequence[ClaimRow], columns: Sequence[Column]) -> list[str]:
    """The rows as Markdown table lines; ``columns``: (header, the cell of a row) in order."""
    return report_kit.table([h for h, _ in columns], ([cell(r) for _, cell in columns] for r in rows))


# ---- the figure -----------------------------------------------------------------------------------


class PlotLine(NamedTuple):
    """One claim of a panel: its label, the paper's figure (None: no marker; ``bound``: 'beyond this value',
    drawn as a triangle pointing past it) and one row per series (None where a series lacks it)."""

    label: str
    paper: float | None
    rows: Sequence[ClaimRow | None]
    bound: bool = False


class Panel(NamedTuple):
    lines: Sequence[PlotLine]
    xlabel: str
    null: float = 0.0
    log_ticks: Sequence[float] | None = None  # a ratio panel: log axis with these ticks ('x' suffix)


def plot_claims(path: Path, panels: Sequence[Panel], series: Sequence[tuple[str, str]], title: str) -> bool:
    """Each claim's measured mean and 95% interval (one marker per series: (legend label, colour)) beside
    the paper's figure (a red x), one panel per group; False, writing nothing, when there is no panel."""
    if not panels:
        return False
    plt = report_kit.pyplot()
    height = 2.0 + 0.55 * max(len(p.lines) for p in panels)
    fig, axes = plt.subplots(1, len(panels), figsize=(4.8 * len(panels), height), squeeze=False, layout="constrained")
    legend: dict[str, object] = {}
    for ax, panel in zip(axes[0], panels):
        _draw_panel(ax, panel, series)
        for handle, label in zip(*ax.get_legend_handles_labels()):
            legend.setdefault(label, handle)
    # one legend for the figure, below the panels, where it cannot cover a marker: the series in their order,
    # then the paper's markers
    order = sorted(legend, key=lambda label: next((i for i, (name, _) in enumerate(series)
                                                   if label == f"{name}, 95% CI"), len(series)))
    fig.legend([legend[label] for label in order], order, loc="outside lower center", ncol=len(order), fontsize=7,
               frameon=False)
    fig.suptitle(title, fontsize=10)
    report_kit.save_figure(fig, path, tight=False)
    return True


def _draw_panel(ax, panel: Panel, series: Sequence[tuple[str, str]]) -> None:
    labelled: set[str] = set()

    def once(label: str) -> str | None:
        """The legend label the first time it is drawn, None after."""
        if label in labelled:
            return None
        labelled.add(label)
        return label

    for y, line in enumerate(panel.lines):
        for j, ((label, color), r) in enumerate(zip(series, line.rows)):
            if r is None:
                continue
            yy = y + (0.12 - 0.24 * j / (len(series) - 1) if len(series) > 1 else 0.0)
            if r.mean is None:
                ax.text(panel.null, yy, "no pair", ha="center", va="center", fontsize=7)
                continue
            if r.ci is not None:
                ax.plot(r.ci, [yy, yy], color=color, lw=2.5, solid_capstyle="butt")
            ax.plot(r.mean, yy, "o", color=color, label=once(f"{label}, 95% CI"))
        if line.paper is not None:
            marker, name = ("<" if line.paper < panel.null else ">", "paper (bound)") if line.bound else ("x", "paper")
            ax.plot(line.paper, y, marker, color="C3", ms=9, mew=2, label=once(name))
    ax.axvline(panel.null, color="k", lw=0.8)
    ax.set_yticks(range(len(panel.lines)))
    ax.set_yticklabels([line.label for line in panel.lines], fontsize=8)
    ax.set_ylim(-0.6, len(panel.lines) - 0.4)
    if panel.log_ticks is not None:
        ax.set_xscale("log")
        shown = [v for line in panel.lines for r in line.rows if r is not None and r.mean is not None
                 for v in (r.mean, *(r.ci or ()))]
        shown += [panel.null] + [line.paper for line in panel.lines if line.paper is not None]
        ax.set_xlim(min(shown) / 1.25, max(shown) * 1.25)  # the paper's figure inside the frame, with a margin
        report_kit.log_ticks(ax, "x", ticks=panel.log_ticks, suffix="x")
    ax.set_xlabel(panel.xlabel, fontsize=8)
