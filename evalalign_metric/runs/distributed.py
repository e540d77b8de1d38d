"""Running one scoring job across processes started by ``torchrun`` or ``accelerate launch --multi_gpu``.

Both set ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR`` and ``MASTER_PORT`` (accelerate starts
torchrun; its CPU multi-process mode goes through mpirun instead and is not picked up: use torchrun).
Each rank scores its share of the images into its own part file; ranks meet at barriers of a gloo process
group (created here unless the caller already initialised ``torch.distributed``; with an NCCL default group a
separate gloo group is used, so no barrier touches a GPU). Without those variables the job runs in one
process and no process group is created.

Example:
    >>> ctx = DistContext.from_env({})
    >>> ctx.rank, ctx.world_size, ctx.is_main
    (0, 1, True)
    >>> DistContext.from_env({"RANK": "1", "WORLD_SIZE": "2", "LOCAL_RANK": "1"}).shard(list("abcde"))
    ['b', 'd']
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

from evalalign_metric.errors import InputError


def _int_env(env: Mapping[str, str], name: str, default: int) -> int:
    value = env.get(name)
    if value is None or value == "":
        return default
    try:
        return int(value)
    except ValueError:
        raise InputError(f"environment variable {name}={value!r} must be an integer") from None


@dataclass
class DistContext:
    """This process's place in a multi-process run (``world_size == 1``: a single process)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    _group: Any = field(default=None, repr=False)
    _owns_group: bool = field(default=False, repr=False)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> "DistContext":
        env = os.environ if env is None else env
        world = _int_env(env, "WORLD_SIZE", 1)
        rank = _int_env(env, "RANK", 0)
        local = _int_env(env, "LOCAL_RANK", rank)
        if world < 1 or not 0 <= rank < world:
            raise InputError(
                f"RANK={rank} and WORLD_SIZE={world} are inconsistent (need 0 <= RANK < WORLD_SIZE)"
            )
        return cls(rank, world, local)

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    def shard(self, items: Sequence) -> list:
        """This rank's share: every ``world_size``-th item starting at ``rank``."""
        return list(items[self.rank::self.world_size])

    def setup(self) -> bool:
        """Join (or create) the process group; a no-op in a single process. Returns whether this call
        created the group (then :meth:`close` is this caller's to call)."""
        if not self.distributed:
            return False
        import torch.distributed as dist

        created = False
        if not dist.is_available():
            raise InputError("WORLD_SIZE > 1 but this torch build has no torch.distributed")
        if not dist.is_initialized():
            missing = [v for v in ("MASTER_ADDR", "MASTER_PORT") if not os.environ.get(v)]
            if missing:
                raise InputError(
                    f"WORLD_SIZE={self.world_size} is set but {' and '.join(missing)} are not: "
                    "start multi-process scoring with torchrun or accelerate launch"
                )
            dist.init_process_group("gloo", rank=self.rank, world_size=self.world_size)
            self._owns_group = created = True
        elif dist.get_world_size() != self.world_size or dist.get_rank() != self.rank:
            raise InputError(
                f"torch.distributed is initialised with rank {dist.get_rank()} of "
                f"{dist.get_world_size()}, but RANK/WORLD_SIZE say {self.rank} of {self.world_size}"
            )
        if self._group is None and dist.get_backend() != "gloo":
            self._group = dist.new_group(backend="gloo")
        return created

    def barrier(self) -> None:
        """Wait for every rank (no-op in a single process)."""
        if self.distributed:
            import torch.distributed as dist

            dist.barrier(group=self._group)

    def close(self) -> None:
        """Destroy the process group if :meth:`setup` created it."""
        if self._owns_group:
            import torch.distributed as dist

            dist.destroy_process_group()
            self._owns_group = False

    def device(self, requested: str | None) -> str | None:
        """The device for this rank: ``cuda`` means this rank's GPU (``cuda:LOCAL_RANK``)."""
        if not self.distributed:
            return requested
        if requested is None:
            import torch

            return f"cuda:{self.local_rank}" if torch.cuda.is_available() else "cpu"
        if requested == "cuda":
            return f"cuda:{self.local_rank}"
        return requested
