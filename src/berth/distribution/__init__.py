"""The registry client inside berthd: pull, push and login against registries that
speak the OCI distribution spec (Docker's Registry HTTP API v2).

It resolves a reference to registry endpoints (mirrors, insecure registries, TLS
from certs.d), answers the registry's auth challenges, fetches and pushes manifests
and blobs through berth.httpclient, and turns a pull into layers and an image in the
stores (and an image's layers back into blobs for a push). It serves no HTTP: the
Engine API routes in berth.api call it.
"""
