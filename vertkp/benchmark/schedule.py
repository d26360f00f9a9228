"""A training schedule stretched or shrunk to a CPU-time budget (``vertkp benchmark learning
--minutes``): plain arithmetic on iteration counts, no torch."""
from __future__ import annotations

import math

__all__ = ["schedule_for_minutes"]


def schedule_for_minutes(minutes: float, s_per_iter: float, max_iter: int, steps, warmup_iters: int,
                         eval_period: int, checkpoint_period: int) -> dict:
    """The schedule that trains ``minutes`` of steps of ``s_per_iter`` seconds, shaped as the
    config's (``max_iter``, LR ``steps``, ``warmup_iters``, ``eval_period``, ``checkpoint_period``;
    0 periods stay 0): every iteration count scaled by the same factor, rounded (the periods up, so that
    the last periodic evaluation does not fall a step before the final one), at least 1.

    Returns:
        {config key: value} for SOLVER.MAX_ITER, SOLVER.STEPS, SOLVER.WARMUP_ITERS,
        TEST.EVAL_PERIOD, SOLVER.CHECKPOINT_PERIOD.

    Raises:
        ValueError: minutes or s_per_iter not positive, or max_iter < 1.
    """
    if not (minutes > 0 and s_per_iter > 0 and max_iter >= 1):
        raise ValueError(f"a schedule needs minutes > 0, s_per_iter > 0 and max_iter >= 1, got {minutes}, "
                         f"{s_per_iter}, {max_iter}")
    new_max = max(1, int(round(minutes * 60.0 / s_per_iter)))

    def scaled(n: int, up: bool = False) -> int:
        if n <= 0:
            return 0
        x = n * new_max / max_iter
        return max(1, min(new_max, math.ceil(x - 1e-9) if up else int(round(x))))

    return {"SOLVER.MAX_ITER": new_max, "SOLVER.STEPS": tuple(scaled(int(n)) for n in steps if n < max_iter),
            "SOLVER.WARMUP_ITERS": scaled(warmup_iters), "TEST.EVAL_PERIOD": scaled(eval_period, up=True),
            "SOLVER.CHECKPOINT_PERIOD": scaled(checkpoint_period, up=True)}
