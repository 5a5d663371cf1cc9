"""The one exception type charlstm raises for problems a user can act on."""


class CharlstmError(Exception):
    """A problem with the user's input or files, with a one-line message that says what to do."""
