//! The one checked egress point: every outbound HTTP request a connector
//! makes passes through [`EgressHooks::send_request`], which allows only the
//! origins granted to the integration, checks where their names resolve to
//! ([`check_address`]), and clamps the timeouts.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::uri::Scheme;
use wasmtime_wasi_http::{Error as HttpError, RequestOptions, WasiBody, WasiHttpHooks};

/// An origin a connector may contact: scheme, host and port, nothing else.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Origin {
    https: bool,
    host: String,
    port: u16,
}

impl Origin {
    /// Parses `https://api.personio.de`, `http://127.0.0.1:8081`, with an
    /// optional trailing `/`. Paths, queries, credentials and wildcards are
    /// refused: a grant is for a whole origin, spelled out.
    pub fn parse(text: &str) -> Result<Self, String> {
        let url = url::Url::parse(text.trim())
            .map_err(|e| format!("`{text}` is not an origin like https://api.example.com ({e})"))?;
        let https = match url.scheme() {
            "https" => true,
            "http" => false,
            other => {
                return Err(format!(
                    "`{text}`: scheme `{other}` is not allowed; use https:// (or http:// for loopback tests)"
                ));
            }
        };
        if !url.username().is_empty() || url.password().is_some() {
            return Err(format!("`{text}`: an origin must not contain credentials"));
        }
        if url.path() != "/" || url.query().is_some() || url.fragment().is_some() {
            return Err(format!("`{text}`: give only scheme, host and port, without a path"));
        }
        let host = url.host_str().filter(|h| !h.is_empty()).ok_or_else(|| format!("`{text}` has no host"))?;
        if host.contains('*') {
            return Err(format!("`{text}`: wildcards are not allowed; list each host"));
        }
        let port = url.port_or_known_default().ok_or_else(|| format!("`{text}` has no port"))?;
        // IPv6 hosts come bracketed; store them bare, as `of_uri` does.
        let host = host.trim_start_matches('[').trim_end_matches(']').to_ascii_lowercase();
        Ok(Origin { https, host, port })
    }

    /// The origin of a request URI, if it has scheme and authority.
    fn of_uri(uri: &http::Uri) -> Option<Self> {
        let https = match uri.scheme() {
            Some(s) if *s == Scheme::HTTPS => true,
            Some(s) if *s == Scheme::HTTP => false,
            _ => return None,
        };
        let host = uri.host()?.trim_start_matches('[').trim_end_matches(']').to_ascii_lowercase();
        let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
        Some(Origin { https, host, port })
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = if self.https { "https" } else { "http" };
        let host = if self.host.contains(':') { format!("[{}]", self.host) } else { self.host.clone() };
        let default = if self.https { 443 } else { 80 };
        if self.port == default { write!(f, "{scheme}://{host}") } else { write!(f, "{scheme}://{host}:{}", self.port) }
    }
}

/// The origins one integration may contact.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Grants(Vec<Origin>);

impl Grants {
    /// Parses a list of origins; the first bad one is reported.
    pub fn parse<S: AsRef<str>>(origins: &[S]) -> Result<Self, String> {
        let mut out = Vec::new();
        for o in origins {
            let origin = Origin::parse(o.as_ref())?;
            if !out.contains(&origin) {
                out.push(origin);
            }
        }
        Ok(Grants(out))
    }

    /// No outbound HTTP at all.
    pub fn none() -> Self {
        Grants(Vec::new())
    }

    pub fn allows(&self, origin: &Origin) -> bool {
        self.0.contains(origin)
    }

    pub fn origins(&self) -> &[Origin] {
        &self.0
    }
}

/// Timeouts applied to every outbound request, whatever the guest asks for.
/// wasmtime's defaults are 600 s each, far too long for an admin waiting on a preview.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    pub connect: Duration,
    pub first_byte: Duration,
    pub between_bytes: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            connect: Duration::from_secs(10),
            first_byte: Duration::from_secs(30),
            between_bytes: Duration::from_secs(30),
        }
    }
}

impl Timeouts {
    /// The guest's options, each clamped to our maximum.
    fn clamp(&self, requested: Option<RequestOptions>) -> RequestOptions {
        let pick = |asked: Option<Duration>, max: Duration| Some(asked.map_or(max, |a| a.min(max)));
        let r = requested.unwrap_or_default();
        RequestOptions {
            connect_timeout: pick(r.connect_timeout, self.connect),
            first_byte_timeout: pick(r.first_byte_timeout, self.first_byte),
            between_bytes_timeout: pick(r.between_bytes_timeout, self.between_bytes),
        }
    }
}

