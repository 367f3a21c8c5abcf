"""Server infrastructure shared by every domain: settings, connections, the clock, errors,
Redis keys and scripts, background loops, websockets, logging and metrics."""
