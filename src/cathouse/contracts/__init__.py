"""What the services must agree on, written once and typed.

A leaf package: every service may import it, and it imports no service (and not the kernel).
Producers build these models and consumers parse them; nothing here touches a database.
"""
