"""What the scoring server does, without HTTP: one judge behind a micro-batcher, requests in, JSON-ready out.

Example:
    >>> import tempfile
    >>> from PIL import Image
    >>> from evalalign_metric.judge import load_judge
    >>> from evalalign_metric.testing import build_tiny_judge
    >>> from evalalign_metric.serve.wire import ScoreRequest
    >>> service = ScoringService(load_judge(build_tiny_judge(tempfile.mkdtemp())), "evalalign")
    >>> out = service.score(ScoreRequest([Image.new("RGB", (16, 16))], ["a red cube"], None, None, None))
    >>> len(out["scores"]), 0 <= out["scores"][0] <= 1, out["aspects"]["alignment/Color"][0] is not None
    (1, True, True)
    >>> service.close()
"""

from __future__ import annotations

import os
from typing import Any

import torch

from evalalign_metric.errors import InputError
from evalalign_metric.functional import score_images
from evalalign_metric.protocol import load_protocol
from evalalign_metric.reward import DEFAULT_SCORING, resolve_weights, rewards_from_results
from evalalign_metric.serve.batcher import BatchingJudge, MicroBatcher
from evalalign_metric.serve.wire import RequestError, ScoreRequest, finite_or_none


def judge_identity(judge, protocol, reference: str | os.PathLike | None = None) -> dict[str, Any]:
    """What ``GET /health`` says about the judge: its identity (reference, revision, model type), the
    fingerprint of its folder (:func:`~evalalign_metric.runs.identity.model_fingerprint`) when it is local,
    the protocol it serves (``served_protocol``: name, version, content hash), dtype, device and engine."""
    from evalalign_metric.runs.identity import model_fingerprint, protocol_identity

    out = dict(judge.identity)
    folder = os.fspath(reference) if reference is not None else out.get("model")
    if folder and os.path.isdir(folder):
        out["fingerprint"] = model_fingerprint(folder)
    out["served_protocol"] = protocol_identity(protocol)
    out["dtype"] = str(judge.dtype).replace("torch.", "") if isinstance(judge.dtype, torch.dtype) else None
    out["device"] = str(judge.device)
    engine = getattr(judge, "engine", None)
    out["engine"] = {"name": type(engine).__name__, "batch_size": getattr(engine, "batch_size", None)}
    return out


class ScoringService:
    """One judge, one protocol, one :class:`~evalalign_metric.serve.batcher.MicroBatcher`.

    Args:
        judge: a loaded judge. protocol: the protocol ``/score`` asks.
        weights, scoring: the default reward (as :class:`~evalalign_metric.reward.EvalAlignReward`); a request
            may name its own.
        max_image_pixels: larger images are refused (413). batcher_kwargs: see ``MicroBatcher``.
    """

    def __init__(self, judge, protocol="evalalign", *, reference=None, weights=None, scoring: str = DEFAULT_SCORING,
                 max_image_pixels: int = 4096 * 4096, **batcher_kwargs):
        self.judge = judge
        self.protocol = load_protocol(protocol)
        self.weights = resolve_weights(self.protocol, weights=weights)
        self.scoring = scoring
        self.max_image_pixels = max_image_pixels
        self.min_side = int(getattr(judge, "min_image_size", 1) or 1)
        self.batcher = MicroBatcher(judge, **batcher_kwargs)
        self.batching_judge = BatchingJudge(self.batcher)
        self.identity = judge_identity(judge, self.protocol, reference)

    def health(self) -> dict[str, Any]:
        return {"status": "ok", "judge": self.identity,
                "queue": {"images_in_flight": self.batcher.in_flight,
                          "max_queue_images": self.batcher.max_queue_images,
                          "max_batch_images": self.batcher.max_batch_images, "merge": self.batcher.merge},
                "batches": dict(self.batcher.stats)}

    def score(self, request: ScoreRequest) -> dict[str, Any]:
        """Scores, per-aspect values and element scores of one request (non-finite values as ``None``)."""
        try:
            weights = resolve_weights(self.protocol, weights=request.weights) if request.weights else self.weights
        except InputError as exc:
            raise RequestError(str(exc), "weights") from None
        scoring = request.scoring or self.scoring
        results = score_images(self.batching_judge, self.protocol, request.images, request.prompts,
                               request.elements)
        scores, info = rewards_from_results(self.protocol, results, weights=weights, scoring=scoring,
                                            on_nonfinite=None)
        out = {"scores": [finite_or_none(s) for s in scores],
               "aspects": {k: [finite_or_none(v) for v in vs] for k, vs in info["aspects"].items()}}
        if "elements" in info:
            out["elements"] = [{k: finite_or_none(v) for k, v in e.items()} for e in info["elements"]]
        out["judge"] = self.identity
        return out

    def answer(self, images, questions) -> dict[str, Any]:
        """Option log-probabilities for ``Judge.answer``'s arguments (JSON allows them to be -Infinity)."""
        answers = self.batching_judge.answer(images, questions)
        return {"log_probs": [[d.log_probs.tolist() for d in row] for row in answers],
                "labels": [[list(d.labels) for d in row] for row in answers],
                "greedy": [[getattr(d, "greedy_index", None) for d in row] for row in answers]}

    def close(self) -> None:
        self.batcher.close()
