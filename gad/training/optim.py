"""Optimizer state versus settings: what a checkpoint restores and what it must not.

A checkpoint's optimizer file holds moments and step counts (state) and also the param groups'
lr and weight decay (settings at save time). Resuming restores the state and keeps the current
settings, so a fork's edited learning rate or weight decay takes effect.
"""

from __future__ import annotations

import contextlib

# Optimizer hyperparameters that are settings, not state: a checkpoint's values never override them.
SETTINGS_KEYS = ("lr", "initial_lr", "weight_decay")


@contextlib.contextmanager
def keep_settings(optimizer, scheduler=None):
    """Load optimizer/scheduler state inside this block: moments and step counts come from the
    checkpoint, the learning rate and weight decay stay what the settings made them.

    Without this, `optimizer.load_state_dict` restores the saved param groups (lr included) and
    the scheduler's saved base_lrs keep setting the old lr at every step. The schedule is constant
    (see pipeline._common_args), so base lr == current lr; a decaying schedule would also need
    its position recomputed here.
    """
    inner = getattr(scheduler, "scheduler", scheduler)  # accelerate wraps the scheduler
    saved = [{k: g[k] for k in SETTINGS_KEYS if k in g} for g in optimizer.param_groups]
    base_lrs = list(inner.base_lrs) if inner is not None and hasattr(inner, "base_lrs") else None
    yield
    for group, values in zip(optimizer.param_groups, saved, strict=True):
        group.update(values)
    if base_lrs is not None:
        inner.base_lrs = base_lrs
        inner._last_lr = [g["lr"] for g in optimizer.param_groups]
