"""A multi_processing worker's memory: what a bundle freed goes back to the system when the bundle
ends, and what a bundle writes leaves it in small pieces.

A worker runs the build's stages one bundle after another, and each bundle allocates and frees
hundreds of MB of small objects (documents, shingle sets, band keys). glibc's malloc keeps most of
what is freed inside its heaps, so the worker's RSS only ever grew, stage after stage (a probe
that read each worker's /proc status after every stage of a 100,000-document build saw it climb
in nearly every stage and never come down). `malloc_trim(0)` after each bundle returns the free
pages: `benchmarks/scale.py --docs 25000 100000 --runner mp`, the largest worker's peak 875 → 791
MiB and 1,369 → 1,158 MiB, in no more time (59/199 s before, 54/187 s after; one run each). Only
where the C library has `malloc_trim` (glibc); elsewhere nothing changes.

Beam buffers each output of a bundle until it holds 10 MB before sending it to the runner: a fused
stage with a dozen outputs (the build's first: read, filters, signatures, tallies, drops) held over
100 MB of encoded output at a time, and its input pieces were as large, too large for the runner
to cut into small bundles (`bounded_bundles`). A worker now flushes at `OUTPUT_FLUSH_BYTES`.

The driver of a multi_processing run receives those pieces, and sends each bundle's input, in
blocks of megabytes that glibc would otherwise serve from its heaps once one of them has been freed:
while the pipeline runs it maps each block of 1 MB or more on its own (`map_large_blocks`).
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import functools
import os
import time
from collections.abc import Callable, Iterator
from typing import Any

from apache_beam.runners.worker import data_plane, sdk_worker

OUTPUT_FLUSH_BYTES = 2 << 20
"""A bundle's output to one PCollection is sent once it holds this much (Beam's default: 10 MB).
`benchmarks/scale.py --docs 25000 100000 --runner mp`, with this, the smaller bundles and the
compact mixture histograms (one run each): the largest worker 684 -> 838 MiB, against 787 -> 1,060
MiB before, in no more time (45/180 s against 58/185 s)."""


def _libc_function(name: str, argtypes: list[Any]) -> Callable[..., int] | None:
    """A function of the C library (returning an int), where it has one."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c"))
    except OSError:
        return None
    function = getattr(libc, name, None)
    if function is not None:
        function.argtypes, function.restype = argtypes, ctypes.c_int
    return function


MALLOC_TRIM: Callable[[int], int] | None = _libc_function("malloc_trim", [ctypes.c_size_t])
MALLOPT: Callable[[int, int], int] | None = (
    _libc_function("mallopt", [ctypes.c_int, ctypes.c_int])
    if MALLOC_TRIM is not None else None)  # not glibc: its parameters' numbers mean nothing there

M_MMAP_THRESHOLD = -3
"""glibc's `mallopt` parameter (malloc.h): blocks this large or larger are mapped on their own."""
GLIBC_MMAP_THRESHOLD = 128 << 10
"""glibc's initial value of `M_MMAP_THRESHOLD`."""
DRIVER_MMAP_THRESHOLD = 1 << 20
"""The multi_processing driver's fixed `M_MMAP_THRESHOLD` while a pipeline runs (`map_large_blocks`)."""


def user_mmap_threshold() -> bool:
    """Whether this process's environment sets glibc's mmap threshold itself."""
    return "MALLOC_MMAP_THRESHOLD_" in os.environ or "mmap_threshold" in os.environ.get("GLIBC_TUNABLES", "")


@contextlib.contextmanager
def map_large_blocks(threshold: int = DRIVER_MMAP_THRESHOLD) -> Iterator[bool]:
    """While the block runs, a block of `threshold` bytes or more that no heap of this process has
    free space for is a mapping of its own, returned to the system when freed, rather than growth of
    a heap; yields whether the threshold could be set (glibc).

    By default glibc raises its threshold to the size of each mapped block freed (up to 32 MB), so
    after the first 2 MB chunk freed every later one grew the heaps instead. The multi_processing
    driver allocates and frees such blocks all through a build (the workers' 2 MB output chunks as
    they arrive, each bundle's encoded input, a grouping's values read back) on several threads, and
    the free space they left in glibc's heaps stayed resident between the blocks still in use (a
    by-hand probe with `mallinfo2` found more free than used in the heaps at the end of a build),
    and the driver's peak grew with the corpus. Setting a threshold turns glibc's sliding
    one off for the process: `benchmarks/scale.py` (defaults, 50,000 → 200,000 documents) gave the
    driver 579 → 704 MiB with it against 656 → 852 before (docs/measurements.md). Afterwards the
    threshold is glibc's initial value again, still fixed. A threshold the user gave glibc
    (`MALLOC_MMAP_THRESHOLD_`, or `glibc.malloc.mmap_threshold` in `GLIBC_TUNABLES`) is theirs: it
    is left as it is, and this yields False."""
    if user_mmap_threshold() or MALLOPT is None or not MALLOPT(M_MMAP_THRESHOLD, threshold):
        yield False
        return
    try:
        yield True
    finally:
        MALLOPT(M_MMAP_THRESHOLD, GLIBC_MMAP_THRESHOLD)


