"""One error type for everything a user can get wrong: the CLI prints it as one line and exits non-zero."""


class TinymlError(Exception):
    """A problem with the user's input or environment (file, op, layer, board, budget), not a bug.

    The message must stand alone on one line and name the thing that is wrong. The CLI exits with 1.
    """


class UsageError(TinymlError):
    """The command line itself is wrong (a flag's value or a combination of flags): the CLI exits with 2,
    like argparse's own usage errors."""
