"""Runs the Python client against a running cluster and checks what it
answers. The test `python_client.rs` starts three nodes and runs it; by hand:

    PEERCACHE_URLS=http://127.0.0.1:8081,http://127.0.0.1:8082 \
    PEERCACHE_READ_TOKEN=... PEERCACHE_WRITE_TOKEN=... PEERCACHE_ADMIN_TOKEN=... \
    python3 examples/python/check_client.py

Exits 0 when every check passed, else 1 with the first failure.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from peercache_client import Client, PeercacheError  # noqa: E402


def expect_error(status, call):
    try:
        call()
    except PeercacheError as error:
        assert error.status == status, f"expected {status}, got {error}"
        return error
    raise AssertionError(f"expected a {status} error, got none")


def main():
    urls = os.environ["PEERCACHE_URLS"].split(",")
    reader = Client(urls, token=os.environ["PEERCACHE_READ_TOKEN"])
    writer = Client(urls, token=os.environ["PEERCACHE_WRITE_TOKEN"])
    admin = Client(urls, token=os.environ["PEERCACHE_ADMIN_TOKEN"])
    anonymous = Client(urls)

    # Reads, through every node.
    for url in urls:
        node = Client(url, token=os.environ["PEERCACHE_READ_TOKEN"])
        assert node.get("colors", "red") == b"#FF0000", node.get("colors", "red")
        assert node.get("colors", "mauve") is None
        node.close()
    many = reader.get_many("colors", ["red", "green", "mauve", "red"])
    assert many == {"red": b"#FF0000", "green": b"#00FF00", "mauve": None}, many
    # Keys that need escaping, through the echo group.
    for key in ["a b", "x/y/z", "é", "100%", "q?r#s", ".", "..", "a/../b", "a/./b", "+"]:
        assert reader.get("echo", key) == key.encode("utf-8"), key
    # A 404 that is not a missing key is an error, not None: a missing
    # group, and the peer port mistaken for the front.
    expect_error(404, lambda: reader.get("no-such-group", "k"))
    peer = Client(os.environ["PEERCACHE_PEER_URL"], token=os.environ["PEERCACHE_READ_TOKEN"])
    error = expect_error(404, lambda: peer.get("colors", "red"))
    assert "this is the peer port" in error.message, error.message
    # A node that does not answer.
    expect_error(0, lambda: Client("http://127.0.0.1:9", timeout=2).get("colors", "red"))

    # Refusals: no token, a reader writing, a writer purging.
    error = expect_error(401, lambda: anonymous.get("colors", "red"))
    assert "Bearer" in error.message, error.message
    error = expect_error(403, lambda: reader.set("colors", "red", "#000000"))
    assert "write scope" in error.message, error.message
    expect_error(403, lambda: writer.purge("colors"))

    # Writes reach every node.
    writer.set("colors", "red", "#123456", ttl="1h")
    for url in urls:
        node = Client(url, token=os.environ["PEERCACHE_READ_TOKEN"])
        assert node.get("colors", "red") == b"#123456", url
        node.close()
    writer.remove("colors", "red")
    assert reader.get("colors", "red") == b"#FF0000"
    writer.set("colors", "bin", bytes([0, 255, 1]))
    assert reader.get_many("colors", ["bin"]) == {"bin": bytes([0, 255, 1])}
    admin.purge("colors")
    stats = admin.stats()
    assert any(group["name"] == "colors" for group in stats["groups"]), stats
    print("python client: every check passed")


if __name__ == "__main__":
    try:
        main()
    except AssertionError as failure:
        print(f"python client check failed: {failure}", file=sys.stderr)
        raise
