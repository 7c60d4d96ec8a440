//! The findings of a run: symbolized, printed valgrind-style, and as one JSON object.

use std::collections::BTreeMap;

use handoff_audit::record::{RawFinding, RawFrame};
use serde_json::{json, Value};

use super::symbolize::{Frame, Symbolizer};

/// One finding with its stacks resolved.
pub struct Finding {
    pub raw: RawFinding,
    pub stack: Vec<Frame>,
    pub previous: Vec<Frame>,
    pub opened: Vec<Frame>,
}

impl Finding {
    pub fn resolve(raw: RawFinding, symbolizer: &mut Symbolizer) -> Finding {
        let mut resolve =
            |frames: &[RawFrame]| trim(frames.iter().flat_map(|f| symbolizer.frames(f)));
        Finding {
            stack: resolve(&raw.stack),
            previous: resolve(&raw.previous),
            opened: resolve(&raw.opened),
            raw,
        }
    }
}

/// Frames up to and including `main`: what libc runs before it tells nothing.
fn trim(frames: impl Iterator<Item = Frame>) -> Vec<Frame> {
    let mut out = Vec::new();
    for frame in frames {
        let is_main = frame.function == "main";
        out.push(frame);
        if is_main {
            break;
        }
    }
    out
}

fn headline(f: &RawFinding) -> String {
    let (call, fd) = (&f.call, f.fd);
    match f.kind.as_str() {
        "double_close" => match &f.previous_call {
            Some(previous) => format!(
                "{call}({fd}) of a descriptor this process already closed (with {previous})"
            ),
            None => format!("{call}({fd}) of a descriptor this process already closed"),
        },
        "owned_close" => format!(
            "{call}({fd}) of a descriptor owned by {}: its owner will close it again",
            f.owner.as_deref().unwrap_or("another owner")
        ),
        "use_after_close" => match &f.previous_call {
            Some(previous) => format!("{call}({fd}) on a descriptor closed by {previous}"),
            None => format!("{call}({fd}) on a closed descriptor"),
        },
        "leak" => format!("fd {fd} (from {call}) still open at exit"),
        other => format!("{other}: {call}({fd})"),
    }
}

fn location(frame: &Frame) -> String {
    match (&frame.file, frame.line) {
        (Some(file), Some(line)) => {
            let name = file.rsplit('/').next().unwrap_or(file);
            format!("{} ({name}:{line})", frame.function)
        }
        _ => format!(
            "{} (in {}+{:#x})",
            frame.function, frame.module, frame.offset
        ),
    }
}

fn push_stack(out: &mut String, prefix: &str, title: Option<String>, frames: &[Frame]) {
    if let Some(title) = title {
        out.push_str(&format!("{prefix}  {title}\n"));
    }
    for (i, frame) in frames.iter().enumerate() {
        let word = if i == 0 { "at" } else { "by" };
        out.push_str(&format!("{prefix}    {word} {}\n", location(frame)));
    }
}

/// The readable report: one block per finding, then a summary line.
pub fn text(findings: &[Finding]) -> String {
    let mut out = String::new();
    for finding in findings {
        let raw = &finding.raw;
        let prefix = format!("=={}==", raw.pid);
        out.push_str(&format!("{prefix} {}: {}\n", raw.kind, headline(raw)));
        out.push_str(&format!("{prefix}  in {}\n", raw.program));
        if raw.quarantined {
            out.push_str(&format!(
                "{prefix}  defused: the number was quarantined, so this {} hit a tombstone \
                 (EBADF), not a file opened since\n",
                raw.call
            ));
        }
        push_stack(&mut out, &prefix, None, &finding.stack);
        if !finding.previous.is_empty() {
            let by = raw.previous_call.as_deref().unwrap_or("a close");
            push_stack(
                &mut out,
                &prefix,
                Some(format!("closed before by {by}")),
                &finding.previous,
            );
        }
        if !finding.opened.is_empty() {
            let mut title = format!("opened by {}", raw.opened_call.as_deref().unwrap_or("?"));
            if let Some(owner) = &raw.owner {
                title.push_str(&format!(", owned by {owner}"));
            }
            push_stack(&mut out, &prefix, Some(title), &finding.opened);
        }
        out.push_str(&format!("{prefix}\n"));
    }
    out.push_str(&summary(findings));
    out
}

/// `handoff audit: 2 findings (1 double_close, 1 use_after_close) in 1 process`.
pub fn summary(findings: &[Finding]) -> String {
    if findings.is_empty() {
        return "==handoff audit== no findings\n".to_owned();
    }
    let mut kinds: BTreeMap<&str, usize> = BTreeMap::new();
    let mut pids: Vec<u32> = findings.iter().map(|f| f.raw.pid).collect();
    pids.sort_unstable();
    pids.dedup();
    for finding in findings {
        *kinds.entry(finding.raw.kind.as_str()).or_default() += 1;
    }
    let kinds: Vec<String> = kinds.iter().map(|(k, n)| format!("{n} {k}")).collect();
    format!(
        "==handoff audit== {} finding{} ({}) in {} process{}\n",
        findings.len(),
        if findings.len() == 1 { "" } else { "s" },
        kinds.join(", "),
        pids.len(),
        if pids.len() == 1 { "" } else { "es" },
    )
}

fn frames_json(frames: &[Frame]) -> Value {
    Value::Array(
        frames
            .iter()
            .map(|f| json!({"function": f.function, "file": f.file, "line": f.line, "module": f.module, "offset": f.offset}))
            .collect(),
    )
}

/// `{"findings": [...]}`, written even when there are none.
pub fn json(findings: &[Finding]) -> Value {
    let list: Vec<Value> = findings
        .iter()
        .map(|f| {
            let raw = &f.raw;
            json!({
                "kind": raw.kind,
                "fd": raw.fd,
                "pid": raw.pid,
                "call": raw.call,
                "program": raw.program,
                "owner": raw.owner,
                "quarantined": raw.quarantined,
                "previous_call": raw.previous_call,
                "opened_call": raw.opened_call,
                "stack": frames_json(&f.stack),
                "previous": frames_json(&f.previous),
                "opened": frames_json(&f.opened),
            })
        })
        .collect();
    json!({ "findings": list })
}
