"""inventory domain."""
