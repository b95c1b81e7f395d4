"""Webhooks the provider sends us: ``signature`` reads a delivery and checks its signature
against the provider's key; ``intake`` takes a delivery whose signature held in exactly once and
applies what it says through ``worker.bookings.observe``. The route is
``worker.http.provider_webhooks``.
"""
