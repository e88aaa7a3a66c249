"""The one exception type for bad user input: the CLI prints it as a single line and exits 1."""


class UserError(ValueError):
    """Input the user can fix (a path, a flag, a malformed file). Never a bug in gan-aug."""
