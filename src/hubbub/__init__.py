"""Hubbub: a real-time chat server (SSE, HTTP POST, durable history, resume without gaps)."""

__version__ = "0.1.0"
