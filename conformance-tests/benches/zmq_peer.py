"""libzmq (pyzmq) peers for the transport benchmark.

router          bind a ROUTER on a random loopback port, print the port, echo
                every multipart message back (envelope and body) until killed.
client URI N    a REQ socket sends N 100-byte requests one at a time to URI and
                prints "p50_us p99_us" of the round trips.
"""
import sys
import time

import zmq


def router():
    ctx = zmq.Context()
    sock = ctx.socket(zmq.ROUTER)
    port = sock.bind_to_random_port("tcp://127.0.0.1")
    print(port, flush=True)
    while True:
        sock.send_multipart(sock.recv_multipart())


def client(uri, count):
    ctx = zmq.Context()
    sock = ctx.socket(zmq.REQ)
    sock.connect(uri)
    body = b"x" * 100
    for _ in range(200):
        sock.send(body)
        sock.recv()
    samples = []
    for _ in range(count):
        start = time.perf_counter()
        sock.send(body)
        sock.recv()
        samples.append(time.perf_counter() - start)
    samples.sort()
    p50 = samples[len(samples) // 2] * 1e6
    p99 = samples[min(len(samples) - 1, int(len(samples) * 0.99))] * 1e6
    print(f"{p50:.1f} {p99:.1f}", flush=True)


if __name__ == "__main__":
    if sys.argv[1] == "router":
        router()
    else:
        client(sys.argv[2], int(sys.argv[3]))