/// What happened at the egress point during one run.
#[derive(Debug, Clone, Default)]
pub struct EgressLog {
    /// Requests sent (allowed).
    pub sent: u64,
    /// `METHOD scheme://host:port/path` of each request to an origin not granted.
    pub denied: Vec<String>,
    /// Requests to a granted origin whose address hrsync refuses: the
    /// request line and why.
    pub blocked: Vec<(String, String)>,
}

/// Addresses no connector may reach, whatever was granted: link-local
/// (where clouds serve instance metadata and credentials), the known
/// metadata addresses outside it, and what is no host at all.
fn never(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            if v4.is_link_local() {
                Some("a link-local address (cloud instance metadata lives there)")
            } else if v4 == Ipv4Addr::new(100, 100, 100, 200) || v4 == Ipv4Addr::new(168, 63, 129, 16) {
                Some("a cloud metadata address")
            } else if v4.is_unspecified() || v4.is_broadcast() || v4.is_multicast() || o[0] == 0 {
                Some("not a host address")
            } else {
                None
            }
        }
        IpAddr::V6(v6) => {
            let first = v6.segments()[0];
            if v6 == Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254) {
                Some("a cloud metadata address")
            } else if first & 0xffc0 == 0xfe80 {
                Some("a link-local address (cloud instance metadata lives there)")
            } else if v6.is_unspecified() || v6.is_multicast() {
                Some("not a host address")
            } else {
                None
            }
        }
    }
}

/// Addresses inside the host's networks: reached only when the granted
/// origin names them itself (an IP literal, or `localhost` for loopback),
/// never through a name that happens to resolve there.
fn internal(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            if v4.is_loopback() {
                Some("a loopback address")
            } else if v4.is_private() || (o[0] == 100 && (64..128).contains(&o[1])) {
                Some("a private-network address")
            } else {
                None
            }
        }
        IpAddr::V6(v6) => {
            if v6.is_loopback() {
                Some("a loopback address")
            } else if v6.segments()[0] & 0xfe00 == 0xfc00 {
                Some("a private-network address")
            } else {
                None
            }
        }
    }
}

/// Whether a request to `origin` may connect to `ip`, which its host
/// resolved to.
pub fn check_address(origin: &Origin, ip: IpAddr) -> Result<(), String> {
    let ip = ip.to_canonical();
    if let Some(what) = never(ip) {
        return Err(format!("{} resolves to {ip}, {what}; hrsync never connects there", origin.host));
    }
    if let Some(what) = internal(ip) {
        let literal = origin.host.parse::<IpAddr>().is_ok_and(|h| h.to_canonical() == ip)
            || (origin.host == "localhost" && ip.is_loopback());
        if !literal {
            return Err(format!(
                "{} resolves to {ip}, {what}; grant the address itself (e.g. http://{ip}:{}) to reach it",
                origin.host, origin.port
            ));
        }
    }
    Ok(())
}

/// The addresses `origin` resolves to, and the first that may be reached.
async fn resolve(origin: &Origin) -> Result<SocketAddr, String> {
    let addresses: Vec<SocketAddr> = tokio::net::lookup_host((origin.host.as_str(), origin.port))
        .await
        .map_err(|e| format!("{} does not resolve ({e})", origin.host))?
        .collect();
    let mut refused = None;
    let mut allowed = Vec::new();
    for address in addresses {
        match check_address(origin, address.ip()) {
            Ok(()) => allowed.push(address),
            Err(why) => refused = refused.or(Some(why)),
        }
    }
    // IPv4 first: servers on loopback often listen on 127.0.0.1 alone.
    allowed.sort_by_key(|a| a.is_ipv6());
    allowed
        .into_iter()
        .next()
        .ok_or_else(|| refused.unwrap_or_else(|| format!("{} resolves to no address", origin.host)))
}

/// Spaces one integration's requests to stay below its source's rate
/// limit: a token bucket holding `burst` requests, refilled at a steady
/// rate. Shared by every run of the integration, so back-to-back runs do
/// not add up to a burst the source would refuse.
#[derive(Debug)]
pub struct Pacer {
    per_second: f64,
    burst: f64,
    bucket: tokio::sync::Mutex<(f64, tokio::time::Instant)>,
}

impl Pacer {
    /// At most `per_minute` requests a minute on average, `burst` at once.
    pub fn new(per_minute: u32, burst: u32) -> Self {
        let burst = f64::from(burst.max(1));
        Pacer {
            per_second: f64::from(per_minute.max(1)) / 60.0,
            burst,
            bucket: tokio::sync::Mutex::new((burst, tokio::time::Instant::now())),
        }
    }

