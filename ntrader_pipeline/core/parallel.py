"""A pool of worker processes that import the engine once and map picklable jobs to results, in order.

Why: a sweep or a walk-forward is dozens to hundreds of independent backtests, and one process
uses one core. Importing NautilusTrader costs seconds and hundreds of MB per process, so the
workers are forked from a ``forkserver`` that imported it once (``PRELOAD``): once it is up, a
worker starts in milliseconds and shares those pages. Where there is no forkserver (Windows)
workers are spawned.

How it behaves:
- ``WorkerPool(processes)`` computes on ``processes`` processes: the caller and ``processes - 1``
  workers. Workers start in the background (the first ones wait for the forkserver's imports;
  ``prestart`` begins those early) while the caller runs jobs itself; it runs one whenever no
  worker has something for it, so nothing waits for a worker that is not there yet. With
  ``caller_works=False`` the caller only hands out and collects, and ``processes`` workers compute.
- ``map(fn, jobs, shared)`` calls ``fn(shared, job)`` and yields one ``Outcome`` per job, in the
  jobs' order, as soon as it and every earlier one are done. The caller takes jobs from the front
  and the workers from the back, so results flow from the start. ``shared`` (e.g. the bars) is
  sent to each worker once per map, not with every job; so is ``sys.path``, so a job can name a
  module the caller imported from a path added after the forkserver started.
- Each worker holds at most ``AHEAD`` jobs, so it never waits for the caller between two jobs
  (the caller records results, or runs work of its own, while the workers compute).
- An exception a job raises comes back as it was raised (``Outcome.result()`` raises it), with a
  worker's traceback as a note. A worker that dies (killed, out of memory, a crash in native code)
  fails the job it was running with its exit code; the jobs it held but had not begun go back to
  the others, a new worker is started, and the other jobs still finish.
- Jobs compute only: recording results (the warehouse, Dagster events) stays with the caller.
- ``processes <= 1`` runs every job in the calling process, one at a time.
- Like every ``multiprocessing`` start method but fork, a worker imports the caller's main module
  (``__mp_main__``): a script using the pool needs the ``if __name__ == "__main__":`` guard.

Issue 22 reuses this pool to spread a backfill run's partitions over the cores.
"""

from __future__ import annotations

import itertools
import multiprocessing
import os
import pickle
import queue
import sys
import threading
import traceback
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from typing import Any

# What every worker needs and should not import on its own: the engine and the research jobs.
PRELOAD = ("nautilus_trader.backtest.engine", "ntrader_pipeline.core.research")
AHEAD = 2  # jobs a worker holds: the one it runs and the next
STOP_SECONDS = 10.0


class JobFailed(RuntimeError):
    """A job that did not return: its worker died, or its result could not be sent back."""


@dataclass
class Outcome:
    """One job's result, or why it has none."""

    index: int
    value: Any = None
    error: BaseException | None = None

    def result(self) -> Any:
        if self.error is not None:
            raise self.error
        return self.value


