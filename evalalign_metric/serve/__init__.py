"""One judge served to many trainers: ``evalalign serve`` (HTTP, micro-batched) and its clients.

- :mod:`~evalalign_metric.serve.client`: :class:`RemoteReward` (the reward contract) and :class:`RemoteJudge`
  (``Judge.answer`` over HTTP; what ``load_judge("http://...")`` returns). Standard library only.
- :mod:`~evalalign_metric.serve.service`: the judge behind a :class:`~evalalign_metric.serve.batcher.MicroBatcher`.
- :mod:`~evalalign_metric.serve.app`: the HTTP server (aiohttp: ``pip install 'evalalign-metric[serve]'``).
- :mod:`~evalalign_metric.serve.wire`: the JSON of requests and answers.

Example:
    >>> from evalalign_metric.serve import RemoteReward, is_server_url
    >>> is_server_url("http://127.0.0.1:8000")
    True
"""

from evalalign_metric.serve.client import RemoteJudge, RemoteReward, ServerUnavailableError, is_server_url

__all__ = ["RemoteJudge", "RemoteReward", "ServerUnavailableError", "is_server_url"]
