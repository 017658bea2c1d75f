"""A real OAuth 2.0 provider (Authlib's server on Flask) for tests of the platform as an OAuth client."""
