"""The claims every flow takes on a row: the conditional UPDATEs of a claim and its lease, the
resend of claims that no run took up, and the heartbeat by which an owner says it is alive.

Starts and status checks use them as they are; webhook deliveries share the ``Claim`` value."""
