//! A keep-alive HTTP/1.1 client connection for the tests that send many
//! requests.

use super::WAIT;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};

/// A keep-alive HTTP/1.1 connection for many requests in a row (a fresh
/// connection per request would leave a socket in TIME_WAIT each time).
/// Reads bodies framed by `Content-Length` or chunked.
pub struct KeepAlive {
    addr: SocketAddr,
    stream: Option<BufReader<TcpStream>>,
}

impl KeepAlive {
    /// A connection to `addr`, opened by the first request.
    pub fn new(addr: SocketAddr) -> Self {
        KeepAlive { addr, stream: None }
    }

    /// `GET target`: status and body. A reused connection that the server
    /// closed meanwhile is opened again once.
    pub fn get(&mut self, target: &str) -> std::io::Result<(u16, Vec<u8>)> {
        let reused = self.stream.is_some();
        match self.try_get(target) {
            Err(_) if reused => {
                self.stream = None;
                self.try_get(target)
            }
            outcome => outcome,
        }
    }

    fn try_get(&mut self, target: &str) -> std::io::Result<(u16, Vec<u8>)> {
        let outcome = self.exchange(target);
        if !matches!(outcome, Ok((_, _, true))) {
            self.stream = None;
        }
        outcome.map(|(status, body, _)| (status, body))
    }

    /// One exchange: status, body, and whether the connection stays open.
    fn exchange(&mut self, target: &str) -> std::io::Result<(u16, Vec<u8>, bool)> {
        if self.stream.is_none() {
            let stream = TcpStream::connect_timeout(&self.addr, WAIT)?;
            stream.set_read_timeout(Some(WAIT))?;
            stream.set_write_timeout(Some(WAIT))?;
            stream.set_nodelay(true)?;
            self.stream = Some(BufReader::new(stream));
        }
        let reader = self.stream.as_mut().unwrap();
        let request = format!("GET {target} HTTP/1.1\r\nHost: {}\r\n\r\n", self.addr);
        reader.get_mut().write_all(request.as_bytes())?;
        let bad = |what: String| std::io::Error::new(std::io::ErrorKind::InvalidData, what);
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        let status: u16 = line
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| bad(format!("no status in {line:?}")))?;
        let (mut length, mut chunked, mut keep) = (None, false, true);
        loop {
            line.clear();
            reader.read_line(&mut line)?;
            let header = line.trim_end();
            if header.is_empty() {
                break;
            }
            let Some((name, value)) = header.split_once(':') else {
                return Err(bad(format!("bad header {header:?}")));
            };
            let value = value.trim();
            match name.to_ascii_lowercase().as_str() {
                "content-length" => length = value.parse::<usize>().ok(),
                "transfer-encoding" => chunked = value.eq_ignore_ascii_case("chunked"),
                "connection" => keep = !value.eq_ignore_ascii_case("close"),
                _ => {}
            }
        }
        let mut body = Vec::new();
        if chunked {
            loop {
                line.clear();
                reader.read_line(&mut line)?;
                let size = line.trim_end().split(';').next().unwrap_or("");
                let size = usize::from_str_radix(size, 16)
                    .map_err(|_| bad(format!("bad chunk size {line:?}")))?;
                if size == 0 {
                    // Trailers, up to the empty line.
                    loop {
                        line.clear();
                        if reader.read_line(&mut line)? == 0 || line.trim_end().is_empty() {
                            break;
                        }
                    }
                    break;
                }
                let start = body.len();
                body.resize(start + size, 0);
                reader.read_exact(&mut body[start..])?;
                line.clear();
                reader.read_line(&mut line)?;
            }
        } else if let Some(length) = length {
            body.resize(length, 0);
            reader.read_exact(&mut body)?;
        } else {
            reader.read_to_end(&mut body)?;
            keep = false;
        }
        Ok((status, body, keep))
    }
}
