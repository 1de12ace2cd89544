"""One run per home: the lock file, seen from real processes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from pipelines.home_lock import RunInProgressError, home_run_lock

REPO = Path(__file__).resolve().parents[2]

# A process that takes the home's lock, says so, and holds it for `hold` seconds.
_HOLDER = textwrap.dedent("""
    import sys, time
    from pipelines.home_lock import home_run_lock
    with home_run_lock(sys.argv[1]):
        print("held", flush=True)
        time.sleep(float(sys.argv[2]))
""")


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}


def _start_holder(home: Path, hold: float) -> subprocess.Popen:
    holder = subprocess.Popen([sys.executable, "-c", _HOLDER, str(home), str(hold)], stdout=subprocess.PIPE,
                              text=True, env=_env())
    assert holder.stdout.readline().strip() == "held"
    return holder


def test_a_second_run_is_refused_with_the_holders_pid(tmp_path):
    home = tmp_path / "home"
    holder = _start_holder(home, 60)
    try:
        with pytest.raises(RunInProgressError) as refused, home_run_lock(home):
            pytest.fail("the lock was taken twice")
        message = str(refused.value)
        assert message.startswith(f"another custscore run is in progress in {home.resolve()}: pid {holder.pid}, started ")
        assert message.endswith(" UTC") and "\n" not in message
    finally:
        holder.kill()
        holder.wait()


def test_the_cli_exits_at_once_with_one_line_and_code_2_while_a_run_holds_the_home(tmp_path):
    home = tmp_path / "home"
    holder = _start_holder(home, 60)
    try:
        started = time.monotonic()
        # An empty data folder: the lock is taken before the data is read, so the run never gets to it.
        (tmp_path / "empty-data").mkdir()
        done = subprocess.run([sys.executable, "-m", "pipelines.cli", "run", "--data", str(tmp_path / "empty-data")],
                              capture_output=True, text=True, env={**_env(), "CUSTSCORE_HOME": str(home)}, timeout=120)
        elapsed = time.monotonic() - started
    finally:
        holder.kill()
        holder.wait()
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert f"another custscore run is in progress in {home.resolve()}: pid {holder.pid}, started" in lines[0]
    assert elapsed < 30  # refused before Prefect, tracking or the data are touched


def test_a_killed_holder_leaves_no_stale_lock(tmp_path):
    home = tmp_path / "home"
    holder = _start_holder(home, 60)
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    with home_run_lock(home):
        assert (home / "run.lock").read_text().startswith(f"pid {os.getpid()}, started ")


def test_wait_queues_behind_the_holder_and_says_so_once(tmp_path):
    home = tmp_path / "home"
    holder = _start_holder(home, 2)
    said = []
    started = time.monotonic()
    try:
        with home_run_lock(home, wait=True, on_wait=said.append):
            waited = time.monotonic() - started
            assert (home / "run.lock").read_text().startswith(f"pid {os.getpid()}, ")
    finally:
        holder.wait()
    assert waited > 1.0  # it went on only once the holder's 2 seconds were over
    assert len(said) == 1 and said[0].startswith(f"waiting: another custscore run is in progress in {home.resolve()}: "
                                                 f"pid {holder.pid}")


def test_the_same_process_may_take_the_lock_again_and_it_is_released_after_the_outer_block(tmp_path):
    home = tmp_path / "home"
    with home_run_lock(home):
        with home_run_lock(home):  # the CLI holds it, then the flow takes it again
            pass
        # still held by the outer block: another process is refused
        probe = subprocess.run([sys.executable, "-c", _HOLDER, str(home), "0"], capture_output=True, text=True,
                               env=_env())
        assert probe.returncode != 0 and "RunInProgressError" in probe.stderr
    probe = subprocess.run([sys.executable, "-c", _HOLDER, str(home), "0"], capture_output=True, text=True, env=_env())
    assert probe.returncode == 0 and probe.stdout.strip() == "held"
