"""Webhooks we send to the platform's endpoints (the outbound side).

``outbox`` writes an event and its deliveries in the transaction of the state change;
``claims`` holds a delivery's conditional statements; ``rules`` decides what an answer means and
when to try again (pure, table-tested); ``sender`` carries one delivery out, signed by
``signing`` and guarded by ``ssrf``. ``endpoints`` and ``present`` are what ops and platforms
manage and read; ``retention`` prunes the webhook logs past their time.
"""
