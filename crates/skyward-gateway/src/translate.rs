//! OpenAI chat completions to and from each provider's own API, pure:
//! Anthropic Messages and AWS Bedrock Converse (requests, answers,
//! streams, errors). The caller speaks OpenAI's API whatever answers it.
//!
//! What does not translate is refused with the parameter named (several
//! choices `n`, `logprobs`, an image by URL for Bedrock, tool arguments
//! that are not JSON), never dropped silently.

use crate::eventstream;
use serde_json::{json, Map, Value};

/// A request the target API cannot take as asked.
#[derive(Debug, Clone, PartialEq)]
pub struct BadRequest {
    pub param: String,
    pub message: String,
}

fn bad(param: impl Into<String>, message: impl Into<String>) -> BadRequest {
    BadRequest {
        param: param.into(),
        message: message.into(),
    }
}

/// Which provider API a translated deployment speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wire {
    Anthropic,
    Bedrock,
}

/// A part of a turn, between the two forms.
#[derive(Debug, Clone, PartialEq)]
enum Part {
    Text(String),
    /// A `data:` URL, split.
    InlineImage {
        media_type: String,
        base64: String,
    },
    ImageUrl(String),
    ToolUse {
        id: String,
        name: String,
        input: Value,
    },
    ToolResult {
        id: String,
        text: String,
    },
}

#[derive(Debug, Clone, PartialEq)]
struct Turn {
    assistant: bool,
    parts: Vec<Part>,
}

/// The chat request's common fields, read once.
struct Chat {
    system: Vec<String>,
    turns: Vec<Turn>,
    max_tokens: Option<u64>,
    temperature: Option<f64>,
    top_p: Option<f64>,
    stop: Vec<String>,
    tools: Vec<(String, String, Value)>,
    /// "auto", "required", "none", or a tool's name.
    tool_choice: Option<ToolChoice>,
    stream: bool,
}

enum ToolChoice {
    Auto,
    Required,
    None,
    Named(String),
}

fn text_of(v: &Value, param: &str) -> Result<String, BadRequest> {
    match v {
        Value::String(s) => Ok(s.clone()),
        Value::Null => Ok(String::new()),
        Value::Array(parts) => {
            let mut s = String::new();
            for (j, p) in parts.iter().enumerate() {
                match p.get("type").and_then(Value::as_str) {
                    Some("text") => s.push_str(p.get("text").and_then(Value::as_str).unwrap_or("")),
                    _ => {
                        return Err(bad(
                            format!("{param}[{j}]"),
                            "only text parts are taken here",
                        ))
                    }
                }
            }
            Ok(s)
        }
        _ => Err(bad(param, "must be a string or an array of parts")),
    }
}

fn parts_of(v: &Value, param: &str) -> Result<Vec<Part>, BadRequest> {
    match v {
        Value::String(s) => Ok(vec![Part::Text(s.clone())]),
        Value::Null => Ok(vec![]),
        Value::Array(items) => {
            let mut out = Vec::new();
            for (j, p) in items.iter().enumerate() {
                let at = format!("{param}[{j}]");
                match p.get("type").and_then(Value::as_str) {
                    Some("text") => out.push(Part::Text(
                        p.get("text")
                            .and_then(Value::as_str)
                            .ok_or_else(|| bad(format!("{at}.text"), "must be a string"))?
                            .to_string(),
                    )),
                    Some("image_url") => {
                        let url = p
                            .pointer("/image_url/url")
                            .and_then(Value::as_str)
                            .ok_or_else(|| {
                                bad(format!("{at}.image_url.url"), "must be a string")
                            })?;
                        out.push(match url.strip_prefix("data:") {
                            Some(rest) => {
                                let (meta, data) = rest.split_once(',').ok_or_else(|| {
                                    bad(format!("{at}.image_url.url"), "a data: URL needs a comma")
                                })?;
                                let media_type = meta.strip_suffix(";base64").ok_or_else(|| {
                                    bad(format!("{at}.image_url.url"), "a data: URL must be base64")
                                })?;
                                Part::InlineImage {
                                    media_type: media_type.to_string(),
                                    base64: data.to_string(),
                                }
                            }
                            None => Part::ImageUrl(url.to_string()),
                        });
                    }
                    other => {
                        return Err(bad(
                            format!("{at}.type"),
                            format!(
                                "part type {} is not taken (text, image_url)",
                                other.unwrap_or("(none)")
                            ),
                        ))
                    }
                }
            }
            Ok(out)
        }
        _ => Err(bad(param, "must be a string or an array of parts")),
    }
}

