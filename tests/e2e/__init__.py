"""End-to-end tests: berthd driven by the real docker CLI, docker-py and berth."""
