"""Managed (v2) plugins: a plugin is a rootfs and a config.json, kept under the data
root, enabled by running its entrypoint as a task, reached on the UNIX socket it makes
in /run/docker/plugins, and used through the interfaces it declares (volume drivers)."""
