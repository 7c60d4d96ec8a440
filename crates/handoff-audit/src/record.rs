//! The records the preload library writes, one block per finding:
//!
//! ```text
//! B <kind> <fd> <pid> <call>         begin: double_close 3 4242 close
//! X <program>                        /proc/self/exe of the process
//! I <id>                             a finding of a close that a later record may retract
//! C <call>                           the earlier close (fclose, close, ...), if known
//! O <call>                           the call that opened the number, if seen
//! W <owner>                          the owner: FILE*, DIR*, or a type's tag
//! Q                                  the number was quarantined: the call hit a tombstone
//! F <section> <offset> <sym> <module>  a return address: section is stack, previous or
//!                                    opened; offset is relative to the module's load address
//! E                                  end
//! R <id>                             (outside a block) the finding with that id was a close
//!                                    in a close-all loop after all: drop it
//! ```
//! Fields are separated by tabs; the module path is last so that it may hold anything but a
//! newline.

/// One finding, as the library wrote it (not yet symbolized).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RawFinding {
    /// `double_close`, `owned_close`, `use_after_close` or `leak`.
    pub kind: String,
    /// The descriptor number.
    pub fd: i32,
    /// The process that made the call.
    pub pid: u32,
    /// The call that was made (`close`, `fclose`, `read`, ...; for a leak, the opening call).
    pub call: String,
    /// The program (`/proc/self/exe`) of that process.
    pub program: String,
    /// The call that closed the number before, if the library saw it.
    pub previous_call: Option<String>,
    /// The call that opened the number, if the library saw it.
    pub opened_call: Option<String>,
    /// Who owned the number: `FILE*`, `DIR*`, or a tag announced by an owner type.
    pub owner: Option<String>,
    /// The number was quarantined: the call hit the tombstone, not a file opened since.
    pub quarantined: bool,
    /// The stack of the call.
    pub stack: Vec<RawFrame>,
    /// The stack of the earlier close.
    pub previous: Vec<RawFrame>,
    /// The stack of the open.
    pub opened: Vec<RawFrame>,
}

/// A return address, as a module and an offset from the module's load address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawFrame {
    /// The address relative to the module's load bias (a file address for `addr2line`).
    pub offset: u64,
    /// The nearest dynamic symbol, if `dladdr` found one.
    pub symbol: Option<String>,
    /// The path of the executable or shared object.
    pub module: String,
}

/// Parses the records of one file; an unfinished block (a process killed mid-write) is
/// dropped, and unknown lines are skipped, so that a newer library never breaks an older CLI.
pub fn parse(text: &str) -> Vec<RawFinding> {
    let mut findings: Vec<(Option<u64>, RawFinding)> = Vec::new();
    let mut retracted = std::collections::HashSet::new();
    let mut id = None;
    let mut current: Option<RawFinding> = None;
    for line in text.lines() {
        let mut fields = line.split('\t');
        let tag = fields.next().unwrap_or("");
        match (tag, current.as_mut()) {
            ("B", _) => {
                let kind = fields.next().unwrap_or("").to_owned();
                let fd = fields.next().and_then(|f| f.parse().ok()).unwrap_or(-1);
                let pid = fields.next().and_then(|f| f.parse().ok()).unwrap_or(0);
                let call = fields.next().unwrap_or("-").to_owned();
                id = None;
                current = Some(RawFinding {
                    kind,
                    fd,
                    pid,
                    call,
                    ..RawFinding::default()
                });
            }
            ("X", Some(f)) => f.program = rest(line),
            ("I", Some(_)) => id = rest(line).parse().ok(),
            ("R", None) => {
                retracted.extend(rest(line).parse::<u64>().ok());
            }
            ("C", Some(f)) => f.previous_call = Some(rest(line)),
            ("O", Some(f)) => f.opened_call = Some(rest(line)),
            ("W", Some(f)) => f.owner = Some(rest(line)),
            ("Q", Some(f)) => f.quarantined = true,
            ("F", Some(f)) => {
                let mut parts = line.splitn(5, '\t').skip(1);
                let (Some(section), Some(offset), Some(symbol), Some(module)) =
                    (parts.next(), parts.next(), parts.next(), parts.next())
                else {
                    continue;
                };
                let Ok(offset) = u64::from_str_radix(offset.trim_start_matches("0x"), 16) else {
                    continue;
                };
                let frame = RawFrame {
                    offset,
                    symbol: (symbol != "-").then(|| symbol.to_owned()),
                    module: module.to_owned(),
                };
                match section {
                    "stack" => f.stack.push(frame),
                    "previous" => f.previous.push(frame),
                    "opened" => f.opened.push(frame),
                    _ => {}
                }
            }
            ("E", Some(_)) => findings.extend(current.take().map(|f| (id, f))),
            _ => {}
        }
    }
    findings
        .into_iter()
        .filter(|(id, _)| id.is_none_or(|id| !retracted.contains(&id)))
        .map(|(_, finding)| finding)
        .collect()
}

fn rest(line: &str) -> String {
    line.split_once('\t')
        .map_or("", |(_, rest)| rest)
        .to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_retracted_finding_is_dropped() {
        let text = "B\tdouble_close\t3\t42\tclose\nI\t1\nE\nB\tdouble_close\t9\t42\tclose\nI\t2\nE\nR\t1\n";
        let found = parse(text);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].fd, 9);
    }

    #[test]
    fn parses_a_block_and_drops_an_unfinished_one() {
        let text = "B\tdouble_close\t3\t42\tclose\nX\t/bin/x\nC\tfclose\nO\topen\nQ\nW\tFILE*\n\
                    F\tstack\t0x1237\t-\t/bin/x\nF\tprevious\t0x20\tmain\t/lib/a b.so\n\
                    F\topened\t0x30\t-\t/bin/x\nE\nB\tleak\t4\t42\topen\nF\topened\t0x1\t-\t/x\n";
        let found = parse(text);
        assert_eq!(found.len(), 1);
        let f = &found[0];
        assert_eq!((f.kind.as_str(), f.fd, f.pid), ("double_close", 3, 42));
        assert_eq!(f.previous_call.as_deref(), Some("fclose"));
        assert_eq!(f.owner.as_deref(), Some("FILE*"));
        assert!(f.quarantined);
        assert_eq!(f.stack[0].offset, 0x1237);
        assert_eq!(f.previous[0].module, "/lib/a b.so");
        assert_eq!(f.previous[0].symbol.as_deref(), Some("main"));
        assert_eq!(f.opened.len(), 1);
    }
}
