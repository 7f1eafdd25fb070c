#!/usr/bin/env python3
"""Checks that the crates' declared rust-version is true of what they build.

No older toolchain can be fetched here, so instead of building with it this
reads the lockfile's resolution (`cargo metadata`): every crate that a
workspace member's library and binaries build (normal and build
dependencies, not dev-dependencies, for this platform) must declare a
rust-version no newer than the member's. Prints the offenders and exits 1
if any.
"""
import json
import subprocess
import sys


def version(text):
    parts = [int(part) for part in text.split(".")]
    return tuple(parts + [0] * (3 - len(parts)))


def main():
    target = subprocess.run(
        ["rustc", "-vV"], capture_output=True, text=True, check=True
    ).stdout
    host = next(l.split()[1] for l in target.splitlines() if l.startswith("host:"))
    meta = json.loads(
        subprocess.run(
            ["cargo", "metadata", "--format-version", "1", "--locked", "--all-features",
             "--filter-platform", host],
            capture_output=True, text=True, check=True,
        ).stdout
    )
    packages = {p["id"]: p for p in meta["packages"]}
    members = [packages[m] for m in meta["workspace_members"]]
    nodes = {n["id"]: n for n in meta["resolve"]["nodes"]}
    late = []
    for member in members:
        msrv = member.get("rust_version")
        if not msrv:
            sys.exit(f"{member['name']} declares no rust-version")
        seen, todo = set(), [member["id"]]
        while todo:
            node = todo.pop()
            if node in seen:
                continue
            seen.add(node)
            for dep in nodes[node]["deps"]:
                if {k["kind"] for k in dep["dep_kinds"]} - {"dev"}:
                    todo.append(dep["pkg"])
        for i in sorted(seen):
            needs = packages[i].get("rust_version")
            if needs and version(needs) > version(msrv):
                late.append(
                    f"{member['name']} (rust-version {msrv}) builds "
                    f"{packages[i]['name']} {packages[i]['version']}, which needs Rust {needs}"
                )
        print(f"{member['name']}: {len(seen)} crates, rust-version {msrv}")
    for line in late:
        print(line)
    if late:
        sys.exit(1)


main()
