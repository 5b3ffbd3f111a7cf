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
//!   Once the first page tells the total, the rest are fetched in windows
//!   of `concurrency` pages, each window started (world 0.3.1
//!   `start-many`) before the one before it is handed on, at most
//!   [`MAX_PENDING_WINDOWS`] started at once; pages are handed on in order.

use std::collections::VecDeque;

use serde_json::Value;

use crate::io::{HttpRequest, HttpResponse, Started, Transport, TransportError};
use crate::{Error, Flow};

/// The most windows of pages [`Client::pages`] keeps started at once
/// (`start-many` batches the host performs while the guest hands pages on).
/// The host ends a run holding more than its `http_max_pending` (default 4)
/// with its handle limit; 2 leaves room for a collector's own batches.
pub const MAX_PENDING_WINDOWS: usize = 2;

type Answer = Result<HttpResponse, TransportError>;

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
    pub fn send_all(&mut self, reqs: Vec<HttpRequest>) -> Vec<Answer> {
        let first = self.http.send_many(reqs.clone());
        self.retry(&reqs, first)
    }

    /// The answers of `reqs` given their first attempt's `first` (in
    /// order): those to retry go again together after the longest wait
    /// among them, each within its own [`Retries`].
    fn retry(&mut self, reqs: &[HttpRequest], first: Vec<Answer>) -> Vec<Answer> {
        let mut answers: Vec<Option<Answer>> = reqs.iter().map(|_| None).collect();
        let mut tries = vec![(0u32, 0u32); reqs.len()];
        let mut pending: Vec<usize> = (0..reqs.len()).collect();
        let mut got = first;
        while !pending.is_empty() {
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
            if again.is_empty() {
                break;
            }
            if wait > 0 {
                self.http.sleep_ms(wait);
            }
            got = self.http.send_many(again.iter().map(|&i| reqs[i].clone()).collect());
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
    /// list's total. `each` gets every page's items in order;
    /// [`Flow::Stop`] ends the list early. Answers the number of items read.
    ///
    /// The first page is read alone. When it tells the total, the other
    /// pages go in windows of `concurrency` pages, each window one batch the
    /// host performs while the guest goes on (`start-many`, world 0.3.1;
    /// the host caps what is in flight): the windows after the one being
    /// handed on are started before it is handed on, at most
    /// [`MAX_PENDING_WINDOWS`] at once (so up to twice `concurrency` pages
    /// are asked for ahead; with `concurrency` 1, one window, one request
    /// at a time). Without a total, pages go one at a time until a short
    /// one, the next started when the last is found full, before it is
    /// handed on. A transport that cannot start early sends a window when
    /// its turn comes ([`Transport::start_many`]'s default).
    ///
    /// Each page is retried by [`Retries`] when its window's turn comes
    /// (while the later windows are in flight) and keeps its place. A page
    /// that still fails (or does not parse) ends the list with its error,
    /// its request named: every page before it has been handed on, once,
    /// none after it; windows started after it are dropped, which cancels
    /// what the host has not answered. An empty page (the list shrank) ends
    /// the list, as does [`Flow::Stop`], also cancelling what was started.
    pub fn pages<T>(
        &mut self,
        page_size: u32,
        concurrency: usize,
        request: impl Fn(PageRef) -> HttpRequest,
        parse: impl Fn(&[u8]) -> Result<Page<T>, Error>,
        mut each: impl FnMut(Vec<T>) -> Flow,
    ) -> Result<u64, Error> {
        let page_size = page_size.max(1);
        let size = u64::from(page_size);
        let at = |number: u64| PageRef { number, offset: number.saturating_mul(size), limit: page_size };
        let window = concurrency.max(1) as u64;
        let most_started = if concurrency <= 1 { 1 } else { MAX_PENDING_WINDOWS };

        let first = request(at(0));
        let what = describe(&first);
        let answer = self.send(first);
        let first = page_of(&what, answer, &parse)?;
        let total = first.total;
        let mut count = first.items.len() as u64;
        let mut short = (first.items.len() as u64) < size;
        if each(first.items) == Flow::Stop {
            return Ok(count);
        }
        let last_page = total.map(|t| t.div_ceil(size));
        // Windows started and not finished, oldest first; dropping one
        // cancels it.
        let mut started: VecDeque<(Vec<HttpRequest>, Started)> = VecDeque::new();
        let mut next = 1u64;
        // Starts what may be: with a total, windows up to the cap; without,
        // the next page once the last is known full (`short` false).
        let start_more = |http: &mut dyn Transport, started: &mut VecDeque<(Vec<HttpRequest>, Started)>, next: &mut u64, short: bool| {
            while started.len() < most_started {
                let left = match last_page {
                    Some(end) => end.saturating_sub(*next),
                    None if short || !started.is_empty() => 0,
                    None => 1,
                };
                if left == 0 {
                    break;
                }
                let n = left.min(window);
                let reqs: Vec<HttpRequest> = (*next..*next + n).map(|p| request(at(p))).collect();
                let batch = http.start_many(reqs.clone());
                started.push_back((reqs, batch));
                *next += n;
            }
        };
        start_more(&mut *self.http, &mut started, &mut next, short);
        while let Some((reqs, batch)) = started.pop_front() {
            let answers = self.http.finish_many(batch);
            let answers = self.retry(&reqs, answers);
            // The window's pages up to the first that failed.
            let mut read = Vec::with_capacity(reqs.len());
            for (req, answer) in reqs.iter().zip(answers) {
                let page = page_of(&describe(req), answer, &parse);
                let failed = page.is_err();
                read.push(page);
                if failed {
                    break;
                }
            }
            if let Some(Ok(last)) = read.last() {
                // The windows after it start before this one is handed on.
                short = (last.items.len() as u64) < size;
                start_more(&mut *self.http, &mut started, &mut next, short);
            }
            for page in read {
                let page = page?;
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
        }
        Ok(count)
    }
}

/// A page's items from its answer: a transport failure, a status other
/// than 2xx or a body `parse` refuses is the list's error, `what` named.
fn page_of<T>(what: &str, answer: Answer, parse: impl Fn(&[u8]) -> Result<Page<T>, Error>) -> Result<Page<T>, Error> {
    let r = answer.map_err(|e| transport_error(what, &e))?;
    if !(200..300).contains(&r.status) {
        return Err(status_error(what, &r));
    }
    parse(&r.body).map_err(|e| e.context(what))
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

    /// What a list test saw, in order: `get N` when page N's request was
    /// performed (a started window is performed when it is started, as the
    /// host does), `hand N` when page N's items reached `each`.
    type Seen = std::rc::Rc<std::cell::RefCell<Vec<String>>>;

    /// A list of `total` numbers at `size` a page (`offset=` in the URL),
    /// the total told on every page; `fail(offset, attempt)` may answer
    /// instead (attempt from 0).
    fn list(total: u64, size: u64, seen: &Seen, fail: impl Fn(u64, usize) -> Option<Result<HttpResponse, TransportError>> + 'static) -> MockHttp {
        let seen = seen.clone();
        let mut tries = std::collections::HashMap::<u64, usize>::new();
        MockHttp::route(move |req| {
            let offset: u64 = req.url.split("offset=").nth(1).unwrap().parse().unwrap();
            seen.borrow_mut().push(format!("get {}", offset / size));
            let attempt = tries.entry(offset).or_default();
            *attempt += 1;
            if let Some(answer) = fail(offset, *attempt - 1) {
                return answer;
            }
            ok(json!({"total": total, "items": (offset..(offset + size).min(total)).collect::<Vec<u64>>()}))
        })
    }

    /// Reads the list of `http` with `concurrency`, `size` a page; logs
    /// each page handed on into `seen` and keeps its items.
    fn read(http: &mut MockHttp, size: u32, concurrency: usize, seen: &Seen, items: &mut Vec<u64>) -> Result<u64, Error> {
        Client::new(http).pages(size, concurrency, |p| HttpRequest::get(format!("https://api/list?offset={}", p.offset)), parse, |page| {
            if let Some(first) = page.first() {
                seen.borrow_mut().push(format!("hand {}", first / u64::from(size)));
            }
            items.extend(page);
            Flow::Proceed
        })
    }

    fn at(seen: &Seen, event: &str) -> usize {
        seen.borrow().iter().position(|e| e == event).unwrap_or_else(|| panic!("no {event:?} in {:?}", seen.borrow()))
    }

    /// 10 pages, windows of 2: each window's requests are performed
    /// (started) before the page two windows before is handed on, and the
    /// pages reach `each` in order, each once.
    #[test]
    fn the_next_windows_are_started_before_a_window_is_handed_on() {
        let seen = Seen::default();
        let mut http = list(1_000, 100, &seen, |_, _| None);
        let mut items = Vec::new();
        assert_eq!(read(&mut http, 100, 2, &seen, &mut items).unwrap(), 1_000);
        assert_eq!(items, (0..1_000).collect::<Vec<u64>>());
        assert_eq!(http.batches, vec![1, 2, 2, 2, 2, 1]);
        // Windows [1,2] [3,4] [5,6] [7,8] [9]: while [1,2] is handed on,
        // [3,4] and [5,6] are in flight.
        for (window, handed) in [(5, 1), (7, 3), (9, 5)] {
            assert!(at(&seen, &format!("get {window}")) < at(&seen, &format!("hand {handed}")), "page {window} before page {handed} was handed on: {:?}", seen.borrow());
        }
        let hands: Vec<String> = seen.borrow().iter().filter(|e| e.starts_with("hand")).cloned().collect();
        assert_eq!(hands, (0..10).map(|p| format!("hand {p}")).collect::<Vec<_>>());
        assert_eq!((http.pending, http.most_pending), (0, MAX_PENDING_WINDOWS));
    }

    /// However long the list, never more than two windows pending (the
    /// host's default cap is 4), none left over, each page asked once; with
    /// `concurrency` 1, one request at a time.
    #[test]
    fn at_most_two_windows_are_pending() {
        for (concurrency, most) in [(3, 2), (8, 2), (1, 1)] {
            let seen = Seen::default();
            let mut http = list(5_000, 50, &seen, |_, _| None);
            let mut items = Vec::new();
            assert_eq!(read(&mut http, 50, concurrency, &seen, &mut items).unwrap(), 5_000);
            assert_eq!(items, (0..5_000).collect::<Vec<u64>>());
            assert_eq!((http.pending, http.most_pending), (0, most), "concurrency {concurrency}");
            let mut offsets: Vec<&str> = http.sent.iter().map(|r| r.url.as_str()).collect();
            offsets.sort_unstable();
            offsets.dedup();
            assert_eq!(offsets.len(), 100, "each page once");
        }
    }

    /// Page 3 answers 503 once: it is retried when its window ([3,4])
    /// comes, while the window after it ([5,6]) is in flight, and keeps its
    /// place.
    #[test]
    fn a_page_retried_while_later_windows_are_in_flight_keeps_its_place() {
        let seen = Seen::default();
        let mut http = list(1_000, 100, &seen, |offset, attempt| (offset == 300 && attempt == 0).then(|| status(503, None)));
        let mut items = Vec::new();
        assert_eq!(read(&mut http, 100, 2, &seen, &mut items).unwrap(), 1_000);
        assert_eq!(items, (0..1_000).collect::<Vec<u64>>());
        assert_eq!(http.slept, vec![250]);
        let events = seen.borrow().clone();
        let retried = events.iter().enumerate().filter(|(_, e)| *e == "get 3").map(|(i, _)| i).nth(1).expect("page 3 asked again");
        assert!(at(&seen, "get 5") < retried && retried < at(&seen, "hand 3"), "{events:?}");
    }

    /// Page 6 fails for good (the second page of window [5,6]): pages 0-5
    /// are handed on, once each, in order, nothing after; the error names
    /// the request; the window started after it is cancelled.
    #[test]
    fn a_page_that_fails_ends_the_list_after_the_pages_before_it() {
        let seen = Seen::default();
        let mut http = list(1_000, 100, &seen, |offset, _| (offset == 600).then(|| status(500, None)));
        let mut items = Vec::new();
        let e = read(&mut http, 100, 2, &seen, &mut items).unwrap_err();
        assert!(matches!(&e, Error::Unavailable(m) if m == "GET /list: HTTP 500: busy"), "{e:?}");
        assert_eq!(items, (0..600).collect::<Vec<u64>>());
        assert_eq!(http.slept, vec![250, 500, 1000], "retried as before");
        assert_eq!(http.pending, 1, "window [7,8] was started and then dropped: {:?}", seen.borrow());
        assert!(!seen.borrow().iter().any(|e| e == "get 9"), "nothing started after the failure: {:?}", seen.borrow());
    }

    /// Stopping drops what was started (cancelled), and hands on nothing
    /// more.
    #[test]
    fn stopping_cancels_the_windows_started() {
        let seen = Seen::default();
        let mut http = list(1_000, 100, &seen, |_, _| None);
        let mut pages = 0;
        let n = Client::new(&mut http)
            .pages(100, 2, |p| HttpRequest::get(format!("https://api/list?offset={}", p.offset)), parse, |_| {
                pages += 1;
                if pages == 2 { Flow::Stop } else { Flow::Proceed }
            })
            .unwrap();
        assert_eq!((n, pages), (200, 2));
        assert_eq!(http.pending, 2, "windows [3,4] and [5,6] cancelled");
    }

    /// Without a total: the next page is started when the last is found
    /// full, before it is handed on; a short page starts nothing.
    #[test]
    fn without_a_total_the_next_page_is_started_before_a_full_one_is_handed_on() {
        let seen = Seen::default();
        let log = seen.clone();
        let mut http = MockHttp::route(move |req| {
            let page: u64 = req.url.split("page=").nth(1).unwrap().parse().unwrap();
            log.borrow_mut().push(format!("get {page}"));
            ok(json!({"items": vec![page; if page < 3 { 10 } else { 4 }]}))
        });
        let log = seen.clone();
        let n = Client::new(&mut http)
            .pages(10, 8, |p| HttpRequest::get(format!("https://api/list?page={}", p.number)), parse, |items| {
                log.borrow_mut().push(format!("hand {}", items[0]));
                Flow::Proceed
            })
            .unwrap();
        assert_eq!(n, 34);
        assert_eq!(*seen.borrow(), ["get 0", "hand 0", "get 1", "get 2", "hand 1", "get 3", "hand 2", "hand 3"]);
        assert_eq!((http.pending, http.most_pending), (0, 1));
    }

    fn parse(body: &[u8]) -> Result<Page<u64>, Error> {
        let v: Value = serde_json::from_slice(body).map_err(|e| Error::Internal(e.to_string()))?;
        Ok(Page {
            items: v["items"].as_array().map(|a| a.iter().filter_map(Value::as_u64).collect()).unwrap_or_default(),
            total: v["total"].as_u64(),
        })
    }
}
