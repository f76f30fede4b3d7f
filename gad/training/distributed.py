"""Process-group helpers for multi-process runs (torchrun / accelerate launch).

Why this exists: TRL/accelerate create the process group but nobody destroys it. A gloo group
left alive at interpreter exit is torn down by C++ static destructors while its worker threads
still run, which aborts a rank at random ("terminate called without an active exception").
Every entry point that trains calls `shutdown()` when it is done, on success or failure.
"""

from __future__ import annotations


def is_distributed() -> bool:
    import torch.distributed as dist

    return dist.is_available() and dist.is_initialized()


def shutdown(*, barrier: bool = True) -> None:
    """Wait for every rank (so none exits while a peer still talks to it), then destroy the group."""
    import torch.distributed as dist

    if not is_distributed():
        return
    if barrier:
        dist.barrier()
    dist.destroy_process_group()