fn read_chat(req: &Value) -> Result<Chat, BadRequest> {
    if req.get("n").and_then(Value::as_u64).is_some_and(|n| n > 1) {
        return Err(bad(
            "n",
            "this deployment's API answers one choice only (n: 1)",
        ));
    }
    if req.get("logprobs").and_then(Value::as_bool) == Some(true) {
        return Err(bad(
            "logprobs",
            "this deployment's API gives no log probabilities",
        ));
    }
    let msgs = req
        .get("messages")
        .and_then(Value::as_array)
        .ok_or_else(|| bad("messages", "must be an array of messages"))?;
    let mut system = Vec::new();
    let mut turns: Vec<Turn> = Vec::new();
    for (i, m) in msgs.iter().enumerate() {
        let at = format!("messages[{i}]");
        let role = m
            .get("role")
            .and_then(Value::as_str)
            .ok_or_else(|| bad(format!("{at}.role"), "must be a string"))?;
        let content = m.get("content").unwrap_or(&Value::Null);
        let (assistant, parts) = match role {
            "system" | "developer" => {
                system.push(text_of(content, &format!("{at}.content"))?);
                continue;
            }
            "user" => (false, parts_of(content, &format!("{at}.content"))?),
            "assistant" => {
                let mut parts = parts_of(content, &format!("{at}.content"))?;
                if let Some(calls) = m.get("tool_calls").and_then(Value::as_array) {
                    for (j, c) in calls.iter().enumerate() {
                        let ca = format!("{at}.tool_calls[{j}]");
                        let id = c.get("id").and_then(Value::as_str).unwrap_or_default();
                        let name = c
                            .pointer("/function/name")
                            .and_then(Value::as_str)
                            .ok_or_else(|| {
                                bad(format!("{ca}.function.name"), "must be a string")
                            })?;
                        let args = c
                            .pointer("/function/arguments")
                            .and_then(Value::as_str)
                            .unwrap_or("{}");
                        let input: Value =
                            serde_json::from_str(if args.trim().is_empty() { "{}" } else { args })
                                .map_err(|e| {
                                    bad(
                                        format!("{ca}.function.arguments"),
                                        format!("is not JSON: {e}"),
                                    )
                                })?;
                        parts.push(Part::ToolUse {
                            id: id.to_string(),
                            name: name.to_string(),
                            input,
                        });
                    }
                }
                (true, parts)
            }
            "tool" => {
                let id = m
                    .get("tool_call_id")
                    .and_then(Value::as_str)
                    .ok_or_else(|| bad(format!("{at}.tool_call_id"), "must be a string"))?;
                let text = text_of(content, &format!("{at}.content"))?;
                (
                    false,
                    vec![Part::ToolResult {
                        id: id.to_string(),
                        text,
                    }],
                )
            }
            other => {
                return Err(bad(
                    format!("{at}.role"),
                    format!("role {other} is not taken (system, developer, user, assistant, tool)"),
                ))
            }
        };
        // Both APIs want turns to alternate: same-role neighbours join.
        match turns.last_mut() {
            Some(t) if t.assistant == assistant => t.parts.extend(parts),
            _ => turns.push(Turn { assistant, parts }),
        }
    }
    let max_tokens = ["max_completion_tokens", "max_tokens"]
        .iter()
        .find_map(|k| req.get(*k).and_then(Value::as_u64));
    let stop = match req.get("stop") {
        None | Some(Value::Null) => vec![],
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(a)) => a
            .iter()
            .map(|s| {
                s.as_str()
                    .map(str::to_string)
                    .ok_or_else(|| bad("stop", "must be a string or an array of strings"))
            })
            .collect::<Result<_, _>>()?,
        Some(_) => return Err(bad("stop", "must be a string or an array of strings")),
    };
    let mut tools = Vec::new();
    if let Some(ts) = req.get("tools").and_then(Value::as_array) {
        for (j, t) in ts.iter().enumerate() {
            let f = t.get("function").ok_or_else(|| {
                bad(
                    format!("tools[{j}].function"),
                    "only function tools are taken",
                )
            })?;
            let name = f
                .get("name")
                .and_then(Value::as_str)
                .ok_or_else(|| bad(format!("tools[{j}].function.name"), "must be a string"))?;
            tools.push((
                name.to_string(),
                f.get("description")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string(),
                f.get("parameters")
                    .cloned()
                    .unwrap_or_else(|| json!({"type": "object", "properties": {}})),
            ));
        }
    }
    let tool_choice = match req.get("tool_choice") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(match s.as_str() {
            "auto" => ToolChoice::Auto,
            "required" => ToolChoice::Required,
            "none" => ToolChoice::None,
            other => {
                return Err(bad(
                    "tool_choice",
                    format!("'{other}' is not a choice (auto, required, none)"),
                ))
            }
        }),
        Some(v) => Some(ToolChoice::Named(
            v.pointer("/function/name")
                .and_then(Value::as_str)
                .ok_or_else(|| bad("tool_choice.function.name", "must be a string"))?
                .to_string(),
        )),
    };
    Ok(Chat {
        system,
        turns,
        max_tokens,
        temperature: req.get("temperature").and_then(Value::as_f64),
        top_p: req.get("top_p").and_then(Value::as_f64),
        stop,
        tools,
        tool_choice,
        stream: req.get("stream").and_then(Value::as_bool).unwrap_or(false),
    })
}

/// Anthropic requires `max_tokens`; this is given when the caller set none.
pub const ANTHROPIC_DEFAULT_MAX_TOKENS: u64 = 4096;

