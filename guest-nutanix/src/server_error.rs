//! What Prism Central says when it refuses a request: every error body
//! shape it answers with, read into one line, and who answered (the API
//! service itself, or the gateway in front of it).
//!
//! - v3 envelope: `{"state": "ERROR", "code": 422, "message_list":
//!   [{"message", "reason", "details"}]}` (`details`, often the only useful
//!   part of a 422, may be a string, a list or an object).
//! - v4 `ErrorResponse`, inside a list response's `data` (with a
//!   `$dataItemDiscriminator` naming it) or at the top level: `error` is a
//!   list of `AppMessage`s (`code`, `errorGroup`, `message`, `severity`,
//!   `argumentsMap`) or a `SchemaValidationError` (`error`, `statusCode`,
//!   `validationErrorMessages[{attributePath, message}]`).
//! - the gateway's flat bodies: `{"code", "message"}` or `{"message"}`
//!   (e.g. `{"message": "The requested URL was not found"}` for an API
//!   path this Prism Central does not serve), or no JSON at all.
//!
//! A 404 from the gateway means the API is not there; a 404 in a service's
//! own shape means the service answered (and refused).

use serde_json::Value;

/// Longest server message kept (characters).
const MAX_CHARS: usize = 400;

/// Who answered with an error.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// The API service (v3 envelope, v4 `ErrorResponse`).
    Service,
    /// The gateway in front of the services (a flat body, or none).
    Gateway,
}

/// An error body, understood.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerError {
    pub source: Source,
    /// One line: what the server said.
    pub message: String,
}

/// Reads an error body of any shape Prism answers with.
pub fn parse(body: &[u8]) -> ServerError {
    let Ok(v) = serde_json::from_slice::<Value>(body) else {
        let message = cut(&String::from_utf8_lossy(body));
        let message = if message.is_empty() { "empty body".to_string() } else { message };
        return ServerError { source: Source::Gateway, message };
    };
    if let Some(list) = v.get("message_list").and_then(Value::as_array) {
        let parts: Vec<String> = list.iter().map(v3_message).filter(|m| !m.is_empty()).collect();
        if !parts.is_empty() {
            return ServerError { source: Source::Service, message: cut(&parts.join("; ")) };
        }
    }
    let error = v.pointer("/data/error").or_else(|| v.get("error").filter(|e| e.is_array() || e.is_object()));
    if let Some(e) = error {
        let message = v4_error(e);
        if !message.is_empty() {
            return ServerError { source: Source::Service, message: cut(&message) };
        }
    }
    let flat = code_and_message(&v);
    if !flat.is_empty() {
        return ServerError { source: Source::Gateway, message: cut(&flat) };
    }
    // Another shape: whatever messages it holds, never raw JSON cut short.
    let mut found = Vec::new();
    messages_in(&v, 0, &mut found);
    let message = if found.is_empty() { format!("an error body without a message ({} bytes)", body.len()) } else { found.join("; ") };
    ServerError { source: Source::Gateway, message: cut(&message) }
}

/// `REASON: message (details)` of one v3 message.
fn v3_message(m: &Value) -> String {
    let text = |k: &str| m.get(k).and_then(Value::as_str).filter(|s| !s.is_empty());
    let head = match (text("reason"), text("message")) {
        (Some(r), Some(msg)) => format!("{r}: {msg}"),
        (None, Some(msg)) => msg.to_string(),
        (Some(r), None) => r.to_string(),
        (None, None) => String::new(),
    };
    let details = match m.get("details") {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(Value::Object(o)) if o.is_empty() => String::new(),
        Some(Value::Array(a)) if a.is_empty() => String::new(),
        Some(other) => other.to_string(),
    };
    match (head.is_empty(), details.is_empty()) {
        (_, true) => head,
        (true, false) => format!("details: {details}"),
        (false, false) => format!("{head} (details: {details})"),
    }
}

