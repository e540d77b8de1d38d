"""Clients of ``evalalign serve``, standard library only: :class:`RemoteReward` (the reward contract) and
:class:`RemoteJudge` (the ``Judge.answer`` interface, so ``EvalAlignScore(model="http://host:port")`` in every
DDP rank shares one served judge, with the metric's code path unchanged).

Images travel as lossless PNG, numbers as JSON floats (exact for float32 and float64), so a remote score equals
the local one computed on the server's judge. Connection errors (refused, reset, the server restarting) and
503 (queue full; ``Retry-After`` is honoured) are retried ``retries`` times with exponential backoff; a request
that takes longer than ``timeout`` seconds fails at once (retrying would queue the same work twice); when no
attempt succeeds, :class:`ServerUnavailableError` names the URL. A 4xx answer raises
:class:`~evalalign_metric.errors.InputError` with the server's message (the field it names).

The token: ``token=`` or the environment variable ``EVALALIGN_SERVE_TOKEN``.

Example (with a server, see docs/serve.md; here none listens on port 9):
    >>> from PIL import Image
    >>> reward = RemoteReward("http://127.0.0.1:9", retries=1, backoff=0.01, timeout=5)
    >>> try:
    ...     scores, info = reward([Image.new("RGB", (32, 32))], ["a red cube"])
    ... except ServerUnavailableError as exc:
    ...     print(str(exc).split(" (")[0])
    the scoring server at http://127.0.0.1:9 did not answer after 2 attempt(s)
"""

from __future__ import annotations

import http.client
import json
import math
import os
import socket
import time
import urllib.error
import urllib.request
from typing import Any, Mapping, Sequence

import torch

from evalalign_metric.errors import EvalAlignError, InputError

TOKEN_ENV = "EVALALIGN_SERVE_TOKEN"
_RETRYABLE = (ConnectionError, http.client.RemoteDisconnected, http.client.IncompleteRead, http.client.BadStatusLine)


class ServerUnavailableError(EvalAlignError, ConnectionError):
    """The scoring server could not be reached, kept answering 503, timed out, or failed on its side."""


def is_server_url(model: Any) -> bool:
    """Whether a model reference names a scoring server (``http://`` or ``https://``).

    Example:
        >>> is_server_url("http://127.0.0.1:8000"), is_server_url("Fudan-FUXI/evalalign-v1.0-13b")
        (True, False)
    """
    return isinstance(model, str) and model.startswith(("http://", "https://"))


