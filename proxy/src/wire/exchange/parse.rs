//! Reading the tool's response: the head (`httparse`, strictly framed as the module above
//! says), the header fields kept for the client ([`Fields`]), and the chunked decoder.

use std::mem::MaybeUninit;

use bytes::{Buf, Bytes, BytesMut};
use http::StatusCode;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};

use super::{Error, MAX_HEAD, malformed};

/// Most header fields in a response head (hyper's limit).
pub(super) const MAX_HEADERS: usize = 100;
/// Longest chunk-size line (with extensions).
pub(super) const MAX_CHUNK_LINE: usize = 4096;

/// How a response body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Framing {
    /// No body (or the body has been read).
    Empty,
    /// This many bytes still to come.
    Length(u64),
    /// Chunked, in this state.
    Chunked(Chunk),
    /// Until the tool closes the connection.
    Close,
}

/// Where a chunked body's decoder stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Chunk {
    /// Expecting a chunk-size line.
    Size,
    /// Inside chunk data, this much left.
    Data(u64),
    /// Expecting the CRLF after chunk data.
    DataEnd,
    /// After the last chunk: trailer fields until an empty line.
    Trailers,
}

/// A parsed final response head.
#[derive(Debug)]
pub(crate) struct Head {
    pub(crate) status: StatusCode,
    pub(crate) fields: Fields,
    pub(crate) framing: Framing,
    pub(crate) keep_alive: bool,
}

#[derive(Debug)]
pub(crate) enum Parsed {
    Final(Head),
    /// An interim (1xx) response, removed from the buffer.
    Interim,
    Partial,
}

pub(super) fn ows(s: &[u8]) -> &[u8] {
    s.trim_ascii()
}

/// `Content-Length` value: digits only (a list of equal values is one value, RFC 9110 8.6).
pub(super) fn content_length(value: &[u8], seen: &mut Option<u64>) -> Result<(), Error> {
    for part in value.split(|&b| b == b',') {
        let part = ows(part);
        if part.is_empty() || part.len() > 19 || !part.iter().all(u8::is_ascii_digit) {
            return Err(malformed("invalid Content-Length"));
        }
        let n = part.iter().fold(0u64, |n, d| n * 10 + u64::from(d - b'0'));
        if seen.is_some_and(|s| s != n) {
            return Err(malformed("conflicting Content-Length values"));
        }
        *seen = Some(n);
    }
    Ok(())
}

/// The framing rules of [`parse_head`] for a final response that hyper's client read (which
/// accepts more: `Transfer-Encoding` beside `Content-Length`, transfer codings other than
/// `chunked`, `Content-Length` lists and, on HEAD answers, any `Content-Length`): the same
/// responses are refused on both paths, and a valid `Content-Length` is left as one field with
/// one value.
pub(crate) fn check_framing(version: http::Version, headers: &mut HeaderMap) -> Result<(), Error> {
    let mut length = None;
    for value in headers.get_all(header::CONTENT_LENGTH) {
        content_length(value.as_bytes(), &mut length)?;
    }
    let mut codings = headers.get_all(header::TRANSFER_ENCODING).iter();
    if let Some(coding) = codings.next() {
        if codings.next().is_some() || !ows(coding.as_bytes()).eq_ignore_ascii_case(b"chunked") {
            return Err(malformed("unsupported Transfer-Encoding"));
        }
        if length.is_some() {
            return Err(malformed("both Transfer-Encoding and Content-Length"));
        }
        if version == http::Version::HTTP_10 {
            return Err(malformed("Transfer-Encoding in an HTTP/1.0 response"));
        }
    }
    if let Some(n) = length {
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from(n));
    }
    Ok(())
}

