"""``evalalign serve``: one judge as an HTTP scoring server many trainers share (needs the ``serve`` extra).

Loads the judge once and answers ``POST /score`` (rewards and per-aspect scores; what ``RemoteReward(url)``
calls), ``POST /answer`` (option probabilities; what ``EvalAlignScore(model=url)`` calls) and ``GET /health``
(the judge's identity). Concurrent requests are micro-batched into the judge's batches. It binds 127.0.0.1
unless told otherwise (``--host 0.0.0.0`` exposes it to the network: set a token then). The token comes
from ``--token`` or the environment variable ``EVALALIGN_SERVE_TOKEN`` (which keeps it out of ``ps``).
Once listening it prints ``evalalign serve: listening on http://HOST:PORT`` (``--port 0``: a free port).
API and figures: docs/serve.md.

Example:
    >>> import argparse
    >>> parser = argparse.ArgumentParser(); register(parser.add_subparsers())
    >>> args = parser.parse_args(["serve", "--port", "0", "--protocol", "imatch"])
    >>> args.host, args.port, args.protocol, args.model, args.max_batch_images, args.no_batching
    ('127.0.0.1', 0, 'imatch', None, 64, False)
"""

from __future__ import annotations

import argparse
import os
import sys

from evalalign_metric.commands._args import add_command, add_device_option, positive_int


def register(subparsers) -> None:
    parser = add_command(subparsers, "serve", doc=__doc__,
                         help="serve one judge over HTTP to many trainers (rewards, metrics; micro-batched)")
    parser.add_argument("--model", default=None, metavar="REF",
                        help="judge checkpoint folder or reference (default: the embedded judge for --protocol)")
    parser.add_argument("--protocol", default="evalalign", help="protocol /score asks (default evalalign)")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    parser.add_argument("--port", type=int, default=8000, help="port (default 8000; 0: any free port)")
    parser.add_argument("--token", default=None,
                        help="require 'Authorization: Bearer TOKEN' on POST (default: $EVALALIGN_SERVE_TOKEN if set)")
    add_device_option(parser)
    parser.add_argument("--dtype", default=None, help="auto (default), float32, float16 or bfloat16")
    parser.add_argument("--batch-size", type=positive_int, default=8, help="images per judge forward (default 8)")
    parser.add_argument("--max-batch-images", type=positive_int, default=64,
                        help="merge queued requests into batches of up to this many images (default 64)")
    parser.add_argument("--no-batching", action="store_true", help="run one request at a time (no merging)")
    parser.add_argument("--max-queue-images", type=positive_int, default=1024,
                        help="images admitted at once; more get 503 + Retry-After (default 1024)")
    parser.add_argument("--max-body-mb", type=float, default=64.0, help="largest request body (default 64 MB)")
    parser.add_argument("--max-image-pixels", type=positive_int, default=4096 * 4096,
                        help="largest image, width x height (default 4096x4096)")
    parser.add_argument("--scoring", choices=["expectation", "argmax"], default="expectation",
                        help="default per-answer score of /score rewards (default expectation)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from evalalign_metric.commands.score import quiet_transformers
    from evalalign_metric.errors import InputError, require_extra
    from evalalign_metric.judge import load_judge
    from evalalign_metric.protocol import load_protocol

    require_extra("aiohttp", "serve", "evalalign serve")
    from evalalign_metric.serve.app import TOKEN_ENV, run_server
    from evalalign_metric.serve.service import ScoringService

    if args.max_body_mb <= 0:
        raise InputError(f"--max-body-mb must be > 0; got {args.max_body_mb}")
    quiet_transformers()
    protocol = load_protocol(args.protocol)
    model = args.model
    if model is None:
        from evalalign_metric.registry import judge_when_none_named

        model = judge_when_none_named(protocol)
    judge = load_judge(model, device=args.device, dtype=args.dtype, batch_size=args.batch_size)
    service = ScoringService(judge, protocol, reference=model, scoring=args.scoring,
                             max_image_pixels=args.max_image_pixels, max_batch_images=args.max_batch_images,
                             max_queue_images=args.max_queue_images, merge=not args.no_batching)
    token = args.token or os.environ.get(TOKEN_ENV) or None

    def announce(url: str) -> None:
        print(f"evalalign serve: listening on {url} (judge {os.fspath(model)}, protocol {protocol.name}"
              f"{', token required' if token else ''})", flush=True)

    if args.host not in ("127.0.0.1", "localhost", "::1") and not token:
        print(f"evalalign serve: warning: binding {args.host} without a token: anyone who reaches it can use "
              "the judge", file=sys.stderr)
    run_server(service, host=args.host, port=args.port, announce=announce, token=token,
               max_body_bytes=int(args.max_body_mb * 2**20))
    return 0
