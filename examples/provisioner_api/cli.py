"""The command line: settings in, a server run, an exit code out; never a traceback for a user's mistake."""

from __future__ import annotations

import logging
import os
import signal
import socket
import sys
from collections.abc import Mapping, Sequence
from types import FrameType

from .settings import EXIT_FAILED, EXIT_USAGE, Settings, UsageError

__all__ = ["main"]


def main(argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None) -> int:
    """Serve the API; return the exit code (0 stopped by a signal, 1 failed, 2 a usage mistake)."""
    from . import config

    try:
        settings = config.parse(sys.argv[1:] if argv is None else argv, os.environ if env is None else env)
        _check_extras()
        _check_state(settings)
        sock = _listen(settings)
    except UsageError as exc:
        print(f"{config.PROG}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    return _serve(settings, sock)


def _check_extras() -> None:
    try:
        import fastapi  # noqa: F401
        import prometheus_client  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError as exc:
        raise UsageError(
            f'the provisioning API needs {exc.name}: pip install "actions-scaleset[api]"'
        ) from None


def _check_state(settings: Settings) -> None:
    from .state import State, StateError

    state = State(settings.state)
    try:
        state.open()
    except StateError as exc:
        raise UsageError(str(exc)) from None
    state.close()


def _listen(settings: Settings) -> socket.socket:
    host, port = settings.bind
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise UsageError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    return sock


def _serve(settings: Settings, sock: socket.socket) -> int:
    import uvicorn

    from ..listener import logs
    from .app import build_app

    logs.configure(settings.log_level, "text")
    logging.getLogger("uvicorn.access").setLevel(
        logging.INFO if settings.log_level == "debug" else logging.WARNING
    )
    config = uvicorn.Config(
        build_app(settings),
        log_config=None,
        log_level=settings.log_level,
        ws_max_size=settings.max_body,
        lifespan="on",
        timeout_graceful_shutdown=10,
    )
    server = uvicorn.Server(config)
    host, port = settings.bind
    logging.getLogger("provisioner_api").info("serving on http://%s:%d (docs at /docs)", host, port)
    # uvicorn stops gracefully on SIGINT/SIGTERM, then raises the signal again for the handler
    # that was there before it; with this one there, a stop asked for by a signal exits 0.
    previous = {sig: signal.signal(sig, _stopped_by_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0 if server.started else EXIT_FAILED


def _stopped_by_signal(signum: int, frame: FrameType | None) -> None:
    logging.getLogger("provisioner_api").info("stopped (%s)", signal.Signals(signum).name)
