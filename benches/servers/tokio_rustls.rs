//! The fair peer for `echoloop server --tls`: a tokio `current_thread`
//! runtime with tokio-rustls, over the very same rustls configuration
//! (`echoloop::server::tls_server::setup`: the ring provider, TLS 1.3,
//! X25519 and AES-128-GCM first, one ECDSA P-256 certificate, tickets on).
//! An async runtime over the same crypto, so a comparison shows the loop,
//! not the library. One task per connection reads into a 16 KiB buffer and
//! writes what it read back with `write_all`, as tokio-rustls's examples
//! echo.

use std::sync::Arc;

/// Runs the server if the bench was started as
/// `tls --serve-tokio-rustls CERT KEY`: prints `listening on ADDR` and
/// serves until killed.
pub fn serve_if_asked() {
    let Some(config) = super::servers::tls_config_if_asked("--serve-tokio-rustls") else {
        return;
    };
    if let Err(e) = serve(config) {
        eprintln!("tokio-rustls server: {e}");
        std::process::exit(1);
    }
    std::process::exit(0);
}

fn serve(config: Arc<rustls::ServerConfig>) -> std::io::Result<()> {
    use std::io::Write as _;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        println!("listening on {}", listener.local_addr()?);
        std::io::stdout().flush()?;
        let acceptor = tokio_rustls::TlsAcceptor::from(config);
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let _ = stream.set_nodelay(true);
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(stream).await else {
                    return;
                };
                let mut buf = vec![0u8; 16 * 1024];
                loop {
                    match tls.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => {
                            if tls.write_all(&buf[..n]).await.is_err() {
                                return;
                            }
                        }
                    }
                }
                let _ = tls.shutdown().await;
            });
        }
    })
}
