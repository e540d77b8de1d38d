"""One scoring run per results file at a time: an exclusive lock beside the file that names its holder.

``score_folder`` takes the lock on ``.<results name>.lock`` (hidden, next to the results file) before it
reads or writes anything, and keeps it until the summary is written. A second run on the same ``--out``
stops at once with an error naming the holder (pid, host, start time), which the holder writes into
``.<results name>.lock.holder`` once it has the lock (a file of its own: some filelock versions truncate
the lock file when they try to take it). The lock is the operating system's (``flock``, through the
``filelock`` package): it goes away with its holder, so a run killed by SIGKILL, a crash or a power cut
never leaves a lock that blocks the next run. The empty lock file stays (it is what the next run locks);
a killed holder's ``.holder`` file stays too, until the next holder overwrites it.

Example:
    >>> import tempfile, pathlib
    >>> out = pathlib.Path(tempfile.mkdtemp()) / "results.jsonl"
    >>> with RunLock(out) as lock:
    ...     lock.path.name, sorted(lock.holder())
    ('.results.jsonl.lock', ['host', 'pid', 'started'])
"""

from __future__ import annotations

import datetime
import json
import os
import socket
from pathlib import Path
from typing import Any

from evalalign_metric.errors import InputError


class RunLock:
    """The lock of the results file ``results``; a context manager (see the module docs).

    Raises:
        InputError: on entering, when another process holds the lock (the message names it) or the lock
            file cannot be created.
    """

    def __init__(self, results: str | os.PathLike):
        from filelock import FileLock

        self.results = Path(results)
        self.path = self.results.with_name(f".{self.results.name}.lock")
        self.holder_path = self.path.with_name(self.path.name + ".holder")
        self._lock = FileLock(os.fspath(self.path), timeout=0)

    def holder(self) -> dict[str, Any]:
        """What the holder file says of the (last) holder: ``pid``, ``host``, ``started``; ``{}`` if unknown."""
        try:
            value = json.loads(self.holder_path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            return {}
        return value if isinstance(value, dict) else {}

    def acquire(self) -> None:
        from filelock import Timeout

        try:
            self._lock.acquire()
        except Timeout:
            who = self.holder()
            named = (
                f"pid {who.get('pid')} on host {who.get('host')!r}, started {who.get('started')}"
                if who else "a process that has not yet written its pid"
            )
            raise InputError(
                f"results file {os.fspath(self.results)!r} is being written by another run ({named}; lock "
                f"{os.fspath(self.path)!r}): wait for it to end, or pass another --out"
            ) from None
        except OSError as exc:
            raise InputError(
                f"cannot lock results file {os.fspath(self.results)!r}: {exc.strerror or exc} (lock "
                f"{os.fspath(self.path)!r})"
            ) from None
        record = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "started": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        }
        try:
            # Written once the lock is held; a contender reading it mid-write calls the holder unknown.
            self.holder_path.write_text(json.dumps(record) + "\n", encoding="utf-8")
        except OSError:
            pass  # the lock holds all the same; only the description of the holder is missing

    def release(self) -> None:
        self.holder_path.unlink(missing_ok=True)
        self._lock.release()

    def __enter__(self) -> "RunLock":
        self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()