    /// Waits until a request may go out. Waiters queue in order.
    pub async fn acquire(&self) {
        let mut bucket = self.bucket.lock().await;
        let now = tokio::time::Instant::now();
        let (tokens, at) = *bucket;
        let tokens = (tokens + now.duration_since(at).as_secs_f64() * self.per_second).min(self.burst);
        if tokens >= 1.0 {
            *bucket = (tokens - 1.0, now);
            return;
        }
        let wait = Duration::from_secs_f64((1.0 - tokens) / self.per_second);
        tokio::time::sleep(wait).await;
        *bucket = (0.0, tokio::time::Instant::now());
    }
}

/// The wasi-http hooks of one run.
pub struct EgressHooks {
    connector: String,
    grants: Grants,
    timeouts: Timeouts,
    log: Arc<Mutex<EgressLog>>,
    pacer: Option<Arc<Pacer>>,
    /// Requests in flight at once; a guest cannot open connections without bound.
    in_flight: Arc<tokio::sync::Semaphore>,
    body_chunk_bytes: usize,
}

impl EgressHooks {
    pub(crate) fn new(
        connector: String,
        grants: Grants,
        limits: &super::Limits,
        log: Arc<Mutex<EgressLog>>,
        pacer: Option<Arc<Pacer>>,
    ) -> Self {
        EgressHooks {
            connector,
            grants,
            timeouts: limits.http,
            log,
            pacer,
            in_flight: Arc::new(tokio::sync::Semaphore::new(limits.concurrent_requests.max(1))),
            body_chunk_bytes: limits.body_chunk_bytes,
        }
    }
}

type SendResult = Result<(http::Response<WasiBody>, Box<dyn Future<Output = Result<(), HttpError>> + Send>), HttpError>;

impl WasiHttpHooks for EgressHooks {
    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        fut: Box<dyn Future<Output = Result<(), HttpError>> + Send>,
    ) -> Box<dyn Future<Output = SendResult> + Send> {
        let origin = Origin::of_uri(request.uri()).filter(|o| self.grants.allows(o));
        let Some(origin) = origin else {
            let line = format!("{} {}", request.method(), strip_query(request.uri()));
            tracing::warn!(connector = %self.connector, request = %line, "outbound request denied: origin not granted");
            self.log.lock().expect("egress log").denied.push(line);
            drop(fut);
            return Box::new(async { Err(HttpError::HttpRequestDenied) });
        };
        let (log, connector) = (self.log.clone(), self.connector.clone());
        let options = self.timeouts.clamp(options);
        let pacer = self.pacer.clone();
        let in_flight = self.in_flight.clone();
        drop(fut);
        Box::new(async move {
            use http_body_util::BodyExt;
            // Checked after resolution, so a granted name cannot point at
            // instance metadata or into the host's network.
            let address = match resolve(&origin).await {
                Ok(a) => a,
                Err(why) => {
                    let line = format!("{} {}", request.method(), strip_query(request.uri()));
                    tracing::warn!(connector = %connector, request = %line, "outbound request refused: {why}");
                    log.lock().expect("egress log").blocked.push((line, why));
                    return Err(HttpError::HttpRequestDenied);
                }
            };
            log.lock().expect("egress log").sent += 1;
            // Plain HTTP goes to the address just checked (no second lookup
            // a rebinding name could answer differently); HTTPS keeps the
            // name for the certificate, which another host cannot present.
            let request = if origin.https { request } else { pinned(request, address) };
            // Held until the response body is read or dropped.
            let permit = in_flight.acquire_owned().await.map_err(|_| HttpError::HttpRequestDenied)?;
            if let Some(pacer) = pacer {
                pacer.acquire().await;
            }
            let request = with_length(request).await?;
            let (response, io) = wasmtime_wasi_http::default_send_request(request, Some(options)).await?;
            let io = async move {
                // A connection that ends badly after the response is the
                // connector's to notice (its body read fails); here it is
                // only worth a debug line, not a warning per request.
                if let Err(e) = io.await {
                    tracing::debug!("outbound connection ended with an error: {e}");
                }
                drop(permit);
                Ok(())
            };
            Ok((
                response.map(BodyExt::boxed_unsync),
                Box::new(io) as Box<dyn Future<Output = Result<(), HttpError>> + Send>,
            ))
        })
    }

    /// One chunk buffered per body that is not being sent.
    fn p2_outgoing_body_buffer_chunks(&mut self) -> usize {
        1
    }

    fn p2_outgoing_body_chunk_size(&mut self) -> usize {
        self.body_chunk_bytes
    }

    // Transport failures reach the connector as error codes and the admin
    // through the connector's message; wasmtime's own warnings would only
    // repeat them, less clearly, in the host log.
    fn p2_error_from_hyper(&mut self, err: &hyper::Error) -> wasmtime_wasi_http::p2::bindings::http::types::ErrorCode {
        tracing::debug!(connector = %self.connector, "outbound HTTP error: {err}");
        wasmtime_wasi_http::p2::bindings::http::types::ErrorCode::HttpProtocolError
    }

    fn p2_error_from_connect(
        &mut self,
        err: &std::io::Error,
    ) -> wasmtime_wasi_http::p2::bindings::http::types::ErrorCode {
        tracing::debug!(connector = %self.connector, "outbound connection failed: {err}");
        wasmtime_wasi_http::p2::bindings::http::types::ErrorCode::ConnectionRefused
    }
}

