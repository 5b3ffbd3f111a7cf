//! Doubles of the host for a collector's native tests: [`MockHttp`]
//! answers requests from a queue or a function and records what was sent,
//! [`VecSink`] keeps records and logs, [`MemState`] is state in memory. For
//! tests against recorded traffic and the host's own checks, use
//! `cf-host test` with a cassette.

use std::collections::BTreeMap;

use crate::io::{HttpRequest, HttpResponse, Level, Sink, State, Transport, TransportError};
use crate::record::Record;
use crate::Flow;

type Answer = Result<HttpResponse, TransportError>;

/// A [`Transport`] that answers from a queue (in order) or a function.
pub struct MockHttp {
    answer: Box<dyn FnMut(&HttpRequest) -> Answer>,
    /// Every request, in the order sent.
    pub sent: Vec<HttpRequest>,
    /// The size of each `send_many` batch (1 for `send`).
    pub batches: Vec<usize>,
    /// Each wait asked for, in ms (nothing actually waits).
    pub slept: Vec<u64>,
}

impl MockHttp {
    /// Answers `answers` in turn; a connection failure once they run out.
    pub fn answers(answers: Vec<Answer>) -> MockHttp {
        let mut queue = answers.into_iter();
        MockHttp::route(move |_| queue.next().unwrap_or_else(|| Err(TransportError::Connection("no more answers".into()))))
    }

    /// Answers each request with `f(request)`.
    pub fn route(f: impl FnMut(&HttpRequest) -> Answer + 'static) -> MockHttp {
        MockHttp { answer: Box::new(f), sent: Vec::new(), batches: Vec::new(), slept: Vec::new() }
    }

    fn one(&mut self, req: HttpRequest) -> Answer {
        let a = (self.answer)(&req);
        self.sent.push(req);
        a
    }
}

impl Transport for MockHttp {
    fn send(&mut self, req: HttpRequest) -> Answer {
        self.batches.push(1);
        self.one(req)
    }
    fn send_many(&mut self, reqs: Vec<HttpRequest>) -> Vec<Answer> {
        self.batches.push(reqs.len());
        reqs.into_iter().map(|r| self.one(r)).collect()
    }
    fn sleep_ms(&mut self, ms: u64) {
        self.slept.push(ms);
    }
}

/// A [`Sink`] that keeps everything; answers [`Flow::Stop`] once it holds
/// `stop_after` records, if set.
#[derive(Default)]
pub struct VecSink {
    pub records: Vec<Record>,
    pub logs: Vec<(Level, String)>,
    pub stop_after: Option<usize>,
}

impl Sink for VecSink {
    fn emit(&mut self, batch: Vec<Record>) -> Flow {
        self.records.extend(batch);
        match self.stop_after {
            Some(n) if self.records.len() >= n => Flow::Stop,
            _ => Flow::Proceed,
        }
    }
    fn log(&mut self, level: Level, message: &str, _fields: &[(&str, &str)]) {
        self.logs.push((level, message.to_string()));
    }
}

/// [`State`] in memory.
#[derive(Default)]
pub struct MemState(pub BTreeMap<String, String>);

impl State for MemState {
    fn get(&mut self, key: &str) -> Result<Option<String>, String> {
        Ok(self.0.get(key).cloned())
    }
    fn set(&mut self, key: &str, value: &str) -> Result<(), String> {
        self.0.insert(key.into(), value.into());
        Ok(())
    }
    fn delete(&mut self, key: &str) -> Result<(), String> {
        self.0.remove(key);
        Ok(())
    }
}
