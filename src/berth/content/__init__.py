"""berth.content: content-addressed blobs, their digests, leases and garbage collection.

The bottom store: layers, images and (later) distribution and the registry keep their
bytes here. It imports nothing of berth but errors, clock and the metadata migration
runner, and knows nothing of what the blobs mean: owners tell it which blobs they
reference (`ContentStore.add_referrer`), operations under way hold theirs with a lease.
"""