/// The request, sent to `address` (its `Host` header keeps the name).
fn pinned(mut request: http::Request<WasiBody>, address: SocketAddr) -> http::Request<WasiBody> {
    let mut parts = request.uri().clone().into_parts();
    if let Ok(authority) = address.to_string().parse() {
        parts.authority = Some(authority);
        if let Ok(uri) = http::Uri::from_parts(parts) {
            *request.uri_mut() = uri;
        }
    }
    request
}

/// The most a request body may hold; connectors send forms and small JSON.
pub const MAX_REQUEST_BODY: usize = 1 << 20;

/// A request whose method carries a body goes out with that body whole and
/// its `Content-Length`: a body streamed without a length goes out chunked,
/// which strict servers and proxies refuse or read as empty. Reading the
/// guest's body to its end here (at most [`MAX_REQUEST_BODY`]) also keeps
/// the stream open until the guest has finished writing it, whatever its
/// HTTP client checks after the last write.
async fn with_length(request: http::Request<WasiBody>) -> Result<http::Request<WasiBody>, HttpError> {
    use http_body_util::BodyExt;
    if matches!(*request.method(), http::Method::GET | http::Method::HEAD) {
        return Ok(request);
    }
    let (mut parts, body) = request.into_parts();
    let bytes = http_body_util::Limited::new(body, MAX_REQUEST_BODY)
        .collect()
        .await
        .map_err(|_| HttpError::HttpRequestBodySize(Some(MAX_REQUEST_BODY as u64)))?
        .to_bytes();
    parts.headers.remove(http::header::TRANSFER_ENCODING);
    parts.headers.insert(http::header::CONTENT_LENGTH, bytes.len().into());
    let body = http_body_util::Full::new(bytes).map_err(|never| match never {}).boxed_unsync();
    Ok(http::Request::from_parts(parts, body))
}

