"""Bookings as callers see them: book, reschedule, cancel, list and show, the times they type,
and the booking row's own transitions (claimed, started, observed, ended)."""
