//! The gateway's own HTTP/1.1 client for `http://` upstreams (vLLM, TGI,
//! SGLang in the same network), the path most requests take.
//!
//! hyper-util's pooled client runs each connection as its own task and
//! hands every request to it through a channel, and the answer back
//! through another: two task wake-ups and a pool checkout per request,
//! about a quarter of the gateway's CPU per request (BENCHMARKS.md,
//! issue 14). Here the request's own task owns the connection while it
//! uses it: it writes the request, reads the answer's head and then its
//! body straight from the socket, and puts the connection back in the
//! pool when the body has been read to its end.
//!
//! The framing is a pure decoder ([`Decoder`], [`parse_head`]): bytes in,
//! body chunks out, every line, head and count bounded, so a broken or
//! hostile upstream gets an error, never unbounded memory. `https://`
//! upstreams and `h2c` deployments keep hyper's client.
#![allow(clippy::disallowed_methods)] // idle connections age by the clock

use bytes::{Buf, Bytes, BytesMut};
use hyper::header::{HeaderName, HeaderValue};
use hyper::{HeaderMap, Request, Response, StatusCode, Version};
use std::collections::HashMap;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

/// Largest response head (status line and headers) read from an upstream.
pub const HEAD_BYTES_MAX: usize = 64 * 1024;
/// Most headers in one response head.
pub const HEADERS_MAX: usize = 100;
/// Longest chunk-size line (size, extensions) in a chunked body.
pub const CHUNK_LINE_BYTES_MAX: usize = 1024;
/// Most trailer bytes after a chunked body.
pub const TRAILER_BYTES_MAX: usize = 16 * 1024;
/// Most interim (1xx) heads skipped before the answer.
const INTERIM_MAX: usize = 8;
/// Bytes read from a socket at a time.
const READ_BYTES: usize = 16 * 1024;

/// What went wrong talking to an upstream.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("bad upstream URL: {0}")]
    Url(String),
    #[error("connecting to {addr}: {source}")]
    Connect {
        addr: String,
        source: std::io::Error,
    },
    #[error("connecting to {addr}: no connection within {ms} ms (timeouts.connect_ms)")]
    ConnectTimeout { addr: String, ms: u128 },
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("the upstream closed the connection before its answer was complete")]
    Closed,
    #[error("the upstream's answer is malformed: {0}")]
    Malformed(&'static str),
    #[error("the upstream's answer head is over {HEAD_BYTES_MAX} bytes")]
    HeadTooLarge,
}

/// How a response body ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Framing {
    /// No body (204, 304, an answer to HEAD).
    Empty,
    /// `content-length` bytes.
    Length(u64),
    /// `transfer-encoding: chunked`.
    Chunked,
    /// Everything until the upstream closes the connection.
    UntilClose,
}

/// A parsed response head.
#[derive(Debug)]
pub struct Head {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub framing: Framing,
    /// Whether the connection can carry another request once the body
    /// has been read whole.
    pub reusable: bool,
}

