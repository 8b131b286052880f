"""The blocking echo server of the Python socket tutorial, the shape
echoloop grew from: one client at a time, each call waits."""

import socket

HOST = "127.0.0.1"  # loopback only
PORT = 7878

with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((HOST, PORT))
    listener.listen()
    while True:
        conn, peer = listener.accept()  # waits for a client
        with conn:
            while True:
                data = conn.recv(1024)  # waits for bytes
                if not data:  # b"": the client closed its side
                    break
                conn.sendall(data)  # waits until all are out
