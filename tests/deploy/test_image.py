"""The Dockerfile, checked statically (no Docker engine here): stages, the
packages of each stage against this Debian bookworm machine, the binaries it
copies, user, ports, health check and command."""

import functools
import json
import os
import re
import shlex
import shutil
import subprocess

import pytest

from deploylib import (BIN, DEPLOYED_BINARIES, EDGE_PORT, OPS_PORTS, REPO,
                       built_binaries)

DOCKERFILE = os.path.join(REPO, "Dockerfile")


def instructions():
    """[(stage index, INSTRUCTION, argument text)] with continuations joined
    and comments dropped."""
    out, cur, stage = [], "", -1
    with open(DOCKERFILE) as f:
        for raw in f:
            line = raw.rstrip("\n")
            if not cur and (not line.strip() or line.lstrip().startswith("#")):
                continue
            if cur and line.lstrip().startswith("#"):
                continue
            if line.endswith("\\"):
                cur += line[:-1] + " "
                continue
            cur += line
            word, _, rest = cur.strip().partition(" ")
            word = word.upper()
            if word == "FROM":
                stage += 1
            out.append((stage, word, rest.strip()))
            cur = ""
    return out


def stage_of(name):
    for st, word, rest in instructions():
        if word == "FROM" and re.search(rf"\bAS\s+{name}\b", rest, re.I):
            return st
    raise AssertionError(f"no stage {name}")


def apt_packages(stage):
    pkgs = []
    for st, word, rest in instructions():
        if st == stage and word == "RUN" and "apt-get" in rest:
            for part in rest.split("&&"):
                if "apt-get" in part and " install " in part:
                    words = shlex.split(part)
                    pkgs += [w for w in words[words.index("install") + 1:]
                             if not w.startswith("-")]
    return pkgs


def deps_packages():
    """The apt list of compose/local/deps."""
    with open(os.path.join(REPO, "compose", "local", "deps")) as f:
        text = f.read()
    block = re.search(r"^packages=\((.*?)^\)", text, re.S | re.M).group(1)
    return [w for line in block.splitlines() for w in line.split("#")[0].split()]


def test_two_stages_on_bookworm():
    froms = [(st, rest) for st, word, rest in instructions() if word == "FROM"]
    assert [r.split()[0] for _, r in froms] == ["debian:bookworm", "debian:bookworm-slim"]
    assert stage_of("build") == 0 and stage_of("runtime") == 1
    # The runtime stage is the last one, so a plain `docker build` gives it.
    assert froms[-1][1].endswith("AS runtime")


def test_builder_installs_what_the_build_needs():
    """The builder's packages are the build packages of compose/local/deps
    (the list this machine builds with), less the local-only tools."""
    builder = set(apt_packages(stage_of("build")))
    local_only = {"kafkacat", "curl", "clang", "clang-format", "docker-compose",
                  "chromium", "chromium-driver"}
    assert builder == set(deps_packages()) - local_only


def test_builder_runs_the_cmake_build_with_werror():
    runs = " ".join(rest for st, w, rest in instructions() if st == 0 and w == "RUN")
    assert "cmake -S . -B build -DOMNIFY_WERROR=ON" in runs
    assert re.search(r"cmake --build build -j", runs)


def test_image_copies_exactly_the_deployed_binaries():
    """The builder copies the deployed binaries (not build tools or
    benchmarks), every one CMake builds, to /usr/local/bin."""
    runs = " ".join(rest for st, w, rest in instructions() if st == 0 and w == "RUN")
    copied = set(re.findall(r"build/bin/([A-Za-z0-9_.-]+)", runs))
    assert copied == DEPLOYED_BINARIES
    assert copied <= built_binaries()
    copies = [rest for st, w, rest in instructions() if st == 1 and w == "COPY"]
    assert copies == ["--from=build /out/ /usr/local/bin/"]


@functools.lru_cache(maxsize=None)
def _needed_sonames():
    names = set()
    for b in sorted(DEPLOYED_BINARIES):
        out = subprocess.run(["readelf", "-d", os.path.join(BIN, b)], check=True,
                             capture_output=True, text=True).stdout
        names |= set(re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]", out))
    return names


@functools.lru_cache(maxsize=None)
def _package_of(soname):
    out = subprocess.run(["dpkg", "-S", soname], capture_output=True, text=True).stdout
    pkgs = {line.split(":")[0] for line in out.splitlines()
            if line.rstrip().endswith("/" + soname)}
    return frozenset(pkgs)


