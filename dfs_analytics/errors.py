"""The exceptions of dfs-analytics, in one tree, so callers catch at the level they care about.

``DFSError`` is the root; under it ``ConfigurationError`` (bad settings or arguments, before
any request), ``TransportError`` (no answer), ``APIError`` (an error status, one subclass per
kind), ``OfflineCacheMiss``, ``IncompleteDataError``, ``BusyError`` and ``DatasetError`` (the
dataset cannot be used as asked). The whole tree is drawn in ``docs/architecture.md``. Also
here: the statuses' hints and exception types (:func:`hint_for`, :func:`error_for_status`).
No exception ever contains the API key.

This module only defines the tree: it never raises, logs or does I/O itself, and never imports
the rest of the package (every module may import it).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd


class DFSError(Exception):
    """Base class of every error raised on purpose by dfs-analytics."""


class ConfigurationError(DFSError, ValueError):
    """Bad settings or arguments; raised before any request is sent."""


class TransportError(DFSError):
    """The server could not be reached, or the connection broke, even after retries."""

    def __init__(self, message: str, *, method: str = "", path: str = ""):
        super().__init__(message)
        self.method = method
        self.path = path


class OutcomeUnknownError(TransportError):
    """A write was sent but its answer was lost; it may or may not have been applied."""


class OfflineCacheMiss(DFSError):
    """Offline mode and the answer is not in the local cache."""


class IncompleteDataError(DFSError):
    """A listing did not add up: the rows collected differ from the server's ``count``."""


class InvalidCorrectionError(ConfigurationError):
    """A correction that the task cannot take (unknown task, value not allowed, never analysed).
    Nothing was sent."""


class AuditInputError(ConfigurationError, KeyError):
    """A frame lacks the columns an audit needs, or a ``by`` column does not exist."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class CampaignValidationError(ConfigurationError):
    """The plan has problems; nothing was sent. ``problems`` is the validation table."""

    def __init__(self, problems: pd.DataFrame):
        self.problems = problems
        lines = "; ".join(
            f"row {r.row}: {r.problem}" if r.row is not None and r.row == r.row else str(r.problem)
            for r in problems.head(5).itertuples()
        )
        more = f" (and {len(problems) - 5} more)" if len(problems) > 5 else ""
        super().__init__(
            f"the plan has {len(problems)} problem(s): {lines}{more}. Fix the plan (see "
            "Campaign.validate()); nothing was sent."
        )


class JournalError(ConfigurationError):
    """The journal file holds something that is not a campaign journal record: a line that is
    valid JSON but not an object, text that is not JSON, or bytes that are not UTF-8. Nothing
    was sent. ``path`` is the file and ``line`` the 1-based line number."""

    def __init__(self, path: str | Path, line: int, problem: str):
        self.path = Path(path)
        self.line = line
        super().__init__(
            f"journal {str(path)!r}, line {line}: {problem}. This is not a campaign journal, or "
            "it was damaged: give another journal file, or repair this one (nothing was sent)."
        )


class JournalMismatchError(ConfigurationError):
    """A campaign journal was written for another plan, or another site, than the campaign
    applying it. Nothing was sent: give the campaign a new journal file."""


class UnsafePathError(ConfigurationError):
    """A file or folder the toolkit would create, lock or change permissions of is a symbolic
    link (or not what it should be): it is never followed. ``path`` is the link."""

    def __init__(self, path: str | Path, what: str):
        self.path = Path(path)
        super().__init__(
            f"{what} {str(path)!r} is a symbolic link (or not a regular file/folder); the "
            "toolkit never follows links where it writes. Remove it, or choose another path."
        )


class BusyError(DFSError):
    """Another process (or another object in this one) holds the lock of a file the toolkit
    needs for itself, such as a campaign journal being applied, and the caller asked not to
    wait. Nothing was done. ``path`` is the lock file."""

    def __init__(self, path: str | Path, what: str):
        self.path = Path(path)
        super().__init__(
            f"{what} is in use by another process (lock {str(path)!r}); nothing was done. "
            "Wait for it to finish, or ask to wait for it (wait=True, or --wait on the "
            "command line)."
        )


class IncompleteDataWarning(UserWarning):
    """A listing's ``count`` and the rows collected disagree (see :class:`IncompleteDataError`)."""


class SkippedIdWarning(UserWarning):
    """The server listed work orders whose id the API cannot take as a URL path segment
    (empty, ``.``, ``..``, or containing ``/``): the sync kept their listed fields but could
    not read them (or their timeline) by id. The message names them."""


class DatasetError(DFSError):
    """The on-disk dataset (``dfs.open_dataset``) cannot be used as asked."""


class NotADatasetError(DatasetError):
    """The path holds no dfs-analytics dataset."""


class DatasetCorruptError(DatasetError):
    """A file of the dataset is damaged, truncated or missing."""


