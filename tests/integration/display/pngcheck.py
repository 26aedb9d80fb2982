#!/usr/bin/env python3
"""Check pixels of a PNG with nothing but the standard library (zlib).

usage: pngcheck.py FILE WIDTHxHEIGHT X,Y=RRGGBB...
Exits 0 if the image has that size and every listed pixel that colour;
1 with a line per mismatch otherwise. Reads 8-bit RGB and RGBA images,
non-interlaced (what modvm and vncsnapshot write)."""
import struct
import sys
import zlib


def paeth(a, b, c):
    p = a + b - c
    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
    if pa <= pb and pa <= pc:
        return a
    return b if pb <= pc else c


def decode(path):
    data = open(path, "rb").read()
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        sys.exit(f"{path}: not a PNG")
    pos, idat, hdr = 8, b"", None
    while pos + 8 <= len(data):
        n, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + n]
        if zlib.crc32(kind + body) != struct.unpack(">I", data[pos + 8 + n:pos + 12 + n])[0]:
            sys.exit(f"{path}: bad CRC in chunk {kind!r}")
        if kind == b"IHDR":
            hdr = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat += body
        elif kind == b"IEND":
            break
        pos += 12 + n
    if not hdr:
        sys.exit(f"{path}: no IHDR")
    w, h, depth, ctype, _, _, interlace = hdr
    if depth != 8 or ctype not in (2, 6) or interlace:
        sys.exit(f"{path}: only 8-bit RGB/RGBA non-interlaced PNGs are read (depth {depth} type {ctype})")
    bpp = 3 if ctype == 2 else 4
    raw = zlib.decompress(idat)
    stride = w * bpp
    rows, prev = [], bytearray(stride)
    for y in range(h):
        f = raw[y * (stride + 1)]
        line = bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for i in range(stride):
            a = line[i - bpp] if i >= bpp else 0
            b = prev[i]
            c = prev[i - bpp] if i >= bpp else 0
            if f == 1:
                line[i] = (line[i] + a) & 0xFF
            elif f == 2:
                line[i] = (line[i] + b) & 0xFF
            elif f == 3:
                line[i] = (line[i] + (a + b) // 2) & 0xFF
            elif f == 4:
                line[i] = (line[i] + paeth(a, b, c)) & 0xFF
        rows.append(line)
        prev = line
    return w, h, bpp, rows


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    w, h, bpp, rows = decode(sys.argv[1])
    want_w, want_h = (int(v) for v in sys.argv[2].split("x"))
    bad = 0
    if (w, h) != (want_w, want_h):
        print(f"{sys.argv[1]}: {w}x{h}, expected {want_w}x{want_h}")
        sys.exit(1)
    for spec in sys.argv[3:]:
        pos, colour = spec.split("=")
        x, y = (int(v) for v in pos.split(","))
        px = rows[y][x * bpp:x * bpp + 3]
        got = "%02X%02X%02X" % tuple(px)
        if got != colour.upper():
            print(f"{sys.argv[1]}: pixel {x},{y} is {got}, expected {colour.upper()}")
            bad += 1
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
