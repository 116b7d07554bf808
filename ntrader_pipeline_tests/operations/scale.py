"""The "scale" deployment as real processes: a Redis broker, the webserver and the daemon on the
Postgres instance of ``deploy/dagster.scale.yaml``, and Celery workers (``ntrader worker``), each
in its own working directory. ``scale_env`` is the one place that says what every process shares.

Used by ``test_scaleout.py`` and ``bench/scaleout.py``.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from urllib.parse import urlsplit

import yaml
from dagster import DagsterInstance, DagsterRunStatus, RunsFilter
from sqlalchemy.engine import make_url

from ntrader_pipeline.adapters.celery_runs import WORKER_TAG
from ntrader_pipeline.settings import Settings
from ntrader_pipeline_tests.support.network import free_port

from .soak import patched_environ
from .stack import BIN, DagsterStack, StackError, _stop_group, instance_environment, wait_for

REPO_ROOT = Path(__file__).resolve().parents[2]
SCALE_INSTANCE = REPO_ROOT / "deploy" / "dagster.scale.yaml"
BACKTEST_ASSETS = ["backtest", "trade_ledger", "backtest_metrics", "backtest_report"]
BACKFILL_TAG = "dagster/backfill"


def bucket_storage(s3_bucket: dict[str, str]) -> dict[str, str]:
    """The catalog and the reports in a bucket of an S3-API server (``s3_bucket``: the test fixture's
    ``NTRADER_S3_*`` variables and ``"bucket"``), as a deployment keeps them."""
    name = s3_bucket["bucket"]
    return {
        **{k: v for k, v in s3_bucket.items() if k.startswith("NTRADER_S3_")},
        "NTRADER_CATALOG_PATH": f"s3://{name}/catalog",
        "NTRADER_REPORTS_DIR": f"s3://{name}/reports",
    }


def folder_storage(shared: Path) -> dict[str, str]:
    """The catalog and the reports in a folder every process sees (one machine)."""
    return {"NTRADER_CATALOG_PATH": str(shared / "catalog"), "NTRADER_REPORTS_DIR": str(shared / "reports")}


def scale_env(
    work: Path,
    instance_url: str,
    warehouse_url: str,
    broker_url: str,
    storage: dict[str, str],
    backtests_per_run: int,
    max_concurrent_runs: int,
) -> dict[str, str]:
    """The environment of every process of the deployment (webserver, daemon, each worker).

    ``storage`` says where the catalog and the reports live (``bucket_storage`` or ``folder_storage``).
    """
    return {
        **instance_environment(work, instance_url),
        "NTRADER_WAREHOUSE_URL": warehouse_url,
        "NTRADER_CELERY_BROKER_URL": broker_url,
        "NTRADER_CELERY_BACKEND_URL": broker_url,
        **storage,
        "NTRADER_STRATEGY_CONFIGS_DIR": str(REPO_ROOT / "strategy_configs"),  # deployed with the code
        "NTRADER_BACKTESTS_PER_RUN": str(backtests_per_run),
        "NTRADER_MAX_CONCURRENT_RUNS": str(max_concurrent_runs),
        # A hang-catcher, not a speed limit: a loaded host can pass Dagster's 60 s gRPC deadline.
        "DAGSTER_GRPC_TIMEOUT_SECONDS": "180",
    }


SERVICE_URL_VARS = (
    "NTRADER_WAREHOUSE_URL",
    "NTRADER_CELERY_BROKER_URL",
    "NTRADER_CELERY_BACKEND_URL",
    "NTRADER_S3_ENDPOINT_URL",
)


def with_service_host(env: dict[str, str], host: str) -> dict[str, str]:
    """``env`` for a process that reaches the services (Postgres, Redis, S3) at ``host`` instead of loopback."""
    moved = {
        name: env[name].replace("@127.0.0.1:", f"@{host}:").replace("//127.0.0.1:", f"//{host}:")
        for name in SERVICE_URL_VARS
        if name in env
    }
    return {**env, **moved, "DAGSTER_POSTGRES_HOST": host}


@contextmanager
def redis_broker(work: Path) -> Iterator[str]:
    """A Redis broker no other user's workers read: a private ``redis-server`` on a free loopback
    port when the binary is installed, else an empty database of the server at
    ``NTRADER_TEST_REDIS_URL`` (default 127.0.0.1:6379), emptied again afterwards."""
    import redis

    binary = shutil.which("redis-server")
    if binary is None:
        yield from _shared_redis_database()
        return
    port = free_port()
    work.mkdir(parents=True, exist_ok=True)
    log = open(work / "redis.log", "wb")  # noqa: SIM115 - closed once the child holds it
    process = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", str(work)],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    log.close()
    try:
        client = redis.Redis(host="127.0.0.1", port=port)
        wait_for("redis-server to answer", lambda: _pings(client), 30, 0.2)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        _stop_group(process, grace=5)


def _shared_redis_database() -> Iterator[str]:
    import redis

    base = os.environ.get("NTRADER_TEST_REDIS_URL", "redis://127.0.0.1:6379").rstrip("/")
    for db in range(15, 0, -1):
        client = redis.Redis.from_url(f"{base}/{db}")
        try:
            if client.dbsize() == 0:
                break
        except redis.RedisError as exc:
            raise RedisUnavailable(f"no redis-server binary, and Redis unreachable at {base}: {exc}") from None
    else:
        raise RedisUnavailable(f"no redis-server binary, and no empty database on {base}")
    try:
        yield f"{base}/{db}"
    finally:
        client.flushdb()


class RedisUnavailable(StackError):
    """No Redis to use as a broker (the test skips, as Postgres tests do without a server)."""


def _pings(client) -> bool:
    try:
        return bool(client.ping())
    except Exception:  # noqa: BLE001 - not listening yet
        return False


class NetworkNamespace:
    """A network namespace whose one link is a veth pair to this host, where ``socat`` forwards the
    given loopback ports: a process in it reaches those services and nothing else (as root)."""

    def __init__(self, index: int, ports: list[int], log_dir: Path):
        tag = f"{os.getpid() % 10000}{index}"
        self.name, self.host_link, self.peer_link = f"ntr{tag}", f"ntrh{tag}", f"ntrn{tag}"
        octet = 100 + (os.getpid() + index * 7) % 150
        self.host_ip, self.inner_ip = f"10.231.{octet}.1", f"10.231.{octet}.2"
        self.ports, self.log_dir = ports, log_dir
        self.forwarders: list[subprocess.Popen] = []

    def __enter__(self) -> NetworkNamespace:
        try:
            for argv in (
                ["ip", "netns", "add", self.name],
                ["ip", "link", "add", self.host_link, "type", "veth", "peer", "name", self.peer_link],
                ["ip", "link", "set", self.peer_link, "netns", self.name],
                ["ip", "addr", "add", f"{self.host_ip}/30", "dev", self.host_link],
                ["ip", "link", "set", self.host_link, "up"],
                ["ip", "netns", "exec", self.name, "ip", "addr", "add", f"{self.inner_ip}/30", "dev", self.peer_link],
                ["ip", "netns", "exec", self.name, "ip", "link", "set", self.peer_link, "up"],
                ["ip", "netns", "exec", self.name, "ip", "link", "set", "lo", "up"],
            ):
                subprocess.run(argv, check=True, capture_output=True, timeout=30)
            for port in self.ports:
                self.forwarders.append(
                    subprocess.Popen(
                        ["socat", f"TCP-LISTEN:{port},bind={self.host_ip},fork,reuseaddr", f"TCP:127.0.0.1:{port}"],
                        stdout=subprocess.DEVNULL,
                        stderr=subprocess.DEVNULL,
                        start_new_session=True,
                    )
                )
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *_exc) -> None:
        for forwarder in self.forwarders:
            _stop_group(forwarder, grace=5)
        subprocess.run(["ip", "netns", "del", self.name], capture_output=True, timeout=30)  # takes its veth peer along
        subprocess.run(["ip", "link", "del", self.host_link], capture_output=True, timeout=30)

    def command(self, argv: list[str]) -> list[str]:
        return ["ip", "netns", "exec", self.name, *argv]

    def can_connect(self, host: str, port: int) -> bool:
        """Whether a process inside the namespace opens a TCP connection to ``host:port``."""
        probe = f"import socket; socket.create_connection(({host!r}, {port}), timeout=5)"
        probed = subprocess.run(self.command([sys.executable, "-c", probe]), capture_output=True, timeout=60)
        return probed.returncode == 0


def network_namespaces_available() -> bool:
    """Whether this process may create network namespaces with veth pairs (root, ``ip``, ``socat``)."""
    if not (shutil.which("ip") and shutil.which("socat")):
        return False
    probe = f"ntrprobe{os.getpid() % 100000}"
    made = subprocess.run(["ip", "netns", "add", probe], capture_output=True, timeout=30).returncode == 0
    if made:
        subprocess.run(["ip", "netns", "del", probe], capture_output=True, timeout=30)
    return made


class Workers:
    """``ntrader worker`` processes, each in its own working directory with its own DAGSTER_HOME
    copy of the instance file: they share only what the environment names."""

    def __init__(self, env: dict[str, str], work: Path):
        self.env, self.work = env, work
        self.processes: dict[str, subprocess.Popen] = {}
        self.namespaces: dict[str, NetworkNamespace] = {}

    def start(self, name: str, namespace: NetworkNamespace | None = None) -> str:
        """Start worker ``name`` (inside ``namespace`` if given); returns its Celery node name (the
        ``ntrader/worker`` run tag)."""
        env = self.env if namespace is None else with_service_host(self.env, namespace.host_ip)
        argv = [str(BIN / "ntrader"), "worker"]
        root = self.work / name
        cwd, home = root / "cwd", root / "dagster_home"
        cwd.mkdir(parents=True)
        home.mkdir()
        shutil.copy(SCALE_INSTANCE, home / "dagster.yaml")
        node = f"{name}@scaleout-test"
        log = open(root / "worker.log", "wb")  # noqa: SIM115 - closed once the child holds it
        argv.append(f"--name={node}")
        if namespace is not None:
            self.namespaces[node] = namespace
        self.processes[node] = subprocess.Popen(
            namespace.command(argv) if namespace else argv,
            cwd=cwd,
            env={**env, "DAGSTER_HOME": str(home)},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        return node

    def kill(self, node: str) -> None:
        """SIGKILL the worker and every process it started, as a machine that dies."""
        os.killpg(self.processes[node].pid, signal.SIGKILL)
        self.processes[node].wait(timeout=30)

    def working_directory(self, node: str) -> Path:
        return self.work / node.split("@")[0] / "cwd"

    def stop(self) -> None:
        for process in self.processes.values():
            _stop_group(process, grace=20)

    def print_logs(self, lines: int = 80) -> None:
        for node in self.processes:
            text_ = (self.work / node.split("@")[0] / "worker.log").read_text(errors="replace").splitlines()
            print(f"\n===== worker {node} (last {lines} of {len(text_)} lines) =====", file=sys.stderr)
            print("\n".join(text_[-lines:]), file=sys.stderr)


@contextmanager
def scale_deployment(
    work: Path, env: dict[str, str], workers: int, isolate: bool = False
) -> Iterator[tuple[DagsterStack, Workers, DagsterInstance]]:
    """The webserver, the daemon and ``workers`` workers on ``env``; all stopped on the way out,
    with their logs printed when the caller's block fails. With ``isolate`` each worker runs in its
    own network namespace, reaching only Postgres, Redis and the S3 endpoint."""
    home = Path(env["DAGSTER_HOME"])
    home.mkdir(parents=True, exist_ok=True)
    shutil.copy(SCALE_INSTANCE, home / "dagster.yaml")
    workspace = yaml.safe_load((REPO_ROOT / "workspace.yaml").read_text())
    workspace["load_from"][0]["python_module"]["working_directory"] = str(work)
    (work / "workspace.yaml").write_text(yaml.safe_dump(workspace))
    pool = Workers(env, work / "workers")
    with patched_environ({k: v for k, v in env.items() if k.startswith(("DAGSTER_", "NTRADER_"))}):
        instance = DagsterInstance.from_config(str(home))
        namespaces = ExitStack()
        try:
            ports = sorted(
                {
                    make_url(env["NTRADER_WAREHOUSE_URL"]).port or 5432,
                    int(env["DAGSTER_POSTGRES_PORT"]),
                    redis_port(env["NTRADER_CELERY_BROKER_URL"]),
                    *([urlsplit(env["NTRADER_S3_ENDPOINT_URL"]).port] if "NTRADER_S3_ENDPOINT_URL" in env else []),
                }
            )
            for index in range(workers):
                namespace = namespaces.enter_context(NetworkNamespace(index, ports, work)) if isolate else None
                pool.start(f"w{index + 1}", namespace)
            with DagsterStack(work / "workspace.yaml", env, work / "logs", cwd=work) as stack:
                try:
                    yield stack, pool, instance
                except BaseException:
                    pool.print_logs()
                    raise
        finally:
            pool.stop()
            namespaces.close()
            instance.dispose()


def redis_port(url: str) -> int:
    return int(url.rsplit(":", 1)[1].split("/", 1)[0])


def settings_for(env: dict[str, str], work: Path) -> Settings:
    """The settings the deployment's processes read from ``env``."""
    return Settings(
        home=work / "home",
        warehouse_url=env["NTRADER_WAREHOUSE_URL"],
        catalog_path=env["NTRADER_CATALOG_PATH"],
        reports_dir=env["NTRADER_REPORTS_DIR"],
        strategy_configs_dir=Path(env["NTRADER_STRATEGY_CONFIGS_DIR"]),
        backtests_per_run=int(env["NTRADER_BACKTESTS_PER_RUN"]),
        s3_endpoint_url=env.get("NTRADER_S3_ENDPOINT_URL"),
        s3_region=env.get("NTRADER_S3_REGION"),
        s3_access_key_id=env.get("NTRADER_S3_ACCESS_KEY_ID"),
        s3_secret_access_key=env.get("NTRADER_S3_SECRET_ACCESS_KEY"),
    )


def backfill_runs(instance: DagsterInstance, backfill_id: str) -> list:
    """Every run of the backfill, retries included (they keep the backfill's tag)."""
    return [r.dagster_run for r in instance.get_run_records(RunsFilter(tags={BACKFILL_TAG: backfill_id}))]


FINISHED = {DagsterRunStatus.SUCCESS, DagsterRunStatus.FAILURE, DagsterRunStatus.CANCELED}


def settled(instance: DagsterInstance, backfill_id: str, stack: DagsterStack) -> list | None:
    """The backfill's runs once it is finished and no run of it is queued, running or due a retry."""
    stack.check_alive()
    if stack.backfill(backfill_id)["status"] in ("REQUESTED", "CANCELING", "FAILING"):
        return None
    runs = backfill_runs(instance, backfill_id)
    if any(r.status not in FINISHED for r in runs):
        return None
    if any(
        r.status == DagsterRunStatus.FAILURE
        and r.tags.get("dagster/will_retry") == "true"
        and not any(c.parent_run_id == r.run_id for c in runs)
        for r in runs
    ):
        return None
    return runs


def worker_of(run) -> str | None:
    return run.tags.get(WORKER_TAG)
