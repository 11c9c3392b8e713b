"""The benchmark harness: ``edgekd bench --device PROFILE``.

Modules: ``timing`` (warm-up + timed loop, backend-agnostic), ``e2e`` (camera frame to overlay),
``memory``, ``power`` + ``tegrastats`` (energy), ``thermal``, ``hostinfo``, ``accuracy``,
``worker`` (one cell in a fresh process), ``runner`` (the matrix, resume), ``remote`` (ssh).
None of them imports a runtime: sessions come from the backend registry. Importing this package
is cheap (nothing is imported here).
"""
