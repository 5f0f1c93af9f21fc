"""The one family of exceptions a user can cause.

Every error that bad input (parameters, a missing dataset, a malformed file) can raise derives from
:class:`WememError`. The CLI prints such an error as one line and exits with status 2; anything else
is a bug and keeps its traceback.
"""

from __future__ import annotations


class WememError(Exception):
    """A user-caused error. Its message names the field, the bad value and what is allowed."""


class ParamsError(WememError, ValueError):
    """A parameter is unknown or has a value outside its allowed set or range."""


class DatasetMissingError(WememError, FileNotFoundError):
    """A dataset's files are not where wemem looked; the message says how to obtain them."""


class DataFormatError(WememError, ValueError):
    """A data file exists but does not have the expected format (shape, keys, labels, checksum)."""
