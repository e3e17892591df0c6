"""The error type for bad user input.

Tools catch :class:`NasError` and print its message as a single line, then exit
non-zero. Raise it with a message that says what is wrong and how to fix it.
"""


class NasError(Exception):
    """Bad input from the user: a config, a path, an architecture file."""


class ArchError(NasError):
    """An architecture that does not fit its search space."""