/// Parses one response head from the front of `buf`: `Ok(None)` when
/// more bytes are needed, else the head and its length in bytes.
pub fn parse_head(buf: &[u8], head_request: bool) -> Result<Option<(Head, usize)>, Error> {
    let mut slots = [httparse::EMPTY_HEADER; HEADERS_MAX];
    let mut r = httparse::Response::new(&mut slots);
    let n = match r.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => {
            return if buf.len() > HEAD_BYTES_MAX {
                Err(Error::HeadTooLarge)
            } else {
                Ok(None)
            }
        }
        Err(httparse::Error::TooManyHeaders) => return Err(Error::Malformed("over 100 headers")),
        Err(_) => return Err(Error::Malformed("not an HTTP/1.x response head")),
    };
    if n > HEAD_BYTES_MAX {
        return Err(Error::HeadTooLarge);
    }
    let code = r.code.ok_or(Error::Malformed("no status code"))?;
    let status = StatusCode::from_u16(code).map_err(|_| Error::Malformed("bad status code"))?;
    let mut headers = HeaderMap::with_capacity(r.headers.len());
    let mut length: Option<u64> = None;
    let mut chunked = false;
    let mut encoded = false;
    let mut close = r.version != Some(1);
    for h in r.headers.iter() {
        let name = HeaderName::from_bytes(h.name.as_bytes())
            .map_err(|_| Error::Malformed("bad header name"))?;
        let value =
            HeaderValue::from_bytes(h.value).map_err(|_| Error::Malformed("bad header value"))?;
        if name == hyper::header::CONTENT_LENGTH {
            let v = std::str::from_utf8(h.value)
                .ok()
                .and_then(|s| s.trim().parse::<u64>().ok())
                .ok_or(Error::Malformed("bad content-length"))?;
            if length.is_some_and(|l| l != v) {
                return Err(Error::Malformed("two different content-lengths"));
            }
            length = Some(v);
        } else if name == hyper::header::TRANSFER_ENCODING {
            encoded = true;
            // Only the last coding says how the body ends.
            chunked = value
                .to_str()
                .ok()
                .and_then(|s| s.rsplit(',').next())
                .is_some_and(|c| c.trim().eq_ignore_ascii_case("chunked"));
        } else if name == hyper::header::CONNECTION {
            let v = value.to_str().unwrap_or("");
            if v.split(',').any(|t| t.trim().eq_ignore_ascii_case("close")) {
                close = true;
            }
        }
        headers.append(name, value);
    }
    let no_body = head_request
        || status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED;
    let framing = if no_body {
        Framing::Empty
    } else if encoded {
        // A length beside an encoding may be a smuggling attempt: the
        // encoding wins and the connection is not used again (RFC 9112
        // section 6.3).
        if length.is_some() {
            close = true;
        }
        if chunked {
            Framing::Chunked
        } else {
            close = true;
            Framing::UntilClose
        }
    } else {
        match length {
            Some(0) => Framing::Empty,
            Some(l) => Framing::Length(l),
            None => {
                close = true;
                Framing::UntilClose
            }
        }
    };
    Ok(Some((
        Head {
            status,
            headers,
            framing,
            reusable: !close,
        },
        n,
    )))
}

/// One step of a body's decoding.
#[derive(Debug, PartialEq, Eq)]
pub enum Step {
    Data(Bytes),
    /// More bytes are needed.
    More,
    /// The body is complete.
    End,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Chunk {
    Size,
    Data(u64),
    DataEnd,
    Trailers { seen: usize },
}

/// Decodes a response body from the bytes read so far (sans-IO: the
/// caller reads, this only cuts).
#[derive(Debug)]
pub struct Decoder {
    framing: Framing,
    /// Bytes left of a `Length` body.
    left: u64,
    chunk: Chunk,
    done: bool,
}

impl Decoder {
    pub fn new(framing: Framing) -> Decoder {
        Decoder {
            framing,
            left: match framing {
                Framing::Length(l) => l,
                _ => 0,
            },
            chunk: Chunk::Size,
            done: matches!(framing, Framing::Empty),
        }
    }

    pub fn is_done(&self) -> bool {
        self.done
    }

    /// The next piece of the body from the front of `buf`.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Step, Error> {
        if self.done {
            return Ok(Step::End);
        }
        match self.framing {
            Framing::Empty => {
                self.done = true;
                Ok(Step::End)
            }
            Framing::Length(_) => {
                if buf.is_empty() {
                    return Ok(Step::More);
                }
                let n = (buf.len() as u64).min(self.left) as usize;
                self.left -= n as u64;
                if self.left == 0 {
                    self.done = true;
                }
                Ok(Step::Data(buf.split_to(n).freeze()))
            }
            Framing::UntilClose => {
                if buf.is_empty() {
                    Ok(Step::More)
                } else {
                    Ok(Step::Data(buf.split().freeze()))
                }
            }
            Framing::Chunked => self.chunked(buf),
        }
    }

    /// The upstream closed the connection: the end of an `UntilClose`
    /// body, an error for any other that is not complete.
    pub fn eof(&mut self) -> Result<Step, Error> {
        if self.done || self.framing == Framing::UntilClose {
            self.done = true;
            Ok(Step::End)
        } else {
            Err(Error::Closed)
        }
    }

