"""The one error type users see: a single line naming the problem and the fix, exit code 2."""


class BenchError(Exception):
    """Bad input or a refused operation. ``str(err)`` is the whole message, one line."""

    exit_code = 2

    def __init__(self, problem: str, fix: str | None = None):
        message = problem if fix is None else f"{problem} ({fix})"
        super().__init__(message.replace("\n", " "))


class BenchErrors(BenchError):
    """Several bad inputs found in one check (e.g. every bad value of a grid): one line each."""

    def __init__(self, lines: list[str]):
        self.lines = [line.replace("\n", " ") for line in lines]
        Exception.__init__(self, "\n".join(self.lines))
