"""A real DNS server (dnsmasq, from Debian) in a test network namespace: the private hosted zone
of a client network. It answers A queries for whole domains (``--address=/domain/ip``, what a
wildcard record pointing at the load balancer does) and TXT queries for given names (the region
record ``kafka-edge dns`` prints), and nothing else (no upstream servers, no /etc/hosts). Queries
are logged to a file, so a test can see who asked for what.

``Dnsmasq.start(ns, listen_ip, log_file, addresses={...}, txt={...})``; ``.stop()``. The caller
points the namespace's resolver at it (``/etc/netns/NS/resolv.conf``).
"""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from testbed.cluster import netns_prefix
from testbed.procs import terminate

DNSMASQ = "dnsmasq"


def binary() -> str | None:
    """The dnsmasq binary, or None (Debian: apt-get install dnsmasq-base)."""
    return shutil.which(DNSMASQ) or (
        "/usr/sbin/dnsmasq" if Path("/usr/sbin/dnsmasq").exists() else None)


@dataclass
class Dnsmasq:
    proc: subprocess.Popen[bytes]
    log_file: Path

    @classmethod
    def start(cls, netns: str, listen_ip: str, log_file: Path, *,
              addresses: Mapping[str, str], txt: Mapping[str, str]) -> Dnsmasq:
        exe = binary()
        if exe is None:
            raise FileNotFoundError("dnsmasq is not installed (apt-get install dnsmasq-base)")
        argv = [*netns_prefix(netns), exe, "--keep-in-foreground", "--no-resolv", "--no-hosts",
                "--no-poll", "--bind-interfaces", f"--listen-address={listen_ip}",
                "--port=53", "--pid-file=", "--user=root", "--log-queries",
                f"--log-facility={log_file}"]
        argv += [f"--address=/{domain}/{ip}" for domain, ip in addresses.items()]
        # the value as it is: on the command line dnsmasq keeps quotes as part of the text
        argv += [f"--txt-record={name},{value}" for name, value in txt.items()]
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE)
        server = cls(proc, log_file)
        server._wait(netns, listen_ip)
        return server

    def _wait(self, netns: str, ip: str, timeout: float = 10.0) -> None:
        probe = ("import socket,sys\ns=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\n"
                 "s.settimeout(0.5)\n"
                 "s.sendto(bytes.fromhex('12340100000100000000000004746573740000010001'),"
                 "(sys.argv[1],53))\ns.recv(512)")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                err = self.proc.stderr.read().decode() if self.proc.stderr else ""
                raise RuntimeError(f"dnsmasq exited ({self.proc.returncode}): {err}")
            check = subprocess.run([*netns_prefix(netns), "python3", "-c", probe, ip],
                                   capture_output=True, check=False, timeout=10)
            if check.returncode == 0:
                return
            time.sleep(0.2)
        raise TimeoutError(f"dnsmasq on {ip}:53 in {netns} did not answer")

    def queries(self) -> str:
        """What dnsmasq logged (one line per query and answer)."""
        try:
            return self.log_file.read_text(errors="replace")
        except OSError:
            return ""

    def stop(self) -> None:
        terminate([self.proc], timeout=10)
        if self.proc.stderr is not None:
            self.proc.stderr.close()


__all__ = ["Dnsmasq", "binary"]
