"""The measuring parts of benchmarks/e2e_runs.py: tree memory, GNU time's counters, Prefect task durations."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from datetime import datetime

from benchmarks.e2e_runs import ROOT, TreePeak, prefect_task_seconds, shown_path, tree_rss_bytes
from benchmarks.scoring_bench import parse_time_v, shown_command

HOLD_MIB = 120
# Two interpreters and their libraries, generously; a walk that summed unrelated processes exceeds it.
INTERPRETERS_MIB = 200


def holder(seconds: float) -> str:
    """A child whose grandchild holds HOLD_MIB of touched memory for `seconds`: only a tree walk sees it."""
    grandchild = f"import time; x = bytearray({HOLD_MIB} * 2**20); time.sleep({seconds})"
    return f"import subprocess, sys; subprocess.run([sys.executable, '-c', {grandchild!r}])"


def test_tree_memory_counts_the_grandchild_and_nothing_else():
    proc = subprocess.Popen([sys.executable, "-c", holder(30)], start_new_session=True)
    try:
        deadline, seen = time.monotonic() + 20, 0
        while time.monotonic() < deadline and seen < HOLD_MIB * 2**20:
            time.sleep(0.2)
            seen = tree_rss_bytes(proc.pid)
        assert HOLD_MIB * 2**20 <= seen <= (HOLD_MIB + INTERPRETERS_MIB) * 2**20
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def test_tree_peak_outlives_the_memory():
    proc = subprocess.Popen([sys.executable, "-c", holder(3)])
    peak = TreePeak(proc.pid, interval=0.1)
    proc.wait()
    assert HOLD_MIB / 1024 <= peak.stop() <= (HOLD_MIB + INTERPRETERS_MIB) / 1024


def test_parse_time_v_reads_the_counters():
    text = """
        User time (seconds): 127.85
        System time (seconds): 31.43
        Elapsed (wall clock) time (h:mm:ss or m:ss): 1:38.23
        Maximum resident set size (kbytes): 3697648
        Major (requiring I/O) page faults: 2
        Minor (reclaiming a frame) page faults: 3267649
        Involuntary context switches: 35526
        File system inputs: 2698848
        File system outputs: 6057920
    """
    parsed = parse_time_v(text)
    assert parsed["wall_s"] == 98.23
    assert (parsed["user_s"], parsed["sys_s"], parsed["cpu_s"]) == (127.85, 31.43, 159.28)
    assert parsed["peak_rss_gib"] == 3.53
    assert (parsed["minor_faults"], parsed["major_faults"]) == (3267649, 2)
    assert (parsed["fs_input_blocks"], parsed["fs_output_blocks"]) == (2698848, 6057920)
    assert parsed["involuntary_switches"] == 35526


def test_prefect_task_seconds_takes_the_later_flow_run_and_keeps_repeated_names(tmp_path):
    (tmp_path / "prefect").mkdir()
    with sqlite3.connect(tmp_path / "prefect" / "prefect.db") as con:
        con.execute("CREATE TABLE flow_run (id TEXT, start_time TEXT)")
        con.execute("CREATE TABLE task_run (name TEXT, flow_run_id TEXT, start_time TEXT, end_time TEXT)")
        con.execute("INSERT INTO flow_run VALUES ('old', '2026-11-24 05:00:50.821725'), ('new', '2026-11-24 06:00:01.5')")
        con.executemany("INSERT INTO task_run VALUES (?, ?, ?, ?)", [
            ("score-and-explain-2fb", "old", "2026-11-24 05:01:00", "2026-11-24 05:02:00"),
            ("load-and-validate-c28", "new", "2026-11-24 06:00:02", "2026-11-24 06:00:14.5"),
            ("train-and-gate-a1", "new", "2026-11-24 06:00:15", "2026-11-24 06:00:21"),
            ("train-and-gate-b2", "new", "2026-11-24 06:00:21", "2026-11-24 06:00:35"),
            ("score-and-explain-7f3", "new", "2026-11-24 06:00:35", "2026-11-24 06:01:43.3"),
            ("publish-9", "new", "2026-11-24 06:01:44", None),
        ])
    seconds = prefect_task_seconds(tmp_path, datetime(2026, 11, 24, 6, 0, 0))
    assert seconds == {"load-and-validate": 12.5, "train-and-gate": 6.0, "train-and-gate#2": 14.0, "score-and-explain": 68.3}


def test_recorded_paths_are_relative_to_the_repository():
    # Results are committed: one machine's absolute folders would read wrong on every clone.
    assert shown_path(ROOT / "benchmarks" / ".work" / "demo-1000000-s7") == "benchmarks/.work/demo-1000000-s7"
    assert shown_command(["custscore", "run", "--data", str(ROOT / "benchmarks" / ".work" / "d"), "--retrain"]) == (
        "custscore run --data benchmarks/.work/d --retrain")
