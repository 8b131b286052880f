/*
 * The batched C yardstick for UDP echo in echoloop's benches: the same
 * edge-triggered epoll loop as udp_echo.c, but datagrams move BATCH at a
 * time, in with recvmmsg and back out with sendmmsg. A batch that comes
 * back short means the socket is empty (a datagram that lands later
 * raises a new edge), so no read is spent on finding EAGAIN. A send that
 * would block drops the rest of its batch: UDP has no backpressure.
 * Usage: udp_echo_mmsg PORT (0 = any free port); prints
 * "listening on udp://127.0.0.1:PORT" once ready.
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

#define BATCH 32
#define SLOT 65536

static void die(const char *what) {
    perror(what);
    exit(1);
}

static char bufs[BATCH][SLOT];
static struct sockaddr_storage peers[BATCH];
static struct iovec iovs[BATCH];
static struct mmsghdr in[BATCH], out[BATCH];

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

    struct epoll_event events[16];
    for (;;) {
        int n = epoll_wait(ep, events, 16, -1);
        if (n < 0) {
            if (errno == EINTR) continue;
            die("epoll_wait");
        }
        for (;;) {
            for (int i = 0; i < BATCH; i++) {
                iovs[i].iov_base = bufs[i];
                iovs[i].iov_len = SLOT;
                memset(&in[i], 0, sizeof in[i]);
                in[i].msg_hdr.msg_name = &peers[i];
                in[i].msg_hdr.msg_namelen = sizeof peers[i];
                in[i].msg_hdr.msg_iov = &iovs[i];
                in[i].msg_hdr.msg_iovlen = 1;
            }
            int got = recvmmsg(fd, in, BATCH, MSG_DONTWAIT, NULL);
            if (got < 0) {
                if (errno == EAGAIN || errno == EWOULDBLOCK) break;
                continue; /* EINTR, or an ICMP error for an earlier answer */
            }
            for (int i = 0; i < got; i++) {
                out[i] = in[i];
                iovs[i].iov_len = in[i].msg_len;
            }
            for (int sent = 0; sent < got;) {
                int r = sendmmsg(fd, out + sent, (unsigned)(got - sent), MSG_DONTWAIT);
                if (r > 0) {
                    sent += r;
                } else if (errno == EINTR) {
                    continue;
                } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
                    break; /* dropped */
                } else {
                    sent++; /* this one failed; the rest may not */
                }
            }
            if (got < BATCH) break; /* short: the socket is empty */
        }
    }
}