class ServerConnection:
    """JSON over HTTP to one server, with retries (see the module doc)."""

    def __init__(self, url: str, *, token: str | None = None, timeout: float = 600.0, retries: int = 5,
                 backoff: float = 0.5, max_backoff: float = 30.0):
        if not is_server_url(url):
            raise InputError(f"url must start with http:// or https://; got {url!r}")
        self.url = url.rstrip("/")
        self.token = token if token is not None else os.environ.get(TOKEN_ENV)
        self.timeout, self.retries, self.backoff, self.max_backoff = timeout, retries, backoff, max_backoff

    def _delay(self, attempt: int, retry_after: str | None = None) -> float:
        delay = min(self.backoff * 2 ** attempt, self.max_backoff)
        try:
            return max(delay, float(retry_after)) if retry_after else delay
        except ValueError:
            return delay

    def request(self, method: str, path: str, payload: Any = None) -> Any:
        """The decoded JSON answer of ``method path``; raises as the module doc says."""
        data = None if payload is None else json.dumps(payload).encode()
        headers = {"Content-Type": "application/json"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        url = self.url + path
        last = None
        for attempt in range(self.retries + 1):
            try:
                req = urllib.request.Request(url, data=data, headers=headers, method=method)
                with urllib.request.urlopen(req, timeout=self.timeout) as response:
                    return json.loads(response.read())
            except urllib.error.HTTPError as exc:
                message = _error_message(exc)
                if exc.code == 503 and attempt < self.retries:
                    last = f"503 {message}"
                    time.sleep(self._delay(attempt, exc.headers.get("Retry-After")))
                    continue
                if exc.code == 503:
                    last = f"503 {message}"
                    break
                if exc.code == 401:
                    raise ServerUnavailableError(f"{url} refused the request (401 {message}): pass token= or set "
                                                 f"{TOKEN_ENV}") from None
                if 400 <= exc.code < 500:
                    raise InputError(f"{url} refused the request ({exc.code}): {message}") from None
                raise ServerUnavailableError(f"{url} failed ({exc.code}): {message}") from None
            except (socket.timeout, TimeoutError) as exc:
                raise ServerUnavailableError(f"{url} did not answer within timeout={self.timeout} s ({exc})") from None
            except urllib.error.URLError as exc:
                if isinstance(exc.reason, (socket.timeout, TimeoutError)):
                    raise ServerUnavailableError(f"{url} did not answer within timeout={self.timeout} s") from None
                last = str(exc.reason)
            except _RETRYABLE as exc:
                last = f"{type(exc).__name__}: {exc}"
            if attempt < self.retries:
                time.sleep(self._delay(attempt))
        raise ServerUnavailableError(f"the scoring server at {self.url} did not answer after {self.retries + 1} "
                                     f"attempt(s) (last: {last}); is `evalalign serve` running there?")

    def health(self) -> dict[str, Any]:
        return self.request("GET", "/health")


def _error_message(exc: urllib.error.HTTPError) -> str:
    try:
        body = json.loads(exc.read())
        return body.get("error", "") + (f" [field {body['field']}]" if body.get("field") else "")
    except (ValueError, AttributeError, OSError):
        return str(exc.reason)


def _encode_images(images) -> list[str]:
    from evalalign_metric.serve.wire import encode_image

    return [encode_image(im) for im in images]


class RemoteJudge:
    """A judge served by ``evalalign serve``, with :class:`~evalalign_metric.judge.Judge`'s ``answer``.

    ``load_judge("http://host:port")`` returns one, so every place that takes a model reference
    (``EvalAlignScore(model=...)``, ``EvalAlignReward(model=...)``) can use a served judge. Its ``identity``
    is the server's (read from ``/health`` when it is built: a server that is not there fails here).

    Args:
        url: the server's base URL. token, timeout, retries, backoff: see :class:`ServerConnection`.
    """

    def __init__(self, url: str, **connection: Any):
        self.connection = ServerConnection(url, **connection)
        health = self.connection.health()
        self.identity = dict(health.get("judge", {}))
        self.identity["server"] = self.connection.url
        self.min_image_size = 1

    @property
    def device(self) -> torch.device:
        """Where the caller's tensors may stay: the judge itself runs on the server."""
        return torch.device("cpu")

    def to(self, device=None, dtype=None) -> "RemoteJudge":
        """Nothing to move: the served judge stays where the server put it."""
        return self

    def answer(self, images, questions):
        """Option distributions for ``questions[i]`` (``(text, labels)`` pairs) about ``images[i]``."""
        from evalalign_metric.judge import OptionDistribution

        if len(images) != len(questions):
            raise InputError(f"images ({len(images)}) and questions ({len(questions)}) must have the same length")
        payload = {"images": _encode_images(images),
                   "questions": [[[text, list(labels)] for text, labels in asked] for asked in questions]}
        out = self.connection.request("POST", "/answer", payload)
        greedy = out.get("greedy") or [[None] * len(row) for row in out["log_probs"]]  # older servers: none
        return [[OptionDistribution(tuple(labels), torch.tensor(lp, dtype=torch.float32), g)
                 for labels, lp, g in zip(row_labels, row, row_greedy)]
                for row_labels, row, row_greedy in zip(out["labels"], out["log_probs"], greedy)]


class RemoteReward:
    """:class:`~evalalign_metric.reward.EvalAlignReward`'s contract, scored by ``evalalign serve`` at ``url``.

    ``reward(images, prompts, metadata=None) -> (scores, info)`` with the same inputs, the same [0, 1] scores
    and ``info`` keys (``aspects``, ``elements`` for iMatch, ``judge``: the server's); the protocol is the
    server's.

    Args:
        url: the server's base URL.
        aspects, weights, scoring: the reward (see :func:`~evalalign_metric.reward.resolve_weights`); default the
            server's (``overall``, ``expectation`` unless it was started otherwise).
        on_nonfinite: ``"raise"`` (default) or a replacement value, as for the local reward.
        token, timeout, retries, backoff: see :class:`ServerConnection`.

    Raises:
        InputError: bad images, prompts, metadata or weights (from this side or the server's 4xx).
        ServerUnavailableError: the server is gone or failing after the retries.
        NonFiniteRewardError: a non-finite reward with ``on_nonfinite="raise"``.
    """

    def __init__(self, url: str, *, aspects: Sequence[str] | None = None, weights: Mapping[str, float] | None = None,
                 scoring: str | None = None, on_nonfinite: str | float = "raise", **connection: Any):
        self.connection = ServerConnection(url, **connection)
        if aspects is not None and weights is not None:
            raise InputError("pass aspects= (equal weights) or weights= ({key: weight}), not both")
        self.weights = dict(weights) if weights is not None else (
            {key: 1.0 for key in ([aspects] if isinstance(aspects, str) else aspects)} if aspects is not None else None)
        self.scoring = scoring
        if on_nonfinite != "raise" and not (isinstance(on_nonfinite, (int, float)) and math.isfinite(on_nonfinite)):
            raise InputError(f"on_nonfinite must be 'raise' or a finite number; got {on_nonfinite!r}")
        self.on_nonfinite = on_nonfinite

    def __call__(self, images, prompts: Sequence[str], metadata=None, **kwargs: Any) -> tuple[list[float], dict]:
        from evalalign_metric.reward import check_finite, elements_from_metadata, reward_images
        from evalalign_metric.serve.wire import none_to_nan

        pil = reward_images(images)
        if isinstance(prompts, str) or not isinstance(prompts, Sequence):
            raise InputError(f"prompts must be a list of strings; got {type(prompts).__name__}")
        if len(prompts) != len(pil):
            raise InputError(f"images ({len(pil)}) and prompts ({len(prompts)}) must have the same length")
        payload: dict[str, Any] = {"prompts": list(prompts), "images": _encode_images(pil)}
        elements = elements_from_metadata(metadata, len(pil))
        if elements is not None:
            payload["elements"] = elements
        if self.weights is not None:
            payload["weights"] = self.weights
        if self.scoring is not None:
            payload["scoring"] = self.scoring
        out = self.connection.request("POST", "/score", payload)
        scores = [none_to_nan(s) for s in out["scores"]]
        info: dict[str, Any] = {"aspects": {k: [none_to_nan(v) for v in vs] for k, vs in out["aspects"].items()}}
        if "elements" in out:
            info["elements"] = [{k: none_to_nan(v) for k, v in e.items()} for e in out["elements"]]
        check_finite(scores, info, prompts, self.weights or {"(the server's)": 1.0}, self.on_nonfinite)
        info["judge"] = out.get("judge", {})
        return scores, info
