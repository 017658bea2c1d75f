"""The auth service: accounts, tokens, roles, profiles and forward-auth."""
