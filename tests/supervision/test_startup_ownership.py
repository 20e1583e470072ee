"""The connection-ownership check of a session's start (supervision/_process.py): the kernel's
sock_diag lookup finds the same socket /proc/net/tcp does, without walking every socket of the
machine."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import pytest

from supervisor_sim.supervision import _process

pytestmark = pytest.mark.skipif(
    not os.path.exists("/proc/net/tcp"), reason="Linux /proc and sock_diag"
)


def connected(family: int, host: str) -> tuple[socket.socket, socket.socket, socket.socket]:
    """(listener, client, accepted): a connection made by this process to itself."""
    listener = socket.socket(family)
    listener.bind((host, 0))
    listener.listen()
    client = socket.socket(family)
    client.connect(listener.getsockname()[:2])
    accepted, _ = listener.accept()
    return listener, client, accepted


@pytest.mark.parametrize(
    ("family", "host"), [(socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1")]
)
def test_sock_diag_and_proc_find_the_clients_socket(family, host):
    if family == socket.AF_INET6 and not socket.has_ipv6:
        pytest.skip("no IPv6")
    try:
        socks = connected(family, host)
    except OSError as exc:
        pytest.skip(f"cannot connect over {host}: {exc}")
    listener, client, accepted = socks
    with listener, client, accepted:
        # As the session sees it: the peer is the runtime's end, local is ours.
        peer, local = accepted.getpeername()[:2], accepted.getsockname()[:2]
        inode = os.fstat(client.fileno()).st_ino
        assert _process._socket_inode_diag(peer, local) == inode
        assert _process._socket_inodes_proc([(peer, local)]) == [inode]
        assert _process._socket_inode(peer, local) == inode
        # Our own end is another socket, found the other way round.
        assert _process._socket_inode_diag(local, peer) == os.fstat(accepted.fileno()).st_ino


def test_an_unknown_connection_is_not_found():
    unused = ("127.0.0.1", 1), ("127.0.0.1", 2)
    assert _process._socket_inode_diag(*unused) == 0  # the kernel: no such connection
    assert _process._socket_inode(*unused) is None


def test_a_mapped_ipv4_address_is_looked_up_as_ipv4():
    listener, client, accepted = connected(socket.AF_INET, "127.0.0.1")
    with listener, client, accepted:
        (phost, pport), local = accepted.getpeername(), accepted.getsockname()
        inode = os.fstat(client.fileno()).st_ino
        assert _process._socket_inode_diag((f"::ffff:{phost}", pport), local) == inode


def test_ownership_is_the_holders_only():
    listener, client, accepted = connected(socket.AF_INET, "127.0.0.1")
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        with listener, client, accepted:
            peer, local = accepted.getpeername(), accepted.getsockname()
            assert _process.tree_owns_connection(os.getpid(), peer, local)
            assert not _process.tree_owns_connection(other.pid, peer, local)
    finally:
        other.kill()
        other.wait()
