"""berth-shim: one process per container that outlives berthd (containerd-shim's role),
its zygote, the runtimes it drives, and berthd's client of it."""
