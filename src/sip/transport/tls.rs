//! rustls configurations for SIP over TLS, built from PEM text (the runtime reads the files).
//!
//! - Server side (`tls:` listeners): our certificate chain and private key.
//! - Client side (trunks with `transport: tls`): the trunk's certificate is verified against
//!   the configured CA bundle (`sip.tls_ca`, else the system's), for the trunk's host name
//!   (or its IP address when configured by address). There is no way to turn verification
//!   off: a carrier with a private CA is configured by giving that CA.
//!
//! The provider is aws-lc-rs, named explicitly (never the process default, which another
//! crate in the binary could set differently).

use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// Why a TLS configuration could not be built; names the file's role and what to do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TlsConfigError {
    #[error("{what}: no PEM certificate found (expected -----BEGIN CERTIFICATE-----)")]
    NoCertificate { what: String },
    #[error("{what}: no PEM private key found (PKCS#8, PKCS#1 or SEC1)")]
    NoKey { what: String },
    #[error("{what}: {why}")]
    Rejected { what: String, why: String },
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// Parses every certificate in `pem`.
pub fn certificates(
    pem: &[u8],
    what: &str,
) -> Result<Vec<CertificateDer<'static>>, TlsConfigError> {
    let certs: Vec<_> = CertificateDer::pem_slice_iter(pem)
        .filter_map(Result::ok)
        .collect();
    if certs.is_empty() {
        return Err(TlsConfigError::NoCertificate {
            what: what.to_owned(),
        });
    }
    Ok(certs)
}

/// The server configuration of a `tls:` listener.
pub fn server_config(
    cert_pem: &[u8],
    key_pem: &[u8],
    what: &str,
) -> Result<Arc<rustls::ServerConfig>, TlsConfigError> {
    let certs = certificates(cert_pem, what)?;
    let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(|_| TlsConfigError::NoKey {
        what: what.to_owned(),
    })?;
    let cfg = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| rejected(what, e))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| rejected(what, e))?;
    Ok(Arc::new(cfg))
}

/// The client configuration for outbound TLS, trusting the certificates in `ca_pem`.
pub fn client_config(
    ca_pem: &[u8],
    what: &str,
) -> Result<Arc<rustls::ClientConfig>, TlsConfigError> {
    let mut roots = rustls::RootCertStore::empty();
    let (added, _) = roots.add_parsable_certificates(certificates(ca_pem, what)?);
    if added == 0 {
        return Err(TlsConfigError::Rejected {
            what: what.to_owned(),
            why: "no usable CA certificate".to_owned(),
        });
    }
    let cfg = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| rejected(what, e))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(cfg))
}

/// The client configuration for outbound TLS, trusting the system's CA certificates
/// (`rustls-native-certs`: the distribution's bundle, or `SSL_CERT_FILE`).
pub fn system_client_config() -> Result<Arc<rustls::ClientConfig>, TlsConfigError> {
    let what = "the system's CA certificates";
    let found = rustls_native_certs::load_native_certs();
    let mut roots = rustls::RootCertStore::empty();
    let (added, _) = roots.add_parsable_certificates(found.certs);
    if added == 0 {
        return Err(TlsConfigError::Rejected {
            what: what.to_owned(),
            why: "none found; give the trunk a ca_file".to_owned(),
        });
    }
    let cfg = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| rejected(what, e))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(cfg))
}

fn rejected(what: &str, e: rustls::Error) -> TlsConfigError {
    TlsConfigError::Rejected {
        what: what.to_owned(),
        why: e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn garbage_pem_is_a_precise_error() {
        assert!(matches!(
            server_config(b"nope", b"nope", "sip.tls_cert"),
            Err(TlsConfigError::NoCertificate { .. })
        ));
        assert!(matches!(
            client_config(
                b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
                "sip.tls_ca"
            ),
            Err(TlsConfigError::NoCertificate { .. } | TlsConfigError::Rejected { .. })
        ));
    }
}
