"""Run the benchmarks: ``python -m bench [name ...] [--reps N] [-p key=value ...]``.

With no name every benchmark runs (``make bench``). Results are printed as one table and merged into
``bench/results.json`` (a benchmark run alone replaces only its own entry), each entry with the
parameters, the machine and the date it was measured on.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import inspect
import json
import os
import sys
import time
import traceback
from datetime import UTC, datetime
from typing import Any

from bench import RESULTS_PATH, BenchResult, airflow_env, log, machine

BENCHMARKS: tuple[str, ...] = (
    "breach_detection",
    "rollback_time",
    "blast_radius",
    "trigger_footprint",
    "plan_latency",
    "dag_parse",
)


def _param(text: str) -> tuple[str, Any]:
    """``key=value`` with the value read as JSON when it is JSON (numbers, lists), else as a string."""
    key, sep, raw = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected key=value, got {text!r}")
    try:
        return key, json.loads(raw)
    except json.JSONDecodeError:
        return key, raw


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        if value == 0:
            return "0"
        if abs(value) >= 100:
            return f"{value:.0f}"
        if abs(value) >= 10:
            return f"{value:.1f}"
        if abs(value) >= 0.01:
            return f"{value:.3f}"
        return f"{value:.2e}"
    return str(value)


def table(results: list[BenchResult]) -> str:
    """One compact table of every metric, each benchmark headed by the parameters it ran with."""
    header = ("metric", "n", "median", "p95", "max", "unit")
    rows: list[tuple[str, ...] | str] = []
    for result in results:
        shown = {k: v for k, v in result.params.items() if not isinstance(v, list | dict)}
        rows.append(f"{result.name}  ({', '.join(f'{k}={v}' for k, v in shown.items())}; {result.seconds:.0f} s)")
        for metric in result.metrics:
            s = metric.summary
            rows.append(
                (
                    f"  {metric.name}",
                    str(s["n"]),
                    _fmt(s["median"]),
                    _fmt(s["p95"]),
                    _fmt(s["max"]),
                    metric.unit,
                )
            )
    cells = [r for r in rows if isinstance(r, tuple)]
    widths = [max(len(str(c[i])) for c in [header, *cells]) for i in range(len(header))]
    widths[0] = min(widths[0], 58)

    def line(cols: tuple[str, ...]) -> str:
        first = cols[0] if len(cols[0]) <= widths[0] else cols[0][: widths[0] - 1] + "…"
        rest = [c.rjust(w) for c, w in zip(cols[1:], widths[1:], strict=True)]
        return "  ".join([first.ljust(widths[0]), *rest])

    out = [line(header), "-" * (sum(widths) + 2 * (len(widths) - 1))]
    for row in rows:
        out.append(row if isinstance(row, str) else line(row))
    return "\n".join(out)


def save(results: list[BenchResult], host: dict[str, Any]) -> None:
    """Merge into results.json: entries of benchmarks not run this time are kept as they were."""
    data: dict[str, Any] = {}
    if RESULTS_PATH.exists():
        with contextlib.suppress(json.JSONDecodeError, OSError):
            data = json.loads(RESULTS_PATH.read_text())
    benchmarks = data.get("benchmarks", {}) if isinstance(data.get("benchmarks"), dict) else {}
    for result in results:
        benchmarks[result.name] = {**result.to_dict(), "machine": host}
    data = {"command": "python -m bench [name ...]", "benchmarks": benchmarks}
    RESULTS_PATH.write_text(json.dumps(data, indent=2, default=str) + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", choices=[[], *BENCHMARKS], metavar="name", help=", ".join(BENCHMARKS))
    parser.add_argument("--reps", type=int, default=None, help="repetitions (default: each benchmark's own)")
    parser.add_argument(
        "-p",
        "--param",
        type=_param,
        action="append",
        default=[],
        help="keyword for the benchmarks whose run() takes it, e.g. -p poll=2 or -p counts=[1,5]",
    )
    args = parser.parse_args(argv)
    names = args.names or list(BENCHMARKS)
    params = dict(args.param)
    airflow_env()
    host = machine()
    log(f"machine: {host}")
    modules = {name: importlib.import_module(f"bench.{name}") for name in names}
    accepted = {name: set(inspect.signature(m.run).parameters) for name, m in modules.items()}
    unknown = [key for key in params if not any(key in keys for keys in accepted.values())]
    if unknown:
        parser.error(f"no selected benchmark takes {unknown}; see each run()'s keyword arguments")
    results: list[BenchResult] = []
    failed: list[str] = []
    for name, module in modules.items():
        reps = args.reps if args.reps is not None else module.DEFAULT_REPS
        own = {key: value for key, value in params.items() if key in accepted[name]}
        log(f"{name}: {reps} repetition(s) {own or ''}")
        started = time.monotonic()
        try:
            result = module.run(reps, **own)
        except Exception:
            traceback.print_exc()
            failed.append(name)
            continue
        result.seconds = time.monotonic() - started
        result.measured_at = datetime.now(UTC).isoformat(timespec="seconds")
        results.append(result)
        log(f"{name}: done in {result.seconds:.1f} s")
    if results:
        save(results, {**host, "load_avg_after": [round(x, 2) for x in os.getloadavg()]})
        print(table(results))
        for result in results:
            for note in result.notes:
                print(f"note [{result.name}]: {note}")
    if failed:
        print(f"FAILED: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
