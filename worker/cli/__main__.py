"""``python -m worker.cli``: the `livestreams` command, as the process harness starts it."""

from worker.cli.main import main

main()
