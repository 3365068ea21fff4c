"""The ``digits`` command."""