    fn chunked(&mut self, buf: &mut BytesMut) -> Result<Step, Error> {
        loop {
            match self.chunk {
                Chunk::Size => {
                    let Some(end) = line_end(buf, CHUNK_LINE_BYTES_MAX)? else {
                        return Ok(Step::More);
                    };
                    let line = buf.split_to(end + 2);
                    let size_hex = line[..end]
                        .split(|b| *b == b';')
                        .next()
                        .unwrap_or(&[])
                        .trim_ascii();
                    if size_hex.is_empty() || size_hex.len() > 16 {
                        return Err(Error::Malformed("bad chunk size"));
                    }
                    let size = std::str::from_utf8(size_hex)
                        .ok()
                        .and_then(|s| u64::from_str_radix(s, 16).ok())
                        .ok_or(Error::Malformed("bad chunk size"))?;
                    self.chunk = if size == 0 {
                        Chunk::Trailers { seen: 0 }
                    } else {
                        Chunk::Data(size)
                    };
                }
                Chunk::Data(left) => {
                    if buf.is_empty() {
                        return Ok(Step::More);
                    }
                    let n = (buf.len() as u64).min(left) as usize;
                    self.chunk = if left == n as u64 {
                        Chunk::DataEnd
                    } else {
                        Chunk::Data(left - n as u64)
                    };
                    return Ok(Step::Data(buf.split_to(n).freeze()));
                }
                Chunk::DataEnd => {
                    if buf.len() < 2 {
                        return Ok(Step::More);
                    }
                    if &buf[..2] != b"\r\n" {
                        return Err(Error::Malformed("chunk not followed by CRLF"));
                    }
                    buf.advance(2);
                    self.chunk = Chunk::Size;
                }
                Chunk::Trailers { seen } => {
                    let Some(end) = line_end(buf, TRAILER_BYTES_MAX - seen)? else {
                        return Ok(Step::More);
                    };
                    buf.advance(end + 2);
                    if end == 0 {
                        self.done = true;
                        return Ok(Step::End);
                    }
                    // Trailers are read and dropped: the gateway uses none.
                    self.chunk = Chunk::Trailers {
                        seen: seen + end + 2,
                    };
                }
            }
        }
    }
}

/// Where the CRLF ending the first line of `buf` starts; an error if no
/// line ends within `max` bytes.
fn line_end(buf: &[u8], max: usize) -> Result<Option<usize>, Error> {
    match buf.windows(2).position(|w| w == b"\r\n") {
        Some(i) if i <= max => Ok(Some(i)),
        Some(_) => Err(Error::Malformed("line too long in a chunked body")),
        None if buf.len() > max + 1 => Err(Error::Malformed("line too long in a chunked body")),
        None => Ok(None),
    }
}

/// Writes a request head (and a body that is small) into one buffer.
fn encode_request(req: &hyper::http::request::Parts, authority: &str, body: &[u8]) -> BytesMut {
    let path = req
        .uri
        .path_and_query()
        .map(|p| p.as_str())
        .filter(|p| !p.is_empty())
        .unwrap_or("/");
    let mut w = BytesMut::with_capacity(256 + body.len().min(16 * 1024));
    w.extend_from_slice(req.method.as_str().as_bytes());
    w.extend_from_slice(b" ");
    w.extend_from_slice(path.as_bytes());
    w.extend_from_slice(b" HTTP/1.1\r\n");
    if !req.headers.contains_key(hyper::header::HOST) {
        w.extend_from_slice(b"host: ");
        w.extend_from_slice(authority.as_bytes());
        w.extend_from_slice(b"\r\n");
    }
    for (n, v) in req.headers.iter() {
        // The framing is the client's to set, from the body it sends.
        if n == hyper::header::CONTENT_LENGTH
            || n == hyper::header::TRANSFER_ENCODING
            || n == hyper::header::CONNECTION
        {
            continue;
        }
        w.extend_from_slice(n.as_str().as_bytes());
        w.extend_from_slice(b": ");
        w.extend_from_slice(v.as_bytes());
        w.extend_from_slice(b"\r\n");
    }
    if !body.is_empty() || req.method == hyper::Method::POST || req.method == hyper::Method::PUT {
        w.extend_from_slice(b"content-length: ");
        w.extend_from_slice(body.len().to_string().as_bytes());
        w.extend_from_slice(b"\r\n");
    }
    w.extend_from_slice(b"\r\n");
    if body.len() <= 16 * 1024 {
        w.extend_from_slice(body);
    }
    w
}