/// The URI without its query, which may carry credentials.
fn strip_query(uri: &http::Uri) -> String {
    let mut s = String::new();
    if let Some(scheme) = uri.scheme_str() {
        s.push_str(scheme);
        s.push_str("://");
    }
    if let Some(a) = uri.authority() {
        s.push_str(a.as_str());
    }
    s.push_str(uri.path());
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn the_pacer_allows_a_burst_then_the_steady_rate() {
        let pacer = Pacer::new(60, 5);
        let start = tokio::time::Instant::now();
        for _ in 0..5 {
            pacer.acquire().await;
        }
        assert!(start.elapsed() < Duration::from_millis(1), "the burst goes at once");
        for _ in 0..10 {
            pacer.acquire().await;
        }
        let took = start.elapsed().as_secs_f64();
        assert!((9.9..10.1).contains(&took), "then one a second: {took}");
        // An idle minute refills the burst, never more.
        tokio::time::sleep(Duration::from_secs(60)).await;
        let again = tokio::time::Instant::now();
        for _ in 0..6 {
            pacer.acquire().await;
        }
        let took = again.elapsed().as_secs_f64();
        assert!((0.9..1.1).contains(&took), "{took}");
    }

    #[test]
    fn origins_parse_to_scheme_host_port() {
        let o = Origin::parse("https://API.Personio.de/").unwrap();
        assert_eq!(o.to_string(), "https://api.personio.de");
        assert_eq!(o.port, 443);
        let local = Origin::parse("http://127.0.0.1:8081").unwrap();
        assert_eq!(local.to_string(), "http://127.0.0.1:8081");
        assert_eq!(Origin::parse("http://[::1]:9000").unwrap().to_string(), "http://[::1]:9000");
    }

    #[test]
    fn anything_but_an_origin_is_refused_with_a_reason() {
        for (bad, why) in [
            ("api.personio.de", "not an origin"),
            ("ftp://x.io", "scheme `ftp`"),
            ("https://u:p@x.io", "credentials"),
            ("https://x.io/v1", "without a path"),
            ("https://x.io/?a=1", "without a path"),
            ("https://*.x.io", "wildcards"),
        ] {
            let err = Origin::parse(bad).unwrap_err();
            assert!(err.contains(why), "{bad}: {err}");
        }
    }

    #[test]
    fn grants_match_scheme_host_and_port_exactly() {
        let g = Grants::parse(&["https://api.personio.de", "http://127.0.0.1:8081"]).unwrap();
        let uri = |u: &str| Origin::of_uri(&u.parse().unwrap()).unwrap();
        assert!(g.allows(&uri("https://api.personio.de/v1/auth?x=1")));
        assert!(g.allows(&uri("https://api.personio.de:443/v1")));
        assert!(g.allows(&uri("http://127.0.0.1:8081/v1")));
        assert!(!g.allows(&uri("http://api.personio.de/v1")), "scheme differs");
        assert!(!g.allows(&uri("https://api.personio.de:8443/")), "port differs");
        assert!(!g.allows(&uri("http://127.0.0.1:8082/")), "port differs");
        assert!(!g.allows(&uri("https://evil.personio.de.attacker.io/")));
        assert!(!Grants::none().allows(&uri("https://api.personio.de/")));
    }

    #[test]
    fn timeouts_are_clamped_never_raised() {
        let t = Timeouts::default();
        let asked = RequestOptions {
            connect_timeout: Some(Duration::from_secs(600)),
            first_byte_timeout: Some(Duration::from_secs(1)),
            between_bytes_timeout: None,
        };
        let got = t.clamp(Some(asked));
        assert_eq!(got.connect_timeout, Some(t.connect));
        assert_eq!(got.first_byte_timeout, Some(Duration::from_secs(1)));
        assert_eq!(got.between_bytes_timeout, Some(t.between_bytes));
    }

    #[test]
    fn metadata_and_link_local_addresses_are_never_reached() {
        let granted = Origin::parse("https://api.personio.de").unwrap();
        let literal = Origin::parse("http://169.254.169.254").unwrap();
        for ip in [
            "169.254.169.254",
            "169.254.1.1",
            "100.100.100.200",
            "fd00:ec2::254",
            "fe80::1",
            "0.0.0.0",
            "::ffff:169.254.169.254",
        ] {
            let ip: IpAddr = ip.parse().unwrap();
            assert!(check_address(&granted, ip).is_err(), "{ip}");
            assert!(check_address(&literal, ip).is_err(), "{ip} even when granted by address");
        }
        assert!(check_address(&granted, "18.196.0.1".parse().unwrap()).is_ok(), "a public address");
        let why = check_address(&granted, "169.254.169.254".parse().unwrap()).unwrap_err();
        assert!(why.contains("link-local") && why.contains("never connects"), "{why}");
    }

    #[test]
    fn internal_addresses_need_a_grant_that_names_them() {
        let by_name = Origin::parse("https://hr.example.com").unwrap();
        for ip in ["127.0.0.1", "10.1.2.3", "172.16.0.9", "192.168.1.1", "100.64.0.1", "::1", "fd12::1"] {
            let ip: IpAddr = ip.parse().unwrap();
            let why = check_address(&by_name, ip).unwrap_err();
            assert!(why.contains("grant the address itself"), "{ip}: {why}");
        }
        let sandbox = Origin::parse("http://127.0.0.1:8081").unwrap();
        assert!(check_address(&sandbox, "127.0.0.1".parse().unwrap()).is_ok());
        assert!(check_address(&sandbox, "127.0.0.2".parse().unwrap()).is_err(), "only the address named");
        let local = Origin::parse("http://localhost:8081").unwrap();
        assert!(check_address(&local, "::1".parse().unwrap()).is_ok());
        let office = Origin::parse("http://10.1.2.3:8080").unwrap();
        assert!(check_address(&office, "10.1.2.3".parse().unwrap()).is_ok());
    }

    #[test]
    fn logged_requests_omit_the_query() {
        assert_eq!(strip_query(&"https://x.io/v1/auth?client_secret=s".parse().unwrap()), "https://x.io/v1/auth");
    }
}
