"""Profiles (``/users/me``) and the admin's management of accounts."""
