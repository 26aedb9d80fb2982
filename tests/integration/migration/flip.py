#!/usr/bin/env python3
"""A TCP proxy for migration tests: forwards LISTEN_PORT -> DEST_PORT on
127.0.0.1 and flips one bit of the byte at offset AT of the source's
stream (a corrupt network or disk in between). Usage: flip.py LISTEN DEST AT"""
import socket, sys, threading

listen, dest, at = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
srv = socket.socket()
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("127.0.0.1", listen))
srv.listen(1)
print("ready", flush=True)
a, _ = srv.accept()
b = socket.create_connection(("127.0.0.1", dest))

def pump(src, dst, flip):
    seen = 0
    try:
        while True:
            data = src.recv(65536)
            if not data:
                break
            if flip and seen <= at < seen + len(data):
                data = bytearray(data)
                data[at - seen] ^= 0x10
                data = bytes(data)
            seen += len(data)
            dst.sendall(data)
    except OSError:
        pass
    for s in (src, dst):
        try:
            s.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

t = threading.Thread(target=pump, args=(b, a, False), daemon=True)
t.start()
pump(a, b, True)
t.join(5)
