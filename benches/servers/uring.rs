//! The completion-based comparison kind, `uring`: a TCP echo server on
//! io_uring, about the size of the mini reactor, for the benches only.
//!
//! A readiness loop asks "which sockets may I read?" and then reads each
//! one itself: one `read` and one `write` per message, plus an
//! `epoll_wait` per batch of events. Here the kernel is asked once per
//! connection to go on receiving (multishot `recv`), into buffers the
//! server lent it up front (a ring of provided buffers shared by every
//! connection, registered once), and one `io_uring_enter` both submits
//! the turn's sends and waits for the next completions. A buffer whose
//! echo was sent goes back to the kernel by a store to shared memory
//! (the buffer ring's tail), not by a request of its own. So the system calls per message
//! fall well below one, and no connection owns a read buffer while it
//! is idle.
//!
//! What it costs: every echo waits in a lent buffer until its send
//! completes, sends on one connection go one at a time (two sends in
//! flight on one socket may complete out of order), and when the lent
//! buffers run out the kernel ends a connection's multishot receive,
//! which must be armed again once a buffer comes back.

use std::collections::VecDeque;
use std::io::Write;
use std::net::TcpListener;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::{AtomicU16, Ordering};

use io_uring::types::BufRingEntry;
use io_uring::{IoUring, cqueue, opcode, squeue, types::Fd};

/// Bytes per lent buffer: echoloop's read size.
const BUF: usize = 1024;
/// Lent buffers, shared by every connection.
const BUFS: u16 = 8192;
/// The buffer group's id.
const GROUP: u16 = 0;
/// Submission and completion queue entries.
const ENTRIES: u32 = 4096;

/// What a completion is about: its tag (top byte of `user_data`).
const ACCEPT: u64 = 1;
const RECV: u64 = 2;
const SEND: u64 = 3;
const CLOSE: u64 = 5;

/// The lent buffers' ring, shared with the kernel: the server writes an
/// entry (address, length, id) per buffer it hands back and then moves
/// the tail; the kernel takes entries from the head as data arrives.
struct BufRing {
    entries: *mut BufRingEntry,
    /// The pool the entries point into.
    base: *mut u8,
    /// The tail as written so far; the kernel sees it at `publish`.
    tail: u16,
}

impl BufRing {
    /// Registers a ring of `BUFS` entries with `ring` and lends it every
    /// buffer of the pool at `base`.
    fn new(ring: &IoUring, base: *mut u8) -> std::io::Result<BufRing> {
        let layout = std::alloc::Layout::from_size_align(
            BUFS as usize * std::mem::size_of::<BufRingEntry>(),
            4096,
        )
        .map_err(std::io::Error::other)?;
        // SAFETY: the layout has a non-zero size. The memory is never freed:
        // the kernel reads it for as long as the process serves.
        let entries = unsafe { std::alloc::alloc_zeroed(layout) }.cast::<BufRingEntry>();
        if entries.is_null() {
            return Err(std::io::Error::other("out of memory for the buffer ring"));
        }
        // SAFETY: `entries` is page-aligned, BUFS (a power of two) entries
        // long, zeroed, and outlives the ring.
        unsafe {
            ring.submitter()
                .register_buf_ring_with_flags(entries as u64, BUFS, GROUP, 0)?
        };
        let mut bufs = BufRing {
            entries,
            base,
            tail: 0,
        };
        for bid in 0..BUFS {
            bufs.give_back(bid);
        }
        bufs.publish();
        Ok(bufs)
    }

    /// Writes buffer `bid`'s entry at the tail (seen by the kernel at the
    /// next [`publish`](Self::publish)).
    fn give_back(&mut self, bid: u16) {
        let slot = (self.tail & (BUFS - 1)) as usize;
        // SAFETY: slot < BUFS: the entry is in the ring; bid < BUFS: the
        // buffer is in the pool. The entry is not the kernel's: the
        // kernel only reads entries below the published tail.
        unsafe {
            let entry = &mut *self.entries.add(slot);
            entry.set_addr(self.base.add(bid as usize * BUF) as u64);
            entry.set_len(BUF as u32);
            entry.set_bid(bid);
        }
        self.tail = self.tail.wrapping_add(1);
    }

