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

pub(crate) struct Http {
    check: HttpCheck,
    tls: Option<(Arc<rustls::ClientConfig>, ServerName<'static>)>,
}

impl Http {
    /// Reads a CA file now: a missing file is an error of the configuration, said at once.
    pub(crate) fn new(check: HttpCheck) -> Result<Http, String> {
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

    /// Sends the request; the status code and, when a digest is asked for, the body's MD5.
    /// A digest check asks with HTTP/1.0, so that the body comes whole (never chunked).
    async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(
        &self,
        mut s: S,
    ) -> Result<(u16, Option<String>), String> {
        let version = if self.check.digest.is_some() {
            "1.0"
        } else {
            "1.1"
        };
        let req = format!(
            "GET {} HTTP/{version}\r\nHost: {}\r\nUser-Agent: kube-vrrp/{}\r\nAccept: */*\r\nConnection: close\r\n\r\n",
            self.check.path,
            self.check.host,
            env!("CARGO_PKG_VERSION")
        );
        s.write_all(req.as_bytes()).await.map_err(|e| io_text(&e))?;
        s.flush().await.map_err(|e| io_text(&e))?;
        let mut buf = Vec::with_capacity(256);
        let mut chunk = [0u8; 4096];
        let whole = self.check.digest.is_some();
        let cap = if whole { MAX_READ } else { 1024 };
        while (whole || !buf.contains(&b'\n')) && buf.len() < cap {
            let n = match s.read(&mut chunk).await {
                Ok(n) => n,
                // A server that closes without TLS close_notify has still sent its body.
                Err(e)
                    if whole
                        && !buf.is_empty()
                        && e.kind() == std::io::ErrorKind::UnexpectedEof =>
                {
                    0
                }
                Err(e) => return Err(io_text(&e)),
            };
            if n == 0 {
                break;
            }
            buf.extend_from_slice(&chunk[..n]);
        }
        let code = status_code(&buf)?;
        if !whole {
            return Ok((code, None));
        }
        if buf.len() >= MAX_READ {
            return Err(format!(
                "HTTP {code}: the page is over 1 MiB: no digest taken"
            ));
        }
        let body = buf
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .map(|i| &buf[i + 4..])
            .ok_or("the answer's header never ends")?;
        Ok((code, Some(md5_hex(body))))
    }
}

/// What a digest check reads at most (a header line alone: 1 KiB).
const MAX_READ: usize = 1 << 20;

/// The status code of the answer's first line.
fn status_code(buf: &[u8]) -> Result<u16, String> {
    let line = String::from_utf8_lossy(&buf[..buf.len().min(1024)]);
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

/// MD5 in lowercase hex, as keepalived's `genhash` prints it.
fn md5_hex(body: &[u8]) -> String {
    use md5::Digest;
    md5::Md5::digest(body)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
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
                Ok(Ok((code, digest))) => {
                    let took = ms(t0.elapsed());
                    let expected = self
                        .check
                        .expected
                        .iter()
                        .any(|(a, b)| (*a..=*b).contains(&code));
                    match (&self.check.digest, digest) {
                        _ if !expected => {
                            Outcome::fail(format!("HTTP {code} in {took} (unexpected status)"))
                        }
                        (Some(want), Some(got)) if *want != got => Outcome::fail(format!(
                            "HTTP {code} in {took}, but the page's MD5 is {got}, not {want}"
                        )),
                        _ => Outcome::pass(format!("HTTP {code} in {took}")),
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::SocketAddr;

    /// A server on loopback that answers every connection with `answer`, and the request it
    /// was sent.
    async fn serve(answer: &'static str) -> (SocketAddr, tokio::sync::mpsc::Receiver<String>) {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let (tx, rx) = tokio::sync::mpsc::channel(8);
        tokio::spawn(async move {
            while let Ok((mut s, _)) = l.accept().await {
                let mut req = vec![0u8; 1024];
                let n = s.read(&mut req).await.unwrap_or(0);
                let _ = tx
                    .send(String::from_utf8_lossy(&req[..n]).into_owned())
                    .await;
                let _ = s.write_all(answer.as_bytes()).await;
            }
        });
        (addr, rx)
    }

    fn check(addr: SocketAddr, digest: Option<&str>) -> HttpCheck {
        HttpCheck {
            addr,
            path: "/".into(),
            host: "lab".into(),
            expected: vec![(200, 299)],
            tls: None,
            digest: digest.map(String::from),
        }
    }

    #[tokio::test]
    async fn a_digest_is_the_md5_of_the_whole_body_as_genhash_prints_it() {
        // `printf 'hello\n' | md5sum`
        let (addr, mut req) =
            serve("HTTP/1.1 200 OK\r\nContent-Length: 6\r\nX-A: b\r\n\r\nhello\n").await;
        let t = Duration::from_secs(2);
        let good = Http::new(check(addr, Some("b1946ac92492d2347c6235b4d2611184"))).unwrap();
        let o = good.run(t).await;
        assert!(o.ok, "{o:?}");
        assert!(req.recv().await.unwrap().starts_with("GET / HTTP/1.0\r\n"));
        let bad = Http::new(check(addr, Some("00000000000000000000000000000000"))).unwrap();
        let o = bad.run(t).await;
        assert!(
            !o.ok
                && o.text.contains(
                    "the page's MD5 is b1946ac92492d2347c6235b4d2611184, not 00000000000000000000000000000000"
                ),
            "{o:?}"
        );
        // Without a digest: HTTP/1.1 and the status line decides.
        let plain = Http::new(check(addr, None)).unwrap();
        assert!(plain.run(t).await.ok);
        let _ = req.recv().await;
        assert!(req.recv().await.unwrap().starts_with("GET / HTTP/1.1\r\n"));
    }
}
