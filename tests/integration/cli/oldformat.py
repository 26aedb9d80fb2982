#!/usr/bin/env python3
"""Turn a snapshot into an older format (cli.sh snapshot): set "format"
and, below 3, record each file's CRC-32 of its content alone, as formats
1 and 2 did. usage: oldformat.py DIR FORMAT"""
import json
import os
import sys
import zlib

d, fmt = sys.argv[1], int(sys.argv[2])
path = os.path.join(d, "manifest.json")
m = json.load(open(path))
m["format"] = fmt
for name, entry in m["files"].items():
    with open(os.path.join(d, name), "rb") as f:
        entry.pop("crc32c", None)
        entry["crc32"] = "%08x" % zlib.crc32(f.read())
json.dump(m, open(path, "w"), indent=2)
