"""The `livestreams` command (``main``): a click group in ``main``, its command families in
``api`` (API keys and the HTTP server) and ``webhooks``, ``migrate`` for the schema, and
``tools`` for what every command shares."""

from worker.cli.main import cli, main

__all__ = ["cli", "main"]
