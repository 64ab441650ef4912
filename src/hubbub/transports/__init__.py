"""Transports: thin adapters from a connection kind (SSE, …) to the one hub."""
