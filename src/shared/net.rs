//! Small socket helpers shared by the server, the client and the load
//! generator: the listening socket (socket > bind > listen, through socket2 so
//! the backlog is ours to choose), the predicates that keep the `match` arms
//! of the I/O handlers short (`would_block`, `interrupted`,
//! `out_of_resources`), mio's recipe for a finished non-blocking connect,
//! error wording for users (`describe`; the resolver's own is in `addr`), and the process
//! limits (`raise_fd_limit`, `somaxconn`).

use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;

use super::addr::Endpoint;

use socket2::{Domain, Protocol, SockAddr, Socket, Type};

/// True when a non-blocking call had nothing to do: try again after the next
/// readiness event.
pub fn would_block(err: &io::Error) -> bool {
    err.kind() == io::ErrorKind::WouldBlock
}

/// True when a signal interrupted the call before it did anything: just
/// call it again.
pub fn interrupted(err: &io::Error) -> bool {
    err.kind() == io::ErrorKind::Interrupted
}

/// True for accept errors that mean "out of file descriptors or kernel
/// memory": nothing this process does right now will make the next accept
/// succeed, so retrying at once would only spin.
pub fn out_of_resources(err: &io::Error) -> bool {
    matches!(
        err.raw_os_error(),
        Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM)
    )
}

/// The kernel's message in lower case without the "(os error N)" suffix
/// users do not need; "address already in use", "permission denied".
pub fn describe(err: &io::Error) -> String {
    let text = err.to_string();
    let text = match text.find(" (os error") {
        Some(i) => &text[..i],
        None => &text,
    };
    let mut chars = text.chars();
    match chars.next() {
        Some(c) => c.to_lowercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// The largest UDP payload over IPv4: 65,535 − 8 (UDP header) − 20 (IPv4
/// header). The largest datagram `load udp://` sends (`-s`); receive
/// buffers are a little larger, for IPv6's limit (65,527 without
/// jumbograms) and to see a datagram that does not fit.
pub const MAX_DATAGRAM: usize = 65_507;

/// Creates a non-blocking listening socket: `socket()`, `SO_REUSEADDR` (so a
/// restarted server need not wait out TIME_WAIT), `bind()`, `listen(backlog)`.
pub fn listen(addr: SocketAddr, backlog: u32) -> io::Result<std::net::TcpListener> {
    listen_with(addr, backlog, false)
}

/// Like [`listen`], with `SO_REUSEPORT` too: several sockets of this user
/// may then listen on the same address, and the kernel hashes each new
/// connection to one of them. For the server's share-nothing reactors.
pub fn listen_reuseport(addr: SocketAddr, backlog: u32) -> io::Result<std::net::TcpListener> {
    listen_with(addr, backlog, true)
}

fn listen_with(
    addr: SocketAddr,
    backlog: u32,
    reuse_port: bool,
) -> io::Result<std::net::TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    if reuse_port {
        socket.set_reuse_port(true)?;
    }
    socket.bind(&addr.into())?;
    // listen(2) takes an int; anything larger is capped by somaxconn anyway.
    socket.listen(backlog.min(i32::MAX as u32) as i32)?;
    socket.set_nonblocking(true)?;
    Ok(socket.into())
}

/// The socket file a Unix-domain listener made, named by its path and
/// told apart from a later file at the same path by its device and inode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SocketFile {
    /// Where it is.
    pub path: PathBuf,
    /// Its device and inode, read right after the bind.
    pub id: (u64, u64),
}

impl SocketFile {
    /// Removes the file if it is still the one the bind made: another
    /// server may have replaced it since (after an `rm`), and its socket
    /// must not go with ours. Says what it did.
    pub fn remove_if_ours(&self) -> io::Result<bool> {
        use std::os::unix::fs::MetadataExt;
        match std::fs::symlink_metadata(&self.path) {
            Ok(meta) if (meta.dev(), meta.ino()) == self.id => {
                std::fs::remove_file(&self.path)?;
                Ok(true)
            }
            Ok(_) => Ok(false),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(e),
        }
    }
}

