"""The start step: launches prepared ahead of their instant (docs/DESIGN.md, "Launches").

``rules`` groups claims into launches (pure); ``claims`` confirms a launch's claims and writes
their attempts ahead, one statement each; ``launch`` carries a launch out; ``timer`` is the
process's launch thread, which sends each request at its instant.
"""
