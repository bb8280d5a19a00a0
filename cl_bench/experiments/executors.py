"""Where a sweep's runs execute: a local process pool, or a Ray cluster.

Both take a function and a list of items and yield the function's results as runs
finish, in completion order. The function must be picklable (a module-level function
or a ``functools.partial`` of one) and must not raise for an ordinary failure: it
returns what went wrong, so that one failed run never stops the others. Only the
machinery failing (a worker process killed, a lost node) reaches ``lost``.

Ray is an optional extra: this module imports it only when a Ray executor is made.
"""

from __future__ import annotations

import multiprocessing
import os
import pickle
import signal
from collections.abc import Callable, Generator, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from types import FrameType, ModuleType
from typing import Any, Protocol, TypeVar

from cl_bench.utils.errors import ClbenchError, shortened

T = TypeVar("T")
R = TypeVar("R")

RAY_INSTALL = "pip install 'clbench[ray]'"
_TERMINATED_EXIT = 128 + signal.SIGTERM


class Executor(Protocol):
    def run(
        self,
        fn: Callable[[T], R],
        items: Sequence[T],
        lost: Callable[[T, BaseException], R],
    ) -> Iterator[R]:
        """Yield ``fn(item)`` for every item as each finishes (``lost(item, error)`` for an
        item whose worker failed). Closing the iterator early stops every worker."""
        ...


class LocalExecutor:
    """A pool of ``workers`` processes on this machine.

    Workers are started with ``spawn``, not ``fork``: a forked copy of a process that
    has run torch inherits its OpenMP and CUDA state, which can deadlock, and spawn
    behaves the same on every platform. Workers ignore Ctrl-C; the parent handles it
    and terminates them.

    Every item runs in a fresh process (one task per child): a run's recorded peak
    memory is then its own, not the largest of every run its worker did before, and no
    state (a loaded backbone, a torch setting) leaks from one run into the next.

    A worker that dies (killed, out of memory) breaks the whole pool, and every item
    not yet finished fails with it. So the items that had not started go on in a fresh
    pool, and the ones that were running are retried afterwards one at a time: the item
    that kills its worker alone is the one reported ``lost``, and no other item is. A
    pool that breaks before any item has started is retried once; if that happens again,
    the machinery is failing, not an item, and the items left are reported ``lost``.
    """

    def __init__(self, workers: int | None = None):
        self.workers = max(1, workers or os.cpu_count() or 1)

    def run(
        self,
        fn: Callable[[T], R],
        items: Sequence[T],
        lost: Callable[[T, BaseException], R],
    ) -> Iterator[R]:
        if not items:
            return
        context = multiprocessing.get_context("spawn")
        started = context.RawArray("b", len(items))  # set by a worker as it starts an item
        waiting = list(range(len(items)))  # to run in a pool of `workers`
        suspects: list[int] = []  # were running when a pool broke: each to retry alone
        retried_idle_break = False
        while waiting or suspects:
            queue, workers = (waiting, self.workers) if waiting else (suspects, 1)
            batch = list(queue)
            queue.clear()
            workers = min(workers, len(batch))
            for index in batch:
                started[index] = 0
            broken = yield from _run_pool(context, started, fn, lost, items, batch, workers)
            if broken is None:
                continue
            error, unfinished = broken
            running = [index for index in unfinished if started[index]]
            if not running:  # a worker died before any item started: no item to blame
                if retried_idle_break:
                    for index in unfinished:
                        yield lost(items[index], error)
                    continue
                retried_idle_break = True  # once: it may have been killed from outside
            elif workers == 1:  # one item ran, and its worker died
                for index in running:
                    yield lost(items[index], error)
            else:
                suspects += running
            queue += [index for index in unfinished if not started[index]]


def _run_pool(
    context: Any,
    started: Any,
    fn: Callable[[T], R],
    lost: Callable[[T, BaseException], R],
    items: Sequence[T],
    batch: Sequence[int],
    workers: int,
) -> Generator[R, None, tuple[BaseException, list[int]] | None]:
    """Yield ``fn`` of the batch's items from one pool; if the pool breaks, return the
    error and the indices that did not finish (None when all did)."""
    pool = ProcessPoolExecutor(
        max_workers=min(workers, len(batch)),
        mp_context=context,
        max_tasks_per_child=1,
        initializer=_init_worker,
        initargs=(started,),
    )
    finished = False
    try:
        futures = {
            pool.submit(_call_in_worker, pickle.dumps((fn, items[index])), index): index
            for index in batch
        }
        done: set[int] = set()
        for future in as_completed(futures):
            try:
                result = future.result()
            except BrokenProcessPool as error:
                finished = True
                return error, [index for index in batch if index not in done]
            except Exception as error:  # fn raised, against the contract above
                result = lost(items[futures[future]], error)
            done.add(futures[future])
            yield result
        finished = True
    finally:
        if finished:
            pool.shutdown(wait=True)
        else:
            _terminate(pool)
    return None


class _Terminated(BaseException):
    """Raised in a busy worker by SIGTERM, so that its ``finally`` blocks (which remove
    temporary files of half-written cache entries) run before it exits."""


_busy = False
_started: Any = None


def _init_worker(started: Any) -> None:
    global _started
    _started = started
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, _on_sigterm)


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    if not _busy:
        os._exit(_TERMINATED_EXIT)
    raise _Terminated


