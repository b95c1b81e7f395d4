"""What runs the product on one machine with nothing real behind it: the fake RealtimeKit and
its parts (faults, lifecycle, webhooks), the demo and its webhook receiver, and the harness that
starts real worker, beat and serve processes. Product code never imports it; only the CLI's
`demo` and `fake-api` commands do."""
