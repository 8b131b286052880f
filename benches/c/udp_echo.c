/*
 * The C baseline for UDP echo in echoloop's benches: one non-blocking UDP
 * socket on edge-triggered epoll, read with recvfrom until EAGAIN, each
 * datagram sent straight back with sendto (dropped if the send would
 * block) - the same calls, in the same order, as echoloop's UDP token, so
 * that CPU per datagram compares. Usage: udp_echo PORT (0 = any free
 * port); prints "listening on udp://127.0.0.1:PORT" once ready.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAX_DATAGRAM 65536

static void die(const char *what) {
    perror(what);
    exit(1);
}

int main(int argc, char **argv) {
    int port = argc > 1 ? atoi(argv[1]) : 0;
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
    if (fd < 0) die("socket");
    struct sockaddr_in addr;
    memset(&addr, 0, sizeof addr);
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(fd, (struct sockaddr *)&addr, sizeof addr) < 0) die("bind");
    socklen_t len = sizeof addr;
    if (getsockname(fd, (struct sockaddr *)&addr, &len) < 0) die("getsockname");
    int ep = epoll_create1(0);
    if (ep < 0) die("epoll_create1");
    struct epoll_event ev = {.events = EPOLLIN | EPOLLET, .data.fd = fd};
    if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) < 0) die("epoll_ctl");
    printf("listening on udp://127.0.0.1:%d\n", ntohs(addr.sin_port));
    fflush(stdout);

    static char buf[MAX_DATAGRAM];
    struct epoll_event events[16];
    for (;;) {
        int n = epoll_wait(ep, events, 16, -1);
        if (n < 0) {
            if (errno == EINTR) continue;
            die("epoll_wait");
        }
        for (;;) {
            struct sockaddr_storage from;
            socklen_t from_len = sizeof from;
            ssize_t got = recvfrom(fd, buf, sizeof buf, 0, (struct sockaddr *)&from, &from_len);
            if (got < 0) {
                if (errno == EAGAIN || errno == EWOULDBLOCK) break;
                if (errno == EINTR) continue;
                continue; /* an ICMP error for an earlier answer */
            }
            /* No backpressure in UDP: a send that would block is a drop. */
            sendto(fd, buf, (size_t)got, 0, (struct sockaddr *)&from, from_len);
        }
    }
}
