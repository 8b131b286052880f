//! Many datagrams per system call: `recvmmsg(2)` and `sendmmsg(2)`.
//!
//! A readiness loop pays one `recvfrom` and one `sendto` per datagram,
//! and one more `recvfrom` per wake-up only to hear `EAGAIN`. Linux can
//! move a batch of datagrams in one call each way, and a batch that
//! comes back short proves the socket empty (a datagram that lands later
//! raises a new edge), so the `EAGAIN` read goes too.
//!
//! [`Batch`] owns the memory the kernel fills: one slot per datagram,
//! each large enough for the largest UDP datagram (a slot shorter than a
//! datagram would truncate it silently). [`Outbox`] holds the datagrams
//! a load generator sends on one connected socket.
//!
//! Both build the kernel's headers (`mmsghdr`, each with its `iovec` and
//! address) once, when they are made, and keep them. Everything a header
//! points at lives on the heap, in the same value, so moving the value
//! moves only the pointers to those heap blocks: the headers stay valid.
//! A call then only writes what changes (a length, an address length),
//! instead of zeroing and filling 2.5 KB of headers on the stack.

use std::io;
use std::mem;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::RawFd;

use super::net::{MAX_DATAGRAM, interrupted, would_block};

/// The most datagrams one call moves.
pub const BATCH: usize = 32;

/// Bytes per slot: the largest datagram UDP can carry over IPv4 or IPv6,
/// rounded up to whole pages.
const SLOT: usize = MAX_DATAGRAM.div_ceil(4096) * 4096;

/// `BATCH` kernel headers and their buffer descriptors, on the heap so
/// that they never move. Every pointer in them is null until set.
struct Headers {
    iovs: Box<[libc::iovec]>,
    hdrs: Box<[libc::mmsghdr]>,
}

impl Headers {
    fn new() -> Headers {
        // SAFETY: iovec and mmsghdr are plain C structs of integers and
        // raw pointers: all zeroes (null pointers, zero lengths) is valid.
        let (iov, hdr): (libc::iovec, libc::mmsghdr) = unsafe { (mem::zeroed(), mem::zeroed()) };
        let mut h = Headers {
            iovs: vec![iov; BATCH].into_boxed_slice(),
            hdrs: vec![hdr; BATCH].into_boxed_slice(),
        };
        for (hdr, iov) in h.hdrs.iter_mut().zip(h.iovs.iter_mut()) {
            hdr.msg_hdr.msg_iov = iov;
            hdr.msg_hdr.msg_iovlen = 1;
        }
        h
    }

    /// One `sendmmsg` of the headers `which` (set, and pointing at memory
    /// that stays put until it returns), retried if a signal interrupts
    /// it: how many the kernel took (at least one), or the first one's
    /// error.
    fn send(&mut self, fd: RawFd, which: std::ops::Range<usize>) -> io::Result<usize> {
        let hdrs = &mut self.hdrs[which];
        loop {
            // SAFETY: every header in `hdrs` is set and points at an iovec,
            // bytes and an address (or none) owned by the caller's value and
            // unmoved while the call runs.
            let r = unsafe {
                libc::sendmmsg(
                    fd,
                    hdrs.as_mut_ptr(),
                    hdrs.len() as libc::c_uint,
                    libc::MSG_DONTWAIT,
                )
            };
            if r > 0 {
                return Ok((r as usize).min(hdrs.len()));
            }
            if r == 0 {
                // Not seen in practice; an error, so that no caller spins.
                return Err(io::ErrorKind::WriteZero.into());
            }
            let e = io::Error::last_os_error();
            if !interrupted(&e) {
                return Err(e);
            }
        }
    }

    /// Points header `k` at `len` bytes from `data`, for address `name`
    /// (`namelen` bytes; null for a connected socket).
    fn point(&mut self, k: usize, data: *mut u8, len: usize, name: *mut libc::sockaddr_storage) {
        self.iovs[k].iov_base = data.cast();
        self.iovs[k].iov_len = len;
        self.hdrs[k].msg_hdr.msg_name = name.cast();
    }
}

/// The datagrams of one `recvmmsg`, in slots, with their senders.
pub struct Batch {
    /// `BATCH` slots of `SLOT` bytes. Only the pages a datagram reaches
    /// are ever touched, so small datagrams keep most of it unresident.
    slots: Box<[u8]>,
    /// Each slot's sender, as the kernel wrote it.
    peers: Box<[libc::sockaddr_storage]>,
    /// Receive header `i` points at slot `i` and address `i`, for good.
    rx: Headers,
    /// Send headers, pointed at the slots being answered, in order.
    tx: Headers,
    /// How many slots the last receive filled.
    filled: usize,
}

// SAFETY: the raw pointers in `rx` and `tx` point only into heap blocks
// that this same value owns (`slots`, `peers`, the iovecs); whoever owns
// the Batch owns all of them, on whichever thread.
unsafe impl Send for Batch {}

