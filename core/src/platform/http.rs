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
            let provider = Arc::new(rustls::crypto::ring::default_provider());
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
