"""A dataset's files handed to out-of-core engines: DuckDB views over Arrow datasets, Dask
DataFrames with one partition per data file (each file checked against its recorded SHA-256
before it is decoded), and Polars LazyFrames over each table's Delta version.

It reads through a :class:`Dataset` only (which files make a version is its business), and
never writes.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import pandas as pd
import pyarrow as pa
import pyarrow.dataset as pads
import pyarrow.fs as pafs

from ..errors import ConfigurationError, DatasetCorruptError
from .arrow import EXTRA, POS, SPECS, TABLES, arrow_schema, from_arrow
from .integrity import damaged_file, file_problem
from .location import short_error, table_uri

if TYPE_CHECKING:
    from .reader import Dataset


def duckdb(dataset: Dataset, as_of: Any = None, connection: Any = None) -> Any:
    """A DuckDB connection (``connection``, or a new one) with views ``work_orders``,
    ``tasks``, ``timeline`` and ``task_groups`` over the dataset's files at ``as_of``
    (see :meth:`Dataset.duckdb`)."""
    import duckdb

    con = connection if connection is not None else duckdb.connect()
    for table in TABLES:
        data = dataset.arrow_dataset(table, as_of)
        if data is None:
            data = pads.dataset(arrow_schema(table).empty_table())
        con.register(f"_dfs_{table}", data)
        con.execute(f'CREATE OR REPLACE VIEW {table} AS SELECT * FROM "_dfs_{table}"')
    return con


def to_dask(
    dataset: Dataset, name: str, as_of: Any = None, columns: Sequence[str] | None = None
) -> Any:
    """A Dask DataFrame over the table's files at ``as_of``, one partition per file (see
    :meth:`Dataset.to_dask`)."""
    try:
        import dask.dataframe as dd
        from dask import delayed
    except ImportError:
        raise ConfigurationError(
            "Dataset.to_dask needs Dask: pip install 'dfs-analytics[dask]'."
        ) from None
    dataset.check_synced(name, as_of)
    files = dataset.files(name, as_of)
    meta = from_arrow(name, arrow_schema(name).empty_table(), columns, categories=False)
    if not files:
        return dd.from_pandas(meta, npartitions=1)
    read_cols = None if columns is None else [*columns, POS, EXTRA]
    known = set(arrow_schema(name).names)
    if read_cols is not None:
        read_cols = [c for c in dict.fromkeys(read_cols) if c in known]
    root = table_uri(dataset.location, name)
    base = root.rstrip("/") + "/"
    source = TableSource(root, dataset.storage_options)
    sums = dataset.versions.checksums().get(name, {})
    parts = []
    for f in files:
        path = urllib.parse.unquote(f[len(base) :]) if f.startswith(base) else f
        parts.append(delayed(read_file)(name, source, path, read_cols, columns, sums.get(path)))
    return dd.from_delayed(parts, meta=meta, verify_meta=False)


def to_polars(dataset: Dataset, name: str, as_of: Any = None) -> Any:
    """A Polars LazyFrame of the table at the dataset version ``as_of`` (see
    :meth:`Dataset.to_polars`)."""
    try:
        import polars as pl
    except ImportError:
        raise ImportError(
            "Dataset.to_polars needs Polars: pip install 'dfs-analytics[polars]'."
        ) from None
    dataset.check_synced(name, as_of)
    version = dataset.table_versions(as_of)[name]
    names = [c.name for c in SPECS[name]]
    if version is None:  # synced, but no row yet: the table was never created
        return pl.from_arrow(arrow_schema(name).empty_table().select(names)).lazy()  # type: ignore[union-attr]
    dataset.open_version(name, version)  # a vacuumed or damaged version is a typed error
    frame = pl.scan_delta(
        table_uri(dataset.location, name),
        version=version,
        storage_options=dataset.storage_options,
    )
    return frame.select(names)


class TableSource:
    """Where a Dask task reads a table's files: the table's URI and the dataset's storage
    options (credentials included: a task must read them in a worker process, so they are
    pickled into the task graph), opened as deltalake's own filesystem, the one every other
    read of the dataset uses. Its ``repr`` names the option keys, never their values."""

    def __init__(self, uri: str, storage_options: Mapping[str, str] | None) -> None:
        self.uri = uri
        self.storage_options = dict(storage_options) if storage_options else None

    def __repr__(self) -> str:
        keys = sorted(self.storage_options or {})
        return f"TableSource({self.uri!r}, storage_options=<{', '.join(keys)}>)"

    def filesystem(self) -> pafs.FileSystem:
        """The table's folder as a pyarrow filesystem (paths relative to it)."""
        from deltalake.fs import DeltaStorageHandler

        return pafs.PyFileSystem(DeltaStorageHandler(self.uri, self.storage_options))


def read_file(
    table: str,
    source: TableSource,
    path: str,
    read_cols: Sequence[str] | None,
    columns: Sequence[str] | None,
    checksum: str | None = None,
) -> pd.DataFrame:
    """One data file of ``table`` (``path``, relative to the table's folder ``source``) as a
    pandas frame (categoricals as plain strings), checked against ``checksum`` (its recorded
    SHA-256) first when given: one Dask partition."""
    import pyarrow.parquet as pq

    fs = source.filesystem()
    where = f"{source.uri.rstrip('/')}/{path}"
    if checksum is not None:
        problem = file_problem(fs, path, checksum)
        if problem is not None:
            raise damaged_file(where, problem)
    try:
        data = pq.read_table(
            path,
            filesystem=fs,
            columns=list(read_cols) if read_cols else None,
            page_checksum_verification=True,
        )
    except (OSError, pa.ArrowException) as exc:
        raise DatasetCorruptError(
            f"{where}: a data file is damaged ({short_error(exc)})."
        ) from None
    return from_arrow(table, data, columns, categories=False)
