"""Support code for berth's tests: a private daemon, a raw API client, the leak checker.

Nothing here is a test; the fixtures in tests/e2e/conftest.py wire these pieces together.
"""
