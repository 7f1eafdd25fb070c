"""A client of peercache-server's front API, for services written in Python.

Any node of the cluster answers for any key: give the client one node's
front URL (or several, tried in turn when one cannot be reached).

    from peercache_client import Client

    cache = Client("http://127.0.0.1:8080", token="...")  # token: --front-token-file
    cache.get("colors", "red")                 # b"#FF0000", or None if not found
    cache.get_many("colors", ["red", "mauve"])  # {"red": b"#FF0000", "mauve": None}
                                                # (BatchError if a key failed)
    cache.set("colors", "red", b"#123456", ttl="30s")  # on every node (write scope)
    cache.remove("colors", "red")               # from every node (write scope)
    cache.purge("colors")                       # empty the group (admin scope)

Errors are raised as PeercacheError, with the node's message (which names
the flag, key or peer) and the HTTP status; a node that cannot be reached
or does not answer in time is PeercacheError with status 0. It uses
requests (https://pypi.org/project/requests/), with one connection pool
per client.
"""

from urllib.parse import quote
import base64

import requests

__all__ = ["BatchError", "Client", "PeercacheError"]


class PeercacheError(Exception):
    """A request the node refused or could not serve.

    status is the HTTP status (401: token missing or unknown, 403: scope
    lacking or writes off, 429: over the rate limit, with retry_after in
    seconds, 502: a change did not reach every node, 503: the value could
    not be loaded); message is the node's explanation.
    """

    def __init__(self, status, message, retry_after=None):
        super().__init__(f"{status}: {message}")
        self.status = status
        self.message = message
        self.retry_after = retry_after


class BatchError(PeercacheError):
    """Some keys of a get_many failed: values holds the others (bytes, or
    None for not found), errors each failed key's PeercacheError."""

    def __init__(self, values, errors):
        first = next(iter(errors.values()))
        super().__init__(first.status, f"{len(errors)} of the keys failed, e.g. {first.message}")
        self.values = values
        self.errors = errors


class Client:
    """A client of one cluster, through the front API of its nodes."""

    def __init__(self, urls, token=None, timeout=10.0):
        if isinstance(urls, str):
            urls = [urls]
        if not urls:
            raise ValueError("give at least one node URL, e.g. http://127.0.0.1:8080")
        self.urls = [url.rstrip("/") for url in urls]
        self.timeout = timeout
        self.session = requests.Session()
        if token is not None:
            self.session.headers["Authorization"] = f"Bearer {token}"

    def close(self):
        """Closes the pooled connections."""
        self.session.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _request(self, method, path, **kwargs):
        last = None
        for url in self.urls:
            try:
                answer = self.session.request(
                    method, url + path, timeout=self.timeout, **kwargs
                )
            except requests.RequestException as error:
                # Not reached, or no answer in time: the next node may answer.
                last = error
                continue
            return answer
        raise PeercacheError(0, f"no node answered ({', '.join(self.urls)}): {last}")

    @staticmethod
    def _path(group, key=None):
        if not group or key == "":
            raise ValueError("a group and a key must not be empty")
        path = "/" + quote(group, safe="")
        if key is not None:
            # '/' inside a key stays as it is (the rest of the path is the
            # key), but a '.' or '..' segment is escaped: HTTP clients
            # resolve them (a/../b would be sent as b).
            segments = [quote(s, safe="") for s in key.split("/")]
            segments = [s.replace(".", "%2E") if s in (".", "..") else s for s in segments]
            path += "/" + "/".join(segments)
        return path

    @staticmethod
    def _check(answer):
        if answer.status_code == 200:
            return answer
        retry = answer.headers.get("Retry-After")
        raise PeercacheError(
            answer.status_code,
            answer.text.strip(),
            int(retry) if retry and retry.isdigit() else None,
        )

    def get(self, group, key):
        """The value of key (bytes), read through the cluster; None if the
        group's loader says it does not exist."""
        answer = self._request("GET", self._path(group, key))
        # Only the node's not-found mark means "no such key" (a 404 for a
        # missing group, or from a port that is not the front API, is an
        # error).
        if answer.status_code == 404 and answer.headers.get("X-Peercache-Not-Found"):
            return None
        return self._check(answer).content

    def get_many(self, group, keys):
        """The values of keys (at most 1000) in one request: a dict from
        each key to its bytes, or None if not found. If some keys failed
        (their owner down, a load timeout), raises BatchError, which holds
        the other values and each failed key's error."""
        keys = list(keys)
        answer = self._check(
            self._request("POST", self._path(group) + "/_get-many", json=keys)
        )
        values = {}
        errors = {}
        for key, item in answer.json().items():
            if "value" in item:
                values[key] = item["value"].encode("utf-8")
            elif "value_base64" in item:
                values[key] = base64.b64decode(item["value_base64"])
            elif item.get("status") == 404:
                values[key] = None
            else:
                errors[key] = PeercacheError(item.get("status", 0), item.get("error", ""))
        if errors:
            raise BatchError(values, errors)
        return values

    def set(self, group, key, value, ttl=None):
        """Sets key to value (bytes or str) on every node, for ttl (e.g.
        "30s") or the group's default."""
        if isinstance(value, str):
            value = value.encode("utf-8")
        params = {"ttl": ttl} if ttl is not None else None
        self._check(self._request("PUT", self._path(group, key), data=value, params=params))

    def remove(self, group, key):
        """Removes key from every node: the next get loads it again."""
        self._check(self._request("DELETE", self._path(group, key)))

    def purge(self, group):
        """Empties group on every node."""
        self._check(self._request("POST", self._path(group) + "/_purge"))

    def stats(self):
        """The node's counters, as /stats gives them (metrics scope)."""
        return self._check(self._request("GET", "/stats")).json()