/// Creates a non-blocking listening Unix-domain socket for `unix:/path`
/// or `unix:@name` with `backlog`, and returns it with the file to remove
/// when the server stops (`None` for an abstract name, which has no file).
///
/// A socket file already at the path is replaced only if nothing answers
/// on it: a server that died left it behind. If something answers, that
/// is "address in use"; a path that exists and is not a socket is never
/// touched. `mode` (say 0o660) is the file's permissions from the moment
/// it exists: the bind runs under a umask that leaves exactly `mode`, so
/// there is no window with the default mode, and no `chmod` that could
/// follow a symlink swapped in after the bind.
pub fn listen_unix(
    endpoint: &Endpoint,
    mode: Option<u32>,
    backlog: u32,
) -> io::Result<(std::os::unix::net::UnixListener, Option<SocketFile>)> {
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    use std::os::unix::net::UnixStream;
    let socket = Socket::new(Domain::UNIX, Type::STREAM, None)?;
    let file = match endpoint {
        Endpoint::Abstract(name) => {
            // A leading NUL byte names the abstract namespace.
            let bytes = [&[0u8][..], name.as_bytes()].concat();
            let path = std::path::Path::new(std::ffi::OsStr::from_bytes(&bytes));
            socket.bind(&SockAddr::unix(path)?)?;
            None
        }
        Endpoint::Unix(path) => {
            match std::fs::symlink_metadata(path) {
                Ok(meta) if meta.file_type().is_socket() => match UnixStream::connect(path) {
                    Ok(_) => {
                        return Err(io::Error::new(
                            io::ErrorKind::AddrInUse,
                            "address in use (a server answers on that socket)",
                        ));
                    }
                    Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
                        log::info!("{}: replacing a stale socket file", path.display());
                        std::fs::remove_file(path)?;
                    }
                    Err(e) => return Err(e),
                },
                Ok(_) => {
                    return Err(io::Error::new(
                        io::ErrorKind::AlreadyExists,
                        "the path exists and is not a socket (left untouched)",
                    ));
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
            let addr = SockAddr::unix(path)?;
            match mode {
                // bind(2) creates the file with 0777 & !umask.
                Some(mode) => with_umask(0o777 & !mode, || socket.bind(&addr))?,
                None => socket.bind(&addr)?,
            }
            let meta = std::fs::symlink_metadata(path)?;
            Some(SocketFile {
                path: path.clone(),
                id: (meta.dev(), meta.ino()),
            })
        }
        Endpoint::Ip(addr) => {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{addr} is not a Unix-domain address"),
            ));
        }
    };
    socket.listen(backlog.min(i32::MAX as u32) as i32)?;
    socket.set_nonblocking(true)?;
    Ok((socket.into(), file))
}

/// Runs `f` with the process umask set to `mask`, then restores it. (The
/// umask is the process's: this runs while the server starts, before any
/// thread of ours that creates files.)
fn with_umask<T>(mask: u32, f: impl FnOnce() -> T) -> T {
    // SAFETY: umask only swaps the process's file-mode mask; it cannot fail.
    let old = unsafe { libc::umask(mask as libc::mode_t) };
    let out = f();
    // SAFETY: as above, restoring the mask we found.
    unsafe { libc::umask(old) };
    out
}

/// Starts a non-blocking connect to `unix:/path` or `unix:@name`.
pub fn connect_unix(endpoint: &Endpoint) -> io::Result<mio::net::UnixStream> {
    use std::os::linux::net::SocketAddrExt;
    use std::os::unix::net::SocketAddr as UnixAddr;
    match endpoint {
        Endpoint::Unix(path) => mio::net::UnixStream::connect(path),
        Endpoint::Abstract(name) => {
            mio::net::UnixStream::connect_addr(&UnixAddr::from_abstract_name(name.as_bytes())?)
        }
        Endpoint::Ip(addr) => Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{addr} is not a Unix-domain address"),
        )),
    }
}

/// Binds a non-blocking UDP socket on `addr`, with `SO_REUSEPORT` when
/// `reuse_port` (several reactors, each with its own socket).
pub fn bind_udp(addr: SocketAddr, reuse_port: bool) -> io::Result<std::net::UdpSocket> {
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    if reuse_port {
        socket.set_reuse_port(true)?;
    }
    socket.bind(&addr.into())?;
    socket.set_nonblocking(true)?;
    Ok(socket.into())
}

