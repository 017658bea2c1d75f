"""OAuth 2.0 installations: the owner grants access at the cat's provider, the platform keeps the tokens."""
