"""Learning-rate schedules of the runner, as a factor of ``train.lr`` per optimiser step.

- warm-up (``warmup_steps``, or ``warmup_epochs`` x steps per epoch): linear from ``warmup_start`` to 1;
- ``step``: x0.1 every ``lr_drop`` epochs (constant when ``lr_drop`` is None), Moment-DETR's schedule;
- ``cosine``: after the warm-up, half a cosine from 1 to 0 at the last step (ActionFormer's schedule).
"""

from __future__ import annotations

import math


def lr_factor(step: int, train, steps_per_epoch: int, total_steps: int) -> float:
    """The factor of step ``step`` (0-based) for the ``train`` section."""
    warm = train.warmup_steps or int(train.warmup_epochs * steps_per_epoch)
    if step < warm:
        f = train.warmup_start + (1 - train.warmup_start) * step / warm
    else:
        f = 1.0
        if train.schedule == "cosine":
            return 0.5 * (1 + math.cos(math.pi * min(1.0, (step - warm) / max(1, total_steps - warm))))
    if train.schedule == "step" and train.lr_drop:
        f *= 0.1 ** ((step // steps_per_epoch) // train.lr_drop)
    return f