impl std::fmt::Debug for Batch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Batch")
            .field("filled", &self.filled)
            .finish_non_exhaustive()
    }
}

/// What a [`Batch::send_back`] did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Sent {
    /// Datagrams the kernel took.
    pub sent: usize,
    /// Bytes in them.
    pub bytes: usize,
    /// Datagrams dropped: the socket's buffer was full (UDP has no
    /// backpressure: never queue), or the kernel refused one.
    pub dropped: usize,
}

impl Default for Batch {
    fn default() -> Self {
        Self::new()
    }
}

impl Batch {
    /// Empty slots for [`BATCH`] datagrams.
    pub fn new() -> Batch {
        // SAFETY: sockaddr_storage is plain old data; all zeroes is a
        // valid (unspecified-family) value.
        let zero: libc::sockaddr_storage = unsafe { mem::zeroed() };
        let mut b = Batch {
            slots: vec![0u8; BATCH * SLOT].into_boxed_slice(),
            peers: vec![zero; BATCH].into_boxed_slice(),
            rx: Headers::new(),
            tx: Headers::new(),
            filled: 0,
        };
        let base = b.slots.as_mut_ptr();
        for i in 0..BATCH {
            // SAFETY: i * SLOT + SLOT <= slots.len(): slot i is in bounds.
            let slot = unsafe { base.add(i * SLOT) };
            b.rx.point(i, slot, SLOT, &mut b.peers[i]);
        }
        b
    }

    /// Receives up to `max` (at most [`BATCH`], at least 1) datagrams
    /// waiting on `fd` without blocking. `Ok(n)` with `n < max` means the
    /// socket is now empty. `WouldBlock` when nothing waited; another
    /// error concerns the first datagram (an ICMP error for an earlier
    /// answer, say), and the caller may read on.
    pub fn recv(&mut self, fd: RawFd, max: usize) -> io::Result<usize> {
        let max = max.clamp(1, BATCH);
        self.filled = 0;
        for h in &mut self.rx.hdrs[..max] {
            // The kernel wrote the last sender's length here: room again.
            h.msg_hdr.msg_namelen = mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
        }
        // SAFETY: `max` headers, each pointing at its own iovec (one slot
        // of `SLOT` bytes) and sockaddr_storage, all owned by `self` and
        // not moved while the call runs.
        let got = unsafe {
            libc::recvmmsg(
                fd,
                self.rx.hdrs.as_mut_ptr(),
                max as libc::c_uint,
                libc::MSG_DONTWAIT,
                std::ptr::null_mut(),
            )
        };
        if got < 0 {
            return Err(io::Error::last_os_error());
        }
        self.filled = (got as usize).min(max);
        Ok(self.filled)
    }

    /// Datagram `i` of the last receive, and its sender (`None` for an
    /// address family other than IPv4 and IPv6).
    pub fn get(&self, i: usize) -> (&[u8], Option<SocketAddr>) {
        let i = i.min(self.filled.saturating_sub(1));
        let h = &self.rx.hdrs[i];
        let len = (h.msg_len as usize).min(SLOT);
        let data = &self.slots[i * SLOT..i * SLOT + len];
        (data, to_socket_addr(&self.peers[i], h.msg_hdr.msg_namelen))
    }

    /// Sends the datagrams `which` (indices of the last receive, in
    /// order) back to their senders, unchanged, in as few `sendmmsg`
    /// calls as the kernel allows. A full socket buffer drops the rest;
    /// a datagram the kernel refuses is dropped alone.
    pub fn send_back(&mut self, fd: RawFd, which: &[usize]) -> Sent {
        let which = &which[..which.len().min(BATCH)];
        let base = self.slots.as_mut_ptr();
        for (k, &i) in which.iter().enumerate() {
            let i = i.min(BATCH - 1);
            let rx = &self.rx.hdrs[i];
            let (len, namelen) = ((rx.msg_len as usize).min(SLOT), rx.msg_hdr.msg_namelen);
            // SAFETY: slot i is in bounds, and len <= SLOT.
            let slot = unsafe { base.add(i * SLOT) };
            self.tx.point(k, slot, len, &mut self.peers[i]);
            self.tx.hdrs[k].msg_hdr.msg_namelen = namelen;
        }
        let mut done = Sent::default();
        let mut at = 0;
        while at < which.len() {
            match self.tx.send(fd, at..which.len()) {
                Ok(went) => {
                    for h in &self.tx.hdrs[at..at + went] {
                        done.bytes += h.msg_len as usize;
                    }
                    done.sent += went;
                    at += went;
                }
                Err(e) if would_block(&e) => {
                    log::trace!("udp send batch: full, {} dropped", which.len() - at);
                    done.dropped += which.len() - at;
                    break;
                }
                Err(e) => {
                    log::trace!("udp send: {e}: one dropped");
                    done.dropped += 1;
                    at += 1;
                }
            }
        }
        done
    }
}

