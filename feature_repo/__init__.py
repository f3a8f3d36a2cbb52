"""The feature repository: Feast definitions plus the one module of transforms they use."""
