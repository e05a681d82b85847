//! HTTP transport hook and the default reqwest + rustls (ring) client.

use std::time::Duration;

/// HTTP method of a device API call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HttpMethod {
    /// GET.
    Get,
    /// POST.
    Post,
    /// PUT.
    Put,
    /// DELETE.
    Delete,
}

impl HttpMethod {
    /// The method name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Get => "GET",
            Self::Post => "POST",
            Self::Put => "PUT",
            Self::Delete => "DELETE",
        }
    }
}

/// A request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpRequest {
    /// Method.
    pub method: HttpMethod,
    /// Absolute URL.
    pub url: String,
    /// Header names and values (already including the request signature headers).
    pub headers: Vec<(String, String)>,
    /// Body bytes (empty for none).
    pub body: Vec<u8>,
    /// Give up after this long (long-polls set it a little above their wait).
    pub timeout: Duration,
}

/// A response (any status: the core interprets error statuses itself).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpResponse {
    /// Status code.
    pub status: u16,
    /// Header names (lower-case) and values.
    pub headers: Vec<(String, String)>,
    /// Body bytes.
    pub body: Vec<u8>,
}

impl HttpResponse {
    /// The first header with this name (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Transport failures (no HTTP response). All are retryable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HttpError {
    /// The request timed out.
    #[error("request timed out")]
    Timeout,
    /// No connection (DNS, refused, TLS handshake, reset).
    #[error("connection failed: {0}")]
    Connect(String),
    /// Anything else (the message carries no request data).
    #[error("transport error: {0}")]
    Other(String),
}

/// Sends HTTP requests for the core: lets an app use its own network stack
/// (OkHttp, URLSession) instead of the shipped reqwest client.
///
/// Threading: called concurrently from many tasks (long-polls of several
/// accounts run at once); must not serialise them. Never called while the core
/// holds a lock. The implementation must verify TLS certificates, follow no
/// redirects, and honour `timeout`.
#[async_trait::async_trait]
pub trait HttpClient: Send + Sync {
    /// Sends one request and returns the response, whatever its status.
    async fn send(&self, request: HttpRequest) -> Result<HttpResponse, HttpError>;
}

#[cfg(feature = "reqwest-client")]
pub use self::reqwest_client::ReqwestClient;

#[cfg(feature = "reqwest-client")]
mod reqwest_client {
    use std::sync::Arc;

    use super::{HttpClient, HttpError, HttpMethod, HttpRequest, HttpResponse};

    /// The default client: reqwest over rustls with its ring provider (one crypto
    /// library in the binary), certificates checked by rustls-platform-verifier
    /// (the OS trust store), no redirects, HTTP/1.1.
    ///
    /// HTTP/1.1 only, not HTTP/2: a device talks to its own server only, a few
    /// requests per login plus one long-poll per account, so h2's multiplexing
    /// saves little (reqwest keeps a pool of kept-alive HTTP/1.1 connections,
    /// one per request in flight), and h2 was about 0.3 MB of the mobile
    /// library. The server speaks both; ALPN offers only `http/1.1`, so the
    /// client stays on HTTP/1.1 even in a build where another crate turns on
    /// reqwest's `http2` feature.
    ///
    /// Must run inside a tokio runtime (reqwest is built on tokio).
    #[derive(Debug, Clone)]
    pub struct ReqwestClient {
        client: reqwest::Client,
    }

