"""The one error base class the CLI turns into a one-line message (no traceback)."""


class UserError(ValueError):
    """Caused by the user's input (file, config, endpoint); ``str(err)`` is one readable line."""
