"""berth: a container engine that speaks Docker's Engine API."""

__version__ = "0.1.0"
API_VERSION = "1.51"
MIN_API_VERSION = "1.24"
