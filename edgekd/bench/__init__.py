"""The benchmark harness: ``edgekd bench --device PROFILE``.

Modules: ``e2e`` (camera frame to overlay), ``memory``, ``power`` + ``tegrastats`` (energy),
``thermal``, ``accuracy``,
``worker`` (one cell in a fresh process), ``runner`` (the matrix, resume), ``remote`` (ssh).
The timing core and the host facts are ground floor (``edgekd.core.timing``, ``edgekd.core.host``).
None of them imports a runtime: sessions come from the backend registry. Importing this package
is cheap (nothing is imported here).
"""
