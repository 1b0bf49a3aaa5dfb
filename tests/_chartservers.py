"""Real chart sources for the chart tests, on 127.0.0.1 only: an HTTP chart repository (charts packaged with
``helm package``, indexed with ``helm repo index``, served by Python's HTTP server) and an OCI registry
(Debian's ``docker-registry``, the CNCF distribution registry, installed with apt when missing; charts pushed
with ``helm push --plain-http``)."""

from __future__ import annotations

import functools
import http.server
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

from generator.command import Command
from generator.errors import ToolError
from generator.tools import Toolset
from generator.yamlio import dump_documents, load_documents

FIXTURE_CHART = Path(__file__).resolve().parent / "fixtures" / "charts" / "workload"
REGISTRY_PACKAGE = "docker-registry"


def helm(tools: Toolset, home: Path) -> Command:
    """helm with its caches and registry config under ``home`` (nothing of the user's is touched)."""
    return Command(tools.helm.argv, env={"HELM_CACHE_HOME": str(home / "cache"),
                                         "HELM_CONFIG_HOME": str(home / "config"),
                                         "HELM_DATA_HOME": str(home / "data"),
                                         "HELM_REGISTRY_CONFIG": str(home / "registry.json")})


def package_chart(tools: Toolset, name: str, version: str, dest: Path, *, values: dict[str, object] | None = None,
                  work: Path, sign: tuple[str, Path] | None = None) -> Path:
    """The fixture chart packaged as ``name`` ``version`` (values.yaml overridden by ``values``) into dest;
    ``sign`` = (key name, secret keyring) also writes its provenance file (``helm package --sign``)."""
    source = work / f"src-{name}-{version}" / name
    if source.exists():
        shutil.rmtree(source)
    shutil.copytree(FIXTURE_CHART, source)
    meta = load_documents((source / "Chart.yaml").read_text())[0]
    meta.update(name=name, version=version)
    (source / "Chart.yaml").write_text(dump_documents([meta]))
    if values:
        current = load_documents((source / "values.yaml").read_text())[0]
        current["fixture"].update(values)
        (source / "values.yaml").write_text(dump_documents([current]))
    dest.mkdir(parents=True, exist_ok=True)
    signing = ("--sign", "--key", sign[0], "--keyring", str(sign[1])) if sign else ()
    helm(tools, work / "helm").run("package", source, "--destination", dest, *signing)
    return dest / f"{name}-{version}.tgz"


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        return


class HttpChartRepository:
    """A folder of chart archives and its index.yaml, served on 127.0.0.1 while started."""

    def __init__(self, directory: Path, tools: Toolset) -> None:
        self.directory = directory
        self.tools = tools
        directory.mkdir(parents=True, exist_ok=True)
        self._server: http.server.ThreadingHTTPServer | None = None
        self.port = _free_port()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def publish(self, archive: Path) -> None:
        """Add (or replace) an archive, with its provenance file when it has one, and re-index the repository."""
        shutil.copyfile(archive, self.directory / archive.name)
        prov = archive.with_name(archive.name + ".prov")
        if prov.is_file():
            shutil.copyfile(prov, self.directory / prov.name)
        else:
            (self.directory / prov.name).unlink(missing_ok=True)
        (self.directory / "index.yaml").unlink(missing_ok=True)
        helm(self.tools, self.directory.parent / "helm-index").run("repo", "index", self.directory, "--url", self.url)

    def start(self) -> None:
        handler = functools.partial(_Quiet, directory=str(self.directory))
        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None


def registry_binary() -> str | None:
    """Path of ``docker-registry``, installing Debian's package when missing and possible (else None)."""
    found = shutil.which(REGISTRY_PACKAGE)
    if found or not shutil.which("apt-get") or os.geteuid() != 0:
        return found
    env = {"DEBIAN_FRONTEND": "noninteractive"}
    try:
        Command(("apt-get",), env=env).run("install", "-y", "-qq", "--no-install-recommends", REGISTRY_PACKAGE,
                                           timeout=900)
    except ToolError:
        try:
            Command(("apt-get",), env=env).run("update", "-qq", timeout=900)
            Command(("apt-get",), env=env).run("install", "-y", "-qq", "--no-install-recommends", REGISTRY_PACKAGE,
                                               timeout=900)
        except ToolError:
            return None
    return shutil.which(REGISTRY_PACKAGE)


