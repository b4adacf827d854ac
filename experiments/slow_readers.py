#!/usr/bin/python3
"""Slow consumers for experiment 7: N connections that each ask for a huge FETCH and then
read it at RATE bytes/s (one recv every 100 ms), for DURATION seconds. Prints one JSON
line at the end: bytes read, connections the server reset or closed, errors.

  slow_readers.py --port P --conns 1000 --rate 10000 --duration 20 [--rcvbuf 16384]
"""
import argparse
import json
import socket
import struct
import time


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--conns", type=int, default=1000)
    ap.add_argument("--rate", type=float, default=10000, help="bytes/s per connection")
    ap.add_argument("--duration", type=float, default=20)
    ap.add_argument("--total", type=int, default=1 << 40, help="FETCH total bytes")
    ap.add_argument("--chunk", type=int, default=16384)
    ap.add_argument("--rcvbuf", type=int, default=0, help="SO_RCVBUF before connect (0: default)")
    args = ap.parse_args()

    request = bytes([0x06, 0x00, 12]) + struct.pack(">QI", args.total, args.chunk)
    socks = []
    for _ in range(args.conns):
        s = socket.socket()
        if args.rcvbuf:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, args.rcvbuf)
        s.connect((args.host, args.port))
        s.sendall(request)
        s.setblocking(False)
        socks.append(s)
    tick = 0.1
    per_tick = max(1, int(args.rate * tick))
    got = [0] * len(socks)
    closed = reset = 0
    alive = set(range(len(socks)))
    start = time.monotonic()
    next_tick = start
    while time.monotonic() - start < args.duration and alive:
        for i in list(alive):
            try:
                b = socks[i].recv(per_tick)
            except BlockingIOError:
                continue
            except ConnectionResetError:
                reset += 1
                alive.discard(i)
                continue
            if not b:
                closed += 1
                alive.discard(i)
                continue
            got[i] += len(b)
        next_tick += tick
        time.sleep(max(0.0, next_tick - time.monotonic()))
    elapsed = time.monotonic() - start
    for s in socks:
        s.close()
    print(json.dumps({"conns": args.conns, "seconds": elapsed, "bytes": sum(got),
                      "bytes_per_conn_per_s": sum(got) / len(socks) / elapsed,
                      "reset_by_server": reset, "closed_by_server": closed,
                      "still_open": len(alive)}))


if __name__ == "__main__":
    main()
