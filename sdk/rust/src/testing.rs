//! Doubles of the host for a collector's native tests: [`MockHttp`]
//! answers requests from a queue or a function and records what was sent
//! (and the batches started with `start_many` and not finished yet),
//! [`VecSink`] keeps records and logs, [`MemState`] is state in memory. For
//! tests against recorded traffic and the host's own checks, use
//! `cf-host test` with a cassette.

use std::collections::BTreeMap;

use crate::io::{finish_deferred, HttpRequest, HttpResponse, Level, Sink, Started, State, Transport, TransportError};
use crate::record::Record;
use crate::Flow;

type Answer = Result<HttpResponse, TransportError>;

/// A [`Transport`] that answers from a queue (in order) or a function.
/// Like the host, it performs a batch when it is started
/// ([`Transport::start_many`]) and hands its answers over when it is
/// finished.
pub struct MockHttp {
    answer: Box<dyn FnMut(&HttpRequest) -> Answer>,
    /// Every request, in the order sent.
    pub sent: Vec<HttpRequest>,
    /// The size of each batch, in the order sent: 1 for `send`, a
    /// `send_many` batch, a `start_many` batch when it is started.
    pub batches: Vec<usize>,
    /// Batches started and not finished: while a collector runs, those the
    /// host would hold pending; afterwards, those dropped unfinished
    /// (cancelled).
    pub pending: usize,
    /// The most batches pending at once (the host refuses more than its
    /// `http_max_pending`, 4 by default).
    pub most_pending: usize,
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
        MockHttp { answer: Box::new(f), sent: Vec::new(), batches: Vec::new(), pending: 0, most_pending: 0, slept: Vec::new() }
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
    fn start_many(&mut self, reqs: Vec<HttpRequest>) -> Started {
        self.pending += 1;
        self.most_pending = self.most_pending.max(self.pending);
        Started::answered(self.send_many(reqs))
    }
    fn finish_many(&mut self, started: Started) -> Vec<Answer> {
        self.pending = self.pending.saturating_sub(1);
        finish_deferred(self, started)
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
