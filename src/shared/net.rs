//! Small socket helpers shared by the server, the client and the load
//! generator: the listening socket (socket > bind > listen, through socket2 so
//! the backlog is ours to choose), the predicates that keep the `match` arms
//! of the I/O handlers short (`would_block`, `interrupted`,
//! `out_of_resources`), mio's recipe for a finished non-blocking connect,
//! error wording for users (`describe`, `resolver_message`), and the process
//! limits (`raise_fd_limit`, `somaxconn`).
//!
//! Next: [`duration`](super::duration).

use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;

use super::addr::Endpoint;

use socket2::{Domain, Protocol, Socket, Type};

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

/// The resolver's own message, without std's "failed to lookup address
/// information: " prefix ("Name or service not known").
pub fn resolver_message(err: &io::Error) -> String {
    let text = err.to_string();
    match text.split_once("information: ") {
        Some((_, message)) => message.to_string(),
        None => text,
    }
}

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

/// Creates a non-blocking listening Unix-domain socket for `unix:/path`
/// or `unix:@name`, and returns it with the file to remove when the server
/// stops (`None` for an abstract name, which has no file).
///
/// A socket file already at the path is replaced only if nothing answers
/// on it: a server that died left it behind. If something answers, that
/// is "address in use"; a path that exists and is not a socket is never
/// touched. `mode` (say 0o660) sets the file's permissions.
pub fn listen_unix(
    endpoint: &Endpoint,
    mode: Option<u32>,
) -> io::Result<(std::os::unix::net::UnixListener, Option<PathBuf>)> {
    use std::os::linux::net::SocketAddrExt;
    use std::os::unix::fs::{FileTypeExt, PermissionsExt};
    use std::os::unix::net::{SocketAddr as UnixAddr, UnixListener, UnixStream};
    let (listener, file) = match endpoint {
        Endpoint::Abstract(name) => {
            let addr = UnixAddr::from_abstract_name(name.as_bytes())?;
            (UnixListener::bind_addr(&addr)?, None)
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
            let listener = UnixListener::bind(path)?;
            if let Some(mode) = mode {
                std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))?;
            }
            (listener, Some(path.clone()))
        }
        Endpoint::Ip(addr) => {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{addr} is not a Unix-domain address"),
            ));
        }
    };
    listener.set_nonblocking(true)?;
    Ok((listener, file))
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
    socket.bind(&SocketAddr::new(from, 0).into())?;
    match socket.connect(&to.into()) {
        Ok(()) => {}
        Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => {}
        Err(e) => return Err(e),
    }
    Ok(mio::net::TcpStream::from_std(socket.into()))
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
