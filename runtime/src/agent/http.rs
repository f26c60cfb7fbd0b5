//! A deliberately small HTTP/1.1 server for the agent: one request per connection (`Connection: close`),
//! bodies only with `Content-Length`, a fixed pool of request threads, and a read timeout on every
//! connection so that a client that stalls (headers or body) is dropped instead of holding a thread.
//! It builds on a Jetson with nothing but `std`.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::mpsc::sync_channel;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Largest request line plus headers.
const MAX_HEAD_BYTES: usize = 64 * 1024;

/// One parsed request, its body still on the connection.
pub struct HttpRequest {
    /// `GET`, `POST`, ...
    pub method: String,
    /// Path and query, e.g. `/v1/profile?runs=10`.
    pub url: String,
    headers: Vec<(String, String)>,
    reader: BufReader<TcpStream>,
    writer: TcpStream,
    /// Body bytes read so far; `None` once reading failed (nothing more to drain).
    consumed: Option<usize>,
}

/// Why a body could not be read.
#[derive(Debug)]
pub enum BodyError {
    /// Announced or sent more than the limit.
    TooLarge,
    /// The connection ended or stalled before the announced length arrived.
    Truncated {
        /// Bytes that arrived.
        got: usize,
        /// Bytes announced.
        announced: usize,
        /// Why reading stopped.
        reason: String,
    },
    /// No `Content-Length` on a request that needs a body.
    NoLength,
}

impl HttpRequest {
    /// The value of a header (case-insensitive name).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The announced body length.
    pub fn content_length(&self) -> Option<usize> {
        self.header("Content-Length")
            .and_then(|v| v.trim().parse().ok())
    }

    /// Reads the whole body (at most `limit` bytes).
    pub fn read_body(&mut self, limit: usize) -> Result<Vec<u8>, BodyError> {
        let announced = match self.content_length() {
            Some(n) => n,
            None if self.header("Transfer-Encoding").is_some() => return Err(BodyError::NoLength),
            None => 0,
        };
        if announced > limit {
            return Err(BodyError::TooLarge);
        }
        if self
            .header("Expect")
            .is_some_and(|v| v.eq_ignore_ascii_case("100-continue"))
        {
            let _ = self.writer.write_all(b"HTTP/1.1 100 Continue\r\n\r\n");
        }
        let mut body = vec![0u8; announced];
        let mut got = 0;
        while got < announced {
            match self.reader.read(&mut body[got..]) {
                Ok(0) => break,
                Ok(n) => got += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => {
                    self.consumed = None;
                    return Err(BodyError::Truncated {
                        got,
                        announced,
                        reason: stalled_or(e),
                    });
                }
            }
        }
        self.consumed = Some(got);
        if got < announced {
            self.consumed = None;
            return Err(BodyError::Truncated {
                got,
                announced,
                reason: "the connection closed".into(),
            });
        }
        Ok(body)
    }
}

impl HttpRequest {
    /// Reads and discards the rest of an announced body the handler did not read (an early answer such as
    /// 401 or 413), so that closing the connection does not reset it before the client reads the answer.
    fn drain(&mut self) {
        let Some(consumed) = self.consumed else {
            return;
        };
        let rest = self.content_length().unwrap_or(0).saturating_sub(consumed);
        let _ = std::io::copy(
            &mut (&mut self.reader).take(rest.min(1 << 30) as u64),
            &mut std::io::sink(),
        );
    }
}

fn stalled_or(e: std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut => {
            "the client stopped sending (read timeout)".into()
        }
        _ => e.to_string(),
    }
}

/// A handler: the request in, status and JSON body out.
pub type Handler = dyn Fn(&mut HttpRequest) -> (u16, Vec<u8>) + Send + Sync;

/// A bound listener and how its connections are served.
pub struct HttpServer {
    listener: TcpListener,
    threads: usize,
    read_timeout: Duration,
}

impl HttpServer {
    /// Binds `addr` (e.g. `127.0.0.1:0`).
    pub fn bind(addr: &str, threads: usize, read_timeout: Duration) -> std::io::Result<HttpServer> {
        Ok(HttpServer {
            listener: TcpListener::bind(addr)?,
            threads: threads.max(1),
            read_timeout,
        })
    }

    /// The bound address.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Accepts connections until the process ends; `threads` threads answer them, one request each.
    pub fn serve(self, handler: Arc<Handler>) {
        let (tx, rx) = sync_channel::<TcpStream>(self.threads * 4);
        let rx = Arc::new(Mutex::new(rx));
        for _ in 0..self.threads {
            let (rx, handler) = (Arc::clone(&rx), Arc::clone(&handler));
            std::thread::spawn(move || loop {
                let next = match rx.lock() {
                    Ok(guard) => guard.recv(),
                    Err(_) => return,
                };
                match next {
                    Ok(stream) => answer(stream, handler.as_ref()),
                    Err(_) => return,
                }
            });
        }
        for stream in self.listener.incoming() {
            let Ok(stream) = stream else { continue };
            if stream.set_read_timeout(Some(self.read_timeout)).is_err()
                || stream.set_write_timeout(Some(self.read_timeout)).is_err()
            {
                continue;
            }
            if tx.send(stream).is_err() {
                return;
            }
        }
    }
}