    impl ReqwestClient {
        /// Builds the client.
        pub fn new() -> Result<Self, HttpError> {
            let provider = Arc::new(tls::provider());
            let verifier = rustls_platform_verifier::Verifier::new(provider.clone())
                .map_err(|e| HttpError::Other(format!("TLS verifier: {e}")))?;
            let mut tls = rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .map_err(|e| HttpError::Other(format!("TLS config: {e}")))?
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(verifier))
                .with_no_client_auth();
            tls.alpn_protocols = vec![b"http/1.1".to_vec()];
            let client = reqwest::Client::builder()
                .tls_backend_preconfigured(tls)
                .redirect(reqwest::redirect::Policy::none())
                // Below the server's 60 s idle limit (PROTOCOL §12.2): a pooled
                // HTTP/1.1 connection is dropped here before the server closes
                // it, not reused while the server's close is in flight.
                .pool_idle_timeout(std::time::Duration::from_secs(50))
                .user_agent(concat!("countersign-core/", env!("CARGO_PKG_VERSION")))
                .build()
                .map_err(|e| HttpError::Other(format!("client: {e}")))?;
            Ok(Self { client })
        }
    }

    #[async_trait::async_trait]
    impl HttpClient for ReqwestClient {
        async fn send(&self, request: HttpRequest) -> Result<HttpResponse, HttpError> {
            let method = match request.method {
                HttpMethod::Get => reqwest::Method::GET,
                HttpMethod::Post => reqwest::Method::POST,
                HttpMethod::Put => reqwest::Method::PUT,
                HttpMethod::Delete => reqwest::Method::DELETE,
            };
            let mut builder = self
                .client
                .request(method, &request.url)
                .timeout(request.timeout);
            for (name, value) in &request.headers {
                builder = builder.header(name, value);
            }
            if !request.body.is_empty() {
                builder = builder.body(request.body);
            }
            let response = builder.send().await.map_err(map_err)?;
            let status = response.status().as_u16();
            let headers = response
                .headers()
                .iter()
                .filter_map(|(n, v)| {
                    v.to_str()
                        .ok()
                        .map(|v| (n.as_str().to_ascii_lowercase(), v.to_owned()))
                })
                .collect();
            let body = response.bytes().await.map_err(map_err)?.to_vec();
            Ok(HttpResponse {
                status,
                headers,
                body,
            })
        }
    }

    /// rustls's ring provider cut down to what a client of one HTTPS server
    /// needs, built field by field so that the rest of ring's TLS algorithms
    /// stay out of the library (about 0.25 MB with their unwind tables:
    /// BENCHMARKS.md, "Library size").
    ///
    /// What is left is what TLS 1.3 makes mandatory (RFC 8446 §9.1: AES-128-GCM,
    /// secp256r1, ECDSA P-256, RSA PKCS#1 and PSS certificates), plus AES-256-GCM,
    /// secp384r1, P-384 and RSA with SHA-384/512 (public CAs sign with them) and
    /// TLS 1.2's ECDHE AES-GCM suites (servers and proxies that still stop at 1.2).
    /// Left out, with why no server of ours needs them:
    /// * X25519 key exchange: every TLS server also does secp256r1 (mandatory
    ///   in TLS 1.3); a server that prefers X25519 answers our P-256 key share.
    /// * ChaCha20-Poly1305: AES-GCM is mandatory in TLS 1.3 and what every
    ///   ECDHE server offers; phones and PCs since ~2015 have AES instructions
    ///   (and ring's AES without them is constant-time).
    /// * Ed25519 certificates: public CAs do not issue them (CA/Browser Forum).
    /// * Private keys: the client does no client authentication, so the key
    ///   provider loads none (rustls's would pull RSA and Ed25519 signing in).
    mod tls {
        use std::sync::Arc;

        use rustls::SignatureScheme;
        use rustls::crypto::WebPkiSupportedAlgorithms;
        use rustls::crypto::ring::cipher_suite as suite;
        use rustls::crypto::ring::kx_group;
        use rustls::crypto::{CryptoProvider, GetRandomFailed, KeyProvider, SecureRandom};
        use rustls::pki_types::PrivateKeyDer;
        use rustls::sign::SigningKey;
        use webpki::ring as alg;

        /// The provider `ReqwestClient` builds its TLS configuration on.
        pub(super) fn provider() -> CryptoProvider {
            CryptoProvider {
                // Preference order: rustls's own, minus ChaCha20-Poly1305.
                cipher_suites: vec![
                    suite::TLS13_AES_256_GCM_SHA384,
                    suite::TLS13_AES_128_GCM_SHA256,
                    suite::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
                    suite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
                    suite::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
                    suite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
                ],
                kx_groups: vec![kx_group::SECP256R1, kx_group::SECP384R1],
                signature_verification_algorithms: SIGNATURES,
                secure_random: &SystemRandom,
                key_provider: &NoClientKeys,
            }
        }

        /// rustls's ring list (webpki's), without Ed25519.
        static SIGNATURES: WebPkiSupportedAlgorithms = WebPkiSupportedAlgorithms {
            all: &[
                alg::ECDSA_P256_SHA256,
                alg::ECDSA_P256_SHA384,
                alg::ECDSA_P384_SHA256,
                alg::ECDSA_P384_SHA384,
                alg::RSA_PSS_2048_8192_SHA256_LEGACY_KEY,
                alg::RSA_PSS_2048_8192_SHA384_LEGACY_KEY,
                alg::RSA_PSS_2048_8192_SHA512_LEGACY_KEY,
                alg::RSA_PKCS1_2048_8192_SHA256,
                alg::RSA_PKCS1_2048_8192_SHA384,
                alg::RSA_PKCS1_2048_8192_SHA512,
                alg::RSA_PKCS1_2048_8192_SHA256_ABSENT_PARAMS,
                alg::RSA_PKCS1_2048_8192_SHA384_ABSENT_PARAMS,
                alg::RSA_PKCS1_2048_8192_SHA512_ABSENT_PARAMS,
            ],
            mapping: &[
                // TLS 1.2 does not tie the curve to the scheme; TLS 1.3 does.
                (
                    SignatureScheme::ECDSA_NISTP384_SHA384,
                    &[alg::ECDSA_P384_SHA384, alg::ECDSA_P256_SHA384],
                ),
                (
                    SignatureScheme::ECDSA_NISTP256_SHA256,
                    &[alg::ECDSA_P256_SHA256, alg::ECDSA_P384_SHA256],
                ),
                (
                    SignatureScheme::RSA_PSS_SHA512,
                    &[alg::RSA_PSS_2048_8192_SHA512_LEGACY_KEY],
                ),
                (
                    SignatureScheme::RSA_PSS_SHA384,
                    &[alg::RSA_PSS_2048_8192_SHA384_LEGACY_KEY],
                ),
                (
                    SignatureScheme::RSA_PSS_SHA256,
                    &[alg::RSA_PSS_2048_8192_SHA256_LEGACY_KEY],
                ),
                (
                    SignatureScheme::RSA_PKCS1_SHA512,
                    &[alg::RSA_PKCS1_2048_8192_SHA512],
                ),
                (
                    SignatureScheme::RSA_PKCS1_SHA384,
                    &[alg::RSA_PKCS1_2048_8192_SHA384],
                ),
                (
                    SignatureScheme::RSA_PKCS1_SHA256,
                    &[alg::RSA_PKCS1_2048_8192_SHA256],
                ),
            ],
        };

        /// ring's system random source, as rustls's ring provider uses it
        /// (rustls's own wrapper is private).
        #[derive(Debug)]
        struct SystemRandom;

        impl SecureRandom for SystemRandom {
            fn fill(&self, buf: &mut [u8]) -> Result<(), GetRandomFailed> {
                use ring::rand::SecureRandom as _;
                ring::rand::SystemRandom::new()
                    .fill(buf)
                    .map_err(|_| GetRandomFailed)
            }
        }

        /// Loads no private key: the client authenticates with request
        /// signatures (PROTOCOL §7), never with a TLS client certificate.
        #[derive(Debug)]
        struct NoClientKeys;

        impl KeyProvider for NoClientKeys {
            fn load_private_key(
                &self,
                _key_der: PrivateKeyDer<'static>,
            ) -> Result<Arc<dyn SigningKey>, rustls::Error> {
                Err(rustls::Error::General(
                    "this client loads no TLS private keys".into(),
                ))
            }
        }

        /// In-memory handshakes of a client on `provider()` with rustls servers
        /// on ring's full provider: what the trimmed provider still talks to.
        #[cfg(test)]
        mod tests {
            use std::sync::Arc;

            use rustls::crypto::ring as full;
            use rustls::pki_types::pem::PemObject;
            use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
            use rustls::{
                ClientConfig, ClientConnection, NamedGroup, ProtocolVersion, RootCertStore,
                ServerConfig, ServerConnection, SupportedProtocolVersion,
            };

            use super::provider;

            const EC: (&str, &str) = (
                include_str!("testdata/tls-ec.crt"),
                include_str!("testdata/tls-ec.key"),
            );
            const RSA: (&str, &str) = (
                include_str!("testdata/tls-rsa.crt"),
                include_str!("testdata/tls-rsa.key"),
            );
            const TLS13: &[&SupportedProtocolVersion] = &[&rustls::version::TLS13];
            const TLS12: &[&SupportedProtocolVersion] = &[&rustls::version::TLS12];

            fn client(cert: &str) -> ClientConfig {
                let mut roots = RootCertStore::empty();
                roots
                    .add(CertificateDer::from_pem_slice(cert.as_bytes()).unwrap())
                    .unwrap();
                ClientConfig::builder_with_provider(Arc::new(provider()))
                    .with_safe_default_protocol_versions()
                    .unwrap()
                    .with_root_certificates(roots)
                    .with_no_client_auth()
            }

            fn server(
                (cert, key): (&str, &str),
                server_provider: rustls::crypto::CryptoProvider,
                versions: &[&'static SupportedProtocolVersion],
            ) -> ServerConfig {
                ServerConfig::builder_with_provider(Arc::new(server_provider))
                    .with_protocol_versions(versions)
                    .unwrap()
                    .with_no_client_auth()
                    .with_single_cert(
                        vec![CertificateDer::from_pem_slice(cert.as_bytes()).unwrap()],
                        PrivateKeyDer::from_pem_slice(key.as_bytes()).unwrap(),
                    )
                    .unwrap()
            }

            /// The handshake's version, suite and group, or the first error.
            fn handshake(
                client: ClientConfig,
                server: ServerConfig,
            ) -> Result<(ProtocolVersion, String, NamedGroup), rustls::Error> {
                let name = ServerName::try_from("localhost").unwrap();
                let mut c = ClientConnection::new(Arc::new(client), name)?;
                let mut s = ServerConnection::new(Arc::new(server))?;
                for _ in 0..10 {
                    let mut wire = Vec::new();
                    while c.wants_write() {
                        c.write_tls(&mut wire).unwrap();
                    }
                    s.read_tls(&mut wire.as_slice()).unwrap();
                    s.process_new_packets()?;
                    let mut wire = Vec::new();
                    while s.wants_write() {
                        s.write_tls(&mut wire).unwrap();
                    }
                    c.read_tls(&mut wire.as_slice()).unwrap();
                    c.process_new_packets()?;
                    if !c.is_handshaking() && !s.is_handshaking() {
                        return Ok((
                            c.protocol_version().unwrap(),
                            format!("{:?}", c.negotiated_cipher_suite().unwrap().suite()),
                            c.negotiated_key_exchange_group().unwrap().name(),
                        ));
                    }
                }
                panic!("handshake did not finish");
            }

            #[test]
            fn tls13_with_ecdsa_and_rsa_certificates() {
                for cert in [EC, RSA] {
                    let (version, suite, group) = handshake(
                        client(cert.0),
                        server(cert, full::default_provider(), TLS13),
                    )
                    .unwrap();
                    assert_eq!(version, ProtocolVersion::TLSv1_3);
                    assert_eq!(suite, "TLS13_AES_256_GCM_SHA384");
                    // The server would prefer X25519; it takes the P-256 share.
                    assert_eq!(group, NamedGroup::secp256r1);
                }
            }

            #[test]
            fn tls12_only_servers_still_connect() {
                for (cert, expected) in [
                    (EC, "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384"),
                    (RSA, "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384"),
                ] {
                    let (version, suite, group) = handshake(
                        client(cert.0),
                        server(cert, full::default_provider(), TLS12),
                    )
                    .unwrap();
                    assert_eq!(version, ProtocolVersion::TLSv1_2);
                    assert_eq!(suite, expected);
                    assert_eq!(group, NamedGroup::secp256r1);
                }
            }

            #[test]
            fn what_was_left_out_is_refused() {
                // A server with only ChaCha20-Poly1305, or only X25519: no handshake.
                let mut chacha = full::default_provider();
                chacha.cipher_suites = vec![full::cipher_suite::TLS13_CHACHA20_POLY1305_SHA256];
                assert!(handshake(client(EC.0), server(EC, chacha, TLS13)).is_err());
                let mut x25519 = full::default_provider();
                x25519.kx_groups = vec![full::kx_group::X25519];
                assert!(handshake(client(EC.0), server(EC, x25519, TLS13)).is_err());
                // And no private key is loaded (the client never authenticates by TLS).
                let key = PrivateKeyDer::from_pem_slice(EC.1.as_bytes()).unwrap();
                assert!(provider().key_provider.load_private_key(key).is_err());
            }
        }
    }

    fn map_err(e: reqwest::Error) -> HttpError {
        // reqwest errors can include the URL; strip it (it names the server only,
        // but logs should not depend on that).
        let e = e.without_url();
        if e.is_timeout() {
            HttpError::Timeout
        } else if e.is_connect() {
            HttpError::Connect(e.to_string())
        } else {
            HttpError::Other(e.to_string())
        }
    }
}
