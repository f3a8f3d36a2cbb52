"""Shared contracts, at the bottom of the layers: settings, the transaction schema, the scoring
event, the decision policy, the registry's conventions, the prediction log's format and the
file helpers. Imports third-party libraries only; every other package may import it."""