TRIM_INTERVAL_S = 0.5
"""`trim_heap` trims at most this often: a trim walks the whole heap (a few ms at a GB)."""
_last_trim = [0.0]


def trim_heap() -> None:
    """`malloc_trim(0)` at most every `TRIM_INTERVAL_S` in this process: for a worker whose units of
    work are many and short (the DaskRunner's tasks, `dask_bundles.TRIM_HEAP`), where trimming after
    every one, as after every bundle here, would cost more than it returns."""
    now = time.monotonic()
    if MALLOC_TRIM is not None and now - _last_trim[0] >= TRIM_INTERVAL_S:
        _last_trim[0] = now
        MALLOC_TRIM(0)


def trim_after_each_bundle() -> bool:
    """Make this process's Beam SDK worker trim the heap after every bundle (idempotent); whether it
    can (glibc)."""
    if MALLOC_TRIM is None:
        return False
    process_bundle = sdk_worker.SdkWorker.process_bundle
    if getattr(process_bundle, "trims_after", False):
        return True

    @functools.wraps(process_bundle)
    def trimmed(self: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return process_bundle(self, *args, **kwargs)
        finally:
            MALLOC_TRIM(0)

    trimmed.trims_after = True  # type: ignore[attr-defined]  # marks the wrapper
    sdk_worker.SdkWorker.process_bundle = trimmed  # type: ignore[method-assign]  # Beam's worker, per bundle
    return True


def flush_outputs_at(size: int = OUTPUT_FLUSH_BYTES) -> None:
    """Make this process's Beam data channels send a bundle's output every `size` bytes: the
    default of Beam's buffering output streams, which `ClosableOutputStream.create` builds without
    naming a size."""
    for stream in (data_plane.SizeBasedBufferingClosableOutputStream,
                   data_plane.TimeBasedBufferingClosableOutputStream):
        init = stream.__init__
        code = init.__code__
        names = code.co_varnames[1:code.co_argcount]
        defaults = list(init.__defaults__ or ())
        index = names.index("size_flush_threshold") - (len(names) - len(defaults))
        defaults[index] = size
        init.__defaults__ = tuple(defaults)


GC_THRESHOLDS = (50_000, 20, 100)
"""CPython's cyclic collector's thresholds (`gc.set_threshold`) in each Dask worker while a build
runs (`dask_worker_gc`); CPython's own are (700, 10, 10). With those a worker collected its
youngest objects every 700 allocations and all of them (a full collection visits every object the
process holds) whenever the survivors had grown by a quarter: a worker makes and keeps objects by
the hundred thousand (a grouping's unpacked items, a partition's documents, the task results it
holds), so full collections came often and each cost the whole heap, the more the more it held.
`benchmarks/dask_runner_speed.py --baseline gc` (the workers' collector timed by
`DaskCluster.gc_timed`): at 32,000 documents in 1,000-document files the collector 7.1-7.5 → 1.1-1.2
s, the runner's CPU x0.91, wall x0.91 (two runs each); at 250,000 documents
(`--docs-per-file 32000`, one run each) 101.3 → 9.4 s, the runner's CPU x0.63, wall x0.81, the largest
worker x1.03. A build's objects hold few
reference cycles: the young collections, one per 50,000 allocations, still free them, and a full
collection is still considered after every 100 of the middle generation's. Not in the
multi_processing workers, whose bundles leave little behind: there these thresholds cost CPU
(`benchmarks/paired_builds.py --docs 20000`, the workers with them against without: x1.043)."""

