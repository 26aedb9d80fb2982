#!/usr/bin/env python3
"""A control client that sends requests and never reads the replies
(cli.sh control-flood). Runs until modvm disconnects it or it is killed."""
import socket
import sys

s = socket.socket(socket.AF_UNIX)
s.connect(sys.argv[1])
line = b'{"execute": "query-devices"}\n' * 1000
try:
    while True:
        s.sendall(line)
except OSError as e:
    print("flood: disconnected:", e.strerror, flush=True)
