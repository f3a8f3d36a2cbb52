"""`python -m fraud ...`: the same as the `fraud` command."""

from fraud.app import app

app()