struct Idle {
    stream: TcpStream,
    since: Instant,
}

/// Idle connections by `host:port`, and when expired ones were last
/// swept from every host (a host no longer asked would keep its own).
struct Idles {
    by_host: HashMap<String, Vec<Idle>>,
    swept: Instant,
}

struct Inner {
    idle: Mutex<Idles>,
    connect_timeout: Duration,
    idle_timeout: Duration,
    idle_per_host_max: usize,
}

/// Pooled HTTP/1.1 connections to `http://` upstreams, keyed by
/// `host:port`.
#[derive(Clone)]
pub struct Pool {
    inner: Arc<Inner>,
}

impl Pool {
    /// Idle connections kept up to 90 s.
    pub fn new(connect_timeout: Duration) -> Pool {
        Pool::with_idle_timeout(connect_timeout, Duration::from_secs(90))
    }

    pub fn with_idle_timeout(connect_timeout: Duration, idle_timeout: Duration) -> Pool {
        Pool {
            inner: Arc::new(Inner {
                idle: Mutex::new(Idles {
                    by_host: HashMap::new(),
                    swept: Instant::now(),
                }),
                connect_timeout,
                idle_timeout,
                idle_per_host_max: 1024,
            }),
        }
    }

    /// Connections kept idle now, all hosts together.
    pub fn idle(&self) -> usize {
        self.inner
            .idle
            .lock()
            .map(|m| m.by_host.values().map(Vec::len).sum())
            .unwrap_or(0)
    }

    /// An idle connection to `addr` that is still open, if any.
    fn checkout(&self, addr: &str) -> Option<TcpStream> {
        let mut idle = self.inner.idle.lock().ok()?;
        let list = idle.by_host.get_mut(addr)?;
        while let Some(c) = list.pop() {
            if c.since.elapsed() > self.inner.idle_timeout {
                // The rest are older still.
                list.clear();
                return None;
            }
            // An idle connection has nothing to read: a byte or the end
            // means the upstream closed it (or broke the protocol).
            let mut probe = [0u8; 1];
            if let Err(e) = c.stream.try_read(&mut probe) {
                if e.kind() == std::io::ErrorKind::WouldBlock {
                    return Some(c.stream);
                }
            }
        }
        None
    }

    fn checkin(&self, addr: &str, stream: TcpStream) {
        let Ok(mut idle) = self.inner.idle.lock() else {
            return;
        };
        let expiry = self.inner.idle_timeout;
        // The oldest are at the front; those past the idle timeout go,
        // from every host once per idle timeout, else from this one.
        let expired = |l: &mut Vec<Idle>| {
            let n = l.iter().take_while(|c| c.since.elapsed() > expiry).count();
            l.drain(..n);
        };
        if idle.swept.elapsed() > expiry {
            idle.by_host.values_mut().for_each(expired);
            idle.by_host.retain(|_, l| !l.is_empty());
            idle.swept = Instant::now();
        }
        let list = match idle.by_host.get_mut(addr) {
            Some(l) => l,
            None => idle.by_host.entry(addr.to_owned()).or_default(),
        };
        expired(list);
        if list.len() < self.inner.idle_per_host_max {
            list.push(Idle {
                stream,
                since: Instant::now(),
            });
        }
    }

    async fn connect(&self, authority: &hyper::http::uri::Authority) -> Result<TcpStream, Error> {
        let addr = format!(
            "{}:{}",
            authority.host(),
            authority.port_u16().unwrap_or(80)
        );
        let s = tokio::time::timeout(self.inner.connect_timeout, TcpStream::connect(&addr))
            .await
            .map_err(|_| Error::ConnectTimeout {
                addr: addr.clone(),
                ms: self.inner.connect_timeout.as_millis(),
            })?
            .map_err(|source| Error::Connect { addr, source })?;
        s.set_nodelay(true)?;
        Ok(s)
    }