def default_processes() -> int:
    """The cores this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def usable_processes(wanted: int | None) -> int:
    """``wanted`` (default: the cores), or 1 inside a daemonic process, which may not start children."""
    if multiprocessing.current_process().daemon:
        return 1
    return max(1, wanted if wanted is not None else default_processes())


def prestart(processes: int | None, preload: Iterable[str] = PRELOAD) -> None:
    """Start the forkserver now, when workers will be wanted: it imports ``preload`` while the
    caller goes on with its own start (a command importing Dagster, say)."""
    if usable_processes(processes) > 1 and "forkserver" in multiprocessing.get_all_start_methods():
        _context(preload)
        from multiprocessing import forkserver

        forkserver.ensure_running()


def _context(preload: Iterable[str]):
    if "forkserver" in multiprocessing.get_all_start_methods():
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload(list(preload))  # read when the forkserver starts, once per process
        return context
    return multiprocessing.get_context("spawn")


@dataclass(eq=False)
class _Worker:
    process: Any
    conn: Connection
    token: int | None = None  # the map whose shared data it holds
    held: deque = field(default_factory=deque)  # indices sent, oldest (the one running) first


class WorkerPool:
    """The caller and ``processes - 1`` workers, started on first use and stopped by ``close`` (or the
    ``with`` block)."""

    def __init__(self, processes: int, preload: Iterable[str] = PRELOAD, caller_works: bool = True):
        self.processes = max(1, processes)
        self.caller_works = caller_works
        self._preload = tuple(preload)
        self._workers: list[_Worker] = []
        self._tokens = itertools.count(1)
        self._arrivals: queue.SimpleQueue[_Worker | None] = queue.SimpleQueue()
        self._starting = 0  # asked for, not arrived yet
        self._lock = threading.Lock()
        self._closed = False

    def __enter__(self) -> WorkerPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def map(self, fn: Callable[[Any, Any], Any], jobs: Iterable[Any], shared: Any = None) -> Iterator[Outcome]:
        """``fn(shared, job)`` for every job; outcomes in the jobs' order. ``fn`` must be a module-level
        function (workers import it by name)."""
        jobs = list(jobs)
        if self.processes == 1 and self.caller_works:
            for index, job in enumerate(jobs):
                yield _run_here(fn, index, job, shared)
            return
        yield from self._map(fn, jobs, shared)

    def _map(self, fn, jobs: list, shared: Any) -> Iterator[Outcome]:
        token = next(self._tokens)
        payload = pickle.dumps(shared, protocol=pickle.HIGHEST_PROTOCOL)
        todo = deque(range(len(jobs)))
        done: dict[int, Outcome] = {}
        emitted = 0
        workers = self.processes - 1 if self.caller_works else self.processes
        self._ask(min(workers, len(jobs)) - len(self._workers) - self._starting)
        try:
            while emitted < len(jobs):
                self._take_arrivals()
                self._hand_out(todo, jobs, fn, token, payload)
                if not self.caller_works and todo and not self._workers:  # none arrived yet: wait for one
                    self._wait_for_arrival()
                elif self.caller_works and todo and not self._answered():  # nothing to collect: work instead
                    index = todo.popleft()
                    done[index] = _run_here(fn, index, jobs[index], shared)
                else:
                    self._collect(done, todo)
                while emitted in done:
                    yield done.pop(emitted)
                    emitted += 1
        finally:
            if emitted < len(jobs):  # the caller stopped early: drop whatever is half done
                self.close()

    # --- workers, started in the background ----------------------------------------------------

    def _ask(self, count: int) -> None:
        if count <= 0:
            return
        self._starting += count
        threading.Thread(target=self._start_some, args=(count,), name="ntrader-pool-start", daemon=True).start()

    def _start_some(self, count: int) -> None:
        """Start ``count`` workers, each handed over once it answers (a thread: the first ones wait for
        the forkserver's imports). A worker that cannot start is handed over as None."""
        for _ in range(count):
            worker = None
            if not self._closed:
                try:
                    worker = self._start()
                    worker.conn.recv()  # "ready": it runs
                except (EOFError, OSError):
                    worker = None
            with self._lock:
                if self._closed and worker is not None:
                    _stop(worker, terminate=True)
                    worker = None
                self._arrivals.put(worker)

    def _start(self) -> _Worker:
        context = _context(self._preload)
        parent, child = context.Pipe(duplex=True)
        process = context.Process(target=_serve, args=(child,), daemon=True)
        process.start()
        child.close()
        return _Worker(process, parent)

    def _wait_for_arrival(self) -> None:
        if self._starting == 0:
            raise JobFailed("no worker process could be started")
        worker = self._arrivals.get()
        self._starting -= 1
        if worker is not None:
            self._workers.append(worker)

    def _take_arrivals(self) -> None:
        while True:
            try:
                worker = self._arrivals.get_nowait()
            except queue.Empty:
                return
            self._starting -= 1
            if worker is not None:
                self._workers.append(worker)

    def _hand_out(self, todo: deque, jobs: list, fn, token: int, payload: bytes) -> None:
        for worker in list(self._workers):
            while todo and len(worker.held) < AHEAD:
                index = todo[-1]  # workers take the last jobs, the caller the first: results flow in order
                try:
                    if worker.token != token:
                        worker.conn.send(("shared", token, payload, list(sys.path)))
                        worker.token = token
                    worker.conn.send(("job", index, fn, token, jobs[index]))
                except OSError:  # it died; with jobs held, ``_collect`` sees its sentinel
                    if not worker.held:
                        self._drop(worker)
                    break
                worker.held.append(todo.pop())

    def _answered(self) -> bool:
        """Whether a worker has something for the caller: a result, or its death."""
        busy = [w for w in self._workers if w.held]
        return bool(busy) and bool(wait([w.conn for w in busy] + [w.process.sentinel for w in busy], timeout=0))

    def _collect(self, done: dict[int, Outcome], todo: deque) -> None:
        busy = [w for w in self._workers if w.held]
        if not busy:
            return
        ready = wait([w.conn for w in busy] + [w.process.sentinel for w in busy])
        for worker in busy:
            while worker.held and worker.conn.poll():  # answers first: a worker may exit after its last
                try:
                    kind, index, value = worker.conn.recv()
                except (EOFError, OSError):
                    break
                worker.held.remove(index)
                done[index] = Outcome(index, value) if kind == "ok" else Outcome(index, error=value)
            if worker.held and worker.process.sentinel in ready and not worker.process.is_alive():
                running = worker.held.popleft()
                code = worker.process.exitcode
                done[running] = Outcome(
                    running, error=JobFailed(f"the worker process running job {running + 1} died (exit code {code})")
                )
                todo.extend(sorted(worker.held))  # later than any job left: workers take from the end
                self._drop(worker)

    def _drop(self, worker: _Worker) -> None:
        """A dead worker leaves; another is started in its place."""
        worker.process.join()
        worker.conn.close()
        self._workers.remove(worker)
        self._ask(1)

    def close(self) -> None:
        """Stop every worker: idle ones are asked to, busy ones (an abandoned map) are terminated;
        workers still starting are stopped as they arrive."""
        with self._lock:
            self._closed = True
            self._take_arrivals()
        for worker in self._workers:
            _stop(worker, terminate=bool(worker.held))
        self._workers = []


def _stop(worker: _Worker, terminate: bool) -> None:
    try:
        if terminate:
            worker.process.terminate()
        else:
            worker.conn.send(("stop",))
    except OSError:
        pass
    worker.process.join(STOP_SECONDS)
    if worker.process.is_alive():
        worker.process.kill()
        worker.process.join()
    worker.conn.close()


def _run_here(fn, index: int, job: Any, shared: Any) -> Outcome:
    try:
        return Outcome(index, fn(shared, job))
    except Exception as exc:  # noqa: BLE001 - handed to the caller, as from a worker
        return Outcome(index, error=exc)


def _serve(conn: Connection) -> None:
    """A worker: say it runs, then run jobs as they come, answer each, until told to stop or the
    caller goes away."""
    conn.send(("ready", os.getpid()))
    shared: dict[int, Any] = {}
    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):
            return
        if message[0] == "stop":
            return
        if message[0] == "shared":
            _, token, payload, path = message
            sys.path[:] = path
            shared = {token: pickle.loads(payload)}
            continue
        _, index, fn, token, job = message
        try:
            reply = ("ok", index, fn(shared[token], job))
        except BaseException as exc:  # noqa: BLE001 - every failure goes back to the caller
            reply = ("error", index, _portable(exc))
        try:
            conn.send(reply)
        except (EOFError, OSError):
            return
        except Exception as exc:  # noqa: BLE001 - a result that does not pickle
            conn.send(("error", index, JobFailed(f"job {index + 1}'s result could not be sent back: {exc!r}")))


def _portable(exc: BaseException) -> BaseException:
    """``exc`` with the worker's traceback as a note, or a ``JobFailed`` saying it when it does not pickle."""
    text = "".join(traceback.format_exception(exc))
    try:
        exc.add_note(f"in a worker process:\n{text}")
        return pickle.loads(pickle.dumps(exc))
    except Exception:  # noqa: BLE001 - any exception that cannot cross processes
        return JobFailed(text.strip().splitlines()[-1])