/// An OpenAI chat request as an Anthropic Messages request for `model`.
pub fn chat_to_anthropic(req: &Value, model: &str) -> Result<Value, BadRequest> {
    let c = read_chat(req)?;
    let messages: Vec<Value> = c
        .turns
        .iter()
        .map(|t| {
            let content: Vec<Value> = t
                .parts
                .iter()
                .map(|p| match p {
                    Part::Text(s) => json!({"type": "text", "text": s}),
                    Part::InlineImage { media_type, base64 } => {
                        json!({"type": "image", "source": {"type": "base64", "media_type": media_type, "data": base64}})
                    }
                    Part::ImageUrl(u) => json!({"type": "image", "source": {"type": "url", "url": u}}),
                    Part::ToolUse { id, name, input } => {
                        json!({"type": "tool_use", "id": id, "name": name, "input": input})
                    }
                    Part::ToolResult { id, text } => {
                        json!({"type": "tool_result", "tool_use_id": id, "content": text})
                    }
                })
                .collect();
            json!({"role": if t.assistant { "assistant" } else { "user" }, "content": content})
        })
        .collect();
    let mut out = Map::new();
    out.insert("model".into(), json!(model));
    out.insert(
        "max_tokens".into(),
        json!(c.max_tokens.unwrap_or(ANTHROPIC_DEFAULT_MAX_TOKENS)),
    );
    out.insert("messages".into(), Value::Array(messages));
    if !c.system.is_empty() {
        out.insert("system".into(), json!(c.system.join("\n\n")));
    }
    if let Some(t) = c.temperature {
        // The same number (both default to 1); Anthropic's scale stops at
        // 1 where OpenAI's goes on to 2.
        out.insert("temperature".into(), json!(t.clamp(0.0, 1.0)));
    }
    if let Some(p) = c.top_p {
        out.insert("top_p".into(), json!(p));
    }
    if !c.stop.is_empty() {
        out.insert("stop_sequences".into(), json!(c.stop));
    }
    if !c.tools.is_empty() {
        out.insert(
            "tools".into(),
            Value::Array(
                c.tools
                    .iter()
                    .map(|(n, d, s)| json!({"name": n, "description": d, "input_schema": s}))
                    .collect(),
            ),
        );
    }
    if let Some(tc) = &c.tool_choice {
        out.insert(
            "tool_choice".into(),
            match tc {
                ToolChoice::Auto => json!({"type": "auto"}),
                ToolChoice::Required => json!({"type": "any"}),
                ToolChoice::None => json!({"type": "none"}),
                ToolChoice::Named(n) => json!({"type": "tool", "name": n}),
            },
        );
    }
    if c.stream {
        out.insert("stream".into(), json!(true));
    }
    if let Some(u) = req.get("user").and_then(Value::as_str) {
        out.insert("metadata".into(), json!({"user_id": u}));
    }
    Ok(Value::Object(out))
}

fn bedrock_image_format(media_type: &str) -> Option<&'static str> {
    match media_type {
        "image/png" => Some("png"),
        "image/jpeg" | "image/jpg" => Some("jpeg"),
        "image/gif" => Some("gif"),
        "image/webp" => Some("webp"),
        _ => None,
    }
}

/// An OpenAI chat request as a Bedrock Converse (or ConverseStream)
/// request body; the model goes in the path.
pub fn chat_to_converse(req: &Value) -> Result<Value, BadRequest> {
    let c = read_chat(req)?;
    let mut messages = Vec::new();
    for (ti, t) in c.turns.iter().enumerate() {
        let mut content = Vec::new();
        for p in &t.parts {
            content.push(match p {
                Part::Text(s) => json!({"text": s}),
                Part::InlineImage { media_type, base64 } => {
                    let f = bedrock_image_format(media_type).ok_or_else(|| {
                        bad(
                            format!("messages (turn {ti})"),
                            format!(
                                "Bedrock takes png, jpeg, gif or webp images, not {media_type}"
                            ),
                        )
                    })?;
                    json!({"image": {"format": f, "source": {"bytes": base64}}})
                }
                Part::ImageUrl(_) => {
                    return Err(bad(
                        format!("messages (turn {ti})"),
                        "Bedrock takes images inline only: send a data: URL",
                    ))
                }
                Part::ToolUse { id, name, input } => {
                    json!({"toolUse": {"toolUseId": id, "name": name, "input": input}})
                }
                Part::ToolResult { id, text } => {
                    json!({"toolResult": {"toolUseId": id, "content": [{"text": text}]}})
                }
            });
        }
        messages.push(
            json!({"role": if t.assistant { "assistant" } else { "user" }, "content": content}),
        );
    }
    let mut out = Map::new();
    out.insert("messages".into(), Value::Array(messages));
    if !c.system.is_empty() {
        out.insert(
            "system".into(),
            Value::Array(c.system.iter().map(|s| json!({"text": s})).collect()),
        );
    }
    let mut inf = Map::new();
    if let Some(m) = c.max_tokens {
        inf.insert("maxTokens".into(), json!(m));
    }
    if let Some(t) = c.temperature {
        inf.insert("temperature".into(), json!(t.clamp(0.0, 1.0)));
    }
    if let Some(p) = c.top_p {
        inf.insert("topP".into(), json!(p));
    }
    if !c.stop.is_empty() {
        inf.insert("stopSequences".into(), json!(c.stop));
    }
    if !inf.is_empty() {
        out.insert("inferenceConfig".into(), Value::Object(inf));
    }
    let none = matches!(c.tool_choice, Some(ToolChoice::None));
    if !c.tools.is_empty() && !none {
        let mut tc = Map::new();
        tc.insert(
            "tools".into(),
            Value::Array(
                c.tools
                    .iter()
                    .map(|(n, d, s)| {
                        json!({"toolSpec": {"name": n, "description": d, "inputSchema": {"json": s}}})
                    })
                    .collect(),
            ),
        );
        match &c.tool_choice {
            Some(ToolChoice::Auto) => {
                tc.insert("toolChoice".into(), json!({"auto": {}}));
            }
            Some(ToolChoice::Required) => {
                tc.insert("toolChoice".into(), json!({"any": {}}));
            }
            Some(ToolChoice::Named(n)) => {
                tc.insert("toolChoice".into(), json!({"tool": {"name": n}}));
            }
            _ => {}
        }
        out.insert("toolConfig".into(), Value::Object(tc));
    }
    Ok(Value::Object(out))
}

