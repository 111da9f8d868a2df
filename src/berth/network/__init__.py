"""Container networking: sandboxes (network namespaces), endpoints (veth pairs), networks
and their drivers (bridge, macvlan, host, none), IPAM, the firewall (nftables) and the
embedded DNS server."""
