"""The flow's HTTP server: the dashboard, its JSON, and Prometheus metrics.

A :class:`FlowServer` serves one flow from a :class:`http.server.ThreadingHTTPServer` in a
daemon thread, bound to ``127.0.0.1:8750`` unless told otherwise:

=================  ===========================================================================
``/``              the dashboard: one HTML page that polls ``api/metrics`` and redraws
``/api/metrics``   the latest metrics snapshot as JSON (:mod:`rheos.runtime.metrics`)
``/metrics``       Prometheus text format (:mod:`rheos.operations.metrics`)
``/healthz``       ``ok``
=================  ===========================================================================

While it runs, its address is in ``<data_dir>/flows/<flow>/server.json`` (``rheos status``
reads it); the file is removed when the server closes.
"""

from __future__ import annotations

import contextlib
import errno
import importlib.resources
import json
import os
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any

from rheos.errors import ConfigError
from rheos.operations.metrics import CONTENT_TYPE, prometheus_registry, prometheus_text
from rheos.runtime.metrics import wall_ms
from rheos.runtime.workers.status import split_status

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8750
SERVER_FILE = "server.json"

Snapshot = dict[str, Any]


def server_file(data_dir: str | os.PathLike[str], flow: str) -> Path:
    """``<data_dir>/flows/<flow>/server.json``: the address of the flow's running server."""
    return Path(data_dir) / "flows" / flow / SERVER_FILE


def dashboard_html() -> bytes:
    """The dashboard page (a single file: inline CSS and JavaScript, no network needed)."""
    return (importlib.resources.files("rheos.operations.dashboard") / "index.html").read_bytes()


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        owner = self.server.owner
        try:
            if path in ("/", "/index.html"):
                self._send(200, "text/html; charset=utf-8", owner.page)
            elif path == "/api/metrics":
                body = json.dumps(owner.with_workers(owner.snapshot()), default=str).encode()
                self._send(200, "application/json", body)
            elif path == "/metrics":
                self._send(200, CONTENT_TYPE, prometheus_text(owner.registry))
            elif path == "/healthz":
                self._send(200, "text/plain; charset=utf-8", b"ok\n")
            else:
                self._send(404, "text/plain; charset=utf-8", b"not found\n")
        except (BrokenPipeError, ConnectionResetError):
            pass

    def _send(self, code: int, content_type: str, body: bytes) -> None:
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        return None  # quiet: the terminal belongs to the flow


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    owner: FlowServer


class FlowServer:
    """Serves one flow's dashboard and metrics (see the module docs); a context manager.

    ``snapshot`` returns the flow's current metrics (``flow.metrics``). ``port=0`` picks a
    free port; the default port, when taken, falls back to a free one (``fallback=True``).
    """

    def __init__(
        self,
        flow: str,
        snapshot: Callable[[], Snapshot],
        *,
        host: str = DEFAULT_HOST,
        port: int = DEFAULT_PORT,
        data_dir: str | os.PathLike[str] | None = None,
        dashboard: bool = True,
        fallback: bool | None = None,
    ) -> None:
        self.flow = flow
        self.snapshot = snapshot
        self.host = host
        self.requested_port = port
        self.data_dir = data_dir
        self.page = dashboard_html() if dashboard else b"rheos: the dashboard is off\n"
        self.fallback = port == DEFAULT_PORT if fallback is None else fallback
        self.registry = prometheus_registry(snapshot)
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._file: Path | None = None

    def with_workers(self, snap: Snapshot) -> Snapshot:
        """``snap`` with ``split`` (workers, tasks, worker events) for a flow split across
        workers (:func:`rheos.runtime.workers.status.split_status`)."""
        if self.data_dir is None:
            return snap
        split = split_status(os.fspath(self.data_dir), self.flow)
        return snap if split is None else {**snap, "split": split}

    @property
    def port(self) -> int:
        assert self._server is not None, "the server is not started"
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/"

    def start(self) -> FlowServer:
        """Bind, serve in a daemon thread, and record the address; return ``self``."""
        try:
            server = _Server((self.host, self.requested_port), _Handler)
        except OSError as exc:
            if exc.errno != errno.EADDRINUSE or not self.fallback:
                raise ConfigError(
                    f"flow {self.flow!r}: cannot serve on {self.host}:{self.requested_port}: "
                    f"{exc.strerror or exc}"
                ) from None
            server = _Server((self.host, 0), _Handler)
        server.owner = self
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.2},
            name=f"rheos-http-{self.flow}",
            daemon=True,
        )
        self._thread.start()
        if self.data_dir is not None:
            self._file = server_file(self.data_dir, self.flow)
            self._file.parent.mkdir(parents=True, exist_ok=True)
            record = {
                "flow": self.flow,
                "url": self.url,
                "host": self.host,
                "port": self.port,
                "pid": os.getpid(),
                "started_ms": wall_ms(),
            }
            tmp = self._file.with_name(f".{SERVER_FILE}.{os.getpid()}")
            tmp.write_text(json.dumps(record))
            os.replace(tmp, self._file)
        return self

    def close(self) -> None:
        """Stop serving and remove ``server.json`` (if it is still this server's)."""
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        self._server = None
        if self._file is not None:
            with contextlib.suppress(OSError, ValueError):
                if json.loads(self._file.read_text()).get("pid") == os.getpid():
                    self._file.unlink()
            self._file = None

    def __enter__(self) -> FlowServer:
        return self.start() if self._server is None else self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def serve_flow(
    flow: Any,
    *,
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    dashboard: bool = True,
) -> FlowServer:
    """Start serving a :class:`rheos.Flow`'s dashboard and metrics; ``close()`` it when done.

    The flow may run before, during or after: the server shows whatever ``flow.metrics()``
    returns at each request.
    """
    return FlowServer(
        flow.name,
        flow.metrics,
        host=host,
        port=port,
        data_dir=flow.resolved_data_dir,
        dashboard=dashboard,
    ).start()


__all__ = [
    "DEFAULT_HOST",
    "DEFAULT_PORT",
    "FlowServer",
    "dashboard_html",
    "serve_flow",
    "server_file",
]
