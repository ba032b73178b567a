"""An S3 dataset whose options turn off conditional writes is refused for writing, before any
request, unless the user says this process is its only writer."""

from __future__ import annotations

import pytest

from dfs_analytics.dataset import Writer
from dfs_analytics.dataset.locks import check_conditional_writes, split_options
from dfs_analytics.errors import DatasetLocationError

CREDS = {"AWS_ACCESS_KEY_ID": "k", "AWS_SECRET_ACCESS_KEY": "s", "AWS_REGION": "us-east-1"}


@pytest.mark.parametrize(
    "unsafe",
    [{"AWS_S3_ALLOW_UNSAFE_RENAME": "true"}, {"aws_conditional_put": "disabled"}],
)
def test_unsafe_s3_options_are_refused_before_any_request(unsafe: dict[str, str]) -> None:
    with pytest.raises(DatasetLocationError, match="single_writer"):
        Writer("s3://bucket/site", "https://x.test", storage_options={**CREDS, **unsafe})


def test_the_environment_counts_too(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_S3_ALLOW_UNSAFE_RENAME", "true")
    with pytest.raises(DatasetLocationError, match="conditional writes"):
        check_conditional_writes("s3://bucket/site", CREDS, single_writer=False)
    check_conditional_writes("s3://bucket/site", CREDS, single_writer=True)
    check_conditional_writes("gs://bucket/site", CREDS, single_writer=False)  # always atomic
    check_conditional_writes("/tmp/site", None, single_writer=False)


def test_the_single_writer_option_is_taken_out_of_the_storage_options() -> None:
    options, single = split_options({**CREDS, "Dfs_Single_Writer": "true"})
    assert single and options == CREDS
    assert split_options(CREDS) == (CREDS, False)
    assert split_options(None) == (None, False)
    unsafe = {**CREDS, "AWS_S3_ALLOW_UNSAFE_RENAME": "true"}
    options, single = split_options({**unsafe, "dfs_single_writer": "1"})
    check_conditional_writes("s3://bucket/site", options, single)  # opted in: no error
