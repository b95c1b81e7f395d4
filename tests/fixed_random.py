"""A random source for table tests of jittered decisions."""

from __future__ import annotations

import random


class Fixed(random.Random):
    """Always draws ``value``: the jitter becomes a known number."""

    def __init__(self, value: float) -> None:
        super().__init__(0)
        self.value = value

    def random(self) -> float:
        return self.value
