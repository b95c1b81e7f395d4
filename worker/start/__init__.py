"""The start step: a booking's livestream started at its instant (docs/DESIGN.md, "Launches").

``rules`` groups claims into launches (pure); ``claims`` confirms a launch's claims and writes
their attempts ahead, one statement each; ``launch`` carries a launch out; ``timer`` is the
process's launch thread, which sends each request at its instant. ``flow`` is the single start
(a claim that travels alone, or the longer path after an unclear call), ``recorder`` writes down
what its calls came to, and ``runs`` names what a start run works on and comes to.
"""