    /// Lets the kernel see every entry written so far: one release store
    /// per turn, however many buffers came back.
    fn publish(&self) {
        // SAFETY: the tail field lies in the first entry's reserved bytes,
        // a u16 aligned for AtomicU16, shared with the kernel (which reads
        // it): an atomic store with release ordering publishes the entries.
        unsafe {
            let tail = BufRingEntry::tail(self.entries).cast::<AtomicU16>();
            (*tail).store(self.tail, Ordering::Release);
        }
    }
}

/// `user_data`: what (8 bits), the file descriptor (24), the
/// connection's generation (16: a late completion for a closed
/// connection must not touch the next one on the same descriptor) and a
/// buffer id (16), in one u64.
fn tag(kind: u64, fd: RawFd, generation: u16, bid: u16) -> u64 {
    (kind << 56) | ((fd as u64 & 0xff_ffff) << 32) | ((generation as u64) << 16) | bid as u64
}

fn untag(data: u64) -> (u64, RawFd, u16, u16) {
    let fd = ((data >> 32) & 0xff_ffff) as RawFd;
    (data >> 56, fd, (data >> 16) as u16, data as u16)
}

/// One connection: the echoes waiting to be sent (buffer id, bytes sent
/// so far, length), the head of which is in flight.
struct Conn {
    generation: u16,
    queue: VecDeque<(u16, usize, usize)>,
    sending: bool,
    /// The peer finished (EOF or an error): close once the queue is empty.
    done: bool,
}

