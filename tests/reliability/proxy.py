"""A fault-injecting TCP proxy for HTTP servers on 127.0.0.1 (tests only).

Every request passes through it with ``Connection: close``, so each request gets
its own connection and can be matched by a rule on its request head. Rules:
``reset`` (close the client's connection with a TCP RST), ``503`` (answer 503 and
close), ``delay`` (wait, then forward), ``cut`` (forward the head and part of the
body, then reset both sides: a server that disappears mid-upload).
"""

from __future__ import annotations

import socket
import struct
import threading
import time
from dataclasses import dataclass


@dataclass
class Rule:
    match: bytes  # substring of the request head, e.g. b"PUT " or b"partNumber=2"
    action: str  # reset | 503 | delay | cut
    times: int | None = 1  # None: every matching request
    seconds: float = 0.0
    hits: int = 0


class FaultProxy:
    def __init__(self, upstream: str):
        host, port = upstream.split("//")[-1].split(":")
        self.upstream = (host, int(port))
        self.rules: list[Rule] = []
        self._lock = threading.Lock()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.2)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._listener.getsockname()[1]}"

    def add(self, match: bytes, action: str, times: int | None = 1, seconds: float = 0.0) -> Rule:
        rule = Rule(match, action, times, seconds)
        with self._lock:
            self.rules.append(rule)
        return rule

    def clear(self) -> None:
        with self._lock:
            self.rules.clear()

    def __enter__(self) -> "FaultProxy":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._listener.close()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self._listener.accept()
            except (TimeoutError, OSError):
                continue
            threading.Thread(target=self._handle, args=(client,), daemon=True).start()

    def _rule_for(self, head: bytes) -> Rule | None:
        with self._lock:
            for rule in self.rules:
                if rule.match in head and (rule.times is None or rule.hits < rule.times):
                    rule.hits += 1
                    return rule
        return None

    def _handle(self, client: socket.socket) -> None:
        client.settimeout(30)
        try:
            head, rest = _read_head(client)
            if head is None:
                client.close()
                return
            rule = self._rule_for(head)
            if rule and rule.action == "reset":
                return _reset(client)
            if rule and rule.action == "503":
                client.sendall(b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                client.close()
                return
            if rule and rule.action == "delay":
                time.sleep(rule.seconds)
            upstream = socket.create_connection(self.upstream, timeout=30)
            upstream.sendall(_close_after(head) + rest)
            if rule and rule.action == "cut":
                upstream.sendall(client.recv(65536))
                _reset(upstream)
                return _reset(client)
            done = threading.Event()
            threading.Thread(target=_pump, args=(client, upstream, done), daemon=True).start()
            _pump(upstream, client, done)
        except OSError:
            client.close()


def _read_head(sock: socket.socket) -> tuple[bytes | None, bytes]:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            return None, b""
        data += chunk
    head, rest = data.split(b"\r\n\r\n", 1)
    return head + b"\r\n\r\n", rest


def _close_after(head: bytes) -> bytes:
    lines = [line for line in head.split(b"\r\n") if line and not line.lower().startswith(b"connection:")]
    return b"\r\n".join(lines + [b"Connection: close"]) + b"\r\n\r\n"


def _reset(sock: socket.socket) -> None:
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


def _pump(src: socket.socket, dst: socket.socket, done: threading.Event) -> None:
    try:
        while chunk := src.recv(65536):
            dst.sendall(chunk)
    except OSError:
        pass
    finally:
        done.set()
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()
