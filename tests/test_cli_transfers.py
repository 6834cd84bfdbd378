"""`hailuo-tui download` and `hailuo-tui batch` as a script runs them: subprocesses against the simulator.

Includes the kill test of the batch: a run SIGKILLed midway, run again, and no row sent twice.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from click.testing import CliRunner

from tui.cli import main as cli
from tui.simulator.server import sample_video
from tui.core.store import HistoryStore

KEY = "sk-testkey0123456789abcdef"
VIDEO = sample_video()


@pytest.fixture
def db(tmp_path) -> Path:
    return tmp_path / "history.json"


@pytest.fixture
def downloads(tmp_path, monkeypatch) -> Path:
    folder = tmp_path / "videos"
    monkeypatch.setenv("HAILUO_TUI_DOWNLOAD_DIR", str(folder))
    return folder


@pytest.fixture
def no_submit_rate(tmp_path):
    # The isolated config file of every test: batches here are not paced.
    (tmp_path / "config.toml").write_text("submit_rate = 0\n")


def run_cli(*args: str, sim=None, db: Path, key: str | None = KEY, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(command(*args, sim=sim, db=db), capture_output=True, text=True, timeout=timeout,
                          env=environment(key))


def command(*args: str, sim=None, db: Path) -> list[str]:
    base = ["--base-url", sim.base_url] if sim is not None else ["--base-url", "http://127.0.0.1:9"]
    return [sys.executable, "-m", "tui", *args, *base, "--db", str(db)]


def environment(key: str | None = KEY) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("GPTPROTO_API_KEY", "GPTPROTO_BASE_URL", "HAILUO_TUI_DB")}
    if key is not None:
        env["GPTPROTO_API_KEY"] = key
    return env


def assert_clean(proc: subprocess.CompletedProcess) -> None:
    assert "Traceback" not in proc.stderr, proc.stderr
    assert KEY not in proc.stdout + proc.stderr


def history(db: Path) -> list:
    with HistoryStore.open(db, read_only=True) as store:
        return store.all()


def posts_by_prompt(sim) -> Counter:
    """POSTs the simulator read whole, by prompt (a client killed mid-send leaves a cut body: no job)."""
    counts: Counter = Counter()
    for record in sim.requests:
        if record.method == "POST":
            try:
                counts[json.loads(record.body)["prompt"]] += 1
            except ValueError:
                pass
    return counts


def attach(sim, db: Path, *sids: str) -> None:
    proc = run_cli("attach", *sids, sim=sim, db=db)
    assert proc.returncode == 0, proc.stderr


def test_download_and_batch_are_listed_in_help():
    result = CliRunner().invoke(cli.main, ["--help"])
    assert "  download" in result.stdout and "  batch" in result.stdout


# -- download ----------------------------------------------------------------------------------------


def test_download_saves_each_output_and_prints_id_and_path(make_simulator, db, downloads):
    sim = make_simulator()
    sid = sim.seed_job(status="completed")
    attach(sim, db, sid)
    proc = run_cli("download", sid, sim=sim, db=db)
    assert_clean(proc)
    assert proc.returncode == 0, proc.stderr
    ident, path = proc.stdout.strip().split("\t")
    assert ident == sid and Path(path).parent == downloads and Path(path).read_bytes() == VIDEO
    (job,) = history(db)
    assert [d["path"] for d in job.downloads] == [path]
    # Again: nothing fetched, nothing duplicated, the same path.
    again = run_cli("download", sid, "--json", sim=sim, db=db)
    assert again.returncode == 0
    (report,) = json.loads(again.stdout)
    assert report["files"][0]["path"] == path and report["files"][0]["outcome"] == "already there"
    assert sorted(p.name for p in downloads.iterdir()) == [Path(path).name]


def test_download_dir_flag_and_no_key_needed_for_a_finished_job(make_simulator, db, tmp_path):
    sim = make_simulator()
    sid = sim.seed_job(status="completed")
    attach(sim, db, sid)
    proc = run_cli("download", sid[:8], "--dir", str(tmp_path / "elsewhere"), sim=sim, db=db, key=None)
    assert proc.returncode == 0, proc.stderr
    assert Path(proc.stdout.strip().split("\t")[1]).parent == tmp_path / "elsewhere"


def test_download_checks_a_job_the_history_has_not_seen_finish(make_simulator, db, downloads):
    sim = make_simulator(job_seconds=0.2)
    submitted = run_cli("submit", "--prompt", "a red fox in snow", sim=sim, db=db)
    assert submitted.returncode == 0
    time.sleep(0.3)
    proc = run_cli("download", submitted.stdout.strip(), sim=sim, db=db)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().endswith("_hailuo-2.3-fast_a-red-fox-in-snow.mp4")


def test_download_exit_codes(make_simulator, db, downloads, tmp_path):
    sim = make_simulator(job_seconds=60)
    failed = sim.seed_job(status="failed", error="generation failed")
    running = sim.seed_job(status="processing")
    broken = sim.seed_job(status="completed", outputs=[f"{sim.base_url}/nothing/here.mp4"])
    done = sim.seed_job(status="completed")
    attach(sim, db, failed, running, broken, done)

    nothing = run_cli("download", failed, sim=sim, db=db)
    assert nothing.returncode == 1
    assert f"error: {failed}: ended failed with no output: generation failed" in nothing.stderr
    assert nothing.stderr.count(failed) == 1  # the id once, not "ID: ID ended ..."
    pending = run_cli("download", running, sim=sim, db=db)
    assert pending.returncode == 1 and "still processing: no output yet" in pending.stderr
    refused = run_cli("download", broken, done, sim=sim, db=db)
    assert refused.returncode == 4 and "the output host answered 401" in refused.stderr
    assert refused.stdout.startswith(done)  # the other job was still saved
    assert run_cli("download", "no-such-job", sim=sim, db=db).returncode == 2
    (tmp_path / "a-file").write_text("")
    not_a_dir = run_cli("download", done, "--dir", str(tmp_path / "a-file"), sim=sim, db=db)
    assert not_a_dir.returncode == 2
    for proc in (nothing, pending, refused, not_a_dir):
        assert_clean(proc)
    requests_for_files = [r for r in sim.requests if not r.path.startswith("/api/")]
    assert all("authorization" not in {h.lower() for h in r.headers} for r in requests_for_files)


def test_a_download_stopped_by_ctrl_c_resumes_on_the_next_run(make_simulator, db, downloads):
    sim = make_simulator()
    sid = sim.seed_job(status="completed")
    attach(sim, db, sid)
    sim.faults.file_chunk_delay = 0.3
    child = subprocess.Popen(command("download", sid, sim=sim, db=db), stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, env=environment())
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not any(p.stat().st_size for p in downloads.glob("*.part")):
            time.sleep(0.02)
        child.send_signal(signal.SIGINT)
        out, err = child.communicate(timeout=30)
    finally:
        if child.poll() is None:
            child.kill()
    assert child.returncode == 130 and "Traceback" not in err
    assert "partial files are kept as .part; run the same command again to resume" in err
    (part,) = downloads.glob("*.part")
    kept = part.stat().st_size
    assert 0 < kept < len(VIDEO)

    sim.faults.file_chunk_delay = 0
    again = run_cli("download", sid, "--json", sim=sim, db=db)
    assert again.returncode == 0, again.stderr
    (report,) = json.loads(again.stdout)
    assert report["files"][0]["outcome"] == "resumed"
    assert Path(report["files"][0]["path"]).read_bytes() == VIDEO and not part.exists()
    assert [r.headers.get("Range") for r in sim.requests if r.path.startswith("/files/")][-1] == f"bytes={kept}-"


def test_download_beside_a_running_dashboard_saves_the_file_without_recording_it(make_simulator, db, downloads):
    sim = make_simulator()
    sid = sim.seed_job(status="completed")
    attach(sim, db, sid)
    with HistoryStore.open(db):  # the dashboard holds the history
        proc = run_cli("download", sid, sim=sim, db=db)
    assert proc.returncode == 0, proc.stderr
    assert "saved but not recorded in the history" in proc.stderr
    assert Path(proc.stdout.strip().split("\t")[1]).read_bytes() == VIDEO
    (job,) = history(db)
    assert job.downloads == []


def test_watch_with_auto_download_saves_each_job_that_completes(make_simulator, db, downloads, tmp_path):
    (tmp_path / "config.toml").write_text("auto_download = true\n")
    sim = make_simulator(job_seconds=0.3)
    sid = run_cli("submit", "--prompt", "a red fox in snow", sim=sim, db=db).stdout.strip()
    proc = run_cli("watch", sim=sim, db=db)
    assert_clean(proc)
    assert proc.returncode == 0, proc.stderr
    saved = [line.split("\t") for line in proc.stdout.splitlines() if "\t" in line]
    assert saved == [[sid, str(downloads / f"{sid}_hailuo-2.3-fast_a-red-fox-in-snow.mp4")]]
    assert Path(saved[0][1]).read_bytes() == VIDEO
    (job,) = history(db)
    assert [d["path"] for d in job.downloads] == [saved[0][1]]


# -- batch --------------------------------------------------------------------------------------------


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.mark.parametrize("name, text", [
    ("rows.jsonl", '{"prompt": "a fox"}\n{"prompt": "a heron", "duration": 7}\n{"model": "x", "prompt": "y"}\n'),
    ("rows.csv", "prompt,duration,model\na fox,6,\na heron,7,\ny,,x\n"),
])
def test_batch_with_invalid_rows_prints_every_rows_errors_exit_2_and_sends_nothing(make_simulator, db, tmp_path,
                                                                                  name, text):
    sim = make_simulator()
    path = tmp_path / name
    path.write_text(text)
    proc = run_cli("batch", str(path), sim=sim, db=db)
    assert_clean(proc)
    assert proc.returncode == 2
    line = 2 if name.endswith("jsonl") else 3
    assert proc.stderr.splitlines() == [
        f"error: row 2 (line {line}): duration: hailuo-2.3-fast at 768P offers 6 s or 10 s, not 7 s",
        f"error: row 3 (line {line + 1}): model: unknown model 'x'; choose one of hailuo-2.3-fast, "
        "hailuo-2.3-standard, hailuo-2.3-pro, hailuo-02-fast, hailuo-02-standard, hailuo-02-pro",
        f"error: 2 problems in 2 rows of {path}; nothing was sent",
    ]
    assert sim.requests == [] and not db.exists()


def test_batch_dry_run_needs_no_key_and_sends_nothing(make_simulator, db, tmp_path):
    sim = make_simulator()
    path = write_jsonl(tmp_path / "rows.jsonl", [{"prompt": "a fox"}, {"prompt": "a heron"}])
    proc = run_cli("batch", str(path), "--dry-run", sim=sim, db=db, key=None)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == ["1\twould submit\t-\ta fox", "2\twould submit\t-\ta heron"]
    assert "nothing was sent" in proc.stderr and sim.requests == []


def test_batch_run_then_re_run_sends_each_row_once(make_simulator, db, tmp_path, no_submit_rate):
    sim = make_simulator()
    path = write_jsonl(tmp_path / "rows.jsonl", [{"prompt": f"row {i}"} for i in range(5)])
    first = run_cli("batch", str(path), "--json", sim=sim, db=db)
    assert_clean(first)
    assert first.returncode == 0, first.stderr
    report = json.loads(first.stdout)
    assert report["summary"]["submitted"] == 5 and all(r["id"] for r in report["rows"])
    again = run_cli("batch", str(path), sim=sim, db=db)
    assert again.returncode == 0
    assert sorted(line.split("\t")[1] for line in again.stdout.splitlines()) == ["skipped"] * 5
    assert "0 submitted, 5 skipped (already submitted)" in again.stderr
    assert posts_by_prompt(sim) == {f"row {i}": 1 for i in range(5)}


def test_batch_wait_exit_codes_follow_the_jobs(make_simulator, db, tmp_path, no_submit_rate):
    sim = make_simulator(job_seconds=0.2)
    good = write_jsonl(tmp_path / "good.jsonl", [{"prompt": "a fox"}, {"prompt": "a heron"}])
    proc = run_cli("batch", str(good), "--wait", sim=sim, db=db)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count("\tcompleted") == 2
    bad = write_jsonl(tmp_path / "bad.jsonl", [{"prompt": "a kite"}, {"prompt": f"a {sim.faults.fail_later_word} parade"}])
    assert run_cli("batch", str(bad), "--wait", sim=sim, db=db).returncode == 1


def test_batch_unknown_outcome_is_exit_5_and_the_row_is_never_re_sent(make_simulator, db, tmp_path, no_submit_rate):
    sim = make_simulator()
    sim.faults.drop_after_create = 1
    path = write_jsonl(tmp_path / "rows.jsonl", [{"prompt": "a fox"}])
    first = run_cli("batch", str(path), sim=sim, db=db)
    assert first.returncode == 5 and first.stdout.split("\t")[1] == "unknown"
    again = run_cli("batch", str(path), sim=sim, db=db)
    assert again.returncode == 5 and "not re-sent" in again.stdout
    assert posts_by_prompt(sim) == {"a fox": 1}


def test_batch_in_read_only_mode_is_refused_but_a_dry_run_works(make_simulator, db, tmp_path):
    sim = make_simulator()
    path = write_jsonl(tmp_path / "rows.jsonl", [{"prompt": "a fox"}])
    proc = subprocess.run([sys.executable, "-m", "tui", "--read-only", *command("batch", str(path), sim=sim, db=db)[3:]],
                          capture_output=True, text=True, timeout=60, env=environment())
    assert proc.returncode == 2 and "read-only" in proc.stderr
    dry = run_cli("batch", str(path), "--dry-run", sim=sim, db=db)
    assert dry.returncode == 0 and dry.stdout.startswith("1\twould submit")
    assert sim.requests == [] and not db.exists()


def test_batch_with_a_refused_key_is_exit_3_and_stops(make_simulator, db, tmp_path, no_submit_rate):
    sim = make_simulator(require_key="sk-the-only-valid-key-000")
    path = write_jsonl(tmp_path / "rows.jsonl", [{"prompt": "a fox"}, {"prompt": "a heron"}])
    proc = run_cli("batch", str(path), "--concurrency", "1", sim=sim, db=db)
    assert_clean(proc)
    assert proc.returncode == 3
    assert [line.split("\t")[1] for line in proc.stdout.splitlines()] == ["failed", "not sent"]


@pytest.mark.parametrize("signum", [signal.SIGKILL, signal.SIGTERM])
def test_a_batch_killed_midway_and_run_again_sends_no_row_twice(make_simulator, db, tmp_path, no_submit_rate, signum):
    sim = make_simulator()
    sim.faults.latency = 0.3
    prompts = [f"kill row {i}" for i in range(12)]
    path = write_jsonl(tmp_path / "rows.jsonl", [{"prompt": p} for p in prompts])
    child = subprocess.Popen(command("batch", str(path), "--concurrency", "2", sim=sim, db=db),
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=environment())
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and len(posts_by_prompt(sim)) < 3:
            time.sleep(0.02)
        child.send_signal(signum)
        out, err = child.communicate(timeout=30)
    finally:
        if child.poll() is None:
            child.kill()
    assert child.returncode in (-signal.SIGKILL, 128 + signal.SIGTERM)
    if signum == signal.SIGTERM:
        assert "run the same command again to continue" in err and "Traceback" not in err
    sent_before = posts_by_prompt(sim)
    assert 3 <= sum(sent_before.values()) < 12

    sim.faults.latency = 0
    again = run_cli("batch", str(path), "--json", sim=sim, db=db)
    report = json.loads(again.stdout)
    outcomes = {row["prompt"]: row["outcome"] for row in report["rows"]}
    # Every row accounted for: sent by one of the runs (with an id), or unknown (never re-sent).
    assert set(outcomes) == set(prompts)
    assert set(outcomes.values()) <= {"submitted", "skipped", "unknown"}
    posts = posts_by_prompt(sim)
    assert all(posts[p] <= 1 for p in prompts), posts
    for prompt, outcome in outcomes.items():
        if outcome == "submitted":
            assert sent_before[prompt] == 0 and posts[prompt] == 1
        if outcome == "unknown":  # cut off mid-POST: at most once, and not again
            assert posts[prompt] == sent_before[prompt]
    by_key = Counter(job.idempotency_key for job in history(db))
    assert len(by_key) == 12 and set(by_key.values()) == {1}
    assert again.returncode == (5 if "unknown" in outcomes.values() else 0)


@pytest.mark.slow
def test_a_batch_killed_again_and_again_at_random_moments_sends_every_row_exactly_once(make_simulator, db, tmp_path,
                                                                                      no_submit_rate):
    import random

    rng = random.Random(8)
    sim = make_simulator()
    sim.faults.latency = 0.05
    prompts = [f"row {i}" for i in range(40)]
    path = write_jsonl(tmp_path / "rows.jsonl", [{"prompt": p} for p in prompts])
    for _ in range(15):
        before = sum(posts_by_prompt(sim).values())
        child = subprocess.Popen(command("batch", str(path), "--concurrency", "4", sim=sim, db=db),
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=environment())
        wanted = before + rng.randint(1, 4)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and child.poll() is None and sum(posts_by_prompt(sim).values()) < wanted:
            time.sleep(0.005)
        child.kill()
        child.wait(timeout=30)
    sim.faults.latency = 0
    final = json.loads(run_cli("batch", str(path), "--json", sim=sim, db=db).stdout)
    posts = posts_by_prompt(sim)
    assert all(posts[p] <= 1 for p in prompts), posts
    outcomes = Counter(row["outcome"] for row in final["rows"])
    assert sum(outcomes.values()) == 40 and set(outcomes) <= {"submitted", "skipped", "unknown"}
    # Every row is on the server once, except those cut off mid-POST (unknown), sent at most once.
    unknown = {row["prompt"] for row in final["rows"] if row["outcome"] == "unknown"}
    assert {p for p in prompts if posts[p] == 0} <= unknown
