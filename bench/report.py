"""RESULTS.md and the charts, written from ``results.json`` (so a benchmark run alone keeps the others)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench import fmt
from bench.svg import bar_chart, line_chart

ORDER = (
    "blast_radius",
    "rollback_visibility",
    "worker_slots",
    "dag_parse",
    "trigger_footprint",
    "rollback_storm",
    "api_cost",
)


def _cell(value: Any) -> str:
    return fmt(value).replace("|", "\\|") if not isinstance(value, str) else value.replace("|", "\\|")


def markdown_table(header: list[str], rows: list[list[Any]]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return out


def draw(plots: list[dict[str, Any]], out_dir: Path) -> list[str]:
    """Write each chart as SVG in ``out_dir``; the file names written."""
    written = []
    for plot in plots:
        path = out_dir / plot["file"]
        if plot.get("kind") == "bar":
            bar_chart(path, plot["title"], plot["bars"], y_label=plot["y_label"])
        else:
            series = {name: [tuple(p) for p in points] for name, points in plot["series"].items()}
            line_chart(
                path,
                plot["title"],
                series,
                x_label=plot["x_label"],
                y_label=plot["y_label"],
                log_x=plot.get("log_x", False),
                styles=plot.get("styles"),
            )
        written.append(path.name)
    return written


def write(data: dict[str, Any], path: Path, *, command: str) -> None:
    """RESULTS.md: machine and date, a goals summary, then per benchmark its tables, goals and notes."""
    benchmarks: dict[str, Any] = data["benchmarks"]
    names = [n for n in ORDER if n in benchmarks] + [n for n in benchmarks if n not in ORDER]
    first = benchmarks[names[0]] if names else {}
    host = first.get("machine", {})
    lines = [
        "# bench results",
        "",
        f"Command: `{command}`. Written by `python -m bench`; the raw figures are in `results.json`.",
        "",
        f"Machine: {host.get('cpus')} x {host.get('cpu')}, {host.get('mem_gib')} GiB, {host.get('os')}, "
        f"Python {host.get('python')}, Airflow {host.get('apache-airflow')}, moto {host.get('moto')}, "
        f"boto3 {host.get('boto3')}.",
        "",
        "The host is shared (2 CPUs, other work running): each benchmark records the load average before "
        "and after it. Timings under a second move ±50 % between runs at load 2-4; compare medians "
        "measured on the same machine.",
        "",
        "Cells read `median [min-max]` over the repetitions. Times marked *scaled* ran with every AWS "
        "timing multiplied by the benchmark's `scale` (the same for bluegreen and the baseline); "
        "the figure next to them is converted back to AWS seconds where said.",
        "",
        "## Goals",
        "",
    ]
    rows = []
    for name in names:
        for goal in benchmarks[name].get("goals", []):
            rows.append([name, goal["name"], "met" if goal["met"] else "**missed**", goal["verdict"], goal["limit"]])
    lines += markdown_table(["benchmark", "goal", "", "measured", "what limits it"], rows)
    for name in names:
        entry = benchmarks[name]
        params = {k: v for k, v in entry.get("params", {}).items() if not isinstance(v, dict)}
        lines += [
            "",
            f"## {name}",
            "",
            f"Measured {entry.get('measured_at')} in {entry.get('wall_seconds')} s, load average "
            f"{entry.get('machine', {}).get('load_avg')} before, {entry.get('machine', {}).get('load_avg_after')} "
            "after.",
            "",
            "Parameters: " + ", ".join(f"`{k}={v}`" for k, v in params.items()),
        ]
        for table in entry.get("tables", []):
            lines += ["", f"**{table['title']}**", ""]
            lines += markdown_table(table["header"], table["rows"])
        goals = entry.get("goals", [])
        if goals:
            lines += [""]
            for goal in goals:
                state = "met" if goal["met"] else "MISSED"
                lines.append(f"* Goal {goal['name']}: **{state}**, {goal['verdict']}. {goal['limit']}".rstrip())
        for plot in entry.get("plot_files", []):
            lines += ["", f"![{plot}]({plot})"]
        for note in entry.get("notes", []):
            lines += ["", f"Note: {note}"]
    path.write_text("\n".join(lines) + "\n")