fn finish_reason(provider_reason: &str) -> &'static str {
    match provider_reason {
        "max_tokens" | "model_context_window_exceeded" => "length",
        "tool_use" => "tool_calls",
        "guardrail_intervened" | "content_filtered" | "refusal" => "content_filter",
        _ => "stop",
    }
}

fn chat_completion(
    id: &str,
    model: &str,
    created: i64,
    text: Option<String>,
    calls: Vec<Value>,
    finish: &str,
    (prompt, completion): (u64, u64),
) -> Value {
    let mut message = json!({"role": "assistant", "content": text});
    if !calls.is_empty() {
        message["tool_calls"] = Value::Array(calls);
    }
    json!({
        "id": id, "object": "chat.completion", "created": created, "model": model,
        "choices": [{"index": 0, "message": message, "finish_reason": finish, "logprobs": null}],
        "usage": {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}
    })
}

fn tool_call(id: &str, name: &str, input: &Value) -> Value {
    json!({"id": id, "type": "function", "function": {"name": name, "arguments": input.to_string()}})
}

fn u(v: &Value, p: &str) -> u64 {
    v.pointer(p).and_then(Value::as_u64).unwrap_or(0)
}

/// An Anthropic Messages answer as an OpenAI chat completion (`model` is
/// the name the caller asked for).
pub fn anthropic_to_chat(resp: &Value, model: &str, created: i64) -> Option<Value> {
    let content = resp.get("content")?.as_array()?;
    let mut text: Option<String> = None;
    let mut calls = Vec::new();
    for b in content {
        match b.get("type").and_then(Value::as_str) {
            Some("text") => text
                .get_or_insert_with(String::new)
                .push_str(b.get("text").and_then(Value::as_str).unwrap_or("")),
            Some("tool_use") => calls.push(tool_call(
                b.get("id").and_then(Value::as_str).unwrap_or(""),
                b.get("name").and_then(Value::as_str).unwrap_or(""),
                b.get("input").unwrap_or(&Value::Null),
            )),
            _ => {}
        }
    }
    let prompt = u(resp, "/usage/input_tokens")
        + u(resp, "/usage/cache_creation_input_tokens")
        + u(resp, "/usage/cache_read_input_tokens");
    Some(chat_completion(
        resp.get("id").and_then(Value::as_str).unwrap_or("msg"),
        model,
        created,
        text,
        calls,
        finish_reason(
            resp.get("stop_reason")
                .and_then(Value::as_str)
                .unwrap_or(""),
        ),
        (prompt, u(resp, "/usage/output_tokens")),
    ))
}

/// A Bedrock Converse answer as an OpenAI chat completion; `id` is the
/// request id AWS gave (`x-amzn-requestid`).
pub fn converse_to_chat(resp: &Value, model: &str, created: i64, id: &str) -> Option<Value> {
    let content = resp.pointer("/output/message/content")?.as_array()?;
    let mut text: Option<String> = None;
    let mut calls = Vec::new();
    for b in content {
        if let Some(t) = b.get("text").and_then(Value::as_str) {
            text.get_or_insert_with(String::new).push_str(t);
        } else if let Some(t) = b.get("toolUse") {
            calls.push(tool_call(
                t.get("toolUseId").and_then(Value::as_str).unwrap_or(""),
                t.get("name").and_then(Value::as_str).unwrap_or(""),
                t.get("input").unwrap_or(&Value::Null),
            ));
        }
    }
    Some(chat_completion(
        &format!("chatcmpl-{id}"),
        model,
        created,
        text,
        calls,
        finish_reason(resp.get("stopReason").and_then(Value::as_str).unwrap_or("")),
        (
            u(resp, "/usage/inputTokens"),
            u(resp, "/usage/outputTokens"),
        ),
    ))
}

/// A provider's error answer in OpenAI's error shape. `aws_type` is
/// Bedrock's `x-amzn-ErrorType` header.
pub fn error_to_openai(wire: Wire, status: u16, body: &[u8], aws_type: Option<&str>) -> Value {
    let v: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let (code, message) = match wire {
        Wire::Anthropic => (
            v.pointer("/error/type")
                .and_then(Value::as_str)
                .unwrap_or("api_error")
                .to_string(),
            v.pointer("/error/message")
                .and_then(Value::as_str)
                .map(str::to_string),
        ),
        Wire::Bedrock => (
            aws_type
                .and_then(|t| t.split(':').next())
                .filter(|t| !t.is_empty())
                .unwrap_or(match status {
                    400 => "ValidationException",
                    403 => "AccessDeniedException",
                    404 => "ResourceNotFoundException",
                    429 => "ThrottlingException",
                    503 => "ServiceUnavailableException",
                    _ => "InternalServerException",
                })
                .to_string(),
            v.get("message")
                .or_else(|| v.get("Message"))
                .and_then(Value::as_str)
                .map(str::to_string),
        ),
    };
    let message = message
        .unwrap_or_else(|| String::from_utf8_lossy(&body[..body.len().min(300)]).into_owned());
    let kind = if status == 429 {
        "rate_limit_error"
    } else if status >= 500 {
        "server_error"
    } else {
        "invalid_request_error"
    };
    json!({"error": {"message": message, "type": kind, "param": null, "code": code}})
}

/// Turns a provider's stream (Anthropic's SSE events, Bedrock's event
/// stream) into OpenAI chat completion chunks, ending with a usage-only
/// chunk and `data: [DONE]`. Fed chunks split anywhere.
pub struct ChatStream {
    wire: Wire,
    model: String,
    created: i64,
    id: String,
    line: Vec<u8>,
    events: eventstream::Decoder,
    /// Content block index → tool call index.
    tool_of_block: Vec<(u64, usize)>,
    prompt: Option<u64>,
    completion: Option<u64>,
    stopped: bool,
    pub done: bool,
}