/// Parses one request, runs the handler, writes the answer and closes the connection.
fn answer(stream: TcpStream, handler: &Handler) {
    let Ok(writer) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(stream);
    let (status, body) = match read_head(&mut reader) {
        Ok((method, url, headers)) => {
            let mut request = HttpRequest {
                method,
                url,
                headers,
                reader,
                writer,
                consumed: Some(0),
            };
            // A handler that panics answers 500; the thread, and so the agent, keeps serving.
            let handled =
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| handler(&mut request)));
            let (status, body) = handled.unwrap_or_else(|_| {
                let body = serde_json::json!({
                    "error": "internal error while handling the request (the agent keeps serving)",
                    "status": 500,
                });
                (500, body.to_string().into_bytes())
            });
            write_response(&mut request.writer, status, &body);
            request.drain();
            let _ = request.writer.shutdown(std::net::Shutdown::Write);
            return;
        }
        Err(HeadError::Closed) => return,
        Err(HeadError::Bad(message)) => (400, message),
    };
    let body = serde_json::json!({ "error": body, "status": status }).to_string();
    let mut writer = writer;
    write_response(&mut writer, status, body.as_bytes());
    let _ = writer.shutdown(std::net::Shutdown::Write);
}

enum HeadError {
    /// Nothing (or nothing useful) arrived: the client went away or stalled.
    Closed,
    /// A malformed request line or header.
    Bad(String),
}

type Head = (String, String, Vec<(String, String)>);

fn read_head(reader: &mut BufReader<TcpStream>) -> Result<Head, HeadError> {
    let mut total = 0;
    let mut line = String::new();
    let mut read_line = |line: &mut String| -> Result<(), HeadError> {
        line.clear();
        match reader
            .by_ref()
            .take((MAX_HEAD_BYTES - total) as u64 + 1)
            .read_line(line)
        {
            Ok(0) => Err(HeadError::Closed),
            Ok(n) => {
                total += n;
                if total > MAX_HEAD_BYTES {
                    Err(HeadError::Bad(format!(
                        "request head over {MAX_HEAD_BYTES} bytes"
                    )))
                } else {
                    Ok(())
                }
            }
            Err(_) => Err(HeadError::Closed),
        }
    };
    read_line(&mut line)?;
    let mut parts = line.split_whitespace();
    let (Some(method), Some(url), Some(version)) = (parts.next(), parts.next(), parts.next())
    else {
        return Err(HeadError::Bad(format!(
            "malformed request line '{}'",
            line.trim()
        )));
    };
    if !version.starts_with("HTTP/1.") {
        return Err(HeadError::Bad(format!("unsupported protocol '{version}'")));
    }
    let (method, url) = (method.to_string(), url.to_string());
    let mut headers = Vec::new();
    loop {
        read_line(&mut line)?;
        let trimmed = line.trim_end_matches(['\r', '\n']);
        if trimmed.is_empty() {
            break;
        }
        let Some((name, value)) = trimmed.split_once(':') else {
            return Err(HeadError::Bad(format!("malformed header '{trimmed}'")));
        };
        headers.push((name.trim().to_string(), value.trim().to_string()));
    }
    Ok((method, url, headers))
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        201 => "Created",
        400 => "Bad Request",
        401 => "Unauthorized",
        404 => "Not Found",
        405 => "Method Not Allowed",
        411 => "Length Required",
        413 => "Payload Too Large",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "",
    }
}

fn write_response(writer: &mut TcpStream, status: u16, body: &[u8]) {
    let head = format!(
        "HTTP/1.1 {status} {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        reason(status),
        body.len()
    );
    if writer
        .write_all(head.as_bytes())
        .and_then(|()| writer.write_all(body))
        .and_then(|()| writer.flush())
        .is_err()
    {
        tracing::warn!("the client went away before the answer ({status}) was written");
    }
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};

    use super::*;

    fn get(addr: SocketAddr, path: &str) -> String {
        let mut s = TcpStream::connect(addr).expect("connects");
        write!(
            s,
            "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        .expect("writes");
        s.set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        let mut answer = String::new();
        let _ = s.read_to_string(&mut answer);
        answer
    }

    /// A handler that panics is answered with a 500, and the request threads keep serving (more panics
    /// than threads, then a normal request).
    #[test]
    fn a_panicking_handler_is_a_500_and_the_server_keeps_serving() {
        let server = HttpServer::bind("127.0.0.1:0", 2, Duration::from_secs(5)).expect("binds");
        let addr = server.local_addr().expect("address");
        let handler: Arc<Handler> = Arc::new(|request: &mut HttpRequest| {
            assert!(request.url != "/panic", "fault injected by the test");
            (200, b"{\"status\":\"ok\"}".to_vec())
        });
        std::thread::spawn(move || server.serve(handler));
        for _ in 0..5 {
            let answer = get(addr, "/panic");
            assert!(answer.starts_with("HTTP/1.1 500"), "{answer}");
            assert!(answer.contains("\"status\":500"), "{answer}");
        }
        let answer = get(addr, "/fine");
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    }
}
