//! Whom a TLS client trusts, and how a failed handshake reads.
//!
//! Trust: with `--cacert FILE` a server's certificate is checked against
//! the file's certificates as trust anchors (rustls's webpki verifier),
//! and one more rule, curl's and Python's: a certificate that *is* in the
//! file, presented by the server as its own, is trusted as it is, its
//! name and dates still checked. That is what a self-signed certificate
//! made the way most people make one needs: `openssl req -x509` marks it
//! a CA (OpenSSL 3's default), and webpki refuses a CA as a server's own
//! certificate. `-k` trusts any certificate ([`AnyCertificate`]); the
//! handshake's signatures are checked either way, so the server must hold
//! the key of the certificate it shows.
//!
//! Words: [`explain`] turns a handshake failure into a sentence that says
//! what went wrong and what to do, never Rust's `Debug` of rustls's
//! error enums.

use std::io;
use std::sync::Arc;

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{AlertDescription, CertificateError, DigitallySignedStruct, SignatureScheme};

/// `--cacert FILE`: webpki's check against the file's certificates, and
/// the certificates themselves, trusted as they are when a server
/// presents one as its own.
#[derive(Debug)]
pub struct CaFile {
    webpki: Arc<WebPkiServerVerifier>,
    own: Vec<CertificateDer<'static>>,
}

impl CaFile {
    /// A verifier over `certs` (the file's certificates), which must
    /// include at least one usable trust anchor (see `load_roots`).
    pub fn new(
        roots: rustls::RootCertStore,
        certs: Vec<CertificateDer<'static>>,
        provider: Arc<CryptoProvider>,
    ) -> Result<CaFile, String> {
        let webpki = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
            .build()
            .map_err(|e| format!("cannot use its certificates: {e}"))?;
        Ok(CaFile { webpki, own: certs })
    }
}

impl ServerCertVerifier for CaFile {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let refused = match self.webpki.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        ) {
            Ok(verified) => return Ok(verified),
            Err(e) => e,
        };
        // Not one of the file's own certificates: webpki's verdict stands.
        if !self.own.iter().any(|c| c.as_ref() == end_entity.as_ref()) {
            return Err(refused);
        }
        // The very certificate the user gave: trusted as it is, but only
        // for its own names and inside its dates.
        let parsed = rustls::server::ParsedCertificate::try_from(end_entity)?;
        rustls::client::verify_server_name(&parsed, server_name)?;
        within_dates(end_entity, now)?;
        log::debug!("the server's certificate is one given in --cacert: trusted as it is");
        Ok(ServerCertVerified::assertion())
    }

    // The handshake's signatures: webpki's checks, as for any server.
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.webpki.supported_verify_schemes()
    }
}

/// Whether `der` is valid at `now`: an expired certificate, or one not
/// valid yet, is refused as webpki would refuse it.
fn within_dates(der: &CertificateDer<'_>, now: UnixTime) -> Result<(), rustls::Error> {
    let (_, cert) = x509_parser::parse_x509_certificate(der)
        .map_err(|_| rustls::Error::InvalidCertificate(CertificateError::BadEncoding))?;
    let now = now.as_secs() as i64;
    let validity = cert.validity();
    if now > validity.not_after.timestamp() {
        return Err(CertificateError::Expired.into());
    }
    if now < validity.not_before.timestamp() {
        return Err(CertificateError::NotValidYet.into());
    }
    Ok(())
}

/// `--insecure`: every certificate is accepted, but the handshake's
/// signatures are still checked, so the server must hold the key of the
/// certificate it shows (curl's `-k` is the same).
#[derive(Debug)]
pub struct AnyCertificate(pub Arc<CryptoProvider>);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// A TLS failure as one sentence: what went wrong, and what to do about
/// it where there is something to do.
pub fn explain(err: &io::Error) -> String {
    if err.kind() == io::ErrorKind::UnexpectedEof {
        return "the peer closed the connection without a close_notify (truncated)".into();
    }
    match err
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
    {
        Some(e) => explain_rustls(e),
        None => crate::shared::net::describe(err),
    }
}

