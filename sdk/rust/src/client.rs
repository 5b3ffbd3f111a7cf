//! An HTTP client over the host's import with the retry policy a collector
//! needs, and paging.
//!
//! - [`Client::send`]: one request. 429 and 503 honour `Retry-After` (up to
//!   [`Retries::max_wait_ms`]) and spend their own budget
//!   ([`Retries::throttled`]): a busy API slows the run, it does not lose
//!   pages. Other 5xx, timeouts and connection failures are retried with
//!   exponential back-off ([`backoff_ms`], [`Retries::max`]). Every other
//!   status is the answer, mapped to the collector's [`Error`] by
//!   [`status_error`] when the caller wants it ([`Client::json`]).
//! - [`Client::send_all`]: requests the host runs concurrently (world 0.3's
//!   `send-many`; one after another on older hosts), each retried as above.
//! - [`Client::pages`]: a list read page by page (offset/limit or
//!   page/limit: the caller builds each page's request from a [`PageRef`]).
//!   Once the first page tells the total, the rest are fetched
//!   `concurrency` at a time and handed on in order.

use serde_json::Value;

use crate::io::{HttpRequest, HttpResponse, Transport, TransportError};
use crate::{Error, Flow};

/// How many times a request is tried again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Retries {
    /// After a 5xx (other than a throttling 503), a timeout or a connection
    /// failure.
    pub max: u32,
    /// After a 429 or a 503 with `Retry-After`.
    pub throttled: u32,
    /// The longest `Retry-After` honoured.
    pub max_wait_ms: u64,
}

impl Default for Retries {
    fn default() -> Retries {
        Retries { max: 3, throttled: 10, max_wait_ms: 60_000 }
    }
}

/// 250 ms, 500 ms, 1 s, 2 s ... capped at 8 s.
pub fn backoff_ms(attempt: u32) -> u64 {
    250u64.saturating_mul(1u64 << attempt.min(5)).min(8_000)
}

/// `Retry-After` in seconds (an HTTP date, or none, waits 1 s), capped at
/// `cap_ms`.
pub fn retry_after_ms(header: Option<&str>, cap_ms: u64) -> u64 {
    header
        .and_then(|h| h.trim().parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s >= 0.0)
        .map(|s| (s * 1000.0) as u64)
        .unwrap_or(1_000)
        .min(cap_ms)
}

/// The collector's error for an answer that is not a success: 401 →
/// unauthenticated, 403 → permission denied, 404 → not found, 429 and 5xx →
/// unavailable, any other → invalid argument. `what` names the request.
pub fn status_error(what: &str, r: &HttpResponse) -> Error {
    let said: String = String::from_utf8_lossy(&r.body[..r.body.len().min(300)]).split_whitespace().collect::<Vec<_>>().join(" ");
    let m = format!("{what}: HTTP {}{}{said}", r.status, if said.is_empty() { "" } else { ": " });
    match r.status {
        401 => Error::Unauthenticated(m),
        403 => Error::PermissionDenied(m),
        404 => Error::NotFound(m),
        429 | 500..=599 => Error::Unavailable(m),
        _ => Error::InvalidArgument(m),
    }
}

/// The collector's error for a transport failure: the host's egress policy
/// → permission denied, its size limit → resource exhausted, a timeout →
/// timeout, the rest → unavailable.
pub fn transport_error(what: &str, e: &TransportError) -> Error {
    let m = format!("{what}: {e}");
    match e {
        TransportError::Denied(_) => Error::PermissionDenied(m),
        TransportError::TooLarge(_) => Error::ResourceExhausted(m),
        TransportError::Timeout => Error::Timeout(m),
        TransportError::InvalidRequest(_) => Error::InvalidArgument(m),
        TransportError::Connection(_) | TransportError::Tls(_) => Error::Unavailable(m),
    }
}

/// What an answer means for its request.
enum Next {
    Done,
    /// Try again after this many ms; `true` when throttled.
    Again(u64, bool),
}

