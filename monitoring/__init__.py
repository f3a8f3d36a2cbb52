"""Monitoring: training (offline) against serving (online) distributions, metrics and alerts."""