/// [`explain`] for rustls's own errors.
fn explain_rustls(e: &rustls::Error) -> String {
    use rustls::Error as E;
    match e {
        E::InvalidCertificate(c) => explain_certificate(c),
        E::AlertReceived(alert) => explain_alert(*alert),
        E::NoApplicationProtocol => {
            "the server supports none of the ALPN protocols offered (--alpn)".into()
        }
        E::InvalidMessage(_) | E::InappropriateMessage { .. } | E::PeerMisbehaved(_) => {
            "the peer does not speak TLS as expected (a record or message that is malformed \
             or out of place: is it a TLS port?)"
                .into()
        }
        E::DecryptError => "a record did not decrypt: the data was corrupted on the way".into(),
        E::PeerIncompatible(_) => "the peer offers no TLS version, cipher or key exchange \
                                  in common with ours (TLS 1.2 or 1.3)"
            .into(),
        other => other.to_string(),
    }
}

/// Why the server's certificate was refused.
fn explain_certificate(c: &CertificateError) -> String {
    use CertificateError as C;
    let trust = "give the CA's certificate (or the server's own) with --cacert FILE, or -k \
                 to skip the check";
    match c {
        C::UnknownIssuer => format!("it is not signed by a CA we trust: {trust}"),
        C::NotValidForName => {
            "it is not for the name connected to: connect by one of its names".into()
        }
        C::NotValidForNameContext {
            expected,
            presented,
        } => format!(
            "it is for {}, not for {}: connect by one of its names{}",
            if presented.is_empty() {
                "no name".to_string()
            } else {
                presented
                    .iter()
                    .map(|n| bare_name(n))
                    .collect::<Vec<_>>()
                    .join(", ")
            },
            expected.to_str(),
            if matches!(expected, ServerName::DnsName(_)) {
                ""
            } else {
                " (or name the server with --sni where there is one)"
            }
        ),
        C::Expired | C::ExpiredContext { .. } => {
            "it has expired: the server needs a new certificate".into()
        }
        C::NotValidYet | C::NotValidYetContext { .. } => {
            "it is not valid yet (is this machine's clock right?)".into()
        }
        C::Revoked => "it has been revoked".into(),
        // Building the chain, webpki tries each trusted certificate named
        // as the issuer: one of that name that did not sign it (Debian's
        // `CN=localhost` snakeoil beside a self-signed localhost
        // certificate) ends the search with its signature's failure,
        // where "unknown issuer" is what happened.
        C::BadSignature | C::UnsupportedSignatureAlgorithmForPublicKeyContext { .. } => format!(
            "it is not signed by a CA we trust (its signature does not verify with the trusted \
             certificate of its issuer's name, which may be another certificate of that name): \
             {trust}"
        ),
        C::BadEncoding => "it is not a well-formed X.509 certificate".into(),
        C::UnsupportedSignatureAlgorithmContext { .. } => {
            "it is signed with an algorithm this client does not support".into()
        }
        C::Other(other) => match other.0.downcast_ref::<webpki::Error>() {
            Some(webpki::Error::CaUsedAsEndEntity) => format!(
                "it is a CA certificate (CA:TRUE, as `openssl req -x509` makes them) shown as \
                 the server's own: give that very file with --cacert to trust it as it is, \
                 or {}",
                "-k to skip the check"
            ),
            Some(webpki::Error::EndEntityUsedAsCa) => {
                "its chain uses a server's certificate as a CA".into()
            }
            Some(webpki::Error::RequiredEkuNotFoundContext(_)) => {
                "it is not meant for a TLS server (no serverAuth in its extended key usage)".into()
            }
            _ => format!("the certificate check refused it ({other}): {trust}"),
        },
        other => format!("the certificate check refused it ({other:?}): {trust}"),
    }
}

/// A name the certificate holds, as webpki spells it for its error
/// (`DnsName("example.test")`, `IpAddress(127.0.0.1)`): just the name.
fn bare_name(spelled: &str) -> &str {
    match (spelled.find('('), spelled.rfind(')')) {
        (Some(open), Some(close)) if open < close => spelled[open + 1..close].trim_matches('"'),
        _ => spelled,
    }
}

