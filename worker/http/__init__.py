"""The HTTP API (`livestreams serve`): thin FastAPI adapters over worker.booking and friends."""