/// Bytes of datagrams an [`Outbox`] holds at most: 32 small ones, or
/// fewer large ones (4 of 64 KiB).
const OUTBOX_BYTES: usize = 256 * 1024;

/// Datagrams of one size to send on one connected socket, in one
/// `sendmmsg`: a load generator's datagrams that fell due together.
pub struct Outbox {
    /// `room` datagrams of `size` bytes, back to back.
    data: Box<[u8]>,
    size: usize,
    room: usize,
    tx: Headers,
}

// SAFETY: as for Batch: the headers point only into `data`, owned here.
unsafe impl Send for Outbox {}

impl std::fmt::Debug for Outbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Outbox")
            .field("size", &self.size)
            .field("room", &self.room)
            .finish_non_exhaustive()
    }
}

impl Outbox {
    /// Room for as many datagrams of `size` bytes (1 to the largest
    /// datagram) as fit in 256 KiB, at most [`BATCH`], at least one.
    pub fn new(size: usize) -> Outbox {
        let size = size.clamp(1, MAX_DATAGRAM);
        let room = (OUTBOX_BYTES / size).clamp(1, BATCH);
        let mut o = Outbox {
            data: vec![0u8; room * size].into_boxed_slice(),
            size,
            room,
            tx: Headers::new(),
        };
        let base = o.data.as_mut_ptr();
        for k in 0..room {
            // SAFETY: k * size + size <= data.len(): datagram k is in bounds.
            let at = unsafe { base.add(k * size) };
            o.tx.point(k, at, size, std::ptr::null_mut());
        }
        o
    }

    /// How many datagrams one send can carry.
    pub fn room(&self) -> usize {
        self.room
    }

    /// Datagram `k`'s bytes (`k` below [`room`](Self::room)), to fill.
    pub fn slot(&mut self, k: usize) -> &mut [u8] {
        let k = k.min(self.room - 1);
        &mut self.data[k * self.size..(k + 1) * self.size]
    }

    /// Sends datagrams `0..count` on the connected socket `fd`, in
    /// order, in as few calls as the kernel takes them. `Ok(n)`: the
    /// first `n` went (fewer than `count` when the buffer filled up). An
    /// error is the first datagram's, with none sent.
    pub fn send(&mut self, fd: RawFd, count: usize) -> io::Result<usize> {
        let count = count.min(self.room);
        let mut at = 0;
        while at < count {
            match self.tx.send(fd, at..count) {
                Ok(went) => at += went,
                Err(e) if at == 0 => return Err(e),
                Err(e) => {
                    // Report what went; the error will come again next time.
                    if !would_block(&e) {
                        log::debug!("udp send: {e}");
                    }
                    break;
                }
            }
        }
        Ok(at)
    }
}

