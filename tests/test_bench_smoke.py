"""Every benchmark script runs on tiny sizes and prints its figures and its ratio to the baseline.

Not a timing test: the figures of a smoke run mean nothing. It keeps the scripts from rotting
as the code they measure changes (bench/run_all runs them at full size).
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / "bench"
sys.path.insert(0, str(BENCH))

from _common import SUMMARY_FIELDS, parse_summaries  # noqa: E402
from _plan import BENCHMARKS, EXTRAS  # noqa: E402

FIGURE = re.compile(r"\d")
RATIO = re.compile(r"^\d+(\.\d+)?x")


def _run(args: list[str], timeout: float = 300) -> subprocess.CompletedProcess:
    # A deadline against a hang, not a speed check: on a loaded machine a smoke run takes minutes.
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=timeout, cwd=BENCH.parent)


@pytest.mark.parametrize("script,smoke", [(script, smoke) for script, _what, _full, smoke in BENCHMARKS],
                         ids=[script for script, *_ in BENCHMARKS])
def test_benchmark_prints_its_figures_and_ratio_to_its_baseline(script, smoke):
    proc = _run([str(BENCH / script), *smoke])
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    rows = parse_summaries(proc.stdout)
    assert rows, f"{script} printed no summary line:\n{proc.stdout[-3000:]}"
    for row in rows:
        assert len(row) == len(SUMMARY_FIELDS), row
        benchmark, baseline, ours, ratio, target, met = row
        assert benchmark and target
        assert FIGURE.search(ours), row
        assert met in ("yes", "NO", "n/a"), row
    # Every script compares with a baseline measured in the same run, as a ratio.
    assert any(RATIO.match(row[3]) and FIGURE.search(row[1]) for row in rows), rows


def test_run_all_gathers_every_summary_into_one_table(tmp_path):
    proc = _run([str(BENCH / "run_all"), "--smoke", "--only", "bench_poll.py,bench_writes.py"])
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    table = proc.stdout.split("## Summary", 1)[1]
    assert "| " + " | ".join(SUMMARY_FIELDS) + " |" in table
    assert "| poll sweep (" in table and "| writes (" in table
    assert "FAILED" not in table


def test_every_benchmark_script_is_in_the_plan():
    planned = {script for script, *_ in BENCHMARKS} | {script for script, *_ in EXTRAS}
    assert {path.name for path in BENCH.glob("bench_*.py")} == planned


@pytest.mark.parametrize("script,smoke", [(script, smoke) for script, _what, smoke in EXTRAS],
                         ids=[script for script, *_ in EXTRAS])
def test_benchmarks_of_parts_of_the_app_run_on_tiny_sizes(script, smoke):
    proc = _run([str(BENCH / script), *smoke])
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert FIGURE.search(proc.stdout) and len(proc.stdout.splitlines()) > 3
