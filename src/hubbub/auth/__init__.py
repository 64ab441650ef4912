"""Authentication: JWTs, password hashing, and turning a request into an identity."""
