"""The studio's web server: a Starlette app over :class:`~tunesmith.studio.session.Studio`.

Routes (all JSON unless said otherwise)::

    GET  /                          the page (static/index.html)
    GET  /static/{file}             its script and style sheet, shipped in the package
    GET  /api/models                the checkpoints on offer and what they are
    POST /api/generate              {model, bars, temperature, top_p, seed, key, chords}
    POST /api/continue              {piece, bars, temperature, top_p, seed, key}
    POST /api/regenerate            {piece, from_bar, to_bar, temperature, top_p, seed, ...}
    POST /api/upload?model=&name=   the primer file's bytes as the body (size-limited)
    POST /api/evaluate              {piece}
    GET  /api/file/{id}.mid|.wav    a piece's MIDI or WAV (attachment with ?download=1)

A refused or failing request answers ``{"error": "..."}`` with status 400 (bad input) or
500 (a bug, logged with its traceback) and the server goes on serving. Model work runs in
Starlette's thread pool, so one long generation does not block another tab's page.
Nothing is fetched from elsewhere: the page, its script and its style are the files in
``static/``.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import re
import socket
from pathlib import Path

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from tunesmith.errors import TunesmithError
from tunesmith.studio.session import FILE_KINDS, Studio, StudioError

STATIC_DIR = Path(__file__).parent / "static"
#: the most bytes of a JSON request body
MAX_JSON_BYTES = 65_536
FILE_NAME = re.compile(r"^([0-9a-f]{32})\.(mid|wav)$")
log = logging.getLogger("tunesmith.studio")


def _error(message: str, status: int = 400) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


async def _read_body(request: Request, limit: int, what: str) -> bytes:
    """The request body, refused as soon as it passes ``limit`` bytes."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise StudioError(f"{what} is {int(declared):,} bytes, the limit is {limit:,}")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise StudioError(f"{what} is over the limit of {limit:,} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def create_app(studio: Studio) -> Starlette:
    """The Starlette application serving ``studio``."""

    async def guarded(call, *args) -> Response:
        try:
            return JSONResponse(await run_in_threadpool(call, *args))
        except (TunesmithError, ValueError) as exc:
            return _error(str(exc))
        except Exception as exc:  # a bug: say so on the page and keep serving
            log.exception("studio request failed")
            return _error(f"internal error ({type(exc).__name__}: {exc})", 500)

    def json_operation(method):
        async def endpoint(request: Request) -> Response:
            try:
                body = await _read_body(request, MAX_JSON_BYTES, "the request")
                params = json.loads(body or b"{}")
            except StudioError as exc:
                return _error(str(exc))
            except ValueError:
                return _error("the request is not valid JSON")
            if not isinstance(params, dict):
                return _error("the request must be a JSON object")
            return await guarded(method, params)

        return endpoint

    async def index(request: Request) -> Response:
        return FileResponse(STATIC_DIR / "index.html", media_type="text/html")

    async def models(request: Request) -> Response:
        return await guarded(studio.list_models)

    async def upload(request: Request) -> Response:
        name = request.query_params.get("name", "upload")
        try:
            data = await _read_body(request, studio.max_upload_bytes, Path(name).name or "upload")
        except StudioError as exc:
            return _error(str(exc))
        return await guarded(studio.upload, request.query_params.get("model"), name, data)

    async def piece_file(request: Request) -> Response:
        match = FILE_NAME.match(request.path_params["name"])
        if not match:
            return _error("no such file", 404)
        piece_id, kind = match.groups()
        try:
            path = studio.file_path(piece_id, kind)
        except StudioError as exc:
            return _error(str(exc), 404)
        if not path.is_file():
            return _error("no such file", 404)
        download = request.query_params.get("download")
        return FileResponse(path, media_type=FILE_KINDS[kind],
                            filename=f"tunesmith-{piece_id[:8]}.{kind}" if download else None,
                            content_disposition_type="attachment" if download else "inline")

    routes = [
        Route("/", index),
        Route("/api/models", models),
        Route("/api/generate", json_operation(studio.generate), methods=["POST"]),
        Route("/api/continue", json_operation(studio.continue_piece), methods=["POST"]),
        Route("/api/regenerate", json_operation(studio.regenerate), methods=["POST"]),
        Route("/api/evaluate", json_operation(studio.evaluate), methods=["POST"]),
        Route("/api/upload", upload, methods=["POST"]),
        Route("/api/file/{name}", piece_file),
        Mount("/static", app=StaticFiles(directory=STATIC_DIR), name="static"),
    ]
    return Starlette(routes=routes)


def is_loopback(host: str) -> bool:
    """Whether ``host`` only accepts connections from this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def bind(host: str, port: int) -> socket.socket:
    """A listening socket on ``host:port`` (port 0: a free one)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise StudioError(f"cannot listen on {host}:{port} ({exc.strerror or exc})") from None
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


def serve(studio: Studio, sock: socket.socket) -> None:
    """Serve ``studio`` on a bound socket until interrupted."""
    import uvicorn

    config = uvicorn.Config(create_app(studio), log_level="warning", access_log=False,
                            timeout_graceful_shutdown=2)
    uvicorn.Server(config).run(sockets=[sock])
