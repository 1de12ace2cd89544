"""Load test of the read API: 100 concurrent clients reading random customers of a 1M-customer run.

    python -m benchmarks.api_load.run [--customers 1000000] [--requests 20000] [--clients 100] [--sink store]

Bounded: a fixed number of requests per phase and a time limit; loopback only (127.0.0.1).
Steps: publish N synthetic customers (numpy, not scoring) into a temporary home, create a key,
start `custscore api serve` in a subprocess, then two phases of the same load: `idle`, and
`publishing` (another run of N customers is published by a second process meanwhile; the
phase starts when that process starts writing). Reports p50/p90/p99/max latency, throughput and
errors per phase as JSON (stdout and --out).

Clients are asyncio connections speaking HTTP/1.1 with keep-alive directly (a few microseconds
of client CPU per request), so on a small machine the figures measure the server, not the
client library.

`--sink`: where the run is published and what the API reads. `store` is the home's Parquet
store; `postgres` is the database at $CUSTSCORE_POSTGRES_URL (schema `custscore`), or a throwaway
server started by scripts/postgres.sh when the variable is not set.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import platform
import random
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np

from benchmarks.api_load.synthetic_run import publish_synthetic
from serving.api import ApiKeys

AS_OF = dt.date(2026, 1, 31)


def store_environment(home: Path) -> dict[str, str]:
    """The environment of `custscore api serve` and of the publisher for the Parquet store: the home only."""
    return {"CUSTSCORE_HOME": str(home)}


def postgres_environment(home: Path) -> dict[str, str]:
    """The same, with the PostgreSQL URL that makes `custscore api serve` read the database (main sets it)."""
    return {"CUSTSCORE_HOME": str(home), POSTGRES_URL_ENV: os.environ[POSTGRES_URL_ENV]}


SINKS = {"store": store_environment, "postgres": postgres_environment}
POSTGRES_URL_ENV = "CUSTSCORE_POSTGRES_URL"

PUBLISHER = """
import datetime as dt, sys, time
from pathlib import Path
from benchmarks.api_load.run import _publish
print("publishing", flush=True)
_publish(sys.argv[1], Path(sys.argv[2]), sys.argv[3], dt.date.fromisoformat(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6]))
print("published", time.time(), flush=True)
"""


def _publish(sink: str, home: Path, run_id: str, as_of: dt.date, customers: int, seed: int) -> None:
    if sink == "postgres":
        from serving.postgres import PostgresSink

        target = PostgresSink(os.environ[POSTGRES_URL_ENV], "custscore")  # the schema `api serve` reads by default
    else:
        target = home / "store"
    publish_synthetic(target, home / "work" / run_id, run_id, as_of, customers, seed=seed)


def local_postgres() -> tuple[Path, str]:
    """A throwaway PostgreSQL started by the project's script (installed first where missing): its folder and URL.

    The script makes the folder itself: the server runs as the `postgres` user, who cannot enter
    this benchmark's private temporary folder.
    """
    script = Path(__file__).resolve().parents[2] / "scripts" / "postgres.sh"
    started = subprocess.run(["bash", str(script), "start"], capture_output=True, text=True, timeout=900, check=True)
    folder, url = started.stdout.strip().splitlines()[-2:]
    return Path(folder), url


def stop_postgres(folder: Path) -> None:
    script = Path(__file__).resolve().parents[2] / "scripts" / "postgres.sh"
    subprocess.run(["bash", str(script), "stop", str(folder)], capture_output=True, timeout=120)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_api(env: dict[str, str], port: int, log: Path, timeout: float) -> subprocess.Popen:
    server = subprocess.Popen([sys.executable, "-m", "pipelines.cli", "api", "serve", "--host", "127.0.0.1", "--port", str(port)],
                              stdout=open(log, "wb"), stderr=subprocess.STDOUT, env=env)  # noqa: SIM115 (closed with the process)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"custscore api serve exited with {server.returncode}; see {log}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as answer:
                if answer.status == 200:
                    return server
        except OSError:
            time.sleep(0.3)
    server.terminate()
    raise SystemExit(f"custscore api serve did not answer /healthz within {timeout:.0f} s; see {log}")


async def _client(port: int, key: str, ids: list[str], work: list[int], starts: list[float], latencies: list[float],
                  errors: dict[str, int], deadline: float) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        while work[0] > 0 and time.monotonic() < deadline:
            work[0] -= 1
            customer = random.choice(ids)
            request = (f"GET /v1/customers/{customer}?lang=en HTTP/1.1\r\nHost: 127.0.0.1\r\nX-API-Key: {key}\r\n\r\n").encode()
            started = time.perf_counter()
            starts.append(time.time())
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            status = int(head.split(b" ", 2)[1])
            length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length"))
            body = await reader.readexactly(length)
            latencies.append(time.perf_counter() - started)
            if status != 200 or customer.encode() not in body:
                errors[str(status)] = errors.get(str(status), 0) + 1
    except (OSError, asyncio.IncompleteReadError) as exc:
        errors[type(exc).__name__] = errors.get(type(exc).__name__, 0) + 1
    finally:
        writer.close()


async def load(port: int, key: str, ids: list[str], requests: int, clients: int, time_limit: float) -> dict:
    latencies: list[float] = []
    starts: list[float] = []
    errors: dict[str, int] = {}
    work = [requests]
    started, began = time.perf_counter(), time.time()
    deadline = time.monotonic() + time_limit
    await asyncio.gather(*(_client(port, key, ids, work, starts, latencies, errors, deadline) for _ in range(clients)))
    wall = time.perf_counter() - started
    ms = np.array(latencies) * 1000
    slowest = int(np.argmax(ms))
    return {"requests": len(latencies), "clients": clients, "wall_s": round(wall, 2), "began": began,
            "slowest_sent_at_s": round(starts[slowest] - began, 1),
            "requests_per_s": round(len(latencies) / wall, 1),
            **{f"p{q}_ms": round(float(np.percentile(ms, q)), 1) for q in (50, 90, 99)},
            "max_ms": round(float(ms.max()), 1), "errors": errors, "timed_out": time.monotonic() >= deadline}


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process so far (Linux /proc), to tell server cost from machine load."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measured_load(server: subprocess.Popen, *args) -> dict:
    before = cpu_seconds(server.pid)
    result = asyncio.run(load(*args))
    result["server_cpu_ms_per_request"] = round((cpu_seconds(server.pid) - before) * 1000 / max(result["requests"], 1), 2)
    return result


def machine() -> dict:
    load1, load5, _ = os.getloadavg()
    cpuinfo = Path("/proc/cpuinfo")
    models = [line.split(":", 1)[1].strip() for line in cpuinfo.read_text().splitlines()
              if line.startswith("model name")] if cpuinfo.exists() else []
    return {"cpus": os.cpu_count(), "cpu": models[0] if models else platform.machine(), "python": platform.python_version(),
            "load_average_1m_5m": [round(load1, 1), round(load5, 1)]}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--requests", type=int, default=20_000, help="per phase")
    parser.add_argument("--clients", type=int, default=100)
    parser.add_argument("--sink", choices=sorted(SINKS), default="store")
    parser.add_argument("--time-limit", type=float, default=300.0, help="seconds per phase at most")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/api_load.json"))
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="custscore-api-load-") as tmp:
        home = Path(tmp) / "home"
        database = None
        if args.sink == "postgres" and not os.environ.get(POSTGRES_URL_ENV):
            database, os.environ[POSTGRES_URL_ENV] = local_postgres()
        try:
            return _measure(args, Path(tmp), home)
        finally:
            if database is not None:
                stop_postgres(database)


def _measure(args: argparse.Namespace, tmp: Path, home: Path) -> dict:
    """Publish, serve, load idle and while another run is published; the figures, also written to --out."""
    started = time.perf_counter()
    _publish(args.sink, home, "bench-1", AS_OF, args.customers, seed=1)
    publish_s = time.perf_counter() - started
    key = ApiKeys(home / "api_keys.json").create("bench")
    env = {**os.environ, **SINKS[args.sink](home), "PYTHONPATH": os.pathsep.join(sys.path)}
    port = _free_port()
    started = time.perf_counter()
    server = start_api(env, port, tmp / "serve.log", timeout=180)
    ready_s = time.perf_counter() - started
    ids = [f"C{i:08d}" for i in range(args.customers)]
    try:
        idle = measured_load(server, port, key, ids, args.requests, args.clients, args.time_limit)
        publisher = subprocess.Popen([sys.executable, "-c", PUBLISHER, args.sink, str(home), "bench-2",
                                      str(AS_OF + dt.timedelta(days=28)), str(args.customers), "2"],
                                     stdout=subprocess.PIPE, env=env, text=True)
        assert publisher.stdout is not None
        publisher.stdout.readline()  # "publishing": it has imported everything and starts generating and writing
        publishing = measured_load(server, port, key, ids, args.requests, args.clients, args.time_limit)
        publishing["publish_finished_during_phase"] = publisher.poll() is not None
        publisher.wait(timeout=600)
        published_at = float(publisher.stdout.readline().split()[1])
        publishing["publish_switch_at_s"] = round(published_at - publishing["began"], 1)
    finally:
        server.terminate()
        server.wait(timeout=30)
    result = {"sink": args.sink, "customers": args.customers, "publish_s": round(publish_s, 1),
              "serve_ready_s": round(ready_s, 1), "idle": idle, "publishing": publishing, "machine": machine(),
              "measured_at": dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat()}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    main()
