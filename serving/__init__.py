"""Serving: the FastAPI scorer, the `fraud` command line and the end-to-end demo."""