/// A v4 `ErrorResponse.error`: `AppMessage`s or a `SchemaValidationError`.
fn v4_error(e: &Value) -> String {
    match e {
        Value::Array(list) => list.iter().map(app_message).filter(|m| !m.is_empty()).collect::<Vec<_>>().join("; "),
        Value::Object(o) => {
            let head = code_and_message(e);
            let head = if head.is_empty() { o.get("error").and_then(Value::as_str).unwrap_or_default().to_string() } else { head };
            let problems: Vec<String> = o
                .get("validationErrorMessages")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .map(|p| {
                    let msg = p.get("message").and_then(Value::as_str).unwrap_or_default();
                    match p.get("attributePath").and_then(Value::as_str) {
                        Some(a) => format!("{a}: {msg}"),
                        None => msg.to_string(),
                    }
                })
                .collect();
            match (head.is_empty(), problems.is_empty()) {
                (_, true) => head,
                (true, false) => problems.join("; "),
                (false, false) => format!("{head}: {}", problems.join("; ")),
            }
        }
        _ => String::new(),
    }
}

/// `code: message (group G, key=value)` of one `AppMessage`.
fn app_message(m: &Value) -> String {
    let mut out = code_and_message(m);
    let mut extra: Vec<String> = Vec::new();
    if let Some(g) = m.get("errorGroup").and_then(Value::as_str).filter(|g| !g.is_empty()) {
        extra.push(format!("group {g}"));
    }
    if let Some(args) = m.get("argumentsMap").and_then(Value::as_object) {
        extra.extend(args.iter().filter(|(k, _)| !k.starts_with('$')).map(|(k, v)| format!("{k}={}", v.as_str().map_or_else(|| v.to_string(), str::to_string))));
    }
    if !extra.is_empty() && !out.is_empty() {
        out = format!("{out} ({})", extra.join(", "));
    }
    out
}

/// `code: message`, either alone, or nothing.
fn code_and_message(v: &Value) -> String {
    let code = v.get("code").map(|c| c.as_str().map_or_else(|| c.to_string(), str::to_string)).unwrap_or_default();
    let msg = v.get("message").and_then(Value::as_str).unwrap_or_default();
    match (code.is_empty(), msg.is_empty()) {
        (false, false) => format!("{code}: {msg}"),
        (true, false) => msg.to_string(),
        (false, true) if v.get("message").is_none() && v.as_object().is_some_and(|o| o.len() == 1) => code,
        _ => String::new(),
    }
}

/// Every `message` string in `v` (bounded depth and count).
fn messages_in(v: &Value, depth: usize, out: &mut Vec<String>) {
    if depth > 6 || out.len() >= 5 {
        return;
    }
    match v {
        Value::Object(o) => {
            if let Some(m) = o.get("message").and_then(Value::as_str).filter(|m| !m.is_empty()) {
                out.push(m.to_string());
            }
            for (k, child) in o {
                if k != "message" {
                    messages_in(child, depth + 1, out);
                }
            }
        }
        Value::Array(a) => a.iter().for_each(|c| messages_in(c, depth + 1, out)),
        _ => {}
    }
}

