"""In-process measurement for the benchmarks' ``--profile`` modes: the CPU an operation
costs this process and its PostgreSQL backend (read from /proc, so other work on a shared
machine does not hide in the figure), and the statements it runs."""

from __future__ import annotations

import cProfile
import os
import time
from collections.abc import Callable
from pathlib import Path


def backend_cpu_seconds() -> float:
    """CPU used so far by this process's own database backend (it runs on this machine)."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        (pid,) = cursor.fetchone()
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def per_operation(operation: Callable[[], int], count: int, *, warm: int = 20,
                  dump: str | None = None) -> tuple[float, float, int]:
    """Run ``operation`` (which returns the statements it ran) ``warm`` times unmeasured,
    then ``count`` times: (Python CPU ms, database CPU ms, most statements) per operation.
    With ``dump``, the measured runs are also profiled into that cProfile file."""
    for _ in range(warm):
        operation()
    profiler = cProfile.Profile(time.process_time) if dump else None
    statements = []
    backend = backend_cpu_seconds()
    started = time.process_time()
    if profiler:
        profiler.enable()
    for _ in range(count):
        statements.append(operation())
    if profiler:
        profiler.disable()
        profiler.dump_stats(dump)
    python = time.process_time() - started
    database = backend_cpu_seconds() - backend
    return (round(python * 1000 / count, 2), round(database * 1000 / count, 2),
            max(statements))
