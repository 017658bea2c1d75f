"""The proxy service: mediate every call to a cat's API."""