/// Parses a response head at the start of `buf`; a complete one is removed from it.
// One pass over the head, on the benchmarked path: left whole until a benchmark run shows
// that splitting it costs nothing.
#[allow(clippy::too_many_lines)]
pub(crate) fn parse_head(buf: &mut BytesMut, is_head: bool) -> Result<Parsed, Error> {
    // Strict defaults: no obsolete line folding, no space before the colon.
    let mut slots = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
    let mut resp = httparse::Response::new(&mut []);
    let parsed = httparse::ParserConfig::default()
        .parse_response_with_uninit_headers(&mut resp, buf, &mut slots);
    let len = match parsed {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Ok(Parsed::Partial),
        Err(httparse::Error::TooManyHeaders) => return Err(malformed("too many header fields")),
        Err(_) => return Err(malformed("invalid response head")),
    };
    let code = resp.code.unwrap_or(0);
    let http10 = resp.version == Some(0);
    if code == 101 {
        return Err(malformed("protocol switch without an upgrade request"));
    }
    if (100..200).contains(&code) {
        buf.advance(len);
        return Ok(Parsed::Interim);
    }
    let status = StatusCode::from_u16(code).map_err(|_| malformed("invalid status code"))?;
    let bodiless = is_head || code == 204 || code == 304;
    let mut length = None;
    let mut chunked = false;
    let mut close = http10;
    // The names the tool's `Connection` fields list (beyond `close` and the fixed hop-by-hop
    // ones), dropped with it.
    let mut named: Vec<&[u8]> = Vec::new();
    for f in resp.headers.iter() {
        if f.name.eq_ignore_ascii_case("connection") {
            for t in f.value.split(|&b| b == b',').map(ows) {
                if t.eq_ignore_ascii_case(b"close") {
                    close = true;
                } else if !t.is_empty() && !is_hop_by_hop(t) {
                    named.push(t);
                }
            }
        }
    }
    let base = buf.as_ptr() as usize;
    let mut fields = Fields {
        lines: Vec::with_capacity(len),
        date: false,
    };
    for f in resp.headers.iter() {
        let name = f.name.as_bytes();
        if name.eq_ignore_ascii_case(b"content-length") {
            // The server writes the length of the body it sends; a HEAD answer keeps the tool's
            // (written once below).
            content_length(f.value, &mut length)?;
            continue;
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            if chunked || !ows(f.value).eq_ignore_ascii_case(b"chunked") {
                return Err(malformed("unsupported Transfer-Encoding"));
            }
            chunked = true;
            continue;
        } else if is_hop_by_hop(name)
            || named.iter().any(|n| n.eq_ignore_ascii_case(name))
            // The trailer fields of a body that is not sent (hyper's server drops it too).
            || (bodiless && name.eq_ignore_ascii_case(b"trailer"))
        {
            continue;
        }
        fields.date |= name.eq_ignore_ascii_case(b"date");
        let (at, value_at) = (name.as_ptr() as usize, f.value.as_ptr() as usize);
        if value_at == at + name.len() + 2 && &buf[at - base + name.len()..][..2] == b": " {
            // Written as `name: value` already: one copy.
            fields
                .lines
                .extend_from_slice(&buf[at - base..value_at - base + f.value.len()]);
        } else {
            fields.lines.extend_from_slice(name);
            fields.lines.extend_from_slice(b": ");
            fields.lines.extend_from_slice(f.value);
        }
        fields.lines.extend_from_slice(b"\r\n");
    }
    if chunked && length.is_some() {
        return Err(malformed("both Transfer-Encoding and Content-Length"));
    }
    if let (true, Some(n)) = (is_head, length) {
        fields.lines.extend_from_slice(b"content-length: ");
        fields.lines.extend_from_slice(n.to_string().as_bytes());
        fields.lines.extend_from_slice(b"\r\n");
    }
    if chunked && http10 {
        return Err(malformed("Transfer-Encoding in an HTTP/1.0 response"));
    }
    let framing = if bodiless {
        Framing::Empty
    } else if chunked {
        Framing::Chunked(Chunk::Size)
    } else {
        match length {
            Some(0) => Framing::Empty,
            Some(n) => Framing::Length(n),
            None => {
                close = true;
                Framing::Close
            }
        }
    };
    buf.advance(len);
    Ok(Parsed::Final(Head {
        status,
        fields,
        framing,
        keep_alive: !close,
    }))
}

pub(super) fn is_hop_by_hop(name: &[u8]) -> bool {
    // Most names have a length none of these has.
    matches!(name.len(), 2 | 7 | 10 | 16..=19)
        && crate::wire::hop_by_hop::HOP_BY_HOP_NAMES
            .iter()
            .any(|h| h.as_bytes().eq_ignore_ascii_case(name))
}

/// The tool's response header fields for the client, as `name: value\r\n` lines (names as the
/// tool wrote them): what the tool sent less the hop-by-hop fields, those its `Connection` field
/// names, and `Content-Length` (the server writes the length of what it sends; a HEAD or 304
/// answer keeps the tool's). [`super::serve`] writes them into its response head as they are;
/// [`Fields::merge_into`] makes them header map entries for hyper.
#[derive(Debug, Default)]
pub(crate) struct Fields {
    lines: Vec<u8>,
    date: bool,
}

impl Fields {
    /// Fields from ready-made lines (for tests elsewhere in the crate).
    #[cfg(test)]
    pub(crate) fn from_lines(lines: &[u8], date: bool) -> Self {
        Fields {
            lines: lines.to_vec(),
            date,
        }
    }

    /// The field lines.
    pub(crate) fn as_bytes(&self) -> &[u8] {
        &self.lines
    }

    /// Whether there is a `Date` field.
    pub(crate) fn has_date(&self) -> bool {
        self.date
    }

