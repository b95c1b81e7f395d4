"""The RealtimeKit API as this product calls it: the client, its answers read and classified,
the call rows written ahead of each call, the token's rate limit, and when to try again."""