/// Starts a non-blocking connect to `to`, from `from` (any port) when
/// given: the socket is bound first, so connections can be spread over
/// several local addresses (one source address runs out of ports near
/// 28,000 connections to one server port). The connect is in progress when
/// this returns; see [`Stream::connect_finished`](super::stream::Stream::connect_finished).
pub fn connect_from(
    from: Option<std::net::IpAddr>,
    to: SocketAddr,
) -> io::Result<mio::net::TcpStream> {
    let Some(from) = from else {
        return mio::net::TcpStream::connect(to);
    };
    let socket = Socket::new(Domain::for_address(to), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_nonblocking(true)?;
    // The port is then chosen at connect, by the whole 4-tuple, as for a
    // connect without bind: a bind alone would reserve a port for every
    // destination, and a churning run's TIME_WAIT ports would be taken
    // from every other connect on the machine for a minute. Best effort
    // (Linux 4.2 and later).
    let _ = set_bind_address_no_port(&socket);
    socket.bind(&SocketAddr::new(from, 0).into())?;
    match socket.connect(&to.into()) {
        Ok(()) => {}
        Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => {}
        Err(e) => return Err(e),
    }
    Ok(mio::net::TcpStream::from_std(socket.into()))
}

/// `IP_BIND_ADDRESS_NO_PORT` on `socket` (socket2 has no setter for it).
fn set_bind_address_no_port(socket: &Socket) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    let on: libc::c_int = 1;
    // SAFETY: setsockopt reads an int of the size we pass, from a local
    // that outlives the call, on a descriptor `socket` owns.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::IPPROTO_IP,
            libc::IP_BIND_ADDRESS_NO_PORT,
            (&on as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    match rc {
        0 => Ok(()),
        _ => Err(io::Error::last_os_error()),
    }
}

/// Raises this process's soft limit on open files to its hard limit, as a
/// server or load generator that holds thousands of sockets needs (the
/// usual soft default is 1024). Returns the soft limit now in force.
pub fn raise_fd_limit() -> io::Result<u64> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit only read and write the struct we pass.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return Err(io::Error::last_os_error());
        }
        if lim.rlim_cur < lim.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: lim.rlim_max,
                rlim_max: lim.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) != 0 {
                return Err(io::Error::last_os_error());
            }
            lim = raised;
        }
    }
    Ok(lim.rlim_cur)
}

/// The kernel's cap on listen backlogs (`/proc/sys/net/core/somaxconn`), if
/// this system has one we can read.
pub fn somaxconn() -> Option<u32> {
    std::fs::read_to_string("/proc/sys/net/core/somaxconn")
        .ok()?
        .trim()
        .parse()
        .ok()
}

#[cfg(test)]
mod unix_tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("echoloop-net-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    /// `--backlog` holds for Unix sockets too: with a backlog of 2 and
    /// nobody accepting, non-blocking connects are refused (EAGAIN) after
    /// about that many (Linux queues backlog + 1); it used to be 4,096.
    #[test]
    fn the_backlog_is_the_one_asked_for() {
        let dir = scratch("backlog");
        let endpoint = Endpoint::Unix(dir.join("s"));
        let (_listener, _file) = listen_unix(&endpoint, None, 2).unwrap();
        let addr = SockAddr::unix(dir.join("s")).unwrap();
        let mut queued = Vec::new();
        let refused = loop {
            let s = Socket::new(Domain::UNIX, Type::STREAM, None).unwrap();
            s.set_nonblocking(true).unwrap();
            match s.connect(&addr) {
                Ok(()) => queued.push(s),
                Err(e) => break e,
            }
            assert!(queued.len() < 100, "the backlog is not 2");
        };
        assert_eq!(refused.kind(), io::ErrorKind::WouldBlock, "{refused}");
        assert!((2..=3).contains(&queued.len()), "{} queued", queued.len());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// `mode` is the file's mode from the bind on, including bits the
    /// umask would clear, with no chmod after it; the umask is restored.
    #[test]
    fn the_mode_is_set_by_the_bind() {
        let dir = scratch("mode");
        // SAFETY: reading the umask means setting it; put it back at once.
        let before = unsafe { libc::umask(0o022) };
        let endpoint = Endpoint::Unix(dir.join("s"));
        let (_listener, file) = listen_unix(&endpoint, Some(0o666), 16).unwrap();
        // SAFETY: as above.
        let after = unsafe { libc::umask(before) };
        assert_eq!(after, 0o022, "the umask is restored");
        let meta = std::fs::symlink_metadata(dir.join("s")).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o666);
        assert!(file.unwrap().remove_if_ours().unwrap());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
