"""The capacity forecast: which booked instants one API token's rate budget cannot start on
time (rules: pure; forecast: over the database)."""
