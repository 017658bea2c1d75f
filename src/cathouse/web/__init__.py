"""The web pages: Cat House in a browser, rendered on the server (Jinja2 and htmx).

A client of the services' public HTTP API and nothing else: it imports only the kernel and
the contracts, and no service imports it. ``cathouse up`` serves it at ``/`` beside the API;
``cathouse serve web`` serves it alone (see :mod:`cathouse.web.app`).
"""
