/*
 * The C baseline for echoloop's benches: a single-threaded echo server on
 * edge-triggered epoll, written to be as lean as the kernel allows and to
 * follow the same rules as echoloop's reactor, so that the two compare:
 *
 *   - non-blocking reads of 1024 bytes, straight into one shared buffer;
 *   - each chunk is written back at once; what the socket does not take is
 *     kept per connection ("owed"), and EPOLLOUT is asked for only then;
 *   - a read shorter than the buffer means the socket is drained (epoll(7));
 *   - while a connection owes 64 KiB or more it is not read (backpressure),
 *     and once the owed bytes are out it is read again at once, since the
 *     edge for the waiting data was spent;
 *   - EOF: write back what is owed, then close; SIGPIPE is ignored.
 *
 * No fairness budget, no timers, no accept pause: it is a yardstick for CPU
 * per message, not a server to expose. Usage: epoll_echo PORT (0 = any free
 * port); prints "listening on 127.0.0.1:PORT" once ready.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#define READ_SIZE 1024
#define OWED_CAP (64 * 1024)

struct conn {
    int fd;
    int draining;    /* the peer sent EOF */
    int want_out;    /* EPOLLOUT currently asked for */
    char *owed;      /* bytes read but not yet written back */
    size_t owed_len, owed_size;
};

static int ep;
static char buf[READ_SIZE];

static void die(const char *what) {
    perror(what);
    exit(1);
}

static void close_conn(struct conn *c) {
    close(c->fd); /* also removes it from the epoll set */
    free(c->owed);
    free(c);
}

/* Asks for EPOLLOUT exactly while something is owed. */
static int set_interest(struct conn *c) {
    int want = c->owed_len > 0;
    if (want == c->want_out)
        return 0;
    struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP | EPOLLET | (want ? EPOLLOUT : 0),
                             .data.ptr = c};
    c->want_out = want;
    return epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
}

/* Keeps `len` bytes the socket did not take. */
static int owe(struct conn *c, const char *data, size_t len) {
    if (c->owed_len + len > c->owed_size) {
        size_t size = c->owed_size ? c->owed_size : 4096;
        while (size < c->owed_len + len)
            size *= 2;
        char *grown = realloc(c->owed, size);
        if (!grown)
            return -1;
        c->owed = grown;
        c->owed_size = size;
    }
    memcpy(c->owed + c->owed_len, data, len);
    c->owed_len += len;
    return 0;
}

/* Writes as much of `data` as the socket takes: the bytes written (fewer
 * than `len` once it says EAGAIN), or -1 on a failed connection. */
static ssize_t write_some(int fd, const char *data, size_t len) {
    size_t done = 0;
    while (done < len) {
        ssize_t n = write(fd, data + done, len - done);
        if (n > 0)
            done += (size_t)n;
        else if (n < 0 && errno == EINTR)
            continue;
        else if (n < 0 && errno == EAGAIN)
            break;
        else
            return -1;
    }
    return (ssize_t)done;
}

/* Writes what is owed; -1 on a failed connection. */
static int flush_owed(struct conn *c) {
    ssize_t written = write_some(c->fd, c->owed, c->owed_len);
    if (written < 0)
        return -1;
    size_t done = (size_t)written;
    memmove(c->owed, c->owed + done, c->owed_len - done);
    c->owed_len -= done;
    return 0;
}

/* Reads and echoes until drained, EOF, or the cap; -1 to close. */
static int read_echo(struct conn *c, int to_eagain) {
    while (!c->draining && c->owed_len < OWED_CAP) {
        ssize_t n = read(c->fd, buf, READ_SIZE);
        if (n == 0) {
            c->draining = 1;
            break;
        }
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN)
                break;
            return -1;
        }
        size_t off = 0;
        if (c->owed_len == 0) {
            ssize_t w = write_some(c->fd, buf, (size_t)n);
            if (w < 0)
                return -1;
            off = (size_t)w;
        }
        if (off < (size_t)n && owe(c, buf + off, (size_t)n - off) < 0)
            return -1;
        if (n < READ_SIZE && !to_eagain)
            break; /* a short read drained the socket */
    }
    return 0;
}

static void on_conn(struct conn *c, uint32_t events) {
    int hangup = (events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR)) != 0;
    if (events & EPOLLOUT) {
        int was_paused = c->owed_len >= OWED_CAP;
        if (flush_owed(c) < 0)
            goto fail;
        /* Resume after backpressure: no new edge will announce that data. */
        if (was_paused && c->owed_len < OWED_CAP && read_echo(c, 1) < 0)
            goto fail;
    }
    if ((events & EPOLLIN) || hangup)
        if (read_echo(c, hangup) < 0)
            goto fail;
    if (c->draining && c->owed_len == 0)
        goto fail; /* done: everything owed is out */
    if (set_interest(c) < 0)
        goto fail;
    return;
fail:
    close_conn(c);
}

int main(int argc, char **argv) {
    int port = argc > 1 ? atoi(argv[1]) : 0;
    signal(SIGPIPE, SIG_IGN);
    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    if (lfd < 0)
        die("socket");
    int one = 1;
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(lfd, (struct sockaddr *)&addr, sizeof addr) < 0)
        die("bind");
    if (listen(lfd, 1024) < 0)
        die("listen");
    socklen_t len = sizeof addr;
    getsockname(lfd, (struct sockaddr *)&addr, &len);
    ep = epoll_create1(EPOLL_CLOEXEC);
    if (ep < 0)
        die("epoll_create1");
    struct epoll_event lev = {.events = EPOLLIN | EPOLLET, .data.ptr = NULL};
    if (epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &lev) < 0)
        die("epoll_ctl");
    printf("listening on 127.0.0.1:%d\n", ntohs(addr.sin_port));
    fflush(stdout);

    struct epoll_event events[256];
    for (;;) {
        int n = epoll_wait(ep, events, 256, -1);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            die("epoll_wait");
        }
        for (int i = 0; i < n; i++) {
            struct conn *c = events[i].data.ptr;
            if (c) {
                on_conn(c, events[i].events);
                continue;
            }
            /* The listener: accept until EAGAIN (edge-triggered). */
            for (;;) {
                int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
                if (fd < 0) {
                    if (errno == EINTR || errno == ECONNABORTED)
                        continue;
                    break; /* EAGAIN; or out of fds: the yardstick just waits */
                }
                setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                struct conn *nc = calloc(1, sizeof *nc);
                if (!nc) {
                    close(fd);
                    continue;
                }
                nc->fd = fd;
                struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP | EPOLLET, .data.ptr = nc};
                if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) < 0) {
                    close_conn(nc);
                    continue;
                }
            }
        }
    }
}
