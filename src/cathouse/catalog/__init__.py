"""The catalog service: publish, moderate, search and review cats."""
