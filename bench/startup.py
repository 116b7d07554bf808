"""What a process pays before it does anything: commands that run nothing, and the code location.

Every UI, daemon, sensor and run process loads the code location; every `ntrader` command starts a
Python process. Each figure is the median of fresh processes:

    uv run python bench/startup.py [--repeat R]

Prints ``help_seconds=`` (``ntrader --help``), ``list_results_seconds=`` and ``data_list_seconds=``
(on an empty home), ``definitions_seconds=`` (``import ntrader_pipeline.definitions``) and
``code_server_rss_mb=`` (resident memory of an idle ``dagster api grpc`` code server serving the
code location, read from /proc once it answers).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from ntrader_pipeline_tests.support import free_port

REPO = Path(__file__).resolve().parents[1]


def seconds(args: list[str], env: dict[str, str], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        subprocess.run(args, check=True, capture_output=True, cwd=REPO, env=env, timeout=600)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def code_server_rss_mb(env: dict[str, str]) -> float:
    """Resident memory of an idle gRPC code server once it serves the location (Linux only)."""
    port = free_port()
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "dagster",
            "api",
            "grpc",
            "-m",
            "ntrader_pipeline.definitions",
            "-h",
            "127.0.0.1",
            "-p",
            str(port),
        ],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            health = subprocess.run(
                [sys.executable, "-m", "dagster", "api", "grpc-health-check", "-p", str(port)],
                cwd=REPO,
                env=env,
                capture_output=True,
                timeout=120,
            )
            if health.returncode == 0:
                break
            time.sleep(1)
        else:
            raise RuntimeError("the code server did not answer within 300 s")
        time.sleep(2)  # let it settle after serving the first request
        status = Path(f"/proc/{server.pid}/status").read_text()
        kib = next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:"))
        return kib / 1024
    finally:
        server.terminate()
        server.wait(timeout=60)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5, help="fresh processes per figure; medians are printed")
    parser.add_argument("--no-code-server", action="store_true", help="skip the code-server memory figure")
    args = parser.parse_args()
    home = tempfile.mkdtemp(prefix="ntrader-bench-startup-")
    env = {
        **os.environ,
        "NTRADER_HOME": home,
        "NTRADER_STRATEGY_CONFIGS_DIR": str(REPO / "strategy_configs"),
        "DAGSTER_HOME": "",
        "PYTHONWARNINGS": "ignore",
    }
    ntrader = [sys.executable, "-m", "ntrader_pipeline.cli"]
    subprocess.run([*ntrader, "data", "list"], check=True, capture_output=True, cwd=REPO, env=env)  # warm disk cache

    figures = {
        "help_seconds": seconds([*ntrader, "--help"], env, args.repeat),
        "list_results_seconds": seconds([*ntrader, "backtest", "list-results"], env, args.repeat),
        "data_list_seconds": seconds([*ntrader, "data", "list"], env, args.repeat),
        "definitions_seconds": seconds([sys.executable, "-c", "import ntrader_pipeline.definitions"], env, args.repeat),
        "bare_python_seconds": seconds([sys.executable, "-c", "pass"], env, args.repeat),
    }
    if not args.no_code_server:
        figures["code_server_rss_mb"] = code_server_rss_mb(env)
    print(f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}, median of {args.repeat} fresh processes")
    for name, value in figures.items():
        print(f"{name}={value:.3f}" if "seconds" in name else f"{name}={value:.0f}")


if __name__ == "__main__":
    main()
