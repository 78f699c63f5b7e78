"""Closed-loop load from a few client threads, shared by the HTTP benchmarks."""

from __future__ import annotations

import statistics
import threading
import time
from collections.abc import Callable


def run_threads(target: Callable[..., None], argument_lists: list[tuple]) -> float:
    """Run ``target`` once per argument tuple, each in its own thread, all at once; return
    the wall-clock seconds until the last one finished."""
    threads = [threading.Thread(target=target, args=args) for args in argument_lists]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return time.perf_counter() - started


def run_clients(make: Callable[[int], Callable[[], None]], *, clients: int,
                seconds: float) -> dict:
    """Run ``clients`` threads, each calling its operation until time is up."""
    operations = [make(i) for i in range(clients)]
    for operation in operations:  # warm every worker's connections and caches
        operation()
    latencies: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()
    stop = time.monotonic() + seconds

    def run(operation: Callable[[], None]) -> None:
        while time.monotonic() < stop:
            started = time.perf_counter()
            try:
                operation()
            except Exception as exc:  # noqa: BLE001 (counted and reported)
                with lock:
                    errors.append(repr(exc)[:200])
                continue
            with lock:
                latencies.append(time.perf_counter() - started)

    elapsed = run_threads(run, [(op,) for op in operations])
    ordered = sorted(latencies)
    return {
        "requests": len(latencies), "errors": len(errors), "first_errors": errors[:3],
        "seconds": round(elapsed, 2),
        "per_second": round(len(latencies) / elapsed, 1),
        "p50_ms": round(statistics.median(ordered) * 1000, 1) if ordered else None,
        "p99_ms": round(ordered[max(int(len(ordered) * 0.99) - 1, 0)] * 1000, 1)
        if ordered else None,
    }
