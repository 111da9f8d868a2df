"""berth-registry: an image registry server (the OCI distribution spec 1.1, Docker's
Registry HTTP API v2), a program of its own as distribution/registry is Docker's.

It stores blobs and manifests content-addressed on disk, serves them over aiohttp,
checks htpasswd or token auth, and collects garbage. It loads nothing of berthd.
"""
