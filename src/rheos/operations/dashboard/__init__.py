"""The live dashboard and the flow's HTTP server (see :mod:`.server`)."""

from rheos.operations.dashboard.server import (
    DEFAULT_HOST,
    DEFAULT_PORT,
    FlowServer,
    serve_flow,
    server_file,
)

__all__ = ["DEFAULT_HOST", "DEFAULT_PORT", "FlowServer", "serve_flow", "server_file"]