/// A line of an SSE stream longer than this ends the stream as broken.
pub const STREAM_LINE_BYTES_MAX: usize = 1 << 20;

impl ChatStream {
    pub fn new(wire: Wire, model: &str, created: i64, id: &str) -> ChatStream {
        ChatStream {
            wire,
            model: model.to_string(),
            created,
            id: id.to_string(),
            line: Vec::new(),
            events: eventstream::Decoder::default(),
            tool_of_block: Vec::new(),
            prompt: None,
            completion: None,
            stopped: false,
            done: false,
        }
    }

    fn chunk(&self, out: &mut Vec<u8>, delta: Value, finish: Option<&str>) {
        let c = json!({
            "id": self.id, "object": "chat.completion.chunk", "created": self.created, "model": self.model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": null}]
        });
        out.extend_from_slice(format!("data: {c}\n\n").as_bytes());
    }

    fn end(&mut self, out: &mut Vec<u8>) {
        if self.done {
            return;
        }
        if let (Some(p), Some(c)) = (self.prompt, self.completion) {
            let u = json!({
                "id": self.id, "object": "chat.completion.chunk", "created": self.created, "model": self.model,
                "choices": [], "usage": {"prompt_tokens": p, "completion_tokens": c, "total_tokens": p + c}
            });
            out.extend_from_slice(format!("data: {u}\n\n").as_bytes());
        }
        out.extend_from_slice(b"data: [DONE]\n\n");
        self.done = true;
    }

    fn tool_index(&mut self, block: u64) -> usize {
        if let Some((_, i)) = self.tool_of_block.iter().find(|(b, _)| *b == block) {
            return *i;
        }
        let i = self.tool_of_block.len();
        self.tool_of_block.push((block, i));
        i
    }

    /// OpenAI SSE bytes for what `b` completes; an error when the
    /// provider reports one in the stream or the stream is not its form.
    pub fn feed(&mut self, b: &[u8]) -> Result<Vec<u8>, String> {
        let mut out = Vec::new();
        match self.wire {
            Wire::Anthropic => {
                let mut rest = b;
                while let Some(nl) = rest.iter().position(|&c| c == b'\n') {
                    self.line.extend_from_slice(&rest[..nl]);
                    rest = &rest[nl + 1..];
                    let line = std::mem::take(&mut self.line);
                    self.anthropic_line(&line, &mut out)?;
                }
                if self.line.len() + rest.len() > STREAM_LINE_BYTES_MAX {
                    return Err("an event line of over 1 MiB".into());
                }
                self.line.extend_from_slice(rest);
            }
            Wire::Bedrock => {
                for m in self.events.feed(b)? {
                    self.bedrock_event(&m, &mut out)?;
                }
            }
        }
        Ok(out)
    }

    /// Bytes held of an unfinished line (Anthropic) or message (Bedrock).
    pub fn buffered(&self) -> usize {
        self.line.len() + self.events.pending()
    }

    /// At the stream's end: Bedrock's `[DONE]` when it stopped but sent
    /// no metadata (usage then unknown).
    pub fn finish(&mut self) -> Vec<u8> {
        let mut out = Vec::new();
        if self.wire == Wire::Bedrock && self.stopped {
            self.end(&mut out);
        }
        out
    }

    fn anthropic_line(&mut self, line: &[u8], out: &mut Vec<u8>) -> Result<(), String> {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let Some(data) = line.strip_prefix(b"data:") else {
            return Ok(());
        };
        let Ok(v) = serde_json::from_slice::<Value>(data.trim_ascii()) else {
            return Err("an event that is not JSON".into());
        };
        match v.get("type").and_then(Value::as_str).unwrap_or("") {
            "message_start" => {
                if let Some(id) = v.pointer("/message/id").and_then(Value::as_str) {
                    self.id = id.to_string();
                }
                let m = v.get("message").unwrap_or(&Value::Null);
                self.prompt = Some(
                    u(m, "/usage/input_tokens")
                        + u(m, "/usage/cache_creation_input_tokens")
                        + u(m, "/usage/cache_read_input_tokens"),
                );
                self.chunk(out, json!({"role": "assistant", "content": ""}), None);
            }
            "content_block_start" => {
                let block = v.get("index").and_then(Value::as_u64).unwrap_or(0);
                let cb = v.get("content_block").unwrap_or(&Value::Null);
                match cb.get("type").and_then(Value::as_str) {
                    Some("tool_use") => {
                        let i = self.tool_index(block);
                        self.chunk(
                            out,
                            json!({"tool_calls": [{"index": i, "id": cb.get("id"), "type": "function",
                                "function": {"name": cb.get("name"), "arguments": ""}}]}),
                            None,
                        );
                    }
                    Some("text") => {
                        let t = cb.get("text").and_then(Value::as_str).unwrap_or("");
                        if !t.is_empty() {
                            self.chunk(out, json!({"content": t}), None);
                        }
                    }
                    _ => {}
                }
            }
            "content_block_delta" => {
                let block = v.get("index").and_then(Value::as_u64).unwrap_or(0);
                let d = v.get("delta").unwrap_or(&Value::Null);
                match d.get("type").and_then(Value::as_str) {
                    Some("text_delta") => {
                        self.chunk(out, json!({"content": d.get("text")}), None);
                    }
                    Some("input_json_delta") => {
                        let i = self.tool_index(block);
                        self.chunk(
                            out,
                            json!({"tool_calls": [{"index": i, "function": {"arguments": d.get("partial_json")}}]}),
                            None,
                        );
                    }
                    _ => {}
                }
            }
            "message_delta" => {
                if let Some(n) = v.pointer("/usage/output_tokens").and_then(Value::as_u64) {
                    self.completion = Some(n);
                }
                if let Some(r) = v.pointer("/delta/stop_reason").and_then(Value::as_str) {
                    self.chunk(out, json!({}), Some(finish_reason(r)));
                }
            }
            "message_stop" => {
                self.stopped = true;
                self.end(out);
            }
            "error" => {
                return Err(format!(
                    "{}: {}",
                    v.pointer("/error/type")
                        .and_then(Value::as_str)
                        .unwrap_or("error"),
                    v.pointer("/error/message")
                        .and_then(Value::as_str)
                        .unwrap_or("")
                ))
            }
            _ => {}
        }
        Ok(())
    }

