"""Beam's state sampler, with a sampling period that does not hold up the end of every bundle.

A Beam SDK worker (the DirectRunner's FnApiRunner, in process or in its multi_processing workers)
starts a thread for every bundle it runs that samples which step is running, for Beam's msec
counters and its "operation ongoing" log lines, and joins that thread when the bundle ends. The
thread sleeps between samples for a period that starts at 1/100 of `sampling_period_ms` and grows
x1.2 per sample up to it, and nothing wakes it: the join waits out the current sleep. With Beam's
200 ms that is about a tenth of each bundle's own time, up to 200 ms, on the critical path of every
stage (a bundle's results go back to the runner only after it), and a build runs dozens of stages
one after the other. `shorten_sampling_period()` makes the period `SAMPLING_PERIOD_MS` in this
process and the workers it forks: the join then waits at most that, and the sampler wakes that
much more often without the GIL (its loop is Cython under `nogil`). Beam's msec counters get finer,
not worse; the build's own profile (`pipelines/profile.py`) times its stages itself.
"""

from __future__ import annotations

from apache_beam.runners.worker import statesampler

SAMPLING_PERIOD_MS = 10


def shorten_sampling_period() -> None:
    """Every `StateSampler` created after this in this process (and its forks) samples every
    `SAMPLING_PERIOD_MS` at most. Idempotent. Beam creates one per bundle processor with the
    default of `StateSampler.__init__`, which is bound when Beam's module is imported."""
    init = statesampler.StateSampler.__init__
    init.__defaults__ = (SAMPLING_PERIOD_MS,)