    /// Sends `req` to its `http://` URL and reads the answer's head; the
    /// body is read as the caller polls it.
    ///
    /// A pooled connection the upstream closed as the request went out
    /// (its keep-alive timer) gives no byte of an answer: the request is
    /// sent once more, on a new connection. An upstream that read the
    /// request and died before answering gets it twice, as it would from
    /// the gateway's failover to another deployment.
    pub async fn send(&self, req: Request<Bytes>) -> Result<Response<Body>, Error> {
        let (parts, body) = req.into_parts();
        if parts.uri.scheme() != Some(&hyper::http::uri::Scheme::HTTP) {
            return Err(Error::Url(format!("{} is not an http:// URL", parts.uri)));
        }
        let Some(authority) = parts.uri.authority().cloned() else {
            return Err(Error::Url(format!("{} has no host", parts.uri)));
        };
        // The Host header never carries a URL's user information.
        let host = authority.as_str().rsplit('@').next().unwrap_or("");
        let wire = encode_request(&parts, host, &body);
        let head_request = parts.method == hyper::Method::HEAD;
        // Connections are pooled by the URL's authority (`host:port`).
        let mut pooled = self.checkout(authority.as_str());
        loop {
            let reused = pooled.is_some();
            let mut s = match pooled.take() {
                Some(s) => s,
                None => self.connect(&authority).await?,
            };
            match exchange(&mut s, &wire, &body, head_request).await {
                Ok((head, rest)) => {
                    let mut body = Body {
                        conn: Some(s),
                        buf: rest,
                        decoder: Decoder::new(head.framing),
                        reusable: head.reusable,
                        pool: self.clone(),
                        addr: authority,
                    };
                    if body.decoder.is_done() {
                        // No body to read: the connection is free now.
                        body.finished();
                    }
                    let mut r = Response::new(body);
                    *r.status_mut() = head.status;
                    *r.version_mut() = Version::HTTP_11;
                    *r.headers_mut() = head.headers;
                    return Ok(r);
                }
                Err(Exchange::Silent(_)) if reused => continue,
                Err(Exchange::Silent(e) | Exchange::Failed(e)) => return Err(e),
            }
        }
    }
}

/// How an exchange failed: before any byte of an answer came, or after.
enum Exchange {
    Silent(Error),
    Failed(Error),
}

/// Writes the request and reads the answer's head (1xx heads skipped);
/// returns the head and the bytes read past it.
async fn exchange(
    s: &mut TcpStream,
    wire: &[u8],
    body: &Bytes,
    head_request: bool,
) -> Result<(Head, BytesMut), Exchange> {
    s.write_all(wire)
        .await
        .map_err(|e| Exchange::Silent(e.into()))?;
    if body.len() > 16 * 1024 {
        s.write_all(body)
            .await
            .map_err(|e| Exchange::Silent(e.into()))?;
    }
    let mut buf = BytesMut::with_capacity(READ_BYTES);
    let mut got_any = false;
    let mut interim = 0usize;
    loop {
        if !buf.is_empty() {
            match parse_head(&buf, head_request) {
                Ok(Some((head, n))) => {
                    buf.advance(n);
                    if head.status.is_informational() {
                        interim += 1;
                        if head.status == StatusCode::SWITCHING_PROTOCOLS || interim > INTERIM_MAX {
                            return Err(Exchange::Failed(Error::Malformed(
                                "unexpected 1xx answer",
                            )));
                        }
                        continue;
                    }
                    return Ok((head, buf));
                }
                Ok(None) => {}
                Err(e) => return Err(Exchange::Failed(e)),
            }
        }
        buf.reserve(READ_BYTES);
        match tokio::io::AsyncReadExt::read_buf(s, &mut buf).await {
            Ok(0) if !got_any => return Err(Exchange::Silent(Error::Closed)),
            Ok(0) => return Err(Exchange::Failed(Error::Closed)),
            Ok(_) => got_any = true,
            Err(e) if !got_any => return Err(Exchange::Silent(e.into())),
            Err(e) => return Err(Exchange::Failed(e.into())),
        }
    }
}

