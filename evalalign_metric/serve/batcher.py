"""Micro-batching: concurrent ``judge.answer`` calls merged into one, on one worker thread that owns the judge.

Each request's scoring runs in its own thread against a :class:`BatchingJudge`, whose ``answer`` hands the
images and questions to the :class:`MicroBatcher` and waits. The worker takes every job queued by the time it
is free (up to ``max_batch_images`` images; a bigger job runs alone), runs the real judge once over all of
them, and gives each job its own slice back, so concurrent requests fill the engine's batches. If a merged
batch fails, each of its jobs is run alone, so one bad request cannot fail its neighbours. Admission is
bounded: :meth:`MicroBatcher.admit` refuses work beyond ``max_queue_images`` images in flight (the server
answers 503).

Example:
    >>> import tempfile
    >>> from PIL import Image
    >>> from evalalign_metric.judge import load_judge
    >>> from evalalign_metric.testing import build_tiny_judge
    >>> judge = load_judge(build_tiny_judge(tempfile.mkdtemp()))
    >>> batcher = MicroBatcher(judge)
    >>> asked = [[("<image>\\nIs it red? Answer:", ("0", "1"))]]
    >>> [[d]] = BatchingJudge(batcher).answer([Image.new("RGB", (16, 16), "red")], asked)
    >>> [[e]] = judge.answer([Image.new("RGB", (16, 16), "red")], asked)
    >>> bool((d.log_probs == e.log_probs).all()), batcher.stats["batches"]
    (True, 1)
    >>> batcher.close()
"""

from __future__ import annotations

import threading
from collections import deque
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, Sequence


@dataclass
class _Job:
    images: list
    questions: list
    future: Future = field(default_factory=Future)


class MicroBatcher:
    """Merges concurrent ``answer`` jobs into batches for one judge (see the module doc).

    Args:
        judge: anything with ``answer(images, questions)`` (a :class:`~evalalign_metric.judge.Judge`).
        max_batch_images: merge queued jobs while the batch stays within this many images.
        max_queue_images: :meth:`admit` refuses work beyond this many images in flight.
        merge: ``False`` runs one job at a time (the baseline the benchmark compares against).
        max_wait: seconds the worker waits for more jobs once it has one (0: take only what is queued).
    """

    def __init__(self, judge, *, max_batch_images: int = 64, max_queue_images: int = 1024, merge: bool = True,
                 max_wait: float = 0.0):
        self.judge = judge
        self.max_batch_images = max_batch_images
        self.max_queue_images = max_queue_images
        self.merge = merge
        self.max_wait = max_wait
        self.stats = {"batches": 0, "jobs": 0, "images": 0}
        self._jobs: deque[_Job] = deque()
        self._cond = threading.Condition()
        self._in_flight = 0
        self._closed = False
        self._worker = threading.Thread(target=self._loop, name="evalalign-batcher", daemon=True)
        self._worker.start()

    @property
    def in_flight(self) -> int:
        """Images admitted and not yet released."""
        return self._in_flight

    def admit(self, n_images: int) -> bool:
        """Reserve room for ``n_images``; ``False`` when the queue is full (call :meth:`release` after)."""
        with self._cond:
            if self._in_flight + n_images > self.max_queue_images:
                return False
            self._in_flight += n_images
            return True

    def release(self, n_images: int) -> None:
        with self._cond:
            self._in_flight -= n_images

    def submit(self, images: Sequence, questions: Sequence) -> Future:
        """Queue one ``answer(images, questions)`` job; its future holds the option distributions."""
        job = _Job(list(images), list(questions))
        with self._cond:
            if self._closed:
                raise RuntimeError("the micro-batcher is closed")
            self._jobs.append(job)
            self._cond.notify_all()
        return job.future

    def close(self) -> None:
        """Stop the worker after the batch it is running; queued jobs fail."""
        with self._cond:
            self._closed = True
            pending = list(self._jobs)
            self._jobs.clear()
            self._cond.notify_all()
        for job in pending:
            job.future.set_exception(RuntimeError("the server is shutting down"))

    def _take(self) -> list[_Job] | None:
        with self._cond:
            while not self._jobs and not self._closed:
                self._cond.wait()
            if self._closed:
                return None
            if self.merge and self.max_wait > 0:
                self._cond.wait_for(lambda: sum(len(j.images) for j in self._jobs) >= self.max_batch_images
                                    or self._closed, timeout=self.max_wait)
            batch = [self._jobs.popleft()]
            size = len(batch[0].images)
            while self.merge and self._jobs and size + len(self._jobs[0].images) <= self.max_batch_images:
                job = self._jobs.popleft()
                batch.append(job)
                size += len(job.images)
            return batch

    def _loop(self) -> None:
        while True:
            batch = self._take()
            if batch is None:
                return
            self._run(batch)

    def _run(self, batch: list[_Job]) -> None:
        images = [im for job in batch for im in job.images]
        questions = [q for job in batch for q in job.questions]
        self.stats["batches"] += 1
        self.stats["jobs"] += len(batch)
        self.stats["images"] += len(images)
        try:
            answers = self.judge.answer(images, questions)
        except BaseException as exc:  # noqa: B902 - handed to the waiting request, never lost
            if len(batch) == 1:
                batch[0].future.set_exception(exc)
            else:
                for job in batch:
                    self._run([job])
            return
        start = 0
        for job in batch:
            job.future.set_result(answers[start:start + len(job.images)])
            start += len(job.images)


class BatchingJudge:
    """A judge whose ``answer`` goes through a :class:`MicroBatcher` (same results, merged batches)."""

    def __init__(self, batcher: MicroBatcher):
        self.batcher = batcher

    @property
    def identity(self) -> dict[str, Any]:
        return self.batcher.judge.identity

    def answer(self, images, questions):
        return self.batcher.submit(images, questions).result()
