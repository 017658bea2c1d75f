"""The kernel every service stands on. It never imports a service."""
