"""Terminal output: bytes the dashboard writes to its terminal per second while jobs poll and tick.

The dashboard (`python -m tui`) runs on a pseudo-terminal of 120x40 (TERM=xterm-256color)
with `--pending` running jobs on a simulator in another process (their status flips every
`--flip-every` seconds, so polls keep changing rows) and a history of `--history` jobs; every
byte read from the pty's master side is counted over `--seconds` after a `--warmup` (the
first full paint is start-up, reported apart). The baseline is the bare Textual app (Header,
Input, DataTable, Footer) on the same pty for the same time: its only output is the blinking
cursor of its Input. The dashboard runs twice, in normal mode (`--full-bandwidth`, whatever
the environment says) and in low-bandwidth mode (`--low-bandwidth`: what a session over SSH
gets), each against its own target.

    python bench/bench_output.py                                      # 60 s
    python bench/bench_output.py --seconds 2 --warmup 2 --history 100 --pending 20   # smoke size
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from _common import machine, summary, table  # noqa: E402
from _workload import BARE_QUIT, TERMINAL_SIZE, Workload, bare_argv, dashboard_argv, run_in_pty  # noqa: E402

TARGET = 4096  # bytes per second
LOW_BANDWIDTH_TARGET = 1024


def rate(run: dict) -> float:
    return run["bytes"] / run["seconds"]


def kb(value: float) -> str:
    return f"{value / 1024:.2f} KB/s"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--warmup", type=float, default=5.0)
    parser.add_argument("--history", type=int, default=10_000)
    parser.add_argument("--pending", type=int, default=500)
    parser.add_argument("--flip-every", type=float, default=10.0, help="status flip period on the simulator (0: none)")
    parser.add_argument("--modes", default="normal,low", help="dashboard runs: normal, low (low-bandwidth), or both")
    args = parser.parse_args(argv)

    cols, rows_ = TERMINAL_SIZE
    print(f"Terminal output over {args.seconds:g} s after {args.warmup:g} s, {cols}x{rows_} pty, "
          f"{args.pending} pending of {args.history:,} jobs ({machine()})", flush=True)
    with tempfile.TemporaryDirectory(prefix="bench-output-") as tmp:
        with Workload(Path(tmp), history=args.history, pending=args.pending, flip_every=args.flip_every) as load:
            bare = run_in_pty(bare_argv(), env=load.env(), seconds=args.seconds, warmup=args.warmup,
                              quit_keys=BARE_QUIT)
            runs = {}
            for mode in [m.strip() for m in args.modes.split(",") if m.strip()]:
                flag = "--low-bandwidth" if mode == "low" else "--full-bandwidth"
                before = load.gets()
                runs[mode] = run_in_pty([*dashboard_argv(), flag], env=load.env(), seconds=args.seconds,
                                        warmup=args.warmup)
                runs[mode]["polls"] = load.gets() - before
    rows = [["bare app, idle", f"{bare['startup_bytes']:,} B", f"{bare['bytes']:,} B", kb(rate(bare)), "1.00x"]]
    for mode, ours in runs.items():
        name = f"ours, {args.pending} pending" + (", low-bandwidth" if mode == "low" else "")
        rows.append([name, f"{ours['startup_bytes']:,} B", f"{ours['bytes']:,} B", kb(rate(ours)),
                     f"{rate(ours) / max(rate(bare), 1e-9):.2f}x"])
    print(table(rows, ["case", "start-up paint", "written while measured", "rate", "vs bare"]))
    for mode, ours in runs.items():
        print(f"({mode}: {ours['polls']} result queries answered while it ran)")
        target = LOW_BANDWIDTH_TARGET if mode == "low" else TARGET
        label = f"terminal output ({args.pending} pending{', low-bandwidth' if mode == 'low' else ''})"
        summary(label, kb(rate(bare)), kb(rate(ours)), f"{rate(ours) / max(rate(bare), 1e-9):.2f}x",
                f"<= {kb(target)}", rate(ours) <= target)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
