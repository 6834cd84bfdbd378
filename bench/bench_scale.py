"""Scale curve: start-up time and memory of the dashboard at 1k, 10k, 50k, 100k and 200k jobs.

Each size is measured as in bench_startup.py (fresh headless processes through the real entry
point, against the bare Textual app in the same run). The curve is fitted with a straight
line (time = a + b·N) and each step's cost per 10,000 jobs is shown, so growth worse than
linear is visible. Where the line crosses a limit says up to which history size the start-up
stays acceptable:
- the start-up target: history on screen within 1.3x the bare app's first frame, RSS within 2x;
- plain usability: the history on screen within 1 s;
- a big history (the issue of a year's history): at 50,000 jobs the whole history on screen
  within 2x the bare app's first frame and peak RSS within 2x the bare app's; at 200,000 jobs
  the history on screen within 3 s and peak RSS within 250 MiB.

    python bench/bench_scale.py                               # 1k, 10k, 50k, 100k, 200k
    python bench/bench_scale.py --sizes 100,400 --repeat 1    # smoke size
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from _common import machine, mib, ms, summary, table  # noqa: E402
from bench_startup import RSS_TARGET, SHOWN_TARGET, START_TARGET, figures, measure  # noqa: E402

USABLE_SECONDS = 1.0
#: The big-history targets (see above).
BIG_SHOWN_VS_BARE, BIG_RSS_VS_BARE = SHOWN_TARGET, RSS_TARGET  # at 50,000 jobs
HUGE_SHOWN_SECONDS, HUGE_RSS_MIB = 3.0, 250  # at 200,000 jobs


def fit(xs: list[float], ys: list[float]) -> tuple[float, float]:
    """Least-squares line y = a + b·x."""
    n = len(xs)
    mean_x, mean_y = sum(xs) / n, sum(ys) / n
    var = sum((x - mean_x) ** 2 for x in xs)
    slope = sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys)) / var if var else 0.0
    return mean_y - slope * mean_x, slope


def crossing(intercept: float, slope: float, limit: float) -> str:
    """The size at which the line reaches the limit."""
    if intercept >= limit:
        return "already at the smallest size"
    if slope <= 0:
        return "never (flat)"
    return f"~{(limit - intercept) / slope:,.0f} jobs"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,10000,50000,100000,200000")
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args(argv)
    sizes = sorted(int(s) for s in args.sizes.split(",") if s.strip())
    if len(sizes) < 2:
        parser.error("the curve needs at least two sizes")

    print(f"Scale curve, headless, median of {args.repeat} ({machine()})", flush=True)
    with tempfile.TemporaryDirectory(prefix="bench-scale-") as tmp:
        results = measure(sizes, args.repeat, Path(tmp))
    bare_first, _, _, bare_peak = figures(results["bare"])
    # (first frame, history shown, peak): the newest jobs' glimpse is bench_startup's business.
    points = {n: (lambda f: (f[0], f[2], f[3]))(figures(results[n])) for n in sizes}
    rows = [["bare app", "", ms(bare_first), "", mib(bare_peak), "", ""]]
    previous = None
    for n in sizes:
        first, shown, peak = points[n]
        step = ""
        if previous is not None:
            p_n, (_, p_shown, p_peak) = previous
            per = 10_000 / (n - p_n)
            step = f"+{(shown - p_shown) * per * 1000:.0f} ms, +{(peak - p_peak) * per / 1024:.1f} MiB"
        rows.append([f"ours, {n:,} jobs", ms(first), ms(shown), f"{shown / bare_first:.2f}x", mib(peak),
                     f"{peak / bare_peak:.2f}x", step])
        previous = (n, points[n])
    print(table(rows, ["case", "first frame", "history shown", "vs bare", "peak RSS", "vs bare",
                       "per 10k jobs since previous"]))

    xs = [float(n) for n in sizes]
    t0, t_slope = fit(xs, [points[n][1] for n in sizes])
    m0, m_slope = fit(xs, [points[n][2] for n in sizes])
    steps = [(points[b][1] - points[a][1]) / (b - a) for a, b in zip(sizes, sizes[1:])]
    linear = steps[-1] <= 1.5 * max(steps[0], 1e-12)
    print(f"\nGrowth: history shown ≈ {t0 * 1000:.0f} ms + {t_slope * 1e4 * 1000:.0f} ms per 10k jobs; "
          f"peak RSS ≈ {m0 / 1024:.0f} MiB + {m_slope * 1e4 / 1024:.1f} MiB per 10k jobs "
          f"({m_slope * 1024 / 1:.0f} bytes per job).")
    print(f"Time per job {'stays flat (linear growth)' if linear else 'rises with size (worse than linear)'}: "
          + ", ".join(f"{s * 1e4 * 1000:.0f} ms/10k" for s in steps) + ".")
    print(f"Start-up target (history shown <= {START_TARGET}x bare = {ms(START_TARGET * bare_first)}) holds up to "
          f"{crossing(t0, t_slope, START_TARGET * bare_first)}; RSS <= {RSS_TARGET}x bare "
          f"({mib(RSS_TARGET * bare_peak)}) up to {crossing(m0, m_slope, RSS_TARGET * bare_peak)}; "
          f"history shown within {USABLE_SECONDS:g} s up to {crossing(t0, t_slope, USABLE_SECONDS)}.")
    if 50_000 in points:
        _, shown, peak = points[50_000]
        summary("scale: history shown at 50,000 jobs", ms(bare_first), ms(shown), f"{shown / bare_first:.2f}x",
                f"<= {BIG_SHOWN_VS_BARE}x", shown / bare_first <= BIG_SHOWN_VS_BARE)
        summary("scale: peak RSS at 50,000 jobs", mib(bare_peak), mib(peak), f"{peak / bare_peak:.2f}x",
                f"<= {BIG_RSS_VS_BARE}x", peak / bare_peak <= BIG_RSS_VS_BARE)
    if 200_000 in points:
        _, shown, peak = points[200_000]
        summary("scale: history shown at 200,000 jobs", ms(bare_first), ms(shown), f"{shown / bare_first:.2f}x",
                f"<= {HUGE_SHOWN_SECONDS:g} s", shown <= HUGE_SHOWN_SECONDS)
        summary("scale: peak RSS at 200,000 jobs", mib(bare_peak), mib(peak), f"{peak / bare_peak:.2f}x",
                f"<= {HUGE_RSS_MIB} MiB", peak <= HUGE_RSS_MIB * 1024)
    largest = sizes[-1]
    first, shown, peak = points[largest]
    summary(f"scale: history shown at {largest:,} jobs", ms(bare_first), ms(shown), f"{shown / bare_first:.2f}x",
            "linear", linear)
    summary(f"scale: peak RSS at {largest:,} jobs", mib(bare_peak), mib(peak), f"{peak / bare_peak:.2f}x",
            f"{m_slope * 1024:.0f} B/job", None)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