/// One line of at most [`MAX_CHARS`] characters, `…` marking a cut.
fn cut(s: &str) -> String {
    // One line: runs of whitespace and control characters (an HTML page's
    // newlines, a stray escape) become one space.
    let mut line = String::with_capacity(s.len().min(MAX_CHARS * 4));
    let mut chars = 0;
    let mut gap = false;
    for c in s.trim().chars() {
        if c.is_whitespace() || c.is_control() {
            gap = true;
            continue;
        }
        if chars == MAX_CHARS {
            line.push('…');
            return line;
        }
        if gap && !line.is_empty() {
            line.push(' ');
            chars += 1;
        }
        gap = false;
        line.push(c);
        chars += 1;
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_one_line() {
        assert_eq!(said("<html>\n  <body>Bad\r\n\tGateway</body>\n</html>\n").1, "<html> <body>Bad Gateway</body> </html>");
        assert_eq!(said("\u{e}\n\u{e}").1, "empty body");
        assert_eq!(said(r#"{"message": "line one\nline two"}"#).1, "line one line two");
        let long = "x".repeat(MAX_CHARS + 10);
        assert_eq!(said(&long).1.chars().count(), MAX_CHARS + 1, "cut, with an ellipsis");
    }

    fn said(body: &str) -> (Source, String) {
        let e = parse(body.as_bytes());
        (e.source, e.message)
    }

    /// A v3 422 as Prism answers an invalid list request: `details` is the
    /// part that says what is wrong.
    #[test]
    fn v3_envelopes_keep_their_details() {
        let body = r#"{"api_version": "3.1", "code": 422, "message_list": [{"details": {"length": ["500 is greater than the maximum of 250"]}, "message": "Request could not be processed.", "reason": "INVALID_REQUEST"}], "state": "ERROR"}"#;
        assert_eq!(said(body), (Source::Service, r#"INVALID_REQUEST: Request could not be processed. (details: {"length":["500 is greater than the maximum of 250"]})"#.to_string()));
        let auth = r#"{"api_version":"3.1","code":401,"message_list":[{"message":"Authentication required.","reason":"AUTHENTICATION_REQUIRED"}],"state":"ERROR"}"#;
        assert_eq!(said(auth).1, "AUTHENTICATION_REQUIRED: Authentication required.");
        assert_eq!(said(r#"{"state": "ERROR", "message_list": [{"details": "kind 'vmx' is unknown"}]}"#).1, "details: kind 'vmx' is unknown");
    }

    /// v4 `ErrorResponse`s: AppMessages with their group and arguments, in
    /// `data` or at the top level, and schema validation errors.
    #[test]
    fn v4_error_responses_in_every_place() {
        let in_data = r#"{"data": {"error": [{"code": "VMM-30100", "errorGroup": "VM_NOT_FOUND", "message": "Failed to list VMs", "severity": "ERROR", "argumentsMap": {"vm": "x"}, "$objectType": "vmm.v4.error.AppMessage"}], "$objectType": "vmm.v4.error.ErrorResponse"}, "$dataItemDiscriminator": "vmm.v4.error.ErrorResponse"}"#;
        assert_eq!(said(in_data), (Source::Service, "VMM-30100: Failed to list VMs (group VM_NOT_FOUND, vm=x)".to_string()));
        let top = format!(r#"{{"error": [{{"code": "CLU-10005", "message": "{}"}}]}}"#, "x".repeat(300));
        let (source, msg) = said(&top);
        assert_eq!(source, Source::Service);
        assert!(msg.starts_with("CLU-10005: xxx") && msg.chars().count() <= MAX_CHARS + 1, "{msg}");
        let schema = r#"{"data": {"error": {"statusCode": 400, "error": "Bad Request", "validationErrorMessages": [{"attributePath": "$limit", "message": "must be at most 100"}]}}}"#;
        assert_eq!(said(schema).1, "Bad Request: $limit: must be at most 100");
    }

    /// The gateway's flat bodies and non-JSON answers are the gateway's.
    #[test]
    fn gateway_bodies() {
        assert_eq!(said(r#"{"message":"The requested URL was not found"}"#), (Source::Gateway, "The requested URL was not found".to_string()));
        assert_eq!(said(r#"{"code": 401, "message": "Authentication required."}"#), (Source::Gateway, "401: Authentication required.".to_string()));
        assert_eq!(said("<html>oops</html>"), (Source::Gateway, "<html>oops</html>".to_string()));
        assert_eq!(said("  ").1, "empty body");
        let long = "y".repeat(1000);
        assert_eq!(said(&long).1.chars().count(), MAX_CHARS + 1);
        // Unknown shapes give their messages, not JSON cut mid-way.
        assert_eq!(said(r#"{"status": {"info": {"message": "inner"}}}"#).1, "inner");
        assert_eq!(said(r#"{"status": 7}"#).1, "an error body without a message (13 bytes)");
    }
}
