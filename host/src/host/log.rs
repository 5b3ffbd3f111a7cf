//! `cloudforet:collector/log`: guest logs into `tracing`, tagged with the
//! run's tenant, plugin and run id, redacted, size-capped and rate-limited
//! (a fixed number of lines per run; the rest are counted).

use crate::bindings::current::cloudforet::collector::log::{self, Level};
use crate::secret::Redactor;
use std::sync::{Arc, Mutex};

const MAX_MESSAGE_BYTES: usize = 4096;
const MAX_FIELDS: usize = 32;

/// One captured guest log line (for tests and the harness).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogLine {
    pub level: &'static str,
    pub message: String,
    pub fields: Vec<(String, String)>,
}

pub struct LogCtx {
    pub(crate) tenant: String,
    pub(crate) plugin: String,
    /// The plugin build (short digest).
    pub(crate) version: String,
    pub(crate) run_id: String,
    pub(crate) redactor: Arc<Redactor>,
    pub(crate) max_lines: u32,
    pub(crate) lines: u32,
    pub(crate) suppressed: u32,
    pub(crate) capture: Option<Arc<Mutex<Vec<LogLine>>>>,
}

fn cut(mut s: String, max: usize) -> String {
    if s.len() > max {
        let mut end = max;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
        s.push('…');
    }
    s
}

impl log::Host for LogCtx {
    async fn log(&mut self, level: Level, message: String, fields: Vec<(String, String)>) -> wasmtime::Result<()> {
        if self.lines >= self.max_lines {
            self.suppressed = self.suppressed.saturating_add(1);
            return Ok(());
        }
        self.lines += 1;
        let message = cut(self.redactor.redact_owned(message), MAX_MESSAGE_BYTES);
        let fields: Vec<(String, String)> = fields
            .into_iter()
            .take(MAX_FIELDS)
            .map(|(k, v)| (cut(k, 64), cut(self.redactor.redact_owned(v), 512)))
            .collect();
        let rendered = fields.iter().map(|(k, v)| format!("{k}={v:?}")).collect::<Vec<_>>().join(" ");
        let (tenant, plugin, version, run) = (&self.tenant, &self.plugin, &self.version, &self.run_id);
        let level_name = match level {
            Level::Trace => {
                tracing::trace!(target: "guest", tenant, plugin, version, run, fields = %rendered, "{message}");
                "trace"
            }
            Level::Debug => {
                tracing::debug!(target: "guest", tenant, plugin, version, run, fields = %rendered, "{message}");
                "debug"
            }
            Level::Info => {
                tracing::info!(target: "guest", tenant, plugin, version, run, fields = %rendered, "{message}");
                "info"
            }
            Level::Warn => {
                tracing::warn!(target: "guest", tenant, plugin, version, run, fields = %rendered, "{message}");
                "warn"
            }
            Level::Error => {
                tracing::error!(target: "guest", tenant, plugin, version, run, fields = %rendered, "{message}");
                "error"
            }
        };
        if let Some(c) = &self.capture {
            c.lock().unwrap_or_else(|p| p.into_inner()).push(LogLine { level: level_name, message, fields });
        }
        Ok(())
    }
}
