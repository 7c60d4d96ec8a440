//! `include/handoff.h` is written by hand: this test fails when it is stale. It compares
//! 1. each prototype of the header with the `extern "C" fn` of `src/lib.rs` (names, parameter
//!    names and types, mapped Rust → C), and
//! 2. the header's functions with the symbols the built shared library exports (`nm -D`).
//!
//! 3. the fields of `handoff_stats` (names and order; all `uint64_t` / `u64`).
//!
//! (The C tests, `tests/c_api.rs`, compile a program that calls every function of the header.)

use std::collections::BTreeMap;
use std::path::Path;

/// A prototype, normalized: (return type, [(parameter type, parameter name)]).
type Prototype = (String, Vec<(String, String)>);

fn crate_file(path: &str) -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(path)).unwrap()
}

/// "const char  *" → "const char *".
fn normalize(c_type: &str) -> String {
    c_type
        .replace('*', " * ")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

/// Splits "const char *path" into ("const char *", "path").
fn split_declaration(declaration: &str) -> (String, String) {
    let declaration = declaration.trim();
    let at = declaration
        .rfind(|c: char| !(c.is_alphanumeric() || c == '_'))
        .map_or(0, |i| i + 1);
    (normalize(&declaration[..at]), declaration[at..].to_string())
}

fn header_prototypes() -> BTreeMap<String, Prototype> {
    let header = crate_file("include/handoff.h");
    let mut prototypes = BTreeMap::new();
    for line in header.lines().filter(|l| l.starts_with("HANDOFF_API ")) {
        let line = line
            .trim_start_matches("HANDOFF_API ")
            .trim_end_matches(';');
        let (head, params) = line.split_once('(').unwrap();
        let (ret, name) = split_declaration(head);
        let params = params.trim_end_matches(')');
        let params = match params.trim() {
            "void" | "" => vec![],
            params => params.split(',').map(split_declaration).collect(),
        };
        prototypes.insert(name, (ret, params));
    }
    prototypes
}

/// The C type of a Rust FFI type of `src/lib.rs`.
fn c_type(rust: &str) -> String {
    let rust = rust.trim();
    if let Some(pointee) = rust.strip_prefix("*mut ") {
        return normalize(&format!("{} *", c_type(pointee)));
    }
    if let Some(pointee) = rust.strip_prefix("*const ") {
        return normalize(&format!("const {} *", c_type(pointee)));
    }
    match rust {
        "usize" => "size_t",
        "c_int" => "int",
        "i64" => "int64_t",
        "c_char" => "char",
        "c_void" | "()" => "void",
        "handoff_pager" | "handoff_stats" => rust,
        other => panic!("no C type known for the Rust type {other}: extend this test"),
    }
    .to_string()
}

fn rust_prototypes() -> BTreeMap<String, Prototype> {
    let source = crate_file("src/lib.rs");
    let mut prototypes = BTreeMap::new();
    for piece in source.split("extern \"C\" fn ").skip(1) {
        let (name, rest) = piece.split_once('(').unwrap();
        let (params, rest) = rest.split_once(')').unwrap();
        let head = rest.split_once('{').unwrap().0.trim();
        let ret = head.strip_prefix("->").map_or("()", str::trim);
        let params = params
            .split(',')
            .filter(|p| !p.trim().is_empty())
            .map(|p| {
                let (name, rust) = p.split_once(':').unwrap();
                (c_type(rust), name.trim().to_string())
            })
            .collect();
        prototypes.insert(name.trim().to_string(), (c_type(ret), params));
    }
    prototypes
}

#[test]
fn the_header_declares_exactly_the_rust_exports() {
    let header = header_prototypes();
    let rust = rust_prototypes();
    assert!(header.len() >= 16, "{header:?}");
    for (name, prototype) in &rust {
        assert_eq!(
            header.get(name),
            Some(prototype),
            "handoff.h is stale for {name}"
        );
    }
    assert_eq!(
        header.keys().collect::<Vec<_>>(),
        rust.keys().collect::<Vec<_>>(),
        "handoff.h and src/lib.rs declare different functions"
    );
}

#[cfg(target_os = "linux")]
#[test]
fn the_shared_library_exports_exactly_the_headers_functions() {
    // Where `cargo test` built it: `deps/`, beside this test binary (see tests/common).
    let exe = std::env::current_exe().unwrap();
    let library = exe.parent().unwrap().join("libhandoff_c.so");
    let output = std::process::Command::new("nm")
        .args(["-D", "--defined-only"])
        .arg(&library)
        .output()
        .expect("running nm");
    assert!(output.status.success(), "nm {}", library.display());
    let exported: Vec<String> = String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .filter_map(|line| line.split_whitespace().nth(2))
        .filter(|symbol| symbol.starts_with("handoff_"))
        .map(str::to_string)
        .collect();
    let declared: Vec<String> = header_prototypes().into_keys().collect();
    let mut exported_sorted = exported.clone();
    exported_sorted.sort();
    assert_eq!(exported_sorted, declared);
}

#[test]
fn the_stats_struct_has_the_rust_fields_in_order() {
    let header = crate_file("include/handoff.h");
    let body = header
        .split_once("typedef struct handoff_stats {")
        .unwrap()
        .1
        .split_once('}')
        .unwrap()
        .0;
    let c_fields: Vec<&str> = body
        .lines()
        .filter_map(|line| line.trim().strip_prefix("uint64_t "))
        .map(|rest| rest.split(';').next().unwrap().trim())
        .collect();
    let source = crate_file("src/lib.rs");
    let body = source
        .split_once("pub struct handoff_stats {")
        .unwrap()
        .1
        .split_once('}')
        .unwrap()
        .0;
    let rust_fields: Vec<&str> = body
        .lines()
        .filter_map(|line| line.trim().strip_prefix("pub "))
        .map(|rest| {
            let (name, ty) = rest.split_once(':').unwrap();
            assert_eq!(ty.trim(), "u64,", "{name}: only u64 fields are checked");
            name.trim()
        })
        .collect();
    assert!(c_fields.len() >= 12, "{c_fields:?}");
    assert_eq!(c_fields, rust_fields, "handoff_stats in handoff.h is stale");
}