/// An answer's body, read from the connection as it is polled. Read to
/// its end, the connection goes back to the pool; dropped before, the
/// connection is closed.
pub struct Body {
    conn: Option<TcpStream>,
    buf: BytesMut,
    decoder: Decoder,
    reusable: bool,
    pool: Pool,
    addr: hyper::http::uri::Authority,
}

impl Body {
    fn finished(&mut self) {
        // Bytes past the end would be an answer nobody asked for.
        if let Some(c) = self
            .conn
            .take()
            .filter(|_| self.reusable && self.buf.is_empty())
        {
            self.pool.checkin(self.addr.as_str(), c);
        }
    }
}

impl http_body::Body for Body {
    type Data = Bytes;
    type Error = Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, Error>>> {
        let this = self.get_mut();
        loop {
            let step = match this.decoder.decode(&mut this.buf) {
                Ok(s) => s,
                Err(e) => {
                    this.conn = None;
                    return Poll::Ready(Some(Err(e)));
                }
            };
            match step {
                Step::Data(d) => return Poll::Ready(Some(Ok(http_body::Frame::data(d)))),
                Step::End => {
                    this.finished();
                    return Poll::Ready(None);
                }
                Step::More => {}
            }
            let Some(conn) = this.conn.as_mut() else {
                return Poll::Ready(None);
            };
            this.buf.reserve(READ_BYTES);
            match conn.try_read_buf(&mut this.buf) {
                Ok(0) => match this.decoder.eof() {
                    Ok(_) => {
                        this.conn = None;
                        return Poll::Ready(None);
                    }
                    Err(e) => {
                        this.conn = None;
                        return Poll::Ready(Some(Err(e)));
                    }
                },
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    match conn.poll_read_ready(cx) {
                        Poll::Pending => return Poll::Pending,
                        Poll::Ready(Ok(())) => {}
                        Poll::Ready(Err(e)) => {
                            this.conn = None;
                            return Poll::Ready(Some(Err(e.into())));
                        }
                    }
                }
                Err(e) => {
                    this.conn = None;
                    return Poll::Ready(Some(Err(e.into())));
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.decoder.is_done()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_all(framing: Framing, pieces: &[&[u8]]) -> Result<Vec<u8>, Error> {
        let mut d = Decoder::new(framing);
        let mut buf = BytesMut::new();
        let mut out = Vec::new();
        for p in pieces {
            buf.extend_from_slice(p);
            loop {
                match d.decode(&mut buf)? {
                    Step::Data(b) => out.extend_from_slice(&b),
                    Step::More => break,
                    Step::End => return Ok(out),
                }
            }
        }
        match d.eof()? {
            Step::End => Ok(out),
            _ => Err(Error::Closed),
        }
    }

    #[test]
    fn the_rfc_9112_chunked_example_decodes_whatever_the_split() {
        // RFC 9112 section 7.1's shape: sizes in hex, an extension, a
        // trailer; 0x1a = 26 bytes, then 0x10 = 16.
        let wire: &[u8] = b"1a; ignore=stuff\r\nabcdefghijklmnopqrstuvwxyz\r\n10\r\n1234567890abcdef\r\n0\r\nsome-footer: some-value\r\n\r\n";
        let want = b"abcdefghijklmnopqrstuvwxyz1234567890abcdef".to_vec();
        for cut in 0..wire.len() {
            for cut2 in cut..wire.len() {
                let got = decode_all(
                    Framing::Chunked,
                    &[&wire[..cut], &wire[cut..cut2], &wire[cut2..]],
                )
                .unwrap_or_else(|e| panic!("cuts {cut},{cut2}: {e}"));
                assert_eq!(got, want, "cuts {cut},{cut2}");
            }
        }
    }

    #[test]
    fn broken_chunked_bodies_are_errors_not_memory() {
        // A size line that never ends.
        let long = vec![b'a'; CHUNK_LINE_BYTES_MAX + 10];
        assert!(matches!(
            decode_all(Framing::Chunked, &[&long]),
            Err(Error::Malformed(_))
        ));
        // A size that is not hex, or overflows 64 bits.
        assert!(decode_all(Framing::Chunked, &[b"zz\r\n"]).is_err());
        assert!(decode_all(Framing::Chunked, &[b"1ffffffffffffffff\r\n"]).is_err());
        // Data not followed by CRLF.
        assert!(decode_all(Framing::Chunked, &[b"2\r\nabXY0\r\n\r\n"]).is_err());
        // Endless trailers.
        let mut t = b"0\r\n".to_vec();
        for _ in 0..2_000 {
            t.extend_from_slice(b"x-a: b\r\n");
        }
        assert!(decode_all(Framing::Chunked, &[&t]).is_err());
        // Cut short: the connection closed mid-chunk.
        assert!(matches!(
            decode_all(Framing::Chunked, &[b"5\r\nab"]),
            Err(Error::Closed)
        ));
    }

    #[test]
    fn lengths_and_close_delimited_bodies() {
        assert_eq!(
            decode_all(Framing::Length(5), &[b"he", b"llo"]).ok(),
            Some(b"hello".to_vec())
        );
        // Cut short.
        assert!(matches!(
            decode_all(Framing::Length(5), &[b"hel"]),
            Err(Error::Closed)
        ));
        // Until close: whatever came.
        assert_eq!(
            decode_all(Framing::UntilClose, &[b"a", b"bc"]).ok(),
            Some(b"abc".to_vec())
        );
        // Bytes past a length stay for the next answer: not this body's.
        let mut d = Decoder::new(Framing::Length(2));
        let mut buf = BytesMut::from(&b"okHTTP/1.1"[..]);
        assert_eq!(
            d.decode(&mut buf).ok(),
            Some(Step::Data(Bytes::from_static(b"ok")))
        );
        assert_eq!(d.decode(&mut buf).ok(), Some(Step::End));
        assert_eq!(&buf[..], b"HTTP/1.1");
    }

    #[test]
    fn heads_say_how_the_body_ends_and_whether_the_connection_stays() {
        let h = |s: &[u8]| parse_head(s, false).ok().flatten().map(|(h, _)| h);
        let a = h(
            b"HTTP/1.1 200 OK\r\ncontent-length: 12\r\nx-ratelimit-remaining-requests: 9\r\n\r\n",
        )
        .unwrap_or_else(|| panic!("parses"));
        assert_eq!(a.framing, Framing::Length(12));
        assert!(a.reusable);
        assert_eq!(
            a.headers
                .get("x-ratelimit-remaining-requests")
                .map(|v| v.as_bytes()),
            Some(&b"9"[..])
        );
        let b = h(b"HTTP/1.1 200 OK\r\ntransfer-encoding: gzip, chunked\r\n\r\n")
            .unwrap_or_else(|| panic!("parses"));
        assert_eq!(b.framing, Framing::Chunked);
        assert!(b.reusable);
        // Both a length and chunked: chunked, and the connection closes.
        let c = h(b"HTTP/1.1 200 OK\r\ncontent-length: 3\r\ntransfer-encoding: chunked\r\n\r\n")
            .unwrap_or_else(|| panic!("parses"));
        assert_eq!(c.framing, Framing::Chunked);
        assert!(!c.reusable);
        // No length: until close.
        let d = h(b"HTTP/1.1 200 OK\r\n\r\n").unwrap_or_else(|| panic!("parses"));
        assert_eq!(d.framing, Framing::UntilClose);
        assert!(!d.reusable);
        // HTTP/1.0 or connection: close.
        assert!(
            !h(b"HTTP/1.0 200 OK\r\ncontent-length: 1\r\n\r\n")
                .unwrap_or_else(|| panic!("parses"))
                .reusable
        );
        assert!(
            !h(b"HTTP/1.1 200 OK\r\nConnection: Close\r\ncontent-length: 1\r\n\r\n")
                .unwrap_or_else(|| panic!("parses"))
                .reusable
        );
        // 204 has no body whatever it says.
        assert_eq!(
            h(b"HTTP/1.1 204 No Content\r\ncontent-length: 5\r\n\r\n").map(|h| h.framing),
            Some(Framing::Empty)
        );
        // Two lengths that differ; a length that is not a number.
        assert!(parse_head(
            b"HTTP/1.1 200 OK\r\ncontent-length: 1\r\ncontent-length: 2\r\n\r\n",
            false
        )
        .is_err());
        assert!(parse_head(b"HTTP/1.1 200 OK\r\ncontent-length: -1\r\n\r\n", false).is_err());
        // Not HTTP.
        assert!(parse_head(b"SSH-2.0-OpenSSH\r\n\r\n", false).is_err());
        // Partial, then too large.
        assert!(matches!(
            parse_head(b"HTTP/1.1 200 OK\r\nx-a: b", false),
            Ok(None)
        ));
        let mut big = b"HTTP/1.1 200 OK\r\nx-a: ".to_vec();
        big.resize(HEAD_BYTES_MAX + 10, b'a');
        assert!(matches!(parse_head(&big, false), Err(Error::HeadTooLarge)));
        let mut many = b"HTTP/1.1 200 OK\r\n".to_vec();
        for i in 0..=HEADERS_MAX {
            many.extend_from_slice(format!("x-{i}: v\r\n").as_bytes());
        }
        many.extend_from_slice(b"\r\n");
        assert!(matches!(parse_head(&many, false), Err(Error::Malformed(_))));
    }

    /// A tiny upstream answering `ok` to every request, kept alive.
    async fn upstream() -> u16 {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let port = l.local_addr().map(|a| a.port()).unwrap_or(0);
        tokio::spawn(async move {
            while let Ok((mut s, _)) = l.accept().await {
                tokio::spawn(async move {
                    let mut buf = BytesMut::new();
                    loop {
                        if tokio::io::AsyncReadExt::read_buf(&mut s, &mut buf)
                            .await
                            .unwrap_or(0)
                            == 0
                        {
                            return;
                        }
                        while let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                            // Requests here carry content-length: 0.
                            buf.advance(i + 4);
                            if s.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
                                .await
                                .is_err()
                            {
                                return;
                            }
                        }
                    }
                });
            }
        });
        port
    }

    async fn get(pool: &Pool, port: u16) -> Vec<u8> {
        let req = Request::post(format!("http://127.0.0.1:{port}/x"))
            .body(Bytes::new())
            .unwrap_or_else(|e| panic!("{e}"));
        let r = pool.send(req).await.unwrap_or_else(|e| panic!("{e}"));
        http_body_util::BodyExt::collect(r.into_body())
            .await
            .map(|b| b.to_bytes().to_vec())
            .unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn connections_are_reused_and_idle_ones_expire_from_every_host() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap_or_else(|e| panic!("{e}"));
        rt.block_on(async {
            let (a, b) = (upstream().await, upstream().await);
            let pool = Pool::with_idle_timeout(Duration::from_secs(1), Duration::from_millis(100));
            for _ in 0..3 {
                assert_eq!(get(&pool, a).await, b"ok");
            }
            // One connection, reused: one idle.
            assert_eq!(pool.idle(), 1);
            tokio::time::sleep(Duration::from_millis(250)).await;
            // Host a is not asked again; a request to b sweeps a's.
            assert_eq!(get(&pool, b).await, b"ok");
            assert_eq!(pool.idle(), 1);
        });
    }

    #[test]
    fn a_request_head_carries_its_headers_host_and_length() {
        let req = Request::post("http://10.0.0.7:8000/v1/chat/completions?x=1")
            .header("authorization", "Bearer k")
            .header("content-length", "999")
            .body(())
            .unwrap_or_else(|e| panic!("{e}"));
        let (parts, ()) = req.into_parts();
        let w = encode_request(&parts, "10.0.0.7:8000", b"{}");
        assert_eq!(
            std::str::from_utf8(&w).ok(),
            Some("POST /v1/chat/completions?x=1 HTTP/1.1\r\nhost: 10.0.0.7:8000\r\nauthorization: Bearer k\r\ncontent-length: 2\r\n\r\n{}")
        );
    }
}