    /// The values of the fields named `name` (lowercase), in order.
    pub(crate) fn values<'a>(&'a self, name: &'a [u8]) -> impl Iterator<Item = &'a [u8]> + 'a {
        self.lines.split(|&b| b == b'\n').filter_map(move |line| {
            let colon = line.iter().position(|&b| b == b':')?;
            let value = line[colon + 1..].strip_suffix(b"\r")?;
            line[..colon]
                .eq_ignore_ascii_case(name)
                .then(|| value.trim_ascii())
        })
    }

    /// Puts the fields into `headers`, before the entries already there.
    pub(crate) fn merge_into(mut self, headers: &mut HeaderMap) {
        self.lines.extend_from_slice(b"\r\n");
        let mut parsed = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let Ok(httparse::Status::Complete((_, parsed))) =
            httparse::parse_headers(&self.lines, &mut parsed)
        else {
            return;
        };
        let after = std::mem::replace(
            headers,
            HeaderMap::with_capacity(parsed.len() + headers.len()),
        );
        for f in parsed.iter() {
            // Both were checked by the same parser when the tool's head was read.
            if let (Ok(name), Ok(value)) = (
                HeaderName::from_bytes(f.name.as_bytes()),
                HeaderValue::from_bytes(f.value),
            ) {
                headers.append(name, value);
            }
        }
        let mut last = None;
        for (name, value) in after {
            if name.is_some() {
                last = name;
            }
            if let Some(name) = &last {
                headers.append(name.clone(), value);
            }
        }
    }
}

/// The size of a chunk-size line (without its CRLF): hex digits, then optional extensions.
pub(super) fn chunk_size(line: &[u8]) -> Result<u64, Error> {
    let digits = line.iter().take_while(|b| b.is_ascii_hexdigit()).count();
    if digits == 0 || digits > 16 {
        return Err(malformed("invalid chunk size"));
    }
    let rest = &line[digits..];
    if !rest.is_empty() {
        let ext = rest.trim_ascii_start();
        let ctl = |b: &u8| (*b < 0x20 && *b != b'\t') || *b == 0x7f;
        if !ext.starts_with(b";") || ext.iter().any(ctl) {
            return Err(malformed("invalid chunk extension"));
        }
    }
    Ok(line[..digits].iter().fold(0u64, |n, &d| {
        let v = match d {
            b'0'..=b'9' => d - b'0',
            b'a'..=b'f' => d - b'a' + 10,
            _ => d - b'A' + 10,
        };
        (n << 4) | u64::from(v)
    }))
}

/// What the chunked decoder found.
#[derive(Debug, PartialEq)]
pub(crate) enum Step {
    Data(Bytes),
    /// The body ended, with these trailer fields.
    End(Option<HeaderMap>),
    /// More bytes are needed.
    More,
}

/// Decodes as much of a chunked body as `buf` holds.
pub(crate) fn decode(buf: &mut BytesMut, state: &mut Chunk) -> Result<Step, Error> {
    loop {
        match *state {
            Chunk::Size => {
                let Some(lf) = buf.iter().take(MAX_CHUNK_LINE).position(|&b| b == b'\n') else {
                    if buf.len() >= MAX_CHUNK_LINE {
                        return Err(malformed("chunk size line too long"));
                    }
                    return Ok(Step::More);
                };
                if lf == 0 || buf[lf - 1] != b'\r' {
                    return Err(malformed("chunk size line not ended by CRLF"));
                }
                let size = chunk_size(&buf[..lf - 1])?;
                buf.advance(lf + 1);
                *state = if size == 0 {
                    Chunk::Trailers
                } else {
                    Chunk::Data(size)
                };
            }
            Chunk::Data(left) => {
                if buf.is_empty() {
                    return Ok(Step::More);
                }
                let n = usize::try_from(left).unwrap_or(usize::MAX).min(buf.len());
                *state = if n as u64 == left {
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
                    return Err(malformed("chunk data not followed by CRLF"));
                }
                buf.advance(2);
                *state = Chunk::Size;
            }
            Chunk::Trailers => {
                if buf.starts_with(b"\r\n") {
                    buf.advance(2);
                    return Ok(Step::End(None));
                }
                let mut fields = [httparse::EMPTY_HEADER; MAX_HEADERS];
                let (len, map) = match httparse::parse_headers(buf, &mut fields) {
                    Ok(httparse::Status::Complete((len, fields))) => {
                        let mut map = HeaderMap::with_capacity(fields.len());
                        for f in fields {
                            let name = HeaderName::from_bytes(f.name.as_bytes());
                            let value = HeaderValue::from_bytes(f.value);
                            let (Ok(name), Ok(value)) = (name, value) else {
                                return Err(malformed("invalid trailer field"));
                            };
                            map.append(name, value);
                        }
                        (len, map)
                    }
                    Ok(httparse::Status::Partial) if buf.len() < MAX_HEAD => {
                        return Ok(Step::More);
                    }
                    Ok(httparse::Status::Partial) => {
                        return Err(malformed("trailer section too large"));
                    }
                    Err(_) => return Err(malformed("invalid trailer section")),
                };
                buf.advance(len);
                return Ok(Step::End(Some(map)));
            }
        }
    }
}
