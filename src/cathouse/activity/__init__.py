"""The activity service: feeds and statistics built from domain events."""