class SiteMismatchError(DatasetError):
    """The dataset was made from another site (base URL) than the client's."""


class VersionNotFoundError(DatasetError, KeyError):
    """``as_of`` names a version, or a time before the first version, that does not exist."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class VersionVacuumedError(VersionNotFoundError):
    """``as_of`` names a version whose files :meth:`Dataset.vacuum` removed: its row is still
    in the history, but its frames can no longer be read."""


class TableNotSyncedError(DatasetError):
    """A table that no sync up to the version read ever wrote: the dataset does not know
    its rows (it is not "0 rows"). The message says which sync writes it, e.g.
    ``dfs.sync(client, timelines=True)`` for the timeline. ``table`` is its name."""

    def __init__(self, message: str, table: str = ""):
        super().__init__(message)
        self.table = table


class ReadOnlyDatasetError(DatasetError):
    """A sync was asked of a dataset this process cannot write (read-only path)."""


class DatasetLocationError(DatasetError, ConfigurationError):
    """The dataset's path or URI cannot be used: a scheme deltalake cannot open (``http://``,
    ``ftp://``...), a ``file:`` URI of another host, or an object store (``s3://``,
    ``gs://``, ``az://``...) for which no credentials were given or found. Nothing was read
    or written."""


#: what to do next, per error status (an APIError's ``hint``)
STATUS_HINTS = {
    400: "Check the request's values against the messages above.",
    401: "Check the API key (Client(api_key=...) or DFS_API_KEY) and that it belongs to this "
    "site; keys are under Deployments > site > Credentials.",
    403: "Check the API key (Client(api_key=...) or DFS_API_KEY) and that it may access this site.",
    404: "Check the id or name; note that task and task-group ids change with the app version "
    "(names do not).",
    413: "Send a smaller input: images are limited to 5 MB and PDFs to 8 MB.",
    429: "The server is throttling requests: the client already slows down and paces itself; "
    "wait, or raise Client(retry_budget=...) to let it wait longer.",
}


class APIError(DFSError):
    """The server answered with an error status.

    Attributes: ``method``, ``path`` (URL path and query), ``status``, ``detail`` (the
    server's message, or a short excerpt of a non-JSON body), ``body`` (parsed JSON or None).
    """

    def __init__(
        self,
        *,
        method: str,
        path: str,
        status: int,
        detail: str,
        body: Any = None,
        hint: str | None = None,
    ):
        self.method = method
        self.path = path
        self.status = status
        self.detail = detail
        self.body = body
        self.hint = hint if hint is not None else hint_for(status)
        super().__init__(
            f"{method} {path} -> {status}: {detail}" + (f" {self.hint}" if self.hint else "")
        )


def default_hint(status: int) -> str:
    """What to do about an error status without a hint of its own in :data:`STATUS_HINTS`."""
    if status >= 500:
        return "The server failed; retry later. Reads are retried automatically."
    return ""


def hint_for(status: int) -> str:
    """What to do about an error status: its hint in :data:`STATUS_HINTS`, else
    :func:`default_hint` ("" when there is nothing to say)."""
    return STATUS_HINTS.get(status, default_hint(status))


class AuthenticationError(APIError):
    """401 or 403: the API key is missing, wrong, or not allowed on this site."""


class NotFoundError(APIError):
    """404: unknown work order, task, task group, or a page past the end."""


class ValidationError(APIError):
    """400: the server refused the request. ``errors`` maps field names to messages."""

    @property
    def errors(self) -> dict[str, list[str]]:
        if isinstance(self.body, dict):
            return {
                str(k): [str(m) for m in (v if isinstance(v, list) else [v])]
                for k, v in self.body.items()
            }
        return {"detail": [self.detail]}


class PayloadTooLargeError(APIError):
    """413: an input over its size limit (images 5 MB, PDFs 8 MB)."""


class ThrottledError(APIError):
    """429 even after retrying. ``retry_after`` is the server's advice in seconds, if any."""

    retry_after: float | None = None


class ServerError(APIError):
    """5xx even after retrying."""


class InvalidResponseError(APIError):
    """An answer the client cannot use, whatever its status: a body that is not JSON, nested
    too deep or larger than the client's cap once decompressed; a shape the client cannot read
    (``tasks`` that is not a list...); a redirect to another origin; or a listing whose pages
    never end or whose ``count`` cannot be right. Nothing from it was stored."""


def error_for_status(status: int) -> type[APIError]:
    """The :class:`APIError` subclass for an HTTP status."""
    if status in (401, 403):
        return AuthenticationError
    if status == 404:
        return NotFoundError
    if status == 400:
        return ValidationError
    if status == 413:
        return PayloadTooLargeError
    if status == 429:
        return ThrottledError
    if status >= 500:
        return ServerError
    return APIError
