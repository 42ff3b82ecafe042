"""``detect serve``: the verification desk, a local web page and JSON API.

* :mod:`cli.web.app`: the FastAPI application (:func:`cli.web.app.create_app`).
* :mod:`cli.web.pool`: the analysis workers (the engine's :class:`cli.engine.WorkerPool`) for asyncio.
* ``static/``: the page, its script and styles (no external resources).

This package imports nothing heavy at import time, and :mod:`cli.web.pool`
needs no FastAPI.
"""
