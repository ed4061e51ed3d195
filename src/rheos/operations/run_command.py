"""``rheos run app.py[:flow_name] [--bounded]``: load a Python file and run a flow in it.

The file is loaded by path (as module ``__rheos_app__``, with its folder first on
``sys.path`` so it can import its neighbours). The flow is the module attribute named after
the colon, or else the only :class:`~rheos.flows.Flow` object in the module. The run summary
is printed when the flow ends; the exit code is 0 on success, 1 when every event read went
bad (dead-lettered or skipped), 130 if stopped by a signal.
"""

from __future__ import annotations

import importlib.util
import os
import sys
import traceback
from types import ModuleType
from typing import Any

from rheos.durations import to_ms
from rheos.errors import ConfigError
from rheos.flows import Flow as FlowDescription
from rheos.operations.dashboard import DEFAULT_HOST, DEFAULT_PORT, serve_flow
from rheos.runtime import Flow, run_flow

EXIT_OK = 0
EXIT_ALL_BAD = 1
"""Every event the run read was dead-lettered or skipped."""
EXIT_INTERRUPTED = 130


def split_target(target: str) -> tuple[str, str | None]:
    """``"app.py:flow"`` -> ``("app.py", "flow")``; a Windows drive letter is not a name.

    >>> split_target("apps/quotes.py:alerts")
    ('apps/quotes.py', 'alerts')
    >>> split_target("quotes.py")
    ('quotes.py', None)
    """
    path, sep, name = target.rpartition(":")
    if not sep or not path or os.sep in name or "/" in name or len(path) == 1:
        return target, None
    return path, name or None


def load_module(path: str) -> ModuleType:
    """Import the Python file at ``path``."""
    if not os.path.isfile(path):
        raise ConfigError(f"rheos run: no such file: {path}")
    spec = importlib.util.spec_from_file_location("__rheos_app__", path)
    if spec is None or spec.loader is None:
        raise ConfigError(f"rheos run: cannot load {path} as Python")
    module = importlib.util.module_from_spec(spec)
    folder = os.path.dirname(os.path.abspath(path))
    sys.path.insert(0, folder)
    try:
        spec.loader.exec_module(module)
    except SyntaxError as exc:
        text = (exc.text or "").strip()
        shown = f": {text}" if text else ""
        raise ConfigError(f"rheos run: {path} line {exc.lineno}: {exc.msg}{shown}") from None
    except Exception as exc:
        raise ConfigError(
            f"rheos run: loading {path} failed{_user_line(exc, path)}: {type(exc).__name__}: {exc}"
        ) from exc
    finally:
        if sys.path and sys.path[0] == folder:
            del sys.path[0]
    return module


def _user_line(exc: BaseException, path: str) -> str:
    """`` at line N`` of the innermost frame of ``path`` in ``exc``'s traceback, or ``""``."""
    target = os.path.abspath(path)
    line = None
    for frame in traceback.extract_tb(exc.__traceback__):
        if os.path.abspath(frame.filename) == target:
            line = frame.lineno
    return f" at line {line}" if line is not None else ""


def find_flow(module: ModuleType, name: str | None, path: str) -> FlowDescription:
    """The flow named ``name`` in ``module``, or its only flow."""
    if name is not None:
        flow = getattr(module, name, None)
        if not isinstance(flow, FlowDescription):
            raise ConfigError(f"rheos run: {path} has no flow named {name!r}")
        return flow
    flows = {k: v for k, v in vars(module).items() if isinstance(v, FlowDescription)}
    if not flows:
        raise ConfigError(f"rheos run: {path} defines no Flow")
    if len(flows) > 1:
        names = ", ".join(sorted(flows))
        raise ConfigError(
            f"rheos run: {path} defines several flows ({names}); say which: {path}:NAME"
        )
    return next(iter(flows.values()))


def run_app(
    target: str,
    *,
    bounded: bool,
    data_dir: str | None,
    drain: bool = False,
    mode: Any = None,
    batch_size: int | None = None,
    batch_interval: str | None = None,
    checkpoint_interval: str | None = None,
    workers: int | None = None,
    dashboard: bool = False,
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
) -> int:
    """Load ``target`` (``app.py[:flow_name]``), run its flow, print the summary.

    ``checkpoint_interval`` (``"1s"``, or ``"off"``) replaces the flow's own. ``drain``
    closes every open window when a streaming run is stopped (Ctrl-C); otherwise the open
    windows are kept in the stop's checkpoint and close when the flow runs on. ``dashboard``
    serves the flow's dashboard, ``/api/metrics`` and ``/metrics`` on ``host:port`` while it
    runs (:mod:`rheos.operations.dashboard`). ``workers`` runs it in that many processes
    (:mod:`rheos.runtime.workers`).
    """
    path, name = split_target(target)
    flow = find_flow(load_module(path), name, path)
    if checkpoint_interval is not None:
        off = checkpoint_interval.strip().lower() in ("off", "none", "0")
        flow.checkpoint_interval_ms = (  # type: ignore[attr-defined]
            None if off else to_ms(checkpoint_interval, what="--checkpoint-interval")
        )
    if data_dir is not None:
        flow.data_dir = data_dir
    if not dashboard:
        summary = run_flow(
            flow,
            bounded=bounded,
            drain=drain,
            mode=mode,
            batch_size=batch_size,
            batch_interval=batch_interval,
            workers=workers,
        )
    else:
        if not isinstance(flow, Flow):
            raise ConfigError(f"rheos run: {path}: the dashboard needs a rheos.Flow")
        with serve_flow(flow, host=host, port=port) as server:
            print(f"rheos: dashboard of flow {flow.name!r} at {server.url}", flush=True)
            summary = flow.run(
                bounded=bounded,
                drain=drain,
                mode=mode,
                batch_size=batch_size,
                batch_interval=batch_interval,
                workers=workers,
            )
    print(summary)
    if summary.stopped == "signal":
        return EXIT_INTERRUPTED
    if summary.events_read and summary.bad_events >= summary.events_read:
        print(
            f"rheos run: every event of flow {flow.name!r} went bad: nothing was processed",
            file=sys.stderr,
        )
        return EXIT_ALL_BAD
    return EXIT_OK


__all__ = ["find_flow", "load_module", "run_app", "split_target"]
