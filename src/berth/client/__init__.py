"""The Engine API client that `berth`, `berth compose` and tests share: plain HTTP/1.1 over
a UNIX socket or TCP, no daemon internals."""
