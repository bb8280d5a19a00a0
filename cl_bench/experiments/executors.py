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
        retried: Callable[[T, BaseException], None] = ...,
    ) -> Iterator[R]:
        """Yield ``fn(item)`` for every item as each finishes (``lost(item, error)`` for an
        item whose worker failed for good; ``retried(item, error)`` is told of each item
        that runs again after its worker failed). Closing the iterator early stops every
        worker."""
        ...


def _ignore(item: Any, error: BaseException) -> None:
    return None


def gpu_slots(gpu_ids: Sequence[str], per_run: float) -> list[str]:
    """The ``CUDA_VISIBLE_DEVICES`` of each run that may run at once: ``per_run`` whole
    GPUs each (2: ``"0,1"``, ``"2,3"``), or a share of one (0.5: two runs a GPU, dealt
    round-robin so that a half-full machine uses every GPU)."""
    count = len(gpu_ids)
    check_gpus_per_run(per_run, count, "this machine")
    if per_run >= 1:
        size = int(per_run)
        return [",".join(gpu_ids[i * size : (i + 1) * size]) for i in range(count // size)]
    return [gpu_ids[i % count] for i in range(count * int(1 / per_run + 1e-9))]


def check_gpu_share(per_run: float) -> None:
    """A share of one GPU (0 < G <= 1) or whole GPUs: what a run can be given."""
    if not per_run > 0 or (per_run > 1 and per_run != int(per_run)):
        raise ClbenchError(f"--gpus-per-run must be a share of one GPU (0 < G <= 1) or a "
                           f"whole number of GPUs, got {per_run:g}")  # fmt: skip


def check_gpus_per_run(per_run: float, largest: float, where: str) -> None:
    """A valid share (:func:`check_gpu_share`), no more than ``where`` has."""
    check_gpu_share(per_run)
    if per_run > largest:
        raise ClbenchError(f"--gpus-per-run {per_run:g}: {where} has "
                           f"{'no GPU' if not largest else f'{largest:g} GPUs'}")  # fmt: skip


def visible_gpus() -> list[str]:
    """The physical ids of the GPUs this process may use (``CUDA_VISIBLE_DEVICES`` when
    set, else every GPU torch sees), as a worker's ``CUDA_VISIBLE_DEVICES`` names them."""
    import torch

    count = torch.cuda.device_count()
    named = os.environ.get("CUDA_VISIBLE_DEVICES")
    if named is None:
        return [str(i) for i in range(count)]
    return [part.strip() for part in named.split(",") if part.strip()][:count]


class LocalExecutor:
    """A pool of ``workers`` processes on this machine; with ``gpu_slots`` (see
    :func:`gpu_slots`), each run is pinned to a slot's GPUs, its ``CUDA_VISIBLE_DEVICES``
    set as its process starts, before it imports torch, and no two runs hold one slot.

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

    def __init__(self, workers: int | None = None, gpu_slots: Sequence[str] | None = None):
        self.gpu_slots = list(gpu_slots or [])
        if self.gpu_slots and workers and workers > len(self.gpu_slots):
            raise ClbenchError(f"--workers {workers}: only {len(self.gpu_slots)} runs fit on "
                               "the GPUs at --gpus-per-run each")  # fmt: skip
        self.workers = max(1, workers or len(self.gpu_slots) or os.cpu_count() or 1)

    def run(
        self,
        fn: Callable[[T], R],
        items: Sequence[T],
        lost: Callable[[T, BaseException], R],
        retried: Callable[[T, BaseException], None] = _ignore,
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
            slots = _Slots(context, self.gpu_slots)
            broken = yield from _run_pool(context, started, slots, fn, lost, items, batch, workers)
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
                for index in running:
                    retried(items[index], error)
            queue += [index for index in unfinished if not started[index]]


class _Slots:
    """Which GPU slots are held, shared by one pool's workers (a fresh set per pool: a
    worker killed while holding one breaks its pool)."""

    def __init__(self, context: Any, slots: Sequence[str]):
        self.slots = list(slots)
        self.held = context.RawArray("b", max(1, len(slots)))
        self.lock = context.Lock()


def _run_pool(
    context: Any,
    started: Any,
    slots: _Slots,
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
        initargs=(started, slots),
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
_slot: tuple[_Slots, int] | None = None


def _init_worker(started: Any, slots: _Slots) -> None:
    global _started, _slot
    _started = started
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, _on_sigterm)
    if slots.slots:  # one task per process: the slot is this run's, taken before torch loads
        with slots.lock:
            free = next(i for i in range(len(slots.slots)) if not slots.held[i])
            slots.held[free] = 1
        _slot = (slots, free)
        os.environ["CUDA_VISIBLE_DEVICES"] = slots.slots[free]


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
        if _slot is not None:  # free before this process exits and its successor starts
            slots, held = _slot
            with slots.lock:
                slots.held[held] = 0


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
    """Each item is a Ray task with ``num_cpus=cpus_per_task`` and ``num_gpus=gpus_per_task``
    (a share such as 0.5 packs two runs on one GPU), on an existing cluster or a local
    one, in a worker process of its own (``max_calls=1``: the worker exits after the
    task, so the run's peak memory is its own). Tasks are spread over the nodes; Ray
    sets each one's ``CUDA_VISIBLE_DEVICES`` to the GPUs it assigned, which is all the
    run sees.

    A task whose worker or node is lost (a node removed, preempted or out of memory)
    runs again, up to ``retries`` times, on whatever node has room; ``retried`` is told
    each time, and ``lost`` once the retries are spent.

    With ``address`` (e.g. ``ray://head:10001`` or ``head:6379``) the driver connects to
    that cluster; without it, it starts a new local Ray instance with ``workers`` CPUs, at
    least ``cpus_per_task`` (``address="local"``: never a stale cluster found in Ray's
    temp folder). If Ray is already initialised in this process, that connection is
    used and left open.
    """

    def __init__(
        self,
        address: str | None = None,
        workers: int | None = None,
        cpus_per_task: int = 1,
        gpus_per_task: float = 0,
        retries: int = 2,
    ):
        self.ray = import_ray()
        self.address = address
        self.workers = workers or os.cpu_count() or 1
        self.cpus_per_task = cpus_per_task
        self.gpus_per_task = gpus_per_task
        self.retries = retries

    def run(
        self,
        fn: Callable[[T], R],
        items: Sequence[T],
        lost: Callable[[T, BaseException], R],
        retried: Callable[[T, BaseException], None] = _ignore,
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
        pending: dict[Any, tuple[T, int]] = {}
        try:
            self._check_room()
            task = ray.remote(
                num_cpus=self.cpus_per_task, num_gpus=self.gpus_per_task, max_retries=0,
                max_calls=1, scheduling_strategy="SPREAD",
            )(_call_in_ray)  # fmt: skip
            pending = {task.remote(fn, item): (item, 0) for item in items}
            while pending:
                [ref], _ = ray.wait(list(pending), num_returns=1)
                item, tries = pending.pop(ref)
                try:
                    result = ray.get(ref)
                except Exception as error:  # the worker died or its node was lost
                    if tries < self.retries:
                        retried(item, error)
                        pending[task.remote(fn, item)] = (item, tries + 1)
                        continue
                    result = lost(item, error)
                yield result
        finally:
            for ref in pending:  # left when interrupted or closed early
                ray.cancel(ref, force=True)
            if started:
                ray.shutdown()

    def _check_room(self) -> None:
        """Refuse, before any task, a run larger than every node of the cluster."""
        nodes = [node["Resources"] for node in self.ray.nodes() if node["Alive"]]
        largest = max((node.get("CPU", 0) for node in nodes), default=0)
        if largest < self.cpus_per_task:
            raise ClbenchError(
                f"no node of the Ray cluster has {self.cpus_per_task} CPUs for one run "
                f"(the largest has {largest:g}); lower --threads"
            )
        if self.gpus_per_task:
            gpus = max((node.get("GPU", 0) for node in nodes), default=0)
            check_gpus_per_run(self.gpus_per_task, gpus, "the largest node of the Ray cluster")


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
    gpus_per_run: float = 0,
) -> Executor:
    """``local`` or ``ray``; a Ray executor fails here, before any run, if Ray is missing.

    A local pool defaults to as many workers as there are CPUs for ``threads_per_run``
    threads each, or with ``gpus_per_run`` to as many as fit on this machine's GPUs
    (refused here when it has none); a Ray task asks for ``threads_per_run`` CPUs and
    ``gpus_per_run`` GPUs.
    """
    if kind == "local":
        if gpus_per_run:
            return LocalExecutor(workers, gpu_slots=gpu_slots(visible_gpus(), gpus_per_run))
        return LocalExecutor(workers or max(1, (os.cpu_count() or 1) // threads_per_run))
    if kind == "ray":
        if gpus_per_run:
            check_gpu_share(gpus_per_run)  # the cluster's GPUs are checked on connecting
        return RayExecutor(ray_address, workers, cpus_per_task=threads_per_run,
                           gpus_per_task=gpus_per_run)  # fmt: skip
    raise ClbenchError(f"unknown executor {shortened(kind)}; choose local or ray")
