"""distributed's P2P shuffle run for the blob tables of `dask_p2p.partition_blobs`, sharded without pandas.

distributed's `DataFrameShuffleRun` shards each transfer's table by destination worker with a pandas
merge of the table with the worker of every partition, a conversion to Arrow and a sort: a fixed
cost per transfer task whatever it carries, and a build's transfers are thousands of small tables
(a blob table has a row per output partition); a hand profile of a build's workers showed that merge
among their costs (`benchmarks/dask_runner_speed.py --baseline item-rows` measures the change with
the blobs). Here the transfer task hands
over an Arrow table, and each worker's rows are picked with a lookup of the partitions' workers.
An output partition is handed to its unpack task as the Arrow table of the shards received, not
sorted into a copy and made a pandas table: `dask_p2p.groups_of_blobs` reads its rows in the order
of their pieces itself, one part of the partition at a time, so the unpack holds the received
table once. Everything else (the comms, the disk buffers, the receiving side) is distributed's own.
Imported only where `dask_p2p.available()`: these are distributed's internals.
"""

from __future__ import annotations

import dataclasses
import typing as t

from distributed.shuffle._arrow import concat_tables, serialize_table
from distributed.shuffle._core import ShuffleRun
from distributed.shuffle._exceptions import DataUnavailable
from distributed.shuffle._shuffle import DataFrameShuffleRun, DataFrameShuffleSpec

if t.TYPE_CHECKING:
    import pyarrow as pa
    from distributed.shuffle._worker_plugin import ShuffleWorkerPlugin


class BlobShuffleRun(DataFrameShuffleRun):
    """A `DataFrameShuffleRun` whose input partitions are Arrow tables with the run's partition
    column, sharded by worker with a lookup instead of a pandas merge."""

    _worker_of_partition: t.Any = None
    """numpy: each output partition's worker, as a code of `worker_for`'s categories (made once)."""

    def validate_data(self, data: t.Any) -> None:
        import pyarrow as pa

        if not isinstance(data, pa.Table) or self.column not in data.column_names:
            raise TypeError(f"a blob shuffle takes Arrow tables with a {self.column!r} column, got {type(data)}")

    def _shard_partition(self, data: pa.Table, partition_id: int, **kwargs: t.Any) -> dict[str, tuple[int, bytes]]:
        import numpy as np

        if self._worker_of_partition is None:
            lookup = np.empty(int(self.worker_for.index.max()) + 1, dtype=np.int64)
            lookup[self.worker_for.index.to_numpy()] = self.worker_for.cat.codes.to_numpy()
            self._worker_of_partition = lookup
        codes = self._worker_of_partition[data[self.column].to_numpy()]
        workers = self.worker_for.cat.categories
        return {workers[code]: (partition_id, serialize_table(data.filter(codes == code)))
                for code in np.unique(codes)}

    def _get_output_partition(self, partition_id: int, key: t.Any, **kwargs: t.Any) -> pa.Table:
        """The shards this worker received for the partition, concatenated (no copy) in the order
        they were received, with distributed's column of each row's input piece."""
        try:
            return concat_tables(self._read_from_disk((partition_id,)))
        except DataUnavailable:  # no transfer sent the partition anything
            import pyarrow as pa

            return pa.Table.from_pandas(self.meta.drop(columns=self.column), preserve_index=False)


@dataclasses.dataclass(frozen=True)
class BlobShuffleSpec(DataFrameShuffleSpec):
    """`DataFrameShuffleSpec` whose runs are `BlobShuffleRun`s."""

    def create_run_on_worker(self, run_id: int, span_id: str | None, worker_for: dict[int, str],
                             plugin: ShuffleWorkerPlugin) -> ShuffleRun:
        run = super().create_run_on_worker(run_id, span_id, worker_for, plugin)
        run.__class__ = BlobShuffleRun  # the same state: BlobShuffleRun adds methods and a lazy lookup only
        return run
