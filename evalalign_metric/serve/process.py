"""Start ``evalalign serve`` in a child process and learn its URL; stop it again.

For a training script that runs its own judge server beside it, for the tests and for the serving benchmark.

Example:
    >>> import json, urllib.request
    >>> proc, url = launch_server(["--protocol", "imatch"])
    >>> json.load(urllib.request.urlopen(url + "/health"))["status"]
    'ok'
    >>> stop_server(proc)
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
from typing import Mapping, Sequence

from evalalign_metric.serve.client import ServerUnavailableError

# What `evalalign serve` prints once it listens (evalalign_metric.commands.serve).
_LISTENING = re.compile(r"evalalign serve: listening on (https?://\S+)")


def launch_server(
    args: Sequence[str] = (), *, env: Mapping[str, str] | None = None, timeout: float = 300
) -> tuple[subprocess.Popen, str]:
    """``evalalign serve --port 0 ARGS`` (a free port) in a child process, with this interpreter.

    Args:
        args: further ``evalalign serve`` arguments (``--model``, ``--protocol``, ``--token``, ...).
        env: the child's environment (default: this process's).
        timeout: seconds to wait for the server to listen (loading the judge takes most of them).

    Returns:
        The process and its URL, e.g. ``http://127.0.0.1:40123``.

    Raises:
        ServerUnavailableError: the server exited or did not listen within ``timeout`` seconds (it is killed).
    """
    command = [sys.executable, "-m", "evalalign_metric.cli", "serve", "--port", "0", *args]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                            env=dict(os.environ if env is None else env))
    found: list[str] = []

    def read() -> None:
        for line in proc.stdout:
            match = _LISTENING.search(line)
            if match:
                found.append(match.group(1))
                return

    reader = threading.Thread(target=read, daemon=True)  # readline has no timeout of its own
    reader.start()
    reader.join(timeout=timeout)
    if not found:
        proc.kill()
        proc.wait()
        raise ServerUnavailableError(
            f"evalalign serve {' '.join(args)} did not start listening within {timeout:g} s "
            f"(exit code {proc.returncode}); run the same command by hand to see why"
        )
    return proc, found[0]


def stop_server(proc: subprocess.Popen, timeout: float = 30) -> None:
    """Stop a server started by :func:`launch_server`: SIGTERM (it finishes its requests), SIGKILL after
    ``timeout`` seconds."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=timeout)
