"""The HTTP layer of ``evalalign serve`` (aiohttp, the ``serve`` extra): routes, errors as JSON, a bearer
token, the body limit, 503 when the queue is full.

Routes: ``GET /health`` (no token needed), ``POST /score`` and ``POST /answer`` (see
:mod:`evalalign_metric.serve.wire`). Every error is JSON ``{"error": message, "field": name or null}``: 400
for a malformed field, 401 without the token, 404/405 for a wrong route or method, 413 for a body over the
limit or an image over the pixel limit, 503 with ``Retry-After`` when the queue is full, 500 for a failure of
the server itself; the server keeps serving after each.

Example:
    >>> import tempfile
    >>> from evalalign_metric.judge import load_judge
    >>> from evalalign_metric.testing import build_tiny_judge
    >>> from evalalign_metric.serve.service import ScoringService
    >>> app = make_app(ScoringService(load_judge(build_tiny_judge(tempfile.mkdtemp())), "evalalign"))
    >>> sorted({r.resource.canonical for r in app.router.routes()})
    ['/answer', '/health', '/score']
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import signal
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from evalalign_metric.errors import EvalAlignError, InputError, require_extra
from evalalign_metric.serve.wire import RequestError, count_images, parse_answer_request, parse_score_request

web = require_extra("aiohttp.web", "serve", "evalalign serve")
log = logging.getLogger("evalalign_metric.serve")
TOKEN_ENV = "EVALALIGN_SERVE_TOKEN"
RETRY_AFTER_SECONDS = 1


def _error(status: int, message: str, field: str | None = None, headers: dict[str, str] | None = None):
    return web.json_response({"error": message, "field": field}, status=status, headers=headers)


def make_app(service, *, token: str | None = None, max_body_bytes: int = 64 * 2**20, workers: int = 64):
    """The aiohttp application serving ``service`` (a :class:`~evalalign_metric.serve.service.ScoringService`).

    Args:
        token: when set, ``POST`` routes need ``Authorization: Bearer <token>``.
        max_body_bytes: larger request bodies are refused with 413 before they are read in full.
        workers: threads that run requests' scoring (each waits on the micro-batcher while its batch runs).
    """
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="evalalign-request")

    @web.middleware
    async def errors(request, handler):
        try:
            return await handler(request)
        except RequestError as exc:
            return _error(exc.status, str(exc), exc.field)
        except (InputError, EvalAlignError) as exc:
            return _error(400, str(exc))
        except web.HTTPRequestEntityTooLarge:
            return _error(413, f"the request body is over the server's limit of {max_body_bytes} bytes", "body")
        except web.HTTPException as exc:
            return _error(exc.status, exc.reason)
        except Exception as exc:  # the server keeps serving; the client learns it was not its fault
            log.exception("request %s %s failed", request.method, request.path)
            return _error(500, f"internal server error: {type(exc).__name__}: {exc}")

    @web.middleware
    async def auth(request, handler):
        if token is not None and request.method == "POST":
            given = request.headers.get("Authorization", "")
            if not hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
                return _error(401, "missing or wrong bearer token (Authorization: Bearer <token>)", "Authorization",
                              headers={"WWW-Authenticate": "Bearer"})
        return await handler(request)

    async def read_json(request) -> Any:
        try:
            return json.loads(await request.read())
        except web.HTTPRequestEntityTooLarge:
            raise
        except (ValueError, UnicodeDecodeError) as exc:
            raise RequestError(f"the request body is not valid JSON: {exc}", "body") from None

    async def run(request, parse, work):
        body = await read_json(request)
        n = count_images(body)
        if n > service.batcher.max_queue_images:
            raise RequestError(f"images: {n} images in one request; this server takes at most "
                               f"{service.batcher.max_queue_images} at once (split the request)", "images", 413)
        if not service.batcher.admit(n):
            return _error(503, "the server's queue is full; retry later", None,
                          headers={"Retry-After": str(RETRY_AFTER_SECONDS)})
        try:
            loop = asyncio.get_running_loop()
            return web.json_response(await loop.run_in_executor(pool, lambda: work(parse(body))))
        finally:
            service.batcher.release(n)

    limits = {"max_pixels": service.max_image_pixels, "min_side": service.min_side}

    async def score(request):
        return await run(request, lambda body: parse_score_request(body, **limits), service.score)

    async def answer(request):
        return await run(request, lambda body: parse_answer_request(body, **limits),
                         lambda parsed: service.answer(*parsed))

    async def health(request):
        return web.json_response(service.health())

    async def shutdown(app):
        service.close()
        pool.shutdown(wait=False, cancel_futures=True)

    app = web.Application(middlewares=[errors, auth], client_max_size=max_body_bytes)
    app.router.add_get("/health", health)
    app.router.add_post("/score", score)
    app.router.add_post("/answer", answer)
    app.on_cleanup.append(shutdown)
    return app


async def _serve(app, host: str, port: int, announce, stop: asyncio.Event | None = None) -> None:
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    bound_host, bound_port = runner.addresses[0][:2]
    stop = stop or asyncio.Event()
    if threading.current_thread() is threading.main_thread():
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
    announce(f"http://{bound_host}:{bound_port}")
    try:
        await stop.wait()
    finally:
        await runner.cleanup()


def run_server(service, *, host: str = "127.0.0.1", port: int = 8000, announce=print, **app_kwargs) -> None:
    """Serve until SIGINT/SIGTERM; ``announce(url)`` is called once the socket is bound (``port=0``: any free
    port, the URL says which)."""
    asyncio.run(_serve(make_app(service, **app_kwargs), host, port, announce))


class ServerThread:
    """The server on a background thread of this process (tests, notebooks): ``with ServerThread(service) as
    url: ...``; leaving the block stops it and closes the service.

    Example:
        >>> import tempfile
        >>> from evalalign_metric.judge import load_judge
        >>> from evalalign_metric.testing import build_tiny_judge
        >>> from evalalign_metric.serve.service import ScoringService
        >>> from evalalign_metric.serve.client import ServerConnection
        >>> with ServerThread(ScoringService(load_judge(build_tiny_judge(tempfile.mkdtemp())))) as url:
        ...     ServerConnection(url).health()["status"]
        'ok'
    """

    def __init__(self, service, *, host: str = "127.0.0.1", port: int = 0, **app_kwargs):
        self.service, self.host, self.port, self.app_kwargs = service, host, port, app_kwargs
        self.url: str | None = None
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._main, name="evalalign-serve", daemon=True)

    def _main(self) -> None:
        async def main():
            self._loop, self._stop = asyncio.get_running_loop(), asyncio.Event()
            await _serve(make_app(self.service, **self.app_kwargs), self.host, self.port, self._bound, self._stop)

        try:
            asyncio.run(main())
        except BaseException as exc:  # noqa: B902 - reported to the thread that waits for the server
            self._error = exc
            self._ready.set()

    def _bound(self, url: str) -> None:
        self.url = url
        self._ready.set()

    def __enter__(self) -> str:
        self._thread.start()
        self._ready.wait(timeout=60)
        if self.url is None:
            raise RuntimeError(f"the server did not start: {self._error!r}")
        return self.url

    def __exit__(self, *exc_info) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(timeout=30)
