"""Interleaved timing: on a shared, noisy machine the baseline and the candidates are timed
in alternation (A, B, C, A, B, C, ...), so a burst of load from other processes hits all."""
from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from typing import Callable


@dataclass
class InterleavedTiming:
    """Seconds per call of each variant; the first variant is the baseline."""

    seconds: dict[str, list[float]]
    first_call_s: dict[str, float]  # includes torch.compile's compilation when enabled

    def ips(self, name: str, batch: int) -> float:
        """Images per second of the median call."""
        return batch / statistics.median(self.seconds[name])

    def paired_speedup(self, name: str) -> float:
        """Median over rounds of (baseline time / variant time) within the same round."""
        baseline = next(iter(self.seconds.values()))
        return statistics.median(b / v for b, v in zip(baseline, self.seconds[name]))

    def median_ms(self, name: str) -> float:
        return statistics.median(self.seconds[name]) * 1000.0


def _timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def time_interleaved(variants: dict[str, Callable[[], object]], rounds: int,
                     warmup: int = 2) -> InterleavedTiming:
    """Time `rounds` alternating calls of every variant after `warmup` untimed calls each."""
    if rounds < 1 or warmup < 1:
        raise ValueError(f"rounds and warmup must be at least 1, got {rounds}, {warmup}")
    first = {}
    for name, fn in variants.items():
        first[name] = _timed(fn)
        for _ in range(warmup - 1):
            fn()
    seconds: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(rounds):
        for name, fn in variants.items():
            seconds[name].append(_timed(fn))
    return InterleavedTiming(seconds, first)

