"""The monitoring report as one picture: every check as a bar of how far it is towards its RETRAIN level,
the worst first, coloured by its status."""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure

from pyfunc_models import config
from pyfunc_models.monitoring.profile import LEVELS, RETRAIN, WARN, PeriodReport

COLOURS = {"OK": "#4c9a5b", "WARN": "#e0a526", "RETRAIN": "#c8423b"}
SHOWN = 14  # checks drawn, the worst first


def _position(check, thresholds) -> tuple:
    """(how far towards its RETRAIN level, interval low, high) of a check, 1.0 being the level."""
    figures = check.figures
    if "psi" in figures:
        return figures["psi"] / thresholds.PSI_RETRAIN, None, None
    if "rise" in figures:
        return figures["rise"] / figures["retrain_level"], None, None
    size = figures["size"]
    low, high = figures["drop_low"], figures["drop_high"]
    return figures["drop"] / size, low / size if np.isfinite(low) else None, high / size if np.isfinite(high) else None


def _label(check) -> str:
    text = check.reason if len(check.reason) <= 95 else check.reason[:92] + "..."
    return text


def report_figure(report: PeriodReport, title: str, thresholds=config.MONITORING) -> Figure:
    checks = sorted(report.checks, key=lambda c: (-LEVELS[c.status], -_position(c, thresholds)[0]))[:SHOWN]
    figure = Figure(figsize=(13, 1.5 + 0.42 * max(len(checks), 1)))
    axes = figure.subplots()
    positions = [_position(check, thresholds) for check in checks]
    ys = np.arange(len(checks))[::-1]
    values = [max(p[0], 0.0) for p in positions]
    axes.barh(ys, values, color=[COLOURS[c.status] for c in checks], height=0.6)
    for y, (value, low, high) in zip(ys, positions):
        if low is not None and high is not None:
            axes.plot([max(low, 0), max(high, 0)], [y, y], color="black", linewidth=1.2)
    axes.axvline(1.0, color=COLOURS[RETRAIN], linestyle="--", linewidth=1)
    axes.set_yticks(ys, [_label(c) for c in checks], fontsize=8)
    axes.set_xlabel("share of the RETRAIN level (PSI 0.2, a rate's rise, a metric's drop); black: 99% bootstrap "
                    "interval of a drop", fontsize=8)
    axes.set_xlim(0, max(2.0, min(max(values + [0]) * 1.1, 6.0)))
    warned = sum(c.status == WARN for c in report.checks)
    retrain = sum(c.status == RETRAIN for c in report.checks)
    axes.set_title(f"{title}\n{report.status}: {retrain} RETRAIN, {warned} WARN of {len(report.checks)} checks "
                   f"(the worst first)", fontsize=10, color=COLOURS[report.status], loc="left")
    figure.tight_layout()
    return figure
