"""The `fraud` command line and the demo: the program on top of every layer, imported by nothing.

One module per noun (data, features, model, monitor, serve, demo), each a Typer app that
`fraud.app` assembles. The platform's modules load inside the command that needs them:
importing all of them costs ~10 s (Feast ~5 s, MLflow and scikit-learn, Evidently), which
`fraud --help`, `fraud env` or `fraud model list` should not pay.
"""