    fn bedrock_event(&mut self, m: &eventstream::Message, out: &mut Vec<u8>) -> Result<(), String> {
        let kind = m.header(":message-type").unwrap_or("event");
        let v: Value = serde_json::from_slice(&m.payload).unwrap_or(Value::Null);
        if kind != "event" {
            return Err(format!(
                "{}: {}",
                m.header(":exception-type")
                    .or(m.header(":error-code"))
                    .unwrap_or("exception"),
                v.get("message")
                    .or_else(|| v.get("Message"))
                    .and_then(Value::as_str)
                    .or(m.header(":error-message"))
                    .unwrap_or("")
            ));
        }
        match m.header(":event-type").unwrap_or("") {
            "messageStart" => {
                self.chunk(out, json!({"role": "assistant", "content": ""}), None);
            }
            "contentBlockStart" => {
                if let Some(t) = v.pointer("/start/toolUse") {
                    let block = v
                        .get("contentBlockIndex")
                        .and_then(Value::as_u64)
                        .unwrap_or(0);
                    let i = self.tool_index(block);
                    self.chunk(
                        out,
                        json!({"tool_calls": [{"index": i, "id": t.get("toolUseId"), "type": "function",
                            "function": {"name": t.get("name"), "arguments": ""}}]}),
                        None,
                    );
                }
            }
            "contentBlockDelta" => {
                let block = v
                    .get("contentBlockIndex")
                    .and_then(Value::as_u64)
                    .unwrap_or(0);
                if let Some(t) = v.pointer("/delta/text").and_then(Value::as_str) {
                    self.chunk(out, json!({"content": t}), None);
                } else if let Some(a) = v.pointer("/delta/toolUse/input").and_then(Value::as_str) {
                    let i = self.tool_index(block);
                    self.chunk(
                        out,
                        json!({"tool_calls": [{"index": i, "function": {"arguments": a}}]}),
                        None,
                    );
                }
            }
            "messageStop" => {
                self.stopped = true;
                let r = v.get("stopReason").and_then(Value::as_str).unwrap_or("");
                self.chunk(out, json!({}), Some(finish_reason(r)));
            }
            "metadata" => {
                self.prompt = v.pointer("/usage/inputTokens").and_then(Value::as_u64);
                self.completion = v.pointer("/usage/outputTokens").and_then(Value::as_u64);
                self.end(out);
            }
            _ => {}
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sse_json(out: &[u8]) -> Vec<Value> {
        String::from_utf8_lossy(out)
            .lines()
            .filter_map(|l| l.strip_prefix("data: "))
            .filter(|d| *d != "[DONE]")
            .map(|d| serde_json::from_str(d).unwrap())
            .collect()
    }

    fn conversation() -> Value {
        json!({
            "model": "claude", "max_tokens": 300, "temperature": 1.5, "stop": "END",
            "messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": [{"type": "text", "text": "Weather in Paris?"},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}]},
                {"role": "assistant", "content": null, "tool_calls": [{"id": "call_1", "type": "function",
                    "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}}]},
                {"role": "tool", "tool_call_id": "call_1", "content": "18C, sunny"},
                {"role": "user", "content": "And tomorrow?"}
            ],
            "tools": [{"type": "function", "function": {"name": "get_weather", "description": "Weather now",
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}],
            "tool_choice": "auto"
        })
    }

    #[test]
    fn a_conversation_with_tools_in_anthropic_s_form() {
        // Written by hand from Anthropic's Messages API reference.
        let want = json!({
            "model": "claude-3-5-haiku-20241022", "max_tokens": 300, "system": "Be brief.",
            "temperature": 1.0, "stop_sequences": ["END"],
            "messages": [
                {"role": "user", "content": [{"type": "text", "text": "Weather in Paris?"},
                    {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}}]},
                {"role": "assistant", "content": [{"type": "tool_use", "id": "call_1", "name": "get_weather", "input": {"city": "Paris"}}]},
                {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "call_1", "content": "18C, sunny"},
                    {"type": "text", "text": "And tomorrow?"}]}
            ],
            "tools": [{"name": "get_weather", "description": "Weather now",
                "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}}}],
            "tool_choice": {"type": "auto"}
        });
        assert_eq!(
            chat_to_anthropic(&conversation(), "claude-3-5-haiku-20241022").unwrap(),
            want
        );
    }

    #[test]
    fn a_conversation_with_tools_in_converse_form() {
        // Written by hand from the Bedrock Converse API reference.
        let want = json!({
            "system": [{"text": "Be brief."}],
            "inferenceConfig": {"maxTokens": 300, "temperature": 1.0, "stopSequences": ["END"]},
            "messages": [
                {"role": "user", "content": [{"text": "Weather in Paris?"},
                    {"image": {"format": "png", "source": {"bytes": "iVBORw0KGgo="}}}]},
                {"role": "assistant", "content": [{"toolUse": {"toolUseId": "call_1", "name": "get_weather", "input": {"city": "Paris"}}}]},
                {"role": "user", "content": [{"toolResult": {"toolUseId": "call_1", "content": [{"text": "18C, sunny"}]}},
                    {"text": "And tomorrow?"}]}
            ],
            "toolConfig": {"tools": [{"toolSpec": {"name": "get_weather", "description": "Weather now",
                "inputSchema": {"json": {"type": "object", "properties": {"city": {"type": "string"}}}}}}],
                "toolChoice": {"auto": {}}}
        });
        assert_eq!(chat_to_converse(&conversation()).unwrap(), want);
    }

    #[test]
    fn what_does_not_translate_is_refused_by_name() {
        let mut r = conversation();
        r["n"] = json!(2);
        assert_eq!(chat_to_anthropic(&r, "m").unwrap_err().param, "n");
        let r = json!({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "https://x/cat.png"}}]}]});
        assert!(chat_to_converse(&r)
            .unwrap_err()
            .message
            .contains("data: URL"));
        // Anthropic takes an image by URL.
        assert_eq!(
            chat_to_anthropic(&r, "m").unwrap()["messages"][0]["content"][0]["source"]["type"],
            "url"
        );
        let r = json!({"messages": [{"role": "assistant", "tool_calls": [{"id": "c", "function": {"name": "f", "arguments": "{oops"}}]}]});
        assert_eq!(
            chat_to_converse(&r).unwrap_err().param,
            "messages[0].tool_calls[0].function.arguments"
        );
        let r = json!({"messages": [{"role": "wizard", "content": "hi"}]});
        assert_eq!(
            chat_to_anthropic(&r, "m").unwrap_err().param,
            "messages[0].role"
        );
        assert_eq!(
            chat_to_anthropic(&json!({}), "m").unwrap_err().param,
            "messages"
        );
        // No max_tokens: Anthropic's required field gets the default.
        let r = json!({"messages": [{"role": "user", "content": "hi"}]});
        assert_eq!(chat_to_anthropic(&r, "m").unwrap()["max_tokens"], 4096);
        assert!(chat_to_converse(&r)
            .unwrap()
            .get("inferenceConfig")
            .is_none());
    }

    #[test]
    fn answers_in_openai_s_form() {
        // Anthropic's documented example answer, with a tool call.
        let a = json!({"id": "msg_01", "type": "message", "role": "assistant", "model": "claude-x",
            "content": [{"type": "text", "text": "Let me check."},
                {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}}],
            "stop_reason": "tool_use", "stop_sequence": null,
            "usage": {"input_tokens": 25, "output_tokens": 30, "cache_read_input_tokens": 5}});
        let c = anthropic_to_chat(&a, "claude", 7).unwrap();
        assert_eq!(c["choices"][0]["message"]["content"], "Let me check.");
        assert_eq!(c["choices"][0]["finish_reason"], "tool_calls");
        assert_eq!(
            c["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"],
            "{\"city\":\"Paris\"}"
        );
        assert_eq!(
            c["usage"],
            json!({"prompt_tokens": 30, "completion_tokens": 30, "total_tokens": 60})
        );
        assert_eq!(c["model"], "claude");
        let b = json!({"output": {"message": {"role": "assistant", "content": [{"text": "Hello"}, {"text": " there"}]}},
            "stopReason": "max_tokens", "usage": {"inputTokens": 12, "outputTokens": 4, "totalTokens": 16},
            "metrics": {"latencyMs": 250}});
        let c = converse_to_chat(&b, "llama", 7, "req-9").unwrap();
        assert_eq!(c["choices"][0]["message"]["content"], "Hello there");
        assert_eq!(c["choices"][0]["finish_reason"], "length");
        assert_eq!(c["usage"]["total_tokens"], 16);
        assert_eq!(c["id"], "chatcmpl-req-9");
        assert!(converse_to_chat(&json!({"oops": 1}), "m", 0, "r").is_none());
    }

    #[test]
    fn errors_in_openai_s_form() {
        let e = error_to_openai(
            Wire::Anthropic,
            429,
            br#"{"type":"error","error":{"type":"rate_limit_error","message":"slow down"}}"#,
            None,
        );
        assert_eq!(e["error"]["message"], "slow down");
        assert_eq!(e["error"]["code"], "rate_limit_error");
        let e = error_to_openai(
            Wire::Bedrock,
            400,
            br#"{"message":"Malformed input request"}"#,
            Some("ValidationException:http://internal.amazon.com/coral/com.amazon.bedrock/"),
        );
        assert_eq!(e["error"]["code"], "ValidationException");
        assert_eq!(e["error"]["type"], "invalid_request_error");
        assert_eq!(e["error"]["message"], "Malformed input request");
    }

    /// Anthropic's documented streaming example (text, then a tool call).
    const ANTHROPIC_STREAM: &str = "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"type\":\"message\",\"role\":\"assistant\",\"content\":[],\"model\":\"claude-x\",\"stop_reason\":null,\"usage\":{\"input_tokens\":25,\"output_tokens\":1}}}\n\n\
event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n\
event: ping\ndata: {\"type\": \"ping\"}\n\n\
event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"Hello\"}}\n\n\
event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"!\"}}\n\n\
event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\n\
event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":1,\"content_block\":{\"type\":\"tool_use\",\"id\":\"toolu_1\",\"name\":\"get_weather\",\"input\":{}}}\n\n\
event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"{\\\"city\\\": \"}}\n\n\
event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"\\\"Paris\\\"}\"}}\n\n\
event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":1}\n\n\
event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"tool_use\",\"stop_sequence\":null},\"usage\":{\"output_tokens\":15}}\n\n\
event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n";

    fn check_translated(chunks: &[Value], done: bool) {
        assert!(done);
        assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
        let text: String = chunks
            .iter()
            .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
            .collect();
        assert_eq!(text, "Hello!");
        let args: String = chunks
            .iter()
            .filter_map(|c| {
                c["choices"][0]["delta"]["tool_calls"][0]["function"]["arguments"].as_str()
            })
            .collect();
        assert_eq!(args, "{\"city\": \"Paris\"}");
        let named: Vec<&Value> = chunks
            .iter()
            .filter(|c| c["choices"][0]["delta"]["tool_calls"][0]["id"].is_string())
            .collect();
        assert_eq!(named.len(), 1);
        assert_eq!(named[0]["choices"][0]["delta"]["tool_calls"][0]["index"], 0);
        assert_eq!(
            named[0]["choices"][0]["delta"]["tool_calls"][0]["function"]["name"],
            "get_weather"
        );
        let finishes: Vec<&str> = chunks
            .iter()
            .filter_map(|c| c["choices"][0]["finish_reason"].as_str())
            .collect();
        assert_eq!(finishes, ["tool_calls"]);
        let last = chunks.last().unwrap();
        assert_eq!(last["choices"], json!([]));
        assert_eq!(last["usage"]["prompt_tokens"], 25);
        assert_eq!(last["usage"]["completion_tokens"], 15);
    }

    #[test]
    fn anthropic_s_stream_as_chunks_however_it_is_split() {
        let all = ANTHROPIC_STREAM.as_bytes();
        for cut in [1, 7, 64, 200, all.len() - 3] {
            let mut s = ChatStream::new(Wire::Anthropic, "claude", 3, "x");
            let mut out = s.feed(&all[..cut]).unwrap();
            out.extend(s.feed(&all[cut..]).unwrap());
            out.extend(s.finish());
            assert!(String::from_utf8_lossy(&out).ends_with("data: [DONE]\n\n"));
            check_translated(&sse_json(&out), s.done);
        }
        let mut s = ChatStream::new(Wire::Anthropic, "claude", 3, "x");
        let e = s
            .feed(b"event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}\n\n")
            .unwrap_err();
        assert_eq!(e, "overloaded_error: Overloaded");
        // A stream cut before message_stop never says [DONE].
        let mut s = ChatStream::new(Wire::Anthropic, "claude", 3, "x");
        let cut = ANTHROPIC_STREAM.find("event: message_stop").unwrap();
        let mut out = s.feed(&all[..cut]).unwrap();
        out.extend(s.finish());
        assert!(!s.done && !String::from_utf8_lossy(&out).contains("[DONE]"));
    }

    fn bedrock_stream() -> Vec<u8> {
        let ev = |t: &str, p: Value| {
            eventstream::encode(
                &[
                    (":event-type", t),
                    (":content-type", "application/json"),
                    (":message-type", "event"),
                ],
                p.to_string().as_bytes(),
            )
        };
        [
            ev("messageStart", json!({"role": "assistant"})),
            ev("contentBlockDelta", json!({"contentBlockIndex": 0, "delta": {"text": "Hello"}})),
            ev("contentBlockDelta", json!({"contentBlockIndex": 0, "delta": {"text": "!"}})),
            ev("contentBlockStop", json!({"contentBlockIndex": 0})),
            ev("contentBlockStart", json!({"contentBlockIndex": 1, "start": {"toolUse": {"toolUseId": "tooluse_1", "name": "get_weather"}}})),
            ev("contentBlockDelta", json!({"contentBlockIndex": 1, "delta": {"toolUse": {"input": "{\"city\": "}}})),
            ev("contentBlockDelta", json!({"contentBlockIndex": 1, "delta": {"toolUse": {"input": "\"Paris\"}"}}})),
            ev("contentBlockStop", json!({"contentBlockIndex": 1})),
            ev("messageStop", json!({"stopReason": "tool_use"})),
            ev("metadata", json!({"usage": {"inputTokens": 25, "outputTokens": 15, "totalTokens": 40}, "metrics": {"latencyMs": 300}})),
        ]
        .concat()
    }

    #[test]
    fn bedrock_s_event_stream_as_chunks_however_it_is_split() {
        let all = bedrock_stream();
        for cut in [1, 11, 12, 13, 90, all.len() / 2, all.len() - 1] {
            let mut s = ChatStream::new(Wire::Bedrock, "claude", 3, "x");
            let mut out = s.feed(&all[..cut]).unwrap();
            out.extend(s.feed(&all[cut..]).unwrap());
            out.extend(s.finish());
            check_translated(&sse_json(&out), s.done);
        }
        let exc = eventstream::encode(
            &[
                (":message-type", "exception"),
                (":exception-type", "throttlingException"),
            ],
            br#"{"message":"Too many tokens"}"#,
        );
        let mut s = ChatStream::new(Wire::Bedrock, "m", 0, "x");
        assert_eq!(
            s.feed(&exc).unwrap_err(),
            "throttlingException: Too many tokens"
        );
        let mut s = ChatStream::new(Wire::Bedrock, "m", 0, "x");
        assert!(s.feed(b"data: {\"not\": \"an event stream\"}\n\n").is_err());
    }
}
