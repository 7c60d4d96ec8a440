//! Return addresses to function, file and line, with the DWARF of each module (the
//! `addr2line` crate over `gimli`: no binutils needed at run time).

use std::collections::HashMap;

use handoff_audit::record::RawFrame;

/// A frame ready to print: `file`/`line` are `None` where the module has no debug info.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    pub function: String,
    pub file: Option<String>,
    pub line: Option<u32>,
    pub module: String,
    /// The return address, relative to the module (for `addr2line -e MODULE` by hand).
    pub offset: u64,
}

/// Loads each module once; a module that cannot be read (deleted, not ELF) yields frames named
/// after the dynamic symbol the library recorded, or `???`.
#[derive(Default)]
pub struct Symbolizer {
    modules: HashMap<String, Option<addr2line::Loader>>,
}

impl Symbolizer {
    /// Every frame at `raw` (more than one where calls were inlined), innermost first.
    pub fn frames(&mut self, raw: &RawFrame) -> Vec<Frame> {
        let loader = self
            .modules
            .entry(raw.module.clone())
            .or_insert_with(|| addr2line::Loader::new(&raw.module).ok());
        let fallback = raw
            .symbol
            .as_deref()
            .map(demangle)
            .unwrap_or_else(|| "???".to_owned());
        let Some(loader) = loader else {
            return vec![plain(fallback, raw)];
        };
        // A return address points after the call: look up the call instruction itself.
        let probe = raw.offset.saturating_sub(1);
        // The nearest symbol is the function only where every function has one (.symtab); in
        // a stripped module the nearest exported symbol is usually another function, so only
        // the dynamic loader's answer (which checks symbol sizes) is used there.
        let symbol = if loader.get_section_range(b".symtab").is_some() {
            loader.find_symbol(probe).map(demangle)
        } else {
            raw.symbol.as_deref().map(demangle)
        };
        let mut out = Vec::new();
        if let Ok(mut frames) = loader.find_frames(probe) {
            while let Ok(Some(frame)) = frames.next() {
                let function = frame
                    .function
                    .as_ref()
                    .and_then(|name| name.demangle().ok().map(|n| n.into_owned()))
                    .or_else(|| symbol.clone())
                    .unwrap_or_else(|| fallback.clone());
                let (file, line) = frame
                    .location
                    .map(|l| (l.file.map(str::to_owned), l.line))
                    .unwrap_or((None, None));
                out.push(Frame {
                    function,
                    file,
                    line,
                    module: raw.module.clone(),
                    offset: raw.offset,
                });
            }
        }
        if out.is_empty() {
            out.push(plain(symbol.unwrap_or(fallback), raw));
        }
        out
    }
}

fn plain(function: String, raw: &RawFrame) -> Frame {
    Frame {
        function,
        file: None,
        line: None,
        module: raw.module.clone(),
        offset: raw.offset,
    }
}

fn demangle(name: &str) -> String {
    addr2line::demangle_auto(name.into(), None).into_owned()
}
