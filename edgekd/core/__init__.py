"""The ground floor: what every other unit uses and that imports nothing of edgekd but ``errors``.

``host`` (facts about this machine), ``hostprobe`` (its measured peaks), ``timing`` (warm-up and
timed loops), ``subnormal`` (subnormal masks), ``budget`` (the real-time budget check), ``suggest``
("did you mean" near matches), ``manifest`` (the exported artifact's manifest). Nothing here
imports a layer above it (docs/design.md has the map; ``tools/import_graph.py`` checks it).
"""
