"""What a server costs the machine: peak and proportional memory of its process tree, CPU in cores.

A server here is a process tree (gunicorn's master and its workers, uvicorn's supervisor
and its workers): every figure is a sum over the tree, its processes found with psutil.
"""

from __future__ import annotations

import time
from pathlib import Path
from types import TracebackType

import psutil

MIB = 1024 * 1024
QUIET_CORES = 0.15  # other processes under this many cores: the machine counts as quiet


def process_tree(root: int) -> list[psutil.Process]:
    """`root` and all its descendants, as they are now (empty when `root` is gone)."""
    try:
        parent = psutil.Process(root)
        return [parent, *parent.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def _process(pid: int) -> list[psutil.Process]:
    """The process `pid` alone, as a list (empty when it is gone)."""
    try:
        return [psutil.Process(pid)]
    except psutil.NoSuchProcess:
        return []


def peak_rss_bytes(pid: int) -> int:
    """The peak resident set size of a process (VmHWM), 0 when it is gone.

    Read from /proc by hand because psutil has no peak RSS on Linux: its memory_info()
    holds rss, vms, shared, text, lib, data and dirty (the peak, `peak_wset`, is Windows
    only), and memory_full_info() adds uss, pss and swap.
    """
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0
    for line in status.splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024  # the kernel writes kB
    return 0


def _pss_bytes(process: psutil.Process) -> int:
    try:
        return int(process.memory_full_info().pss)
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return 0


def tree_memory_mib(root: int) -> tuple[float, float]:
    """(sum of peak RSS, sum of PSS) over the process tree of `root`, in MiB.

    PSS splits the pages a gunicorn master shares with its forked workers among them,
    where summing RSS would count those pages once per process.
    """
    tree = process_tree(root)
    peak = sum(peak_rss_bytes(process.pid) for process in tree)
    pss = sum(_pss_bytes(process) for process in tree)
    return peak / MIB, pss / MIB


def cpu_seconds(processes: list[psutil.Process]) -> float:
    """User + system CPU seconds the processes have used so far (a process gone counts 0)."""
    total = 0.0
    for process in processes:
        try:
            times = process.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += times.user + times.system
    return total


def machine_busy_seconds() -> float:
    """CPU time all processes spent, user and system (interrupts, mostly loopback, left out)."""
    times = psutil.cpu_times()
    return times.user + times.nice + times.system


def own_cpu_seconds() -> float:
    """CPU seconds of this script and of its children it has reaped (wrk, once it exits)."""
    times = psutil.Process().cpu_times()
    return times.user + times.system + times.children_user + times.children_system


class CpuMeter:
    """CPU the server tree used during a block, and what other processes on the machine used.

    Other = all busy CPU time - the server's tree - wrk - Redis - this script. Another job
    on the machine (a test suite, say) shows there, and makes the run's figures suspect.
    Both are in cores (CPU seconds per second of the block), set on leaving the block.
    """

    server_cores: float
    other_cores: float

    def __init__(self, server_pid: int, redis_pid: int | None) -> None:
        self.server_pid, self.redis_pid = server_pid, redis_pid

    def __enter__(self) -> CpuMeter:
        # The tree as it is when the block starts: a server's workers are up by then.
        self._server = process_tree(self.server_pid)
        self._redis = _process(self.redis_pid) if self.redis_pid else []
        self._start = self._sample()
        return self

    def _sample(self) -> tuple[float, float, float, float, float]:
        return (
            time.perf_counter(),
            machine_busy_seconds(),
            cpu_seconds(self._server),
            own_cpu_seconds(),
            cpu_seconds(self._redis),
        )

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        end = self._sample()
        wall, busy, server, mine, redis_cpu = (b - a for a, b in zip(self._start, end, strict=True))
        self.server_cores = server / wall
        self.other_cores = max(0.0, busy - server - mine - redis_cpu) / wall


def wait_until_quiet(server_pid: int, redis_pid: int | None, limit_s: float, threshold: float = QUIET_CORES) -> float:
    """Wait (up to limit_s) until other processes use under `threshold` cores over one second.

    Returns the seconds waited. The machine is shared (other jobs, a developer's tests):
    a run measured beside them measures them too. The table reports what the run got.
    """
    started = time.perf_counter()
    while True:
        with CpuMeter(server_pid, redis_pid) as cpu:
            time.sleep(1)
        waited = time.perf_counter() - started
        if cpu.other_cores < threshold or waited >= limit_s:
            return waited
