"""Container networking: the controller (controller.py) over network drivers behind one
interface (drivers/: bridge, macvlan, host, null), the network store (store.py), IPAM,
published ports (ports.py, proxy.py), the firewall (nftables), netlink and the embedded
DNS server. The controller works on sandbox and endpoint requests and returns results
(model.py); it never sees a container record."""