def _call_in_worker(call: bytes, index: int) -> Any:
    """Run a pickled ``(fn, item)``. The item is flagged started before it is unpickled,
    so a worker that dies unpickling it (importing what it needs) is blamed on it."""
    global _busy
    _busy = True
    _started[index] = 1
    try:
        fn, item = pickle.loads(call)
        return fn(item)
    except _Terminated:
        os._exit(_TERMINATED_EXIT)  # cleanups have run; skip the pool's own bookkeeping
    finally:
        _busy = False


def _terminate(pool: ProcessPoolExecutor, grace: float = 10.0) -> None:
    """Stop every worker now: running runs are abandoned, queued ones never start."""
    # Before Python 3.14 (terminate_workers) the pool has no public way to stop work
    # that is running; its process table and manager thread (private, present in
    # 3.11-3.14) are the way in.
    table = getattr(pool, "_processes", None) or {}
    processes = list(table.values())
    manager = getattr(pool, "_executor_manager_thread", None)
    # Workers first, shutdown after: with one task per child, the manager thread
    # replaces a worker that finished, which fails once shutdown() has dropped the
    # process table (Python 3.11-3.13). Seeing its workers die, the manager marks the
    # pool broken, fails the queued items (none starts) and exits.
    for process in processes:
        if process.is_alive():
            process.terminate()
    # The manager thread sees the workers die and reaps them. Until it is done, a
    # worker it reaped can still look alive from this thread (the two race on waitpid),
    # so wait for it before asking which workers ignored SIGTERM.
    if manager is not None:
        manager.join(grace)
    pool.shutdown(wait=False, cancel_futures=True)
    processes += [process for process in table.values() if process not in processes]
    for process in processes:
        process.join(grace)
        if process.is_alive():
            process.kill()
            process.join()
    if manager is not None:
        manager.join(grace)


class RayExecutor:
    """Each item is a Ray task with ``num_cpus=cpus_per_task``, on an existing cluster or a
    local one, in a worker process of its own (``max_calls=1``: the worker exits after
    the task, so the run's peak memory is its own).

    With ``address`` (e.g. ``ray://head:10001`` or ``head:6379``) the driver connects to
    that cluster; without it, it starts a new local Ray instance with ``workers`` CPUs, at
    least ``cpus_per_task`` (``address="local"``: never a stale cluster found in Ray's
    temp folder). If Ray is
    already initialised in this process, that connection is used and left open.
    """

    def __init__(
        self, address: str | None = None, workers: int | None = None, cpus_per_task: int = 1
    ):
        self.ray = import_ray()
        self.address = address
        self.workers = workers or os.cpu_count() or 1
        self.cpus_per_task = cpus_per_task

    def run(
        self,
        fn: Callable[[T], R],
        items: Sequence[T],
        lost: Callable[[T, BaseException], R],
    ) -> Iterator[R]:
        if not items:
            return
        ray = self.ray
        started = not ray.is_initialized()
        if started:
            if self.address:
                ray.init(address=self.address)
            else:  # big enough for one task, or nothing could ever be scheduled
                cpus = max(self.workers, self.cpus_per_task)
                ray.init(address="local", num_cpus=cpus, include_dashboard=False)
        pending: dict[Any, T] = {}
        try:
            largest = max((node["Resources"].get("CPU", 0) for node in ray.nodes()
                           if node["Alive"]), default=0)  # fmt: skip
            if largest < self.cpus_per_task:
                raise ClbenchError(
                    f"no node of the Ray cluster has {self.cpus_per_task} CPUs for one run "
                    f"(the largest has {largest:g}); lower --threads"
                )
            task = ray.remote(num_cpus=self.cpus_per_task, max_retries=0, max_calls=1)(_call_in_ray)
            pending = {task.remote(fn, item): item for item in items}
            while pending:
                [ref], _ = ray.wait(list(pending), num_returns=1)
                item = pending.pop(ref)
                try:
                    result = ray.get(ref)
                except Exception as error:  # the worker died or the node was lost
                    result = lost(item, error)
                yield result
        finally:
            for ref in pending:  # left when interrupted or closed early
                ray.cancel(ref, force=True)
            if started:
                ray.shutdown()


def _call_in_ray(fn: Callable[[T], R], item: T) -> R:
    return fn(item)


def import_ray() -> ModuleType:
    """Ray, or a message saying how to install it (it is an optional extra)."""
    try:
        import ray
    except ImportError as error:
        raise ClbenchError(
            f"--executor ray needs Ray, which is not installed: {RAY_INSTALL}"
        ) from error
    return ray


def make_executor(
    kind: str,
    *,
    workers: int | None = None,
    ray_address: str | None = None,
    threads_per_run: int = 1,
) -> Executor:
    """``local`` or ``ray``; a Ray executor fails here, before any run, if Ray is missing.

    A local pool defaults to as many workers as there are CPUs for ``threads_per_run``
    threads each; a Ray task asks for ``threads_per_run`` CPUs.
    """
    if kind == "local":
        return LocalExecutor(workers or max(1, (os.cpu_count() or 1) // threads_per_run))
    if kind == "ray":
        return RayExecutor(ray_address, workers, cpus_per_task=threads_per_run)
    raise ClbenchError(f"unknown executor {shortened(kind)}; choose local or ray")
