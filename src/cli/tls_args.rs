//! The TLS options a dialing side takes (`echoloop client https://…`,
//! `echoloop load tls://…`): what to trust and what to present.

use clap::Args;

/// How a client speaks TLS: `echoloop client https://…` and `echoloop
/// load tls://…` take the same options, named as curl names them.
#[derive(Args, Debug, Clone)]
pub struct TlsArgs {
    /// Trust the certificates in FILE (PEM) instead of the system's: the
    /// file a server made with --tls prints.
    #[arg(long, value_name = "FILE", help_heading = "TLS")]
    pub cacert: Option<std::path::PathBuf>,

    /// Accept any certificate (the handshake still proves the server holds
    /// its key), as curl -k.
    #[arg(short = 'k', long, conflicts_with = "cacert", help_heading = "TLS")]
    pub insecure: bool,

    /// Present this certificate (PEM) to a server that asks (mTLS); with --key.
    #[arg(long, value_name = "FILE", requires = "key", help_heading = "TLS")]
    pub cert: Option<std::path::PathBuf>,

    /// The private key of --cert (PEM).
    #[arg(long, value_name = "FILE", requires = "cert", help_heading = "TLS")]
    pub key: Option<std::path::PathBuf>,
}

impl TlsArgs {
    /// The options, for [`crate::shared::tls::client_config`].
    pub fn options(&self) -> crate::shared::tls::ClientOptions {
        crate::shared::tls::ClientOptions {
            cacert: self.cacert.clone(),
            insecure: self.insecure,
            cert: self.cert.clone(),
            key: self.key.clone(),
            ..crate::shared::tls::ClientOptions::default()
        }
    }
}
