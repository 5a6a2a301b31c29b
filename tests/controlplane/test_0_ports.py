"""The ports the scenarios hand to etcd, kube-apiserver and keyway's binaries (no control plane
needed): below the ephemeral range, so that no outgoing connection can take one before its
process binds it (or binds it again after a restart), and never the same one twice."""

from __future__ import annotations

import socket

from cluster import PORT_HIGH, PORT_LOW, free_port


def test_0_free_ports_are_below_the_ephemeral_range_distinct_and_bindable():
    with socket.create_server(("127.0.0.1", 0)) as server:
        clients = [socket.create_connection(server.getsockname()) for _ in range(50)]
        try:
            local = {c.getsockname()[1] for c in clients}
            ports = [free_port() for _ in range(100)]
        finally:
            for c in clients:
                c.close()
    assert all(PORT_LOW <= p < PORT_HIGH for p in ports), ports
    assert not local & set(ports)
    assert len(set(ports)) == len(ports)
    with socket.socket() as s:
        s.bind(("127.0.0.1", ports[-1]))
