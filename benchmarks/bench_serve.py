"""Throughput of `evalalign serve`: micro-batching vs one request at a time, with 1, 4 and 16 concurrent clients.

Starts two servers on 127.0.0.1 with the same judge (default: the embedded judge, CPU): one merging concurrent
requests into the judge's batches (the default), one with ``--no-batching``. For each number of clients, each
client (a thread of this process, a :class:`~evalalign_metric.serve.RemoteReward`) sends requests of
``--images-per-request`` images until ``--requests`` requests are answered; images/s is total images over wall
time. The two servers are measured alternately ``--repeats`` times, each going first in turn, and the best run
of each is kept (the machine is shared). Prints one table with the ratio batched / one-at-a-time, each
server's mean images per judge batch, and the server's CPU time per image (user + system, from /proc; the
least of the repeats), which a busy machine disturbs less than wall time.

  python benchmarks/bench_serve.py --threads 1
"""

from __future__ import annotations

import argparse
import math
import os
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch

from evalalign_metric.serve.process import launch_server, stop_server

from bench_engine import cpu_name  # a sibling script

ROOT = Path(__file__).resolve().parents[1]
PROMPTS = ["a red cube", "two blue circles", "a green triangle left of a yellow square", "three stars",
           "a cat on a mat", "a white circle above a black square"]


def start_server(args, *extra: str) -> tuple[subprocess.Popen, str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": str(args.threads), "HF_HUB_OFFLINE": "1"}
    model = ["--model", args.model] if args.model else []
    return launch_server(["--protocol", args.protocol, "--batch-size", str(args.batch_size), *extra, *model],
                         env=env, timeout=300)


def make_inputs(n: int, per_request: int, size: int) -> list[tuple[torch.Tensor, list[str]]]:
    g = torch.Generator().manual_seed(0)
    return [(torch.randint(0, 256, (per_request, 3, size, size), dtype=torch.uint8, generator=g),
             [PROMPTS[(i + j) % len(PROMPTS)] for j in range(per_request)]) for i in range(n)]


def measure(url: str, clients: int, inputs) -> float:
    """Images per second with ``clients`` threads sharing ``inputs`` (one request each)."""
    from evalalign_metric.serve import RemoteReward

    remotes = [RemoteReward(url, timeout=600) for _ in range(clients)]
    next_index = iter(range(len(inputs)))
    lock = threading.Lock()

    def client(k: int) -> int:
        done = 0
        while True:
            with lock:
                i = next(next_index, None)
            if i is None:
                return done
            images, prompts = inputs[i]
            done += len(remotes[k](images, prompts)[0])

    start = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        images = sum(pool.map(client, range(clients)))
    return images / (time.perf_counter() - start)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc): less sensitive to a busy machine than wall time."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def batch_stats(url: str) -> tuple[int, int]:
    from evalalign_metric.serve.client import ServerConnection

    stats = ServerConnection(url).health()["batches"]
    return stats["batches"], stats["images"]


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="judge folder (default: the embedded judge of --protocol)")
    parser.add_argument("--protocol", default="evalalign")
    parser.add_argument("--threads", type=int, default=1, help="torch threads of each server (default 1)")
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 4, 16])
    parser.add_argument("--requests", type=int, default=64, help="requests per measurement (default 64)")
    parser.add_argument("--images-per-request", type=int, default=1, help="(default 1: per-sample streaming)")
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=8, help="images per judge forward (default 8)")
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)

    servers = {"batched": start_server(args), "one-at-a-time": start_server(args, "--no-batching")}
    try:
        inputs = make_inputs(args.requests, args.images_per_request, args.image_size)
        for _, url in servers.values():  # warm-up: first forwards allocate
            measure(url, 4, inputs[:8])
        rows = []
        for clients in args.clients:
            best = {name: 0.0 for name in servers}
            cpu = {name: math.inf for name in servers}
            per_batch = {}
            for repeat in range(args.repeats):
                order = list(servers.items())
                for name, (proc, url) in order if repeat % 2 == 0 else order[::-1]:  # alternate who goes first
                    before, cpu_before = batch_stats(url), cpu_seconds(proc.pid)
                    best[name] = max(best[name], measure(url, clients, inputs))
                    after, cpu_after = batch_stats(url), cpu_seconds(proc.pid)
                    per_batch[name] = (after[1] - before[1]) / max(after[0] - before[0], 1)
                    cpu[name] = min(cpu[name], 1000 * (cpu_after - cpu_before) / (after[1] - before[1]))
            rows.append((clients, best["batched"], best["one-at-a-time"], per_batch["batched"], cpu["batched"],
                         cpu["one-at-a-time"]))
    finally:
        for proc, _ in servers.values():
            stop_server(proc, timeout=60)
    print(f"# {cpu_name()}, {os.cpu_count()} CPUs; server threads "
          f"{args.threads}; judge {args.model or 'embedded (' + args.protocol + ')'}; {args.requests} requests of "
          f"{args.images_per_request} {args.image_size}x{args.image_size} image(s); best of {args.repeats}")
    print("| clients | micro-batched images/s | one request at a time images/s | ratio | images per batch | "
          "server CPU ms/image batched | one at a time | ratio |")
    print("|---|---|---|---|---|---|---|---|")
    for clients, batched, single, per_batch, cpu_batched, cpu_single in rows:
        print(f"| {clients} | {batched:.1f} | {single:.1f} | {batched / single:.2f}x | {per_batch:.1f} | "
              f"{cpu_batched:.1f} | {cpu_single:.1f} | {cpu_single / cpu_batched:.2f}x |")


if __name__ == "__main__":
    main()