fn judge(answer: &Result<HttpResponse, TransportError>, tries: (u32, u32), retries: &Retries) -> Next {
    let (failed, throttled) = tries;
    match answer {
        Ok(r) if r.status == 429 || (r.status == 503 && r.header("retry-after").is_some()) => {
            if throttled < retries.throttled { Next::Again(retry_after_ms(r.header("retry-after"), retries.max_wait_ms), true) } else { Next::Done }
        }
        Ok(r) if r.status >= 500 => {
            if failed < retries.max { Next::Again(backoff_ms(failed), false) } else { Next::Done }
        }
        Err(TransportError::Timeout | TransportError::Connection(_)) if failed < retries.max => Next::Again(backoff_ms(failed), false),
        _ => Next::Done,
    }
}

/// Requests through the host, retried by [`Retries`].
pub struct Client<'a> {
    http: &'a mut dyn Transport,
    pub retries: Retries,
}

impl<'a> Client<'a> {
    pub fn new(http: &'a mut dyn Transport) -> Client<'a> {
        Client { http, retries: Retries::default() }
    }

    /// One request with its retries: the last answer (any status) or the
    /// transport's failure.
    pub fn send(&mut self, req: HttpRequest) -> Result<HttpResponse, TransportError> {
        self.send_all(vec![req]).pop().unwrap_or(Err(TransportError::InvalidRequest("no answer".into())))
    }

    /// Requests the host may run concurrently, each with its retries; the
    /// answers in order. The ones to retry go again together after the
    /// longest wait among them.
    pub fn send_all(&mut self, reqs: Vec<HttpRequest>) -> Vec<Result<HttpResponse, TransportError>> {
        let mut answers: Vec<Option<Result<HttpResponse, TransportError>>> = reqs.iter().map(|_| None).collect();
        let mut tries = vec![(0u32, 0u32); reqs.len()];
        let mut pending: Vec<usize> = (0..reqs.len()).collect();
        while !pending.is_empty() {
            let batch: Vec<HttpRequest> = pending.iter().map(|&i| reqs[i].clone()).collect();
            let got = self.http.send_many(batch);
            let mut again = Vec::new();
            let mut wait = 0;
            for (&i, answer) in pending.iter().zip(got) {
                if let Next::Again(ms, throttled) = judge(&answer, tries[i], &self.retries) {
                    if throttled { tries[i].1 += 1 } else { tries[i].0 += 1 }
                    wait = wait.max(ms);
                    again.push(i);
                }
                answers[i] = Some(answer);
            }
            if !again.is_empty() && wait > 0 {
                self.http.sleep_ms(wait);
            }
            pending = again;
        }
        answers.into_iter().map(|a| a.unwrap_or(Err(TransportError::InvalidRequest("the host gave no answer".into())))).collect()
    }

    /// A request whose answer must be a 2xx JSON body, as JSON.
    pub fn json(&mut self, req: HttpRequest) -> Result<Value, Error> {
        let what = describe(&req);
        let r = self.send(req).map_err(|e| transport_error(&what, &e))?;
        json_body(&what, &r)
    }

    /// A list read page by page: `request` builds a page's request,
    /// `parse` reads a page's body into its items and, if the API says, the
    /// list's total. After the first page, pages are fetched `concurrency`
    /// at a time (the host caps what is in flight) when the total is known,
    /// one at a time until a short page when it is not. `each` gets every
    /// page's items in order; [`Flow::Stop`] ends the list early. Answers
    /// the number of items read.
    pub fn pages<T>(
        &mut self,
        page_size: u32,
        concurrency: usize,
        request: impl Fn(PageRef) -> HttpRequest,
        parse: impl Fn(&[u8]) -> Result<Page<T>, Error>,
        mut each: impl FnMut(Vec<T>) -> Flow,
    ) -> Result<u64, Error> {
        let page_size = page_size.max(1);
        let at = |number: u64| PageRef { number, offset: number * u64::from(page_size), limit: page_size };
        let read = |client: &mut Self, reqs: Vec<HttpRequest>| -> Result<Vec<Page<T>>, Error> {
            let whats: Vec<String> = reqs.iter().map(describe).collect();
            let answers = client.send_all(reqs);
            whats.iter().zip(answers).map(|(what, a)| {
                let r = a.map_err(|e| transport_error(what, &e))?;
                if !(200..300).contains(&r.status) {
                    return Err(status_error(what, &r));
                }
                parse(&r.body).map_err(|e| e.context(what))
            }).collect()
        };
        let first = read(self, vec![request(at(0))])?.pop().ok_or_else(|| Error::Internal("no first page".into()))?;
        let total = first.total;
        let mut count = first.items.len() as u64;
        let mut short = (first.items.len() as u64) < u64::from(page_size);
        if each(first.items) == Flow::Stop {
            return Ok(count);
        }
        let mut next = 1u64;
        loop {
            let pages_left = match total {
                Some(t) => t.div_ceil(u64::from(page_size)).saturating_sub(next),
                None if short => 0,
                None => 1,
            };
            if pages_left == 0 {
                return Ok(count);
            }
            let window = pages_left.min(concurrency.max(1) as u64);
            let reqs = (next..next + window).map(|n| request(at(n))).collect();
            for page in read(self, reqs)? {
                short = (page.items.len() as u64) < u64::from(page_size);
                count += page.items.len() as u64;
                let empty = page.items.is_empty();
                if each(page.items) == Flow::Stop {
                    return Ok(count);
                }
                if empty {
                    // A list that shrank under us: what is left is gone.
                    return Ok(count);
                }
            }
            next += window;
        }
    }
}

/// One page of a list: its number from 0, and the same as offset/limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PageRef {
    pub number: u64,
    pub offset: u64,
    pub limit: u32,
}

