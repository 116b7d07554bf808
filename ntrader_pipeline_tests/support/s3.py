"""A real S3-API server for tests: ``moto_server`` in its own process on a free local port.

``s3_server()`` starts it, waits until it answers HTTP, yields its endpoint URL and kills it on
exit. Any client speaks the real S3 protocol to it (s3fs, boto, NautilusTrader's Rust object
store), so what passes here passes the same code path a real bucket takes. Buckets and objects live
in the server's memory: they vanish with it.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ntrader_pipeline_tests.support.network import free_port

ACCESS_KEY_ID = "testing"  # moto accepts any key; these are what the fixtures hand out
SECRET_ACCESS_KEY = "testing-secret"
REGION = "eu-central-1"  # not us-east-1: S3 refuses that one as a bucket location constraint
START_TIMEOUT = 60.0  # seconds: generous, the machine may be loaded


def _moto_server() -> str:
    beside = Path(sys.executable).with_name("moto_server")  # the virtualenv's console script
    found = str(beside) if beside.exists() else shutil.which("moto_server")
    if not found:
        raise RuntimeError("moto_server is not installed (dev dependency moto[server])")
    return found


@contextmanager
def s3_server(timeout: float = START_TIMEOUT) -> Iterator[str]:
    """A running ``moto_server`` on 127.0.0.1; yields its endpoint URL (``http://127.0.0.1:<port>``)."""
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    # Its log goes to a file, never a pipe: it logs every request, and a pipe nobody reads fills
    # up after a few hundred and then blocks the server (and every client) for good.
    with tempfile.TemporaryFile() as log:
        process = subprocess.Popen(
            [_moto_server(), "-H", "127.0.0.1", "-p", str(port)],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env={**os.environ, "MOTO_ALLOW_NONEXISTENT_REGION": "true"},
        )
        try:
            _wait_until_up(process, endpoint, timeout, log)
            yield endpoint
        finally:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=30)


def _wait_until_up(process: subprocess.Popen, endpoint: str, timeout: float, log) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            log.seek(0)
            raise RuntimeError(f"moto_server exited with {process.returncode}: {log.read().decode()[-2000:]}")
        try:
            with urllib.request.urlopen(f"{endpoint}/moto-api/", timeout=2):
                return
        except (urllib.error.URLError, OSError):
            time.sleep(0.1)
    raise RuntimeError(f"moto_server did not answer at {endpoint} within {timeout:.0f} s")


def s3_environment(endpoint: str) -> dict[str, str]:
    """The ``NTRADER_S3_*`` settings that point ntrader at this server."""
    return {
        "NTRADER_S3_ENDPOINT_URL": endpoint,
        "NTRADER_S3_REGION": REGION,
        "NTRADER_S3_ACCESS_KEY_ID": ACCESS_KEY_ID,
        "NTRADER_S3_SECRET_ACCESS_KEY": SECRET_ACCESS_KEY,
    }


def create_bucket(endpoint: str, name: str) -> None:
    """Create bucket ``name`` (s3fs, the client ntrader itself uses)."""
    import s3fs

    fs = s3fs.S3FileSystem(
        key=ACCESS_KEY_ID,
        secret=SECRET_ACCESS_KEY,
        skip_instance_cache=True,
        client_kwargs={"endpoint_url": endpoint, "region_name": REGION},
    )
    fs.mkdir(name)
