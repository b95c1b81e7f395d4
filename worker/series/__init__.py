"""Recurring series: a rule whose occurrences are ordinary bookings (rules: pure expansion;
claims: the conditional statements; flow: add, edit, cancel and the maker)."""
