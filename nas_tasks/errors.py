"""The error type for bad user input, and the one way to quote an error in one line.

Tools catch :class:`NasError` and print its message as a single line, then exit
non-zero. Raise it with a message that says what is wrong and how to fix it;
:func:`first_line` quotes the error that caused it.
"""


class NasError(Exception):
    """Bad input from the user: a config, a path, an architecture file."""


class ArchError(NasError):
    """An architecture that does not fit its search space."""


def first_line(error: BaseException, limit: int | None = 300) -> str:
    """``error``'s message on one line, for a one-line error that quotes it.

    Its first line, or all its lines when the first only introduces the rest
    (ends with ':', as torch's ``Error(s) in loading state_dict for Net:``
    before the keys), whitespace collapsed and cut at ``limit`` characters
    (None: uncut). A KeyError's message without the quotes ``str()`` adds; the
    error's type when it has no message.
    """
    text = error.args[0] if isinstance(error, KeyError) and error.args else error
    lines = [line.strip() for line in str(text).splitlines() if line.strip()]
    if not lines:
        return type(error).__name__
    line = ' '.join(lines if lines[0].endswith(':') else lines[:1])
    line = ' '.join(line.split())
    return line if limit is None or len(line) <= limit else line[:limit] + '...'
