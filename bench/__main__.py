"""Run the benchmarks: ``python -m bench [name ...] [--quick] [--reps N] [-p key=value ...] [--out DIR]``.

With no name every benchmark runs (``make bench``). Results are printed as one table and merged into
``results.json`` (a benchmark run alone replaces only its own entry), each entry with the parameters,
the machine and the date it was measured on; ``RESULTS.md`` and the SVG charts are written next to it.
``--quick`` runs fewer repetitions at smaller scales and shorter timings (the test suite runs it).
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
from pathlib import Path
from typing import Any

from bench import RESULTS_PATH, BenchResult, airflow_env, log, machine, report

# What ``make bench`` runs, in this order (the slow Airflow one in the middle, so a failure shows early).
BENCHMARKS: tuple[str, ...] = (
    "blast_radius",
    "rollback_visibility",
    "router_rollback",
    "rollback_storm",
    "api_cost",
    "dag_parse",
    "trigger_footprint",
    "worker_slots",
)
# Longest first, so that parallel runs (--quick) end soon after the slowest benchmark.
PARALLEL_ORDER: tuple[str, ...] = (
    "trigger_footprint",
    "blast_radius",
    "rollback_visibility",
    "router_rollback",
    "rollback_storm",
    "api_cost",
    "dag_parse",
    "worker_slots",
)
# Older single-purpose benchmarks, run only when named.
EXTRA: tuple[str, ...] = ("breach_detection", "rollback_time", "plan_latency")


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


def save(results: list[BenchResult], host: dict[str, Any], out_dir: Path, command: str) -> dict[str, Any]:
    """Merge into results.json (entries of benchmarks not run this time are kept), draw, write RESULTS.md."""
    path = out_dir / RESULTS_PATH.name
    data: dict[str, Any] = {}
    if path.exists():
        with contextlib.suppress(json.JSONDecodeError, OSError):
            data = json.loads(path.read_text())
    benchmarks = data.get("benchmarks", {}) if isinstance(data.get("benchmarks"), dict) else {}
    for result in results:
        files = report.draw(result.plots, out_dir)
        load = result.details.get("load_avg", {})
        own_host = {**host, "load_avg": load.get("before", host.get("load_avg")), "load_avg_after": load.get("after")}
        # The charts' data stays in the entry, so they can be drawn again from results.json alone.
        benchmarks[result.name] = {**result.to_dict(), "machine": own_host, "plot_files": files, "plots": result.plots}
    data = {"command": command, "benchmarks": benchmarks}
    path.write_text(json.dumps(data, indent=2, default=str) + "\n")
    report.write(data, out_dir / "RESULTS.md", command=command)
    return data


def _stop_on_sigterm() -> None:
    """SIGTERM unwinds like Ctrl-C, so sandboxes and Airflow stacks are stopped by their context managers."""
    import signal

    def stop(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, stop)


def main(argv: list[str] | None = None) -> int:
    _stop_on_sigterm()
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument(
        "names", nargs="*", choices=[[], *BENCHMARKS, *EXTRA], metavar="name", help=", ".join([*BENCHMARKS, *EXTRA])
    )
    parser.add_argument("--reps", type=int, default=None, help="repetitions (default: each benchmark's own)")
    parser.add_argument("--quick", action="store_true", help="fewer repetitions, smaller scales (about 90 s)")
    parser.add_argument("--out", type=Path, default=RESULTS_PATH.parent, help="where results and charts go")
    parser.add_argument(
        "--jobs",
        type=int,
        default=None,
        help="benchmarks run at once, each in its own process (default 1; 3 with --quick, whose timings are not goals)",
    )
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
    jobs = args.jobs if args.jobs is not None else (3 if args.quick else 1)
    if jobs > 1 and len(names) > 1:
        return _parallel(names, args, jobs, argv if argv is not None else sys.argv[1:])
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
        default = getattr(module, "QUICK_REPS", 1) if args.quick else module.DEFAULT_REPS
        reps = args.reps if args.reps is not None else default
        own = {key: value for key, value in params.items() if key in accepted[name]}
        if args.quick and "quick" in accepted[name]:
            own["quick"] = True
        log(f"{name}: {reps} repetition(s) {own or ''}")
        started = time.monotonic()
        load_before = [round(x, 2) for x in os.getloadavg()]
        try:
            result = module.run(reps, **own)
        except Exception:
            traceback.print_exc()
            failed.append(name)
            continue
        result.seconds = time.monotonic() - started
        result.details["load_avg"] = {"before": load_before, "after": [round(x, 2) for x in os.getloadavg()]}
        result.measured_at = datetime.now(UTC).isoformat(timespec="seconds")
        results.append(result)
        log(f"{name}: done in {result.seconds:.1f} s")
    if results:
        args.out.mkdir(parents=True, exist_ok=True)
        command = "python -m bench " + " ".join(argv if argv is not None else sys.argv[1:])
        save(results, {**host, "load_avg_after": [round(x, 2) for x in os.getloadavg()]}, args.out, command.strip())
        print(table(results))
        for result in results:
            for note in result.notes:
                print(f"note [{result.name}]: {note}")
    if failed:
        print(f"FAILED: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


def _parallel(names: list[str], args: argparse.Namespace, jobs: int, argv: list[str]) -> int:
    """Run each benchmark in a child ``python -m bench NAME`` (``jobs`` at a time), then merge their results."""
    import shutil
    import subprocess
    import tempfile

    forwarded = ["--quick"] if args.quick else []
    if args.reps is not None:
        forwarded += ["--reps", str(args.reps)]
    for key, value in args.param:
        forwarded += ["-p", f"{key}={json.dumps(value)}"]
    host = machine()
    log(f"machine: {host}; {len(names)} benchmarks, {jobs} at a time")
    failed: list[str] = []
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
        pending = sorted(names, key=lambda n: PARALLEL_ORDER.index(n) if n in PARALLEL_ORDER else len(PARALLEL_ORDER))
        running: dict[str, subprocess.Popen[bytes]] = {}
        while pending or running:
            while pending and len(running) < jobs:
                name = pending.pop(0)
                cmd = [sys.executable, "-m", "bench", name, "--jobs", "1", "--out", f"{tmp}/{name}", *forwarded]
                running[name] = subprocess.Popen(cmd)
            time.sleep(0.2)
            for name, proc in list(running.items()):
                if proc.poll() is not None:
                    del running[name]
                    if proc.returncode != 0:
                        failed.append(name)
        path = args.out / RESULTS_PATH.name
        data: dict[str, Any] = {}
        if path.exists():
            with contextlib.suppress(json.JSONDecodeError, OSError):
                data = json.loads(path.read_text())
        benchmarks = data.get("benchmarks", {}) if isinstance(data.get("benchmarks"), dict) else {}
        for name in names:
            child = Path(tmp) / name / RESULTS_PATH.name
            if not child.exists():
                continue
            entry = json.loads(child.read_text())["benchmarks"].get(name)
            if entry is None:
                continue
            benchmarks[name] = entry
            for plot in entry.get("plot_files", []):
                shutil.copy(Path(tmp) / name / plot, args.out / plot)
    command = ("python -m bench " + " ".join(argv)).strip()
    data = {"command": command, "benchmarks": benchmarks}
    path.write_text(json.dumps(data, indent=2, default=str) + "\n")
    report.write(data, args.out / "RESULTS.md", command=command)
    if failed:
        print(f"FAILED: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
