"""The HTTP API (`livestreams serve`): thin FastAPI adapters over worker.bookings.booking and
friends."""
