//! `http`: `GET scheme://host:port/path`, one request per connection (HTTP/1.1,
//! `Connection: close`), passing on an expected status code. HTTPS through rustls, verified
//! against a CA bundle (file or PEM text) or not at all (`insecureSkipVerify`). Only the
//! status line is read.

use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::{CertificateDer, ServerName, UnixTime, pem::PemObject};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::{BoxFuture, Checker, Outcome, io_text, ms};
use crate::model::tracking::{HttpCheck, Tls};

pub struct Http {
    check: HttpCheck,
    tls: Option<(Arc<rustls::ClientConfig>, ServerName<'static>)>,
}

impl Http {
    /// Reads a CA file now: a missing file is an error of the configuration, said at once.
    pub fn new(check: HttpCheck) -> Result<Http, String> {
        let tls = match &check.tls {
            None => None,
            Some(t) => {
                let config = client_config(t)?;
                let name = ServerName::try_from(check.host.clone())
                    .map_err(|_| format!("{:?} is not a TLS server name", check.host))?;
                Some((Arc::new(config), name))
            }
        };
        Ok(Http { check, tls })
    }

    async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(&self, mut s: S) -> Result<u16, String> {
        let req = format!(
            "GET {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: kube-vrrp/{}\r\nAccept: */*\r\nConnection: close\r\n\r\n",
            self.check.path,
            self.check.host,
            env!("CARGO_PKG_VERSION")
        );
        s.write_all(req.as_bytes()).await.map_err(|e| io_text(&e))?;
        s.flush().await.map_err(|e| io_text(&e))?;
        let mut buf = Vec::with_capacity(256);
        let mut chunk = [0u8; 256];
        while !buf.contains(&b'\n') && buf.len() < 1024 {
            let n = s.read(&mut chunk).await.map_err(|e| io_text(&e))?;
            if n == 0 {
                break;
            }
            buf.extend_from_slice(&chunk[..n]);
        }
        let line = String::from_utf8_lossy(&buf);
        let line = line.lines().next().unwrap_or("");
        if line.is_empty() {
            return Err("the server closed the connection without answering".into());
        }
        let mut parts = line.split_whitespace();
        match (
            parts.next(),
            parts.next().and_then(|c| c.parse::<u16>().ok()),
        ) {
            (Some(v), Some(code)) if v.starts_with("HTTP/") => Ok(code),
            _ => Err(format!(
                "not an HTTP answer: {:?}",
                line.chars().take(40).collect::<String>()
            )),
        }
    }
}

impl Checker for Http {
    fn run(&self, timeout: Duration) -> BoxFuture<'_, Outcome> {
        Box::pin(async move {
            let t0 = tokio::time::Instant::now();
            let attempt = async {
                let tcp = tokio::net::TcpStream::connect(self.check.addr)
                    .await
                    .map_err(|e| io_text(&e))?;
                match &self.tls {
                    None => self.exchange(tcp).await,
                    Some((config, name)) => {
                        let tls = tokio_rustls::TlsConnector::from(config.clone())
                            .connect(name.clone(), tcp)
                            .await
                            .map_err(|e| format!("TLS: {}", io_text(&e)))?;
                        self.exchange(tls).await
                    }
                }
            };
            match tokio::time::timeout(timeout, attempt).await {
                Ok(Ok(code)) => {
                    let took = ms(t0.elapsed());
                    if self
                        .check
                        .expected
                        .iter()
                        .any(|(a, b)| (*a..=*b).contains(&code))
                    {
                        Outcome::pass(format!("HTTP {code} in {took}"))
                    } else {
                        Outcome::fail(format!("HTTP {code} in {took} (unexpected status)"))
                    }
                }
                Ok(Err(e)) => Outcome::fail(e),
                Err(_) => Outcome::timed_out(timeout),
            }
        })
    }
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn client_config(t: &Tls) -> Result<rustls::ClientConfig, String> {
    let builder = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?;
    let pem = match t {
        Tls::Insecure => {
            return Ok(builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider())))
                .with_no_client_auth());
        }
        Tls::CaFile(path) => std::fs::read(path).map_err(|e| {
            format!(
                "cannot read the CA file {}: {}",
                path.display(),
                io_text(&e)
            )
        })?,
        Tls::CaPem(text) => text.as_bytes().to_vec(),
        Tls::CaSecret => return Err("the CA Secret was not resolved by the controller".into()),
    };
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(&pem) {
        let cert = cert.map_err(|e| format!("the CA bundle is not valid PEM: {e}"))?;
        roots
            .add(cert)
            .map_err(|e| format!("a CA certificate cannot be used: {e}"))?;
    }
    if roots.is_empty() {
        return Err("the CA bundle holds no certificate".into());
    }
    Ok(builder.with_root_certificates(roots).with_no_client_auth())
}

/// `insecureSkipVerify`: any certificate, but the handshake's signatures are still checked.
#[derive(Debug)]
struct AnyCertificate(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
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
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
