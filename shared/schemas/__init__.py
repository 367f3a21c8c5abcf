"""API schemas the server returns and the apps read (pydantic; no server imports), one
module per domain: import from the domain module (``shared.schemas.orders``, ...)."""
