"""The one exception type charlstm raises for problems a user can act on."""


class CharlstmError(Exception):
    """A problem with the user's input or files, with a one-line message that says what to do."""


class TextError(CharlstmError):
    """A problem with the content of a text the caller handed in (a symbol the vocabulary lacks, too
    few symbols), where only the caller knows which file or option the text came from: the CLI
    puts that name in front of the message."""
