"""Errors that are part of the toolkit's interface: each carries a one-line message meant for the user."""


class ExtremeBertError(Exception):
    """Base class: the message says what is wrong and how to fix it."""


class ConfigError(ExtremeBertError):
    """The configuration is invalid. ``problems`` holds one line per problem (all of them, not only the first)."""

    def __init__(self, problems):
        if isinstance(problems, str):
            problems = [problems]
        self.problems = list(problems)
        super().__init__("; ".join(self.problems))


class DataError(ExtremeBertError):
    """Input data (a corpus, a GLUE folder, a samples folder) is missing or malformed."""


def first_line(error: BaseException) -> str:
    """The first line of a library's error message (its type name when it has none): what a one-line message quotes."""
    return (str(error).strip().splitlines() or [type(error).__name__])[0]