/// A page's items and, when the API tells, the list's total.
pub struct Page<T> {
    pub items: Vec<T>,
    pub total: Option<u64>,
}

fn describe(req: &HttpRequest) -> String {
    let path = req.url.split_once("://").map_or(req.url.as_str(), |(_, rest)| rest.find('/').map_or("/", |i| &rest[i..]));
    format!("{} {}", req.method.as_str(), path.split('?').next().unwrap_or(path))
}

fn json_body(what: &str, r: &HttpResponse) -> Result<Value, Error> {
    if !(200..300).contains(&r.status) {
        return Err(status_error(what, r));
    }
    serde_json::from_slice(&r.body).map_err(|e| Error::Unavailable(format!("{what}: the body is not JSON: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::MockHttp;
    use serde_json::json;

    fn ok(body: Value) -> Result<HttpResponse, TransportError> {
        Ok(HttpResponse { status: 200, headers: vec![], body: serde_json::to_vec(&body).unwrap() })
    }

    fn status(code: u16, retry_after: Option<&str>) -> Result<HttpResponse, TransportError> {
        let headers = retry_after.map(|v| vec![("Retry-After".to_string(), v.to_string())]).unwrap_or_default();
        Ok(HttpResponse { status: code, headers, body: b"busy".to_vec() })
    }

    #[test]
    fn throttling_waits_as_told_and_has_its_own_budget() {
        let mut answers = vec![status(429, Some("2")); 5];
        answers.push(ok(json!({"x": 1})));
        let mut http = MockHttp::answers(answers);
        let mut c = Client::new(&mut http);
        c.retries.max = 0;
        assert_eq!(c.json(HttpRequest::get("https://api/x")).unwrap(), json!({"x": 1}));
        assert_eq!(http.slept, vec![2000; 5]);
    }

    #[test]
    fn server_errors_back_off_then_give_up_with_the_status() {
        let mut http = MockHttp::answers(vec![status(500, None); 4]);
        let e = Client::new(&mut http).json(HttpRequest::get("https://api/v1/things?x=1")).unwrap_err();
        assert!(matches!(&e, Error::Unavailable(m) if m == "GET /v1/things: HTTP 500: busy"), "{e:?}");
        assert_eq!(http.slept, vec![250, 500, 1000]);
        assert_eq!(http.sent.len(), 4);
    }

    #[test]
    fn statuses_and_transport_failures_map_to_errors() {
        let r = |s| HttpResponse { status: s, headers: vec![], body: vec![] };
        assert!(matches!(status_error("x", &r(401)), Error::Unauthenticated(_)));
        assert!(matches!(status_error("x", &r(403)), Error::PermissionDenied(_)));
        assert!(matches!(status_error("x", &r(404)), Error::NotFound(_)));
        assert!(matches!(status_error("x", &r(422)), Error::InvalidArgument(_)));
        assert!(matches!(transport_error("x", &TransportError::Denied("p".into())), Error::PermissionDenied(_)));
        assert!(matches!(transport_error("x", &TransportError::TooLarge(9)), Error::ResourceExhausted(_)));
        assert_eq!(retry_after_ms(Some("Wed, 21 Oct 2015 07:28:00 GMT"), 60_000), 1000);
        assert_eq!(retry_after_ms(Some("3600"), 60_000), 60_000);
        assert_eq!(retry_after_ms(Some("-1"), 60_000), 1000);
    }

    /// 250 items at 100 a page: the first page, then pages 1 and 2 in one
    /// batch, handed on in order.
    #[test]
    fn pages_after_the_first_go_together_in_order() {
        let mut http = MockHttp::route(|req| {
            let offset: u64 = req.url.split("offset=").nth(1).unwrap().parse().unwrap();
            let items: Vec<u64> = (offset..(offset + 100).min(250)).collect();
            ok(json!({"total": 250, "items": items}))
        });
        let mut seen = Vec::new();
        let n = Client::new(&mut http)
            .pages(100, 8, |p| HttpRequest::get(format!("https://api/list?offset={}", p.offset)), parse, |items| {
                seen.extend(items);
                Flow::Proceed
            })
            .unwrap();
        assert_eq!(n, 250);
        assert_eq!(seen, (0..250).collect::<Vec<u64>>());
        assert_eq!(http.batches, vec![1, 2]);
    }

    #[test]
    fn without_a_total_pages_go_one_by_one_until_a_short_one() {
        let mut http = MockHttp::route(|req| {
            let page: u64 = req.url.split("page=").nth(1).unwrap().parse().unwrap();
            let items: Vec<u64> = if page < 2 { vec![page; 10] } else { vec![page; 3] };
            ok(json!({"items": items}))
        });
        let mut seen = 0;
        let n = Client::new(&mut http)
            .pages(10, 8, |p| HttpRequest::get(format!("https://api/list?page={}", p.number)), parse, |items| {
                seen += items.len();
                Flow::Proceed
            })
            .unwrap();
        assert_eq!((n, seen), (23, 23));
        assert_eq!(http.batches, vec![1, 1, 1]);
    }

    #[test]
    fn a_lost_page_fails_the_list_with_its_request_named() {
        let mut http = MockHttp::route(|req| if req.url.ends_with("offset=100") { status(403, None) } else { ok(json!({"total": 300, "items": vec![0; 100]})) });
        let e = Client::new(&mut http).pages(100, 8, |p| HttpRequest::get(format!("https://api/list?offset={}", p.offset)), parse, |_| Flow::Proceed).unwrap_err();
        assert!(matches!(e, Error::PermissionDenied(_)), "{e:?}");
    }

    fn parse(body: &[u8]) -> Result<Page<u64>, Error> {
        let v: Value = serde_json::from_slice(body).map_err(|e| Error::Internal(e.to_string()))?;
        Ok(Page {
            items: v["items"].as_array().map(|a| a.iter().filter_map(Value::as_u64).collect()).unwrap_or_default(),
            total: v["total"].as_u64(),
        })
    }
}
