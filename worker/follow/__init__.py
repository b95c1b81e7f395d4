"""The follow step: a started livestream checked until it is live, stopped at its end, and ended.

``claims`` holds the conditional statements of a started or live row (claim, take back,
confirm, finish, end); ``rules`` decides check, stop or end (pure, table-tested); ``flow`` is
the track task that reads, asks the rules and writes. Observed statuses, from these checks and
from the provider's webhooks alike, are applied by ``worker.bookings.observe``.
"""
