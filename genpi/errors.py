"""The one exception type that reaches the user as a one-line message (exit code 2)."""


class GenpiError(Exception):
    """Bad input or an unmet precondition. The message names the problem and the fix.

    The CLI prints it as a single line on stderr and exits with code 2, without a traceback.
    """

    exit_code = 2

    def __init__(self, message: str):
        super().__init__(" ".join(str(message).split()))