/// Serves `listener` until killed.
pub fn serve(listener: TcpListener) -> std::io::Result<()> {
    // One thread submits, and completions' work in the kernel waits for
    // the next enter instead of interrupting the server as data arrives
    // (DEFER_TASKRUN, Linux 6.1); without those flags, fall back to a
    // plain ring.
    let mut ring = IoUring::builder()
        .setup_single_issuer()
        .setup_defer_taskrun()
        .build(ENTRIES)
        .or_else(|_| IoUring::new(ENTRIES))?;
    let mut pool = vec![0u8; BUF * BUFS as usize];
    let base = pool.as_mut_ptr();
    let mut conns: Vec<Option<Conn>> = Vec::new();
    let mut generation: u16 = 0;
    // Connections whose multishot receive ended for want of buffers: armed
    // again when a buffer comes back.
    let mut starved: Vec<(RawFd, u16)> = Vec::new();
    let mut bufs = BufRing::new(&ring, base)?;
    let mut pending: Vec<squeue::Entry> = Vec::new();
    pending.push(
        opcode::AcceptMulti::new(Fd(listener.as_raw_fd()))
            .build()
            .user_data(tag(ACCEPT, 0, 0, 0)),
    );
    println!("listening on {}", listener.local_addr()?);
    std::io::stdout().flush()?;
    // ANCHOR: turn
    loop {
        // Lend back what this turn freed, queue what it decided, then one
        // enter: submit and wait.
        bufs.publish();
        for entry in pending.drain(..) {
            // SAFETY: every buffer an entry names is in `pool`, which
            // lives until the process ends; the queue is drained below
            // whenever it is full.
            while unsafe { ring.submission().push(&entry) }.is_err() {
                ring.submit()?;
            }
        }
        match ring.submit_and_wait(1) {
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            other => other?,
        };
        let done: Vec<(u64, i32, u32)> = ring
            .completion()
            .map(|c| (c.user_data(), c.result(), c.flags()))
            .collect();
        // ANCHOR_END: turn
        for (data, res, flags) in done {
            let (kind, fd, cqe_generation, bid) = untag(data);
            let live = |conns: &mut Vec<Option<Conn>>| -> Option<usize> {
                let i = fd as usize;
                conns
                    .get(i)?
                    .as_ref()
                    .filter(|c| c.generation == cqe_generation)
                    .map(|_| i)
            };
            match kind {
                ACCEPT => {
                    if res >= 0 {
                        let fd = res as RawFd;
                        let i = fd as usize;
                        if conns.len() <= i {
                            conns.resize_with(i + 1, || None);
                        }
                        generation = generation.wrapping_add(1);
                        conns[i] = Some(Conn {
                            generation,
                            queue: VecDeque::new(),
                            sending: false,
                            done: false,
                        });
                        pending.push(recv(fd, generation));
                    }
                    if !cqueue::more(flags) {
                        pending.push(
                            opcode::AcceptMulti::new(Fd(listener.as_raw_fd()))
                                .build()
                                .user_data(tag(ACCEPT, 0, 0, 0)),
                        );
                    }
                }
                RECV => {
                    let Some(i) = live(&mut conns) else {
                        continue;
                    };
                    let conn = conns[i].as_mut().expect("live");
                    let g = conn.generation;
                    if res > 0 {
                        let Some(bid) = cqueue::buffer_select(flags) else {
                            continue;
                        };
                        conn.queue.push_back((bid, 0, res as usize));
                        if !conn.sending {
                            conn.sending = true;
                            pending.push(send(base, fd, g, conn.queue[0]));
                        }
                        if !cqueue::more(flags) {
                            pending.push(recv(fd, g));
                        }
                    } else if res == -libc::ENOBUFS {
                        starved.push((fd, g));
                    } else {
                        conn.done = true;
                        if !conn.sending {
                            conns[fd as usize] = None;
                            pending.push(close(fd));
                        }
                    }
                }
                SEND => {
                    // A buffer comes back: whoever starved may receive again.
                    for (fd, g) in starved.drain(..) {
                        pending.push(recv(fd, g));
                    }
                    let Some(i) = live(&mut conns) else {
                        bufs.give_back(bid);
                        continue;
                    };
                    let conn = conns[i].as_mut().expect("live");
                    let g = conn.generation;
                    let Some(head) = conn.queue.front_mut() else {
                        continue;
                    };
                    if res > 0 && head.1 + (res as usize) < head.2 {
                        // A partial send: the rest of the same buffer.
                        head.1 += res as usize;
                        pending.push(send(base, fd, g, *head));
                        continue;
                    }
                    conn.queue.pop_front();
                    bufs.give_back(bid);
                    if res < 0 {
                        conn.done = true;
                    }
                    match conn.queue.front() {
                        Some(&next) if res >= 0 => pending.push(send(base, fd, g, next)),
                        _ => {
                            conn.sending = false;
                            if conn.done {
                                for (bid, _, _) in conn.queue.drain(..) {
                                    bufs.give_back(bid);
                                }
                                conns[fd as usize] = None;
                                pending.push(close(fd));
                            }
                        }
                    }
                }
                _ => {}
            }
        }
    }
}

/// A multishot receive on `fd` into the shared buffer group.
fn recv(fd: RawFd, generation: u16) -> squeue::Entry {
    opcode::RecvMulti::new(Fd(fd), GROUP)
        .build()
        .user_data(tag(RECV, fd, generation, 0))
}

/// Sends what is left of buffer `bid` (bytes `sent..len`).
fn send(
    base: *mut u8,
    fd: RawFd,
    generation: u16,
    (bid, sent, len): (u16, usize, usize),
) -> squeue::Entry {
    // SAFETY: bid < BUFS and sent < len <= BUF: the range is in the pool.
    let at = unsafe { base.add(bid as usize * BUF + sent) };
    opcode::Send::new(Fd(fd), at, (len - sent) as u32)
        .build()
        .user_data(tag(SEND, fd, generation, bid))
}

/// Closes `fd` through the ring.
fn close(fd: RawFd) -> squeue::Entry {
    opcode::Close::new(Fd(fd))
        .build()
        .user_data(tag(CLOSE, fd, 0, 0))
}
