"""Routers per resource: scoring, the served model, health."""
