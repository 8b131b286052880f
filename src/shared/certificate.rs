//! Certificates made here: the one `server --tls` makes when it is given
//! none, and `echoloop generate cert`'s, for a proxy that terminates TLS
//! (haproxy, nginx) or a server started with `--tls-cert/--tls-key`.
//!
//! Each is an ECDSA P-256 key and a self-signed certificate that is not a
//! CA, with its names as subjectAltNames (a DNS name, or an IP address as
//! an IP name). A client trusts it by being given the certificate itself
//! (`--cacert cert.pem`, openssl's `-CAfile`).

use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};

use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};

/// The names a certificate is made for unless told: this machine, by
/// name and by both loopback addresses.
pub const LOOPBACK_NAMES: [&str; 3] = ["localhost", "127.0.0.1", "::1"];

/// A certificate and its key, as PEM (to write) and DER (to serve).
pub struct Made {
    /// The certificate, PEM.
    pub cert_pem: String,
    /// The private key, PKCS#8 PEM.
    pub key_pem: String,
    /// The certificate, DER.
    pub cert: CertificateDer<'static>,
    /// The private key, DER.
    pub key: PrivateKeyDer<'static>,
}

/// A name a certificate may carry: a DNS name (`*.` first for a wildcard)
/// or an IP address. A clap value parser: a bad name is a usage error.
pub fn check_name(name: &str) -> Result<String, String> {
    let bare = name.strip_prefix("*.").unwrap_or(name);
    match ServerName::try_from(bare) {
        Ok(_) if !bare.is_empty() => Ok(name.to_string()),
        _ => Err(format!(
            "not a DNS name or an IP address: {name:?} (e.g. proxy.example, *.example, 10.0.0.5, ::1)"
        )),
    }
}

impl std::fmt::Debug for Made {
    /// The certificate only: a key is not for logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Made")
            .field("cert_pem", &self.cert_pem)
            .finish_non_exhaustive()
    }
}

/// Makes a key and a certificate for `names` (at least one).
/// The subject's common name is `echoloop NAME` for the first name
/// (what a person reading `openssl x509 -text` looks for; clients check
/// the subjectAltNames). Not the bare name: a self-signed certificate's
/// issuer is its subject, and a system CA store may hold another
/// certificate named `CN=localhost` (Debian's ssl-cert "snakeoil"), which
/// a client then takes for the issuer and reports a signature that does
/// not match instead of a CA it does not trust.
pub fn make(names: &[String]) -> Result<Made, String> {
    let failed = |e: rcgen::Error| format!("cannot make a certificate: {e}");
    let mut params = rcgen::CertificateParams::new(names.to_vec()).map_err(failed)?;
    let mut subject = rcgen::DistinguishedName::new();
    subject.push(
        rcgen::DnType::CommonName,
        format!("echoloop {}", names.first().map_or("", String::as_str)).trim_end(),
    );
    params.distinguished_name = subject;
    let key = rcgen::KeyPair::generate().map_err(failed)?;
    let cert = params.self_signed(&key).map_err(failed)?;
    Ok(Made {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
        cert: cert.der().clone(),
        key: PrivateKeyDer::Pkcs8(key.serialize_der().into()),
    })
}

/// Writes `made` as `cert.pem` (mode 0644) and `key.pem` (mode 0600) in
/// `dir`, made if missing. A file already there is refused, not
/// overwritten (a key someone uses is not replaced by a typo), and
/// neither name follows a symlink. Returns the two paths.
pub fn write(dir: &Path, made: &Made) -> Result<(PathBuf, PathBuf), String> {
    std::fs::create_dir_all(dir).map_err(|e| {
        format!(
            "cannot make {}: {}",
            dir.display(),
            super::net::describe(&e)
        )
    })?;
    let cert = dir.join("cert.pem");
    let key = dir.join("key.pem");
    for path in [&cert, &key] {
        if path.symlink_metadata().is_ok() {
            return Err(format!(
                "{} exists already: remove it, or give another directory",
                path.display()
            ));
        }
    }
    create(&key, made.key_pem.as_bytes(), 0o600)?;
    create(&cert, made.cert_pem.as_bytes(), 0o644)?;
    Ok((cert, key))
}

/// Creates `path` (never an existing file, never through a symlink) with
/// `mode`, holding `bytes`.
fn create(path: &Path, bytes: &[u8], mode: u32) -> Result<(), String> {
    let failed = |e: std::io::Error| {
        format!(
            "cannot write {}: {}",
            path.display(),
            super::net::describe(&e)
        )
    };
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
        .map_err(failed)?;
    file.write_all(bytes).map_err(|e| {
        let _ = std::fs::remove_file(path);
        failed(e)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Names are DNS names, wildcards or IP addresses; anything else is
    /// refused with a message that shows what is taken.
    #[test]
    fn names_are_dns_names_or_ip_addresses() {
        for good in ["localhost", "proxy.example", "*.example", "10.0.0.5", "::1"] {
            assert_eq!(check_name(good).as_deref(), Ok(good));
        }
        for bad in ["", "*.", "two words", "a..b"] {
            let err = check_name(bad).expect_err(bad);
            assert!(err.starts_with("not a DNS name or an IP address"), "{err}");
        }
    }

    /// A file already in the directory is refused and left as it was.
    #[test]
    fn an_existing_file_is_refused_not_overwritten() {
        let dir = std::env::temp_dir().join(format!("echoloop-unit-gen-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("key.pem"), b"theirs").unwrap();
        let made = make(&["localhost".into()]).unwrap();
        let err = write(&dir, &made).unwrap_err();
        assert!(
            err.ends_with("key.pem exists already: remove it, or give another directory"),
            "{err}"
        );
        assert_eq!(std::fs::read(dir.join("key.pem")).unwrap(), b"theirs");
        assert!(!dir.join("cert.pem").exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