@pytest.mark.skipif(not shutil.which("dpkg") or not shutil.which("readelf"),
                    reason="needs dpkg and readelf (a Debian machine)")
def test_runtime_packages_provide_every_shared_library():
    """Every library the binaries link (readelf NEEDED) comes from a package
    the runtime stage installs, or from libc6 that bookworm-slim has. This
    machine is Debian bookworm, like the image."""
    runtime = set(apt_packages(stage_of("runtime")))
    missing = {}
    for so in sorted(_needed_sonames()):
        pkgs = _package_of(so)
        assert pkgs, f"no Debian package on this machine ships {so}"
        if not pkgs & (runtime | {"libc6"}):
            missing[so] = sorted(pkgs)
    assert not missing, f"runtime stage lacks the packages of {missing}"
    # And nothing that is not needed, but for CA certificates (HTTPS to providers).
    needed = {p for so in _needed_sonames() for p in _package_of(so)}
    assert runtime - needed == {"ca-certificates"}


@pytest.mark.skipif(not shutil.which("apt-cache"), reason="needs apt-cache")
def test_runtime_and_builder_packages_exist_in_bookworm():
    """apt-cache (this machine's bookworm lists) knows every package name."""
    names = apt_packages(stage_of("runtime")) + apt_packages(stage_of("build"))
    out = subprocess.run(["apt-cache", "policy"] + names, capture_output=True,
                         text=True).stdout
    if "Candidate:" not in out:
        pytest.skip("apt lists are empty here (apt-get update has not run)")
    no_candidate = [n for n, block in zip(names, re.split(r"^(?=\S+:$)", out, flags=re.M)[1:])
                    if "Candidate: (none)" in block]
    known = set(re.findall(r"^(\S+):$", out, re.M))
    assert set(names) <= known, f"unknown to apt: {set(names) - known}"
    assert not no_candidate, no_candidate


def test_runtime_runs_as_uid_10001_with_healthcheck_ports_and_command():
    rt = [(w, rest) for st, w, rest in instructions() if st == 1]
    words = dict((w, rest) for w, rest in rt)
    assert words["USER"] in ("10001", "10001:10001")
    runs = " ".join(rest for w, rest in rt if w == "RUN")
    assert re.search(r"useradd .*--uid 10001", runs)
    # EXPOSE: the edge port and every group's ops port.
    exposed = set()
    for item in words["EXPOSE"].split():
        lo, _, hi = item.partition("-")
        exposed |= set(range(int(lo), int(hi or lo) + 1))
    assert exposed == {EDGE_PORT} | set(OPS_PORTS.values())
    # HEALTHCHECK with `omnify probe`, on ${PORT}, which defaults to the edge's.
    hc = words["HEALTHCHECK"]
    assert re.search(r'CMD omnify probe "?http://127\.0\.0\.1:\$\{PORT\}/health"?$', hc), hc
    assert "curl" not in apt_packages(stage_of("runtime"))
    assert words["ENV"] == f"PORT={EDGE_PORT}"
    # No ENTRYPOINT: the command picks the binary and the mode.
    assert "ENTRYPOINT" not in words
    assert json.loads(words["CMD"]) == ["omnify", "monolith"]


def test_healthcheck_command_works_against_a_running_port(tmp_path):
    """`omnify probe` (the HEALTHCHECK) exits 0 on 2xx, non-zero otherwise."""
    import http.server
    import threading

    class H(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200 if self.path == "/health" else 503)
            self.end_headers()

        def log_message(self, *a):
            pass

    srv = http.server.HTTPServer(("127.0.0.1", 0), H)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    try:
        port = srv.server_address[1]
        probe = [os.path.join(BIN, "omnify"), "probe"]
        assert subprocess.run(probe + [f"http://127.0.0.1:{port}/health"]).returncode == 0
        assert subprocess.run(probe + [f"http://127.0.0.1:{port}/other"],
                              stderr=subprocess.DEVNULL).returncode != 0
    finally:
        srv.shutdown()


def test_dockerignore_keeps_local_state_out_of_the_context():
    with open(os.path.join(REPO, ".dockerignore")) as f:
        entries = {line.strip() for line in f if line.strip() and not line.startswith("#")}
    assert {"build*/", ".local/", ".git", "tests/bench/results"} <= entries
