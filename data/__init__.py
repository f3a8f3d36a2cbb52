"""Data sources: the raw contract, the simulator, the raw store and the platform settings."""
