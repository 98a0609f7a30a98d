"""Errors about the user's input: the CLI prints them as one line, without a traceback."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager


class InputError(ValueError):
    """Bad or missing input (a data file, a row, a column, a checkpoint): the message says what and where."""


@contextmanager
def one_line_errors(prog: str) -> Iterator[None]:
    """Bad input is the user's to fix: ``{prog}: error: ...`` on one line and exit code 2, no traceback.
    ``KT_TRACEBACK=1`` shows the stack."""
    try:
        yield
    except InputError as err:
        if os.environ.get("KT_TRACEBACK"):
            raise
        print(f"{prog}: error: {err}", file=sys.stderr)
        sys.exit(2)


def input_error_in(err: BaseException) -> InputError | None:
    """The InputError that caused ``err``, if any: jsonargparse wraps what a class's ``__init__`` raised in
    its own ValueError (one per Union subtype tried), and the user should see kt's message, not that."""
    seen: set[int] = set()
    while err is not None and id(err) not in seen:
        if isinstance(err, InputError):
            return err
        seen.add(id(err))
        err = err.__cause__ or err.__context__
    return None
