"""Closed-loop load from a few client threads, shared by the HTTP benchmarks."""

from __future__ import annotations

import http.client
import statistics
import threading
import time
from collections.abc import Callable, Mapping
from urllib.parse import urlencode, urlsplit


class Response:
    """What a benchmark client needs of an answer: status, headers, body."""

    __slots__ = ("status", "headers", "content")

    def __init__(self, status: int, headers: http.client.HTTPMessage, content: bytes) -> None:
        self.status, self.headers, self.content = status, headers, content

    @property
    def text(self) -> str:
        return self.content.decode()

    def json(self):  # type: ignore[no-untyped-def]
        import json

        return json.loads(self.content)


class HttpClient:
    """A thin HTTP/1.1 client on ``http.client``, one connection per client thread.

    The clients run on the same two cores as the server they measure, so their own CPU
    per request counts against the figure: ``requests`` spends about a millisecond per
    call on URL handling, hooks and adapters that these scripts do not need. The server's
    sync workers close the connection after each answer; the next call opens a new one.
    Cookies are kept (a browser's session) when ``cookies`` is on."""

    def __init__(self, root: str, *, headers: Mapping[str, str] | None = None,
                 cookies: bool = False, timeout: float = 60) -> None:
        parts = urlsplit(root)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        self.prefix = parts.path.rstrip("/")
        self.headers = dict(headers or {})
        self.cookies: dict[str, str] | None = {} if cookies else None
        self.timeout = timeout
        self._connection: http.client.HTTPConnection | None = None

    def request(self, method: str, path: str, *, params: Mapping[str, object] | None = None,
                body: bytes | str | None = None, form: Mapping[str, object] | None = None,
                headers: Mapping[str, str] | None = None) -> Response:
        url = self.prefix + path + ("?" + urlencode(params) if params else "")
        sent = {**self.headers, **(headers or {})}
        if form is not None:
            body = urlencode(form)
            sent["Content-Type"] = "application/x-www-form-urlencoded"
        if isinstance(body, str):
            body = body.encode()
        if self.cookies:
            sent["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        for attempt in (1, 2):
            if self._connection is None:
                self._connection = http.client.HTTPConnection(self.host, self.port,
                                                              timeout=self.timeout)
            try:
                self._connection.request(method, url, body=body, headers=sent)
                answer = self._connection.getresponse()
                content = answer.read()
                break
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
                # the server closed a kept connection between two calls: one fresh retry
                self._connection.close()
                self._connection = None
                if attempt == 2:
                    raise
        if answer.will_close:
            self._connection.close()
            self._connection = None
        if self.cookies is not None:
            for value in answer.headers.get_all("Set-Cookie") or ():
                name, _, rest = value.partition("=")
                self.cookies[name.strip()] = rest.split(";", 1)[0]
        return Response(answer.status, answer.headers, content)

    def get(self, path: str, **kwargs: object) -> Response:
        return self.request("GET", path, **kwargs)  # type: ignore[arg-type]

    def post(self, path: str, **kwargs: object) -> Response:
        return self.request("POST", path, **kwargs)  # type: ignore[arg-type]


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