/// The address the kernel wrote into `ss` (`len` bytes of it).
fn to_socket_addr(ss: &libc::sockaddr_storage, len: libc::socklen_t) -> Option<SocketAddr> {
    let len = len as usize;
    match ss.ss_family as libc::c_int {
        libc::AF_INET if len >= mem::size_of::<libc::sockaddr_in>() => {
            // SAFETY: the family says sockaddr_in, and the length covers it;
            // sockaddr_storage is aligned for every sockaddr type.
            let sin =
                unsafe { &*(ss as *const libc::sockaddr_storage).cast::<libc::sockaddr_in>() };
            let ip = Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr));
            Some(SocketAddr::V4(SocketAddrV4::new(
                ip,
                u16::from_be(sin.sin_port),
            )))
        }
        libc::AF_INET6 if len >= mem::size_of::<libc::sockaddr_in6>() => {
            // SAFETY: as above, for sockaddr_in6.
            let sin6 =
                unsafe { &*(ss as *const libc::sockaddr_storage).cast::<libc::sockaddr_in6>() };
            let ip = Ipv6Addr::from(sin6.sin6_addr.s6_addr);
            Some(SocketAddr::V6(SocketAddrV6::new(
                ip,
                u16::from_be(sin6.sin6_port),
                sin6.sin6_flowinfo,
                sin6.sin6_scope_id,
            )))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;
    use std::time::Duration;

    /// Three datagrams come in one call, whole and with their senders;
    /// a batch shorter than asked means the socket is empty (the next
    /// call says WouldBlock); they go back in one call, byte for byte.
    #[test]
    fn a_batch_in_and_back_out() {
        let server = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        server.set_nonblocking(true).unwrap();
        let addr = server.local_addr().unwrap();
        let peers: Vec<_> = (0..3)
            .map(|_| {
                let p = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
                p.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
                p
            })
            .collect();
        let big = vec![7u8; MAX_DATAGRAM];
        let sizes = [1usize, 1000, MAX_DATAGRAM];
        for (p, &n) in peers.iter().zip(&sizes) {
            p.send_to(&big[..n], addr).unwrap();
        }
        let mut batch = Batch::new();
        let fd = server.as_raw_fd();
        assert_eq!(batch.recv(fd, BATCH).unwrap(), 3);
        for (i, (p, &n)) in peers.iter().zip(&sizes).enumerate() {
            let (data, from) = batch.get(i);
            assert_eq!((data.len(), from), (n, Some(p.local_addr().unwrap())));
        }
        let empty = batch.recv(fd, BATCH).unwrap_err();
        assert!(would_block(&empty), "{empty}");
        // Again, and this time back to their senders (two of them).
        for (p, &n) in peers.iter().zip(&sizes) {
            p.send_to(&big[..n], addr).unwrap();
        }
        assert_eq!(batch.recv(fd, BATCH).unwrap(), 3);
        let sent = batch.send_back(fd, &[0, 2]);
        let bytes = sizes[0] + sizes[2];
        assert_eq!(
            sent,
            Sent {
                sent: 2,
                bytes,
                dropped: 0
            }
        );
        let mut buf = vec![0u8; MAX_DATAGRAM + 1];
        for i in [0, 2] {
            let (n, from) = peers[i].recv_from(&mut buf).unwrap();
            assert_eq!((&buf[..n], from), (&big[..sizes[i]], addr));
        }
    }

    /// A send the kernel refuses drops that datagram, counted, and the
    /// batch goes on with the rest: here every reply goes out through an
    /// IPv6 socket, which cannot send to the IPv4 senders (the server's
    /// `udp_dropped`; on loopback a full send buffer cannot be provoked
    /// from outside, since delivered datagrams are no longer charged to
    /// the sender).
    #[test]
    fn a_refused_send_is_dropped_and_counted() {
        let server = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        server.set_nonblocking(true).unwrap();
        let addr = server.local_addr().unwrap();
        let peer = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        for _ in 0..3 {
            peer.send_to(b"ping", addr).unwrap();
        }
        let mut batch = Batch::new();
        assert_eq!(batch.recv(server.as_raw_fd(), BATCH).unwrap(), 3);
        let Ok(v6) = std::net::UdpSocket::bind("[::1]:0") else {
            return; // no IPv6 loopback: the integration tests say so
        };
        v6.set_nonblocking(true).unwrap();
        let sent = batch.send_back(v6.as_raw_fd(), &[0, 1, 2]);
        assert_eq!(
            sent,
            Sent {
                sent: 0,
                bytes: 0,
                dropped: 3
            }
        );
        // The same batch through the right socket: all three go.
        assert_eq!(batch.send_back(server.as_raw_fd(), &[0, 1, 2]).sent, 3);
    }

    /// An outbox holds 32 small datagrams or fewer big ones (never none),
    /// and sends several in one call on a connected socket, each whole
    /// and in order.
    #[test]
    fn an_outbox_sends_several_in_one_call() {
        assert_eq!(Outbox::new(64).room(), BATCH);
        assert_eq!(Outbox::new(MAX_DATAGRAM).room(), 4);
        assert_eq!(Outbox::new(usize::MAX).room(), 4, "clamped to a datagram");
        let peer = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        peer.set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        let me = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        me.connect(peer.local_addr().unwrap()).unwrap();
        me.set_nonblocking(true).unwrap();
        let mut out = Outbox::new(100);
        for k in 0..3 {
            out.slot(k).fill(b'a' + k as u8);
        }
        assert_eq!(out.send(me.as_raw_fd(), 3).unwrap(), 3);
        let mut buf = [0u8; 200];
        for k in 0..3u8 {
            let (n, from) = peer.recv_from(&mut buf).unwrap();
            assert_eq!(
                (&buf[..n], from),
                (&[b'a' + k; 100][..], me.local_addr().unwrap())
            );
        }
        // A socket that cannot send says so, with nothing sent.
        let lone = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        assert!(out.send(lone.as_raw_fd(), 2).is_err(), "not connected");
    }

    /// `max` caps a receive: two of three now, the third next time.
    #[test]
    fn max_caps_a_receive() {
        let server = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        server.set_nonblocking(true).unwrap();
        let peer = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        for i in 0..3u8 {
            peer.send_to(&[i], server.local_addr().unwrap()).unwrap();
        }
        let mut batch = Batch::new();
        assert_eq!(batch.recv(server.as_raw_fd(), 2).unwrap(), 2);
        assert_eq!(batch.get(1).0, &[1]);
        assert_eq!(batch.recv(server.as_raw_fd(), 2).unwrap(), 1);
        assert_eq!(batch.get(0).0, &[2]);
    }
}
