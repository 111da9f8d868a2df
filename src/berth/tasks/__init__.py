"""The task service: one container's processes (its init and its execs), typed, over the shim.

See `service.TaskService` for the interface and `shimtasks.ShimTaskService` for the one
implementation (berth-shim, whichever OCI runtime it drives). Nothing outside this
package talks to a shim.
"""
