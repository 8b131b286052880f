"""The tutorial's client wrapped in TLS: the same calls, through an
SSLSocket. What `echoloop client https://...` does, as one state
machine instead of blocking calls. (Against an echo server it would wait
for an EOF that never comes: the echo ends only when the client's side
does; `echoloop client --half-close` sends a close_notify for that.)"""

import socket
import ssl

HOST = "localhost"
PORT = 8443
CAFILE = "ca.pem"  # the CA that signed the server's certificate

context = ssl.create_default_context(cafile=CAFILE)
with socket.create_connection((HOST, PORT)) as raw:
    # The handshake happens here, before a byte of the request is sent.
    with context.wrap_socket(raw, server_hostname=HOST) as s:
        s.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        reply = b""
        while chunk := s.recv(1024):
            reply += chunk
        print(repr(reply))
