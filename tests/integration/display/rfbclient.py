#!/usr/bin/env python3
"""A minimal RFB (VNC) client for the display tests, standard library only.

usage: rfbclient.py HOST PORT keys TEXT     type TEXT (lower-case letters,
                                           digits, space) as key presses
       rfbclient.py HOST PORT garbage SEED  handshake, then hostile bytes:
                                           bad message types, huge lengths,
                                           truncated messages, random junk
       rfbclient.py HOST PORT watch SECONDS a viewer: raw encoding, always one
                                           incremental update request
                                           outstanding; prints the updates
Security type None only (RFC 6143 7.2.1); exits 0 once everything is sent."""
import random
import socket
import struct
import sys
import time


def recv_exact(s, n):
    b = b""
    while len(b) < n:
        c = s.recv(n - len(b))
        if not c:
            sys.exit("server closed the connection")
        b += c
    return b


def handshake(host, port):
    s = socket.create_connection((host, port), timeout=5)
    version = recv_exact(s, 12)
    if not version.startswith(b"RFB 003."):
        sys.exit(f"not an RFB server: {version!r}")
    s.sendall(b"RFB 003.008\n")
    n = recv_exact(s, 1)[0]
    types = recv_exact(s, n)
    if 1 not in types:
        sys.exit(f"server offers no security type None: {list(types)}")
    s.sendall(b"\x01")
    if struct.unpack(">I", recv_exact(s, 4))[0] != 0:
        sys.exit("security handshake failed")
    s.sendall(b"\x01")                      # ClientInit: shared
    w, h = struct.unpack(">HH", recv_exact(s, 4))
    recv_exact(s, 16)                       # pixel format
    name_len = struct.unpack(">I", recv_exact(s, 4))[0]
    recv_exact(s, name_len)
    return s, w, h


def key(s, sym, down):
    s.sendall(struct.pack(">BBxxI", 4, 1 if down else 0, sym))


def watch(s, seconds):
    s.sendall(struct.pack(">BxHi", 2, 1, 0))            # SetEncodings: raw
    w, h = 0xFFFF, 0xFFFF
    s.sendall(struct.pack(">BBHHHH", 3, 0, 0, 0, w, h))  # the whole screen
    end = time.monotonic() + seconds
    updates = 0
    s.settimeout(0.5)
    buf = b""
    while time.monotonic() < end:
        try:
            hdr = recv_exact(s, 4)
        except socket.timeout:
            continue
        if hdr[0] != 0:
            continue                        # bell, cut text: not expected
        n = struct.unpack(">H", hdr[2:4])[0]
        for _ in range(n):
            x, y, rw, rh, enc = struct.unpack(">HHHHi", recv_exact(s, 12))
            if enc == 0:
                recv_exact(s, rw * rh * 4)
        updates += 1
        s.sendall(struct.pack(">BBHHHH", 3, 1, 0, 0, 0xFFFF, 0xFFFF))
    print(f"updates {updates}")


def main():
    host, port, what, arg = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
    s, _, _ = handshake(host, port)
    if what == "keys":
        for ch in arg:
            key(s, ord(ch), True)
            key(s, ord(ch), False)
        time.sleep(0.2)
    elif what == "garbage":
        rnd = random.Random(int(arg))
        msgs = [
            b"\xff" * 64,                                   # unknown message types
            struct.pack(">BxHI", 6, 0, 0xFFFFFFFF),         # ClientCutText of 4 GiB
            struct.pack(">BxH", 2, 0xFFFF),                 # SetEncodings, 65535 promised
            struct.pack(">BBHHHHH", 3, 0, 0xFFFF, 0xFFFF, 0xFFFF, 0xFFFF, 0)[:7],
            struct.pack(">BBHH", 5, 0xFF, 0xFFFF, 0xFFFF),  # pointer off the screen
            struct.pack(">BxxxBBBBHHHBBBxxx", 0, 7, 3, 1, 1, 0, 0, 0, 40, 40, 40),  # absurd pixel format
        ]
        for m in msgs:
            try:
                s.sendall(m)
            except OSError:
                break
        try:
            s.sendall(bytes(rnd.getrandbits(8) for _ in range(4096)))
        except OSError:
            pass
        time.sleep(0.2)
    elif what == "watch":
        watch(s, float(arg))
    else:
        sys.exit(__doc__)
    s.close()


if __name__ == "__main__":
    main()
