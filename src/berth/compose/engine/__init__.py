"""`berth compose`'s engine: a loaded project made real through the Engine API.

Owns: compose's names and labels and config hashes (labels.py, equal to compose v2's),
the create bodies for a service's containers, networks and volumes (convert.py), what
the engine holds of a project (observed.py), dependency order (graph.py), the progress
lines (progress.py), and the operations: up/create/start (up.py), stop/kill/pause/rm/down
(lifecycle.py).
Must not: print to the terminal except through a progress writer it is given, or load
daemon-side packages: it speaks the Engine API through berth.client only.
"""
