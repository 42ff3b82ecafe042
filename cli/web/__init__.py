"""``detect serve``: the verification desk, a local web page and JSON API.

* :mod:`cli.web.app`: the FastAPI application (:func:`cli.web.app.create_app`).
* :mod:`cli.web.pool`: the worker processes that run the analysis.
* ``static/``: the page, its script and styles (no external resources).

This package imports nothing heavy at import time: worker processes import
:mod:`cli.web.pool` without FastAPI.
"""
