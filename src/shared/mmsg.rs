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
//! datagram would truncate it silently). The kernel's headers point into
//! those slots; they are rebuilt on the stack for every call, so nothing
//! here points into itself.

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

/// The datagrams of one `recvmmsg`, in slots, with their senders.
pub struct Batch {
    /// `BATCH` slots of `SLOT` bytes. Only the pages a datagram reaches
    /// are ever touched, so small datagrams keep most of it unresident.
    slots: Box<[u8]>,
    /// Each slot's sender, as the kernel wrote it.
    peers: Box<[libc::sockaddr_storage]>,
    /// Each slot's sender's address length.
    peer_lens: [libc::socklen_t; BATCH],
    /// Each slot's datagram length.
    lens: [usize; BATCH],
    /// How many slots the last receive filled.
    filled: usize,
}

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
        Batch {
            slots: vec![0u8; BATCH * SLOT].into_boxed_slice(),
            peers: vec![zero; BATCH].into_boxed_slice(),
            peer_lens: [0; BATCH],
            lens: [0; BATCH],
            filled: 0,
        }
    }

    /// Receives up to `max` (at most [`BATCH`], at least 1) datagrams
    /// waiting on `fd` without blocking. `Ok(n)` with `n < max` means the
    /// socket is now empty. `WouldBlock` when nothing waited; another
    /// error concerns the first datagram (an ICMP error for an earlier
    /// answer, say), and the caller may read on.
    pub fn recv(&mut self, fd: RawFd, max: usize) -> io::Result<usize> {
        let max = max.clamp(1, BATCH);
        self.filled = 0;
        let (mut iovs, mut hdrs) = blank_headers();
        let base = self.slots.as_mut_ptr();
        for i in 0..max {
            // SAFETY: i * SLOT + SLOT <= slots.len(): slot i is in bounds.
            iovs[i].iov_base = unsafe { base.add(i * SLOT) }.cast();
            iovs[i].iov_len = SLOT;
            let h = &mut hdrs[i].msg_hdr;
            h.msg_name = (&mut self.peers[i] as *mut libc::sockaddr_storage).cast();
            h.msg_namelen = mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
            h.msg_iov = &mut iovs[i];
            h.msg_iovlen = 1;
        }
        // SAFETY: `max` headers, each pointing at one iovec and one
        // sockaddr_storage that live, unmoved, until the call returns;
        // each iovec covers one slot of `SLOT` bytes.
        let got = unsafe {
            libc::recvmmsg(
                fd,
                hdrs.as_mut_ptr(),
                max as libc::c_uint,
                libc::MSG_DONTWAIT,
                std::ptr::null_mut(),
            )
        };
        if got < 0 {
            return Err(io::Error::last_os_error());
        }
        let got = got as usize;
        for (i, h) in hdrs.iter().enumerate().take(got) {
            self.lens[i] = h.msg_len as usize;
            self.peer_lens[i] = h.msg_hdr.msg_namelen;
        }
        self.filled = got;
        Ok(got)
    }

    /// Datagram `i` of the last receive, and its sender (`None` for an
    /// address family other than IPv4 and IPv6).
    pub fn get(&self, i: usize) -> (&[u8], Option<SocketAddr>) {
        let i = i.min(self.filled.saturating_sub(1));
        let data = &self.slots[i * SLOT..i * SLOT + self.lens[i]];
        (data, to_socket_addr(&self.peers[i], self.peer_lens[i]))
    }

    /// Sends the datagrams `which` (indices of the last receive, in
    /// order) back to their senders, unchanged, in as few `sendmmsg`
    /// calls as the kernel allows. A full socket buffer drops the rest;
    /// a datagram the kernel refuses is dropped alone.
    pub fn send_back(&mut self, fd: RawFd, which: &[usize]) -> Sent {
        let which = &which[..which.len().min(BATCH)];
        let mut done = Sent::default();
        let (mut iovs, mut hdrs) = blank_headers();
        let base = self.slots.as_mut_ptr();
        for (k, &i) in which.iter().enumerate() {
            let i = i.min(BATCH - 1);
            // SAFETY: slot i is in bounds, and lens[i] <= SLOT.
            iovs[k].iov_base = unsafe { base.add(i * SLOT) }.cast();
            iovs[k].iov_len = self.lens[i];
            let h = &mut hdrs[k].msg_hdr;
            h.msg_name = (&mut self.peers[i] as *mut libc::sockaddr_storage).cast();
            h.msg_namelen = self.peer_lens[i];
            h.msg_iov = &mut iovs[k];
            h.msg_iovlen = 1;
        }
        let mut at = 0;
        while at < which.len() {
            // SAFETY: headers at..which.len() are set above, and point at
            // iovecs, slots and addresses that outlive the call.
            let r = unsafe {
                libc::sendmmsg(
                    fd,
                    hdrs[at..].as_mut_ptr(),
                    (which.len() - at) as libc::c_uint,
                    libc::MSG_DONTWAIT,
                )
            };
            if r > 0 {
                for h in &hdrs[at..at + r as usize] {
                    done.bytes += h.msg_len as usize;
                }
                done.sent += r as usize;
                at += r as usize;
                continue;
            }
            let e = io::Error::last_os_error();
            if interrupted(&e) {
                continue;
            }
            if would_block(&e) {
                log::trace!("udp send batch: full, {} dropped", which.len() - at);
                done.dropped += which.len() - at;
                break;
            }
            log::trace!("udp send: {e}: one dropped");
            done.dropped += 1;
            at += 1;
        }
        done
    }
}

/// Headers and buffer descriptors for one call, all null and zero; the
/// caller sets every field the kernel reads.
fn blank_headers() -> ([libc::iovec; BATCH], [libc::mmsghdr; BATCH]) {
    // SAFETY: iovec and mmsghdr are plain C structs of integers and raw
    // pointers: all zeroes (null pointers, zero lengths) is a valid value.
    unsafe { (mem::zeroed(), mem::zeroed()) }
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
