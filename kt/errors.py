"""Errors about the user's input: the CLI prints them as one line, without a traceback."""


class KTInputError(ValueError):
    """Bad or missing input (a data file, a row, a column, a checkpoint): the message says what and where."""