/// What an alert from the server means for us.
fn explain_alert(alert: AlertDescription) -> String {
    use AlertDescription as A;
    match alert {
        A::CertificateRequired => {
            "the server requires a client certificate: give --cert FILE and --key FILE".into()
        }
        A::BadCertificate | A::UnknownCA | A::CertificateUnknown | A::AccessDenied => format!(
            "the server refused our client certificate (alert {})",
            alert_name(alert)
        ),
        A::CertificateExpired => "the server says our client certificate has expired".into(),
        A::HandshakeFailure | A::InsufficientSecurity => {
            "the server found no cipher or key exchange in common with ours".into()
        }
        A::ProtocolVersion => "the server speaks neither TLS 1.2 nor TLS 1.3".into(),
        A::NoApplicationProtocol => {
            "the server supports none of the ALPN protocols offered (--alpn)".into()
        }
        A::UnrecognisedName => "the server does not know the name we sent (SNI)".into(),
        other => format!(
            "the server ended the handshake (alert {})",
            alert_name(other)
        ),
    }
}

/// An alert's name as the RFC writes it: `HandshakeFailure` →
/// `handshake_failure`.
fn alert_name(alert: AlertDescription) -> String {
    let mut name = String::new();
    for (i, c) in format!("{alert:?}").chars().enumerate() {
        if c.is_ascii_uppercase() {
            if i > 0 {
                name.push('_');
            }
            name.push(c.to_ascii_lowercase());
        } else {
            name.push(c);
        }
    }
    name
}

#[cfg(test)]
mod tests {
    use super::*;

    fn io(e: rustls::Error) -> io::Error {
        io::Error::new(io::ErrorKind::InvalidData, e)
    }

    /// Each failure reads as a sentence, with no Rust enum in it.
    #[test]
    fn failures_read_as_sentences() {
        let ca = CertificateError::Other(rustls::OtherError(Arc::new(
            webpki::Error::CaUsedAsEndEntity,
        )));
        let said = explain(&io(ca.into()));
        assert!(
            said.starts_with("it is a CA certificate (CA:TRUE"),
            "{said}"
        );
        assert!(!said.contains("Other("), "{said}");
        assert_eq!(
            explain(&io(CertificateError::UnknownIssuer.into())),
            "it is not signed by a CA we trust: give the CA's certificate (or the server's \
             own) with --cacert FILE, or -k to skip the check"
        );
        assert_eq!(
            explain(&io(rustls::Error::AlertReceived(
                AlertDescription::HandshakeFailure
            ))),
            "the server found no cipher or key exchange in common with ours"
        );
        assert_eq!(
            explain(&io(rustls::Error::AlertReceived(
                AlertDescription::DecodeError
            ))),
            "the server ended the handshake (alert decode_error)"
        );
        assert_eq!(bare_name(r#"DnsName("example.test")"#), "example.test");
        assert_eq!(bare_name("IpAddress(127.0.0.1)"), "127.0.0.1");
        let eof = io::Error::new(io::ErrorKind::UnexpectedEof, "eof");
        assert!(explain(&eof).contains("without a close_notify"));
    }

    /// A trusted certificate of the issuer's name that did not sign the
    /// server's (an RSA `CN=localhost` in the system store, an ECDSA
    /// self-signed `CN=localhost` served): read as an issuer not trusted,
    /// not as an algorithm this client lacks.
    #[test]
    fn a_namesake_in_the_trust_store_reads_as_an_untrusted_issuer() {
        let mismatch = CertificateError::UnsupportedSignatureAlgorithmForPublicKeyContext {
            signature_algorithm_id: vec![6, 8, 42, 134, 72, 206, 61, 4, 3, 2],
            public_key_algorithm_id: vec![6, 9, 42, 134, 72, 134, 247, 13, 1, 1, 1, 5, 0],
        };
        for e in [mismatch, CertificateError::BadSignature] {
            let said = explain(&io(e.into()));
            assert!(
                said.starts_with("it is not signed by a CA we trust ("),
                "{said}"
            );
            assert!(
                said.ends_with("with --cacert FILE, or -k to skip the check"),
                "{said}"
            );
            assert!(!said.contains("Context"), "{said}");
        }
    }
}