class OciRegistry:
    """A distribution registry on 127.0.0.1 with its storage in a temporary folder."""

    def __init__(self, binary: str, directory: Path, tools: Toolset) -> None:
        self.binary = binary
        self.directory = directory
        self.tools = tools
        self._process: subprocess.Popen[bytes] | None = None
        directory.mkdir(parents=True, exist_ok=True)
        self.config = directory / "config.yml"
        self._configure()

    def _configure(self) -> None:
        """Pick a free port and write the registry's configuration for it."""
        self.port = _free_port()
        self.config.write_text(dump_documents([{
            "version": 0.1,
            "log": {"level": "error"},
            "storage": {"filesystem": {"rootdirectory": str(self.directory / "data")}, "delete": {"enabled": True}},
            "http": {"addr": f"127.0.0.1:{self.port}"},
        }]))

    @property
    def url(self) -> str:
        return f"oci://127.0.0.1:{self.port}/charts"

    def start(self) -> None:
        # A long-running server: Command runs to completion, so this one process is started directly. The port was
        # free when picked, but another process may take it before the registry binds it (an outgoing connection
        # gets a port of the same range): a registry that exits at once is started again on another port.
        for _ in range(3):
            self._process = subprocess.Popen([self.binary, "serve", str(self.config)], stdout=subprocess.DEVNULL,
                                             stderr=subprocess.DEVNULL)
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and self._process.poll() is None:
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/v2/", timeout=2) as answer:
                        if answer.status == 200:
                            return
                except OSError:
                    time.sleep(0.1)
            exited = self._process.poll() is not None
            self.stop()
            if not exited:
                break
            self._configure()
        raise RuntimeError(f"{self.binary} did not answer on 127.0.0.1:{self.port}")

    def push(self, archive: Path) -> str:
        """Push a chart archive; returns the manifest digest helm reports."""
        out = helm(self.tools, self.directory / "helm").run("push", archive, self.url, "--plain-http")
        return next(line.split()[-1] for line in out.splitlines() if line.startswith("Digest:"))

    def stop(self) -> None:
        if self._process is not None:
            self._process.terminate()
            self._process.wait(timeout=30)
            self._process = None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def temp_dir(prefix: str) -> Path:
    return Path(tempfile.mkdtemp(prefix=prefix))


def signing_key(directory: Path, name: str) -> tuple[Path, Path]:
    """A new passphrase-less OpenPGP signing key made with gpg: (secret keyring, public keyring) files that
    ``helm package --sign`` and ``helm pull --verify`` read."""
    # a short home: gpg-agent's sockets live in it, and a Unix socket path must stay under 108 bytes (pytest's
    # temporary folders under xdist are long enough to break the agent)
    home = Path(tempfile.mkdtemp(prefix="gpg-"))
    home.chmod(0o700)
    directory.mkdir(parents=True, exist_ok=True)
    gpg = Command(("gpg", "--batch", "--homedir", str(home)))
    try:
        gpg.run("--passphrase", "", "--quick-gen-key", f"{name} <{name}@fleetgen.invalid>", "rsa2048", "sign", "never")
        secret, public = directory / "secring.gpg", directory / "pubring.gpg"
        secret.write_bytes(_binary(gpg, "--export-secret-keys"))
        public.write_bytes(_binary(gpg, "--export"))
    finally:
        if shutil.which("gpgconf"):
            Command(("gpgconf", "--homedir", str(home))).run("--kill", "gpg-agent")
        shutil.rmtree(home, ignore_errors=True)
    return secret, public


def _binary(gpg: Command, *args: str) -> bytes:
    """gpg's binary output (Command returns text, so it writes to a file)."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "out.gpg"
        gpg.run("--output", str(out), *args)
        return out.read_bytes()
